"""Full disk, read-only output, missing permissions: one line each; a rerun resumes."""

from __future__ import annotations

import errno

import pytest

from ecgssl.cli import main
from ecgssl.errors import IntegrityError, format_error
from tests.faults.helpers import store_digest, wfdb_folder


@pytest.fixture(scope="module")
def src_and_reference(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("disk")
    src = wfdb_folder(shared_data, root / "src", n=4)
    assert _prepare(src, root / "reference") == 0
    return src, store_digest(root / "reference")


def _prepare(src, out):
    return main(["prepare", str(src), "--out", str(out), "--kind", "wfdb", "--workers", "0",
                 "--no-progress", "--set", "beats=false"])


def _enospc(path):
    return OSError(errno.ENOSPC, "No space left on device", str(path))


@pytest.mark.parametrize("phase", ["chunk", "finalise"])
def test_disk_full_during_prepare(src_and_reference, tmp_path, monkeypatch, phase, capsys,
                                  seen):
    """The disk fills up while prepare writes a chunk / the final arrays -> one line saying
    so (no traceback); after freeing space the same command resumes to the identical store."""
    from ecgssl.data import store

    src, reference = src_and_reference
    out = tmp_path / "store"
    if phase == "chunk":
        real = store._write_chunk

        def full(path, *a, **k):
            (path.with_name(path.name + ".tmp")).mkdir(parents=True, exist_ok=True)
            raise _enospc(path.with_name(path.name + ".tmp") / "signals.npy")

        monkeypatch.setattr(store, "_write_chunk", full)
    else:
        real = store._concat_to_npy

        def full(path, *a, **k):
            path.write_bytes(b"\x93NUMPY half")
            raise _enospc(path)

        monkeypatch.setattr(store, "_concat_to_npy", full)
    assert _prepare(src, out) == 2
    err = capsys.readouterr().err.strip()
    assert "no space left on the device" in err and len(err.splitlines()) == 1
    assert not out.exists() and (tmp_path / "store.partial").is_dir()
    monkeypatch.setattr(store, "_write_chunk" if phase == "chunk" else "_concat_to_npy", real)
    assert _prepare(src, out) == 0
    assert store_digest(out) == reference
    seen(err, nothing_lost=True)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_read_only_or_forbidden_output(src_and_reference, tmp_path, monkeypatch, code, capsys,
                                       seen):
    """The output folder is read-only / not writable (injected at the first write, the
    lock) -> one line saying which and what to do; nothing is left behind."""
    from ecgssl.safety import locks

    src, _ = src_and_reference

    def refuse(path, target):
        raise OSError(code, "injected", str(path))

    monkeypatch.setattr(locks, "_acquire_flock", refuse)
    monkeypatch.setattr(locks, "_acquire_excl", refuse)
    assert _prepare(src, tmp_path / "store") == 2
    err = capsys.readouterr().err.strip()
    assert ("read-only" if code == errno.EROFS else "permission denied") in err
    assert len(err.splitlines()) == 1 and not list(tmp_path.iterdir())
    seen(err)


def test_disk_full_while_exporting_never_leaves_a_trusted_half_file(tmp_path, monkeypatch,
                                                                    seen):
    """The disk fills up while an encoder export rewrites its weights -> the half-written
    weights are never loaded as valid (the previous JSON's sha256 no longer matches)."""
    import safetensors.torch

    from ecgssl.models import create_encoder
    from ecgssl.train.export import export_encoder, load_encoder

    cfg = {"fs": 250, "leads": ["I", "II"], "n_samples": 500, "hash": "h", "preprocess": {}}
    enc = create_encoder("resnet1d_small", n_leads=2, widths=[8, 8, 8, 8, 16])
    weights, _ = export_encoder(enc, tmp_path / "enc", cfg)
    real = safetensors.torch.save_file

    def full(tensors, filename, metadata=None):
        real(tensors, filename, metadata)
        data = open(filename, "rb").read()
        open(filename, "wb").write(data[: len(data) // 2])
        raise _enospc(filename)

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError) as info:
        export_encoder(create_encoder("resnet1d_small", n_leads=2, widths=[8, 8, 8, 8, 16]),
                       tmp_path / "enc", cfg)
    line = format_error(info.value)
    assert "no space left" in line
    with pytest.raises(IntegrityError):
        load_encoder(weights)
    seen(line)


def test_disk_full_while_writing_a_report(tmp_path, monkeypatch, seen):
    """The disk fills up while a report is written -> one line; a rerun writes it."""
    from ecgssl.eval import report as report_mod

    rep = report_mod.Report("t")
    rep.add_text("numbers", "| a |\n|---|\n| 1 |")
    real = report_mod.Report._write

    def full(self, out):
        raise _enospc(out / "report.md")

    monkeypatch.setattr(report_mod.Report, "_write", full)
    with pytest.raises(OSError) as info:
        rep.write(tmp_path / "rep")
    monkeypatch.setattr(report_mod.Report, "_write", real)
    rep.write(tmp_path / "rep")
    assert (tmp_path / "rep" / "report.md").is_file()
    assert not (tmp_path / "rep" / ".ecgssl.lock").exists()
    seen(format_error(info.value))
