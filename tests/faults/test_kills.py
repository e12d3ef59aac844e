"""SIGKILL at several phases of prepare and pretraining, then the same command again: the
result must equal an uninterrupted run's, checksum for checksum."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import time

import pytest

from tests.faults import drivers
from tests.faults.helpers import run_driver, store_digest, tree_digest, wfdb_folder


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, shared_data):
    """Six LUDB records as a WFDB folder and the uninterrupted store made from them."""
    root = tmp_path_factory.mktemp("kills")
    src = wfdb_folder(shared_data, root / "src")
    proc = run_driver("prepare", "none", str(src), str(root / "reference"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root, src, store_digest(root / "reference")


def _rerun_in_process(src, out, overwrite=False):
    from ecgssl.data import store
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.io import open_sources

    chunk = store.CHUNK_RECORDS
    store.CHUNK_RECORDS = drivers.CHUNK
    try:
        return store.prepare_store(open_sources([src], kind="wfdb", checks=None), out,
                                   PreprocessConfig(beats=False), workers=0, overwrite=overwrite,
                                   progress=False)
    finally:
        store.CHUNK_RECORDS = chunk


@pytest.mark.parametrize("phase", ["chunks", "finalise", "cleanup", "pool"])
def test_prepare_killed_then_rerun_equals_uninterrupted(prepared, phase, tmp_path, seen,
                                                        caplog):
    """prepare SIGKILLed mid-run (after 2 chunks / while finalising / during the cleanup, a
    half-removed chunk / with 2 pool workers) -> rerunning the same command resumes to the
    identical store; pool workers die with their parent."""
    _, src, reference = prepared
    out = tmp_path / "store"
    proc = run_driver("prepare", phase, str(src), str(out))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not out.exists() and (tmp_path / "store.partial").is_dir()
    if phase == "pool":
        pids = [int(p) for p in (tmp_path / "worker_pids.txt").read_text().split()]
        assert len(pids) == 2, pids
        _wait_dead(pids)
        (tmp_path / "worker_pids.txt").unlink()
    _rerun_in_process(src, out)
    assert store_digest(out) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no .partial/.lock left
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    seen(warnings[0] if warnings else "resumed without a warning", nothing_lost=True)


def test_prepare_killed_during_the_final_swap(prepared, tmp_path, seen):
    """prepare --overwrite SIGKILLed between moving the old store aside and moving the new one
    in -> the rerun completes the swap; the store equals an uninterrupted run's."""
    root, src, reference = prepared
    out = tmp_path / "store"
    shutil.copytree(root / "reference", out)
    proc = run_driver("prepare", "swap", str(src), str(out), "--overwrite")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not out.exists() and (tmp_path / "store.old").is_dir()
    _rerun_in_process(src, out, overwrite=True)
    assert store_digest(out) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    seen("rerun of the same command finished the swap", nothing_lost=True)


def test_half_removed_chunk_is_recovered_by_overwrite(prepared, tmp_path, seen):
    """A .partial with a half-removed chunk (killed during cleanup) -> prepare --overwrite
    starts over cleanly instead of failing until the user deletes it."""
    _, src, reference = prepared
    out = tmp_path / "store"
    proc = run_driver("prepare", "cleanup", str(src), str(out))
    assert proc.returncode == -signal.SIGKILL
    _rerun_in_process(src, out, overwrite=True)
    assert store_digest(out) == reference
    seen("--overwrite rebuilt the store", nothing_lost=True)


# ------------------------------------------------------------------------------ pretrain


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref_run") / "run"
    drivers.toy_fit(str(out))
    return out, _sha(out / "encoder.safetensors")


def _wait_dead(pids, seconds=10.0):
    deadline = time.time() + seconds
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "worker processes outlived their parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (it only waits for its parent to reap it).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("phase", ["torn", "workers", "export"])
def test_pretrain_killed_then_resumed_equals_uninterrupted(reference_run, phase, tmp_path,
                                                           seen, capsys):
    """pretrain SIGKILLed (mid-run with torn checkpoints / with 2 loader workers / while
    exporting) -> --resume last gives the same encoder, sha256 for sha256; workers die."""
    _, want = reference_run
    out = tmp_path / "run"
    proc = run_driver("pretrain", phase, str(out), timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-1500:] + proc.stderr[-2500:]
    facts = {}
    if phase == "workers":
        pids = [int(p) for p in (tmp_path / "worker_pids.txt").read_text().split()]
        assert len(pids) == 2, pids
        _wait_dead(pids)
        facts["workers_died"] = len(pids)
    before = tree_digest(out / "checkpoints")
    drivers.toy_fit(str(out), resume="last")
    assert _sha(out / "encoder.safetensors") == want
    printed = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    if phase == "torn":
        assert printed and "step0000005.ckpt" in printed[0]
    assert set(before) <= set(tree_digest(out / "checkpoints"))  # no checkpoint deleted
    seen(printed[0] if printed else "resumed from last.ckpt", nothing_lost=True, **facts)
