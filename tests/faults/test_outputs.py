"""Never delete or write over what ecgssl did not write: prepare --out, run and report dirs."""

from __future__ import annotations

import json

import pytest

from ecgssl.cli import main
from ecgssl.errors import OutputDirError
from tests.faults import drivers
from tests.faults.helpers import tree_digest, user_folder, wfdb_folder


@pytest.fixture(scope="module")
def src(tmp_path_factory, shared_data):
    return wfdb_folder(shared_data, tmp_path_factory.mktemp("src") / "records", n=4)


def _prepare(src, out, *extra):
    return main(["prepare", str(src), "--out", str(out), "--kind", "wfdb", "--workers", "0",
                 "--no-progress", "--set", "beats=false", *extra])


@pytest.mark.parametrize("flags", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_prepare_into_a_folder_of_the_users_is_refused(src, tmp_path, flags, capsys, seen):
    """prepare --out DIR where DIR holds the user's files (and a subfolder) -> refused before
    anything is touched, with or without --overwrite; every file still there."""
    out = user_folder(tmp_path / "mine")
    before = tree_digest(out)
    assert _prepare(src, out, *flags) == 2
    err = capsys.readouterr().err.strip()
    assert "did not write" in err and len(err.splitlines()) == 1
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no .partial, no .lock
    seen(err, nothing_lost=True)


def test_prepare_onto_a_file_is_refused(src, tmp_path, capsys, seen):
    """prepare --out FILE -> refused, the file unchanged."""
    out = tmp_path / "results.csv"
    out.write_text("a,b\n1,2\n")
    assert _prepare(src, out, "--overwrite") == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and out.read_text() == "a,b\n1,2\n"
    seen(err, nothing_lost=True)


def test_store_overwrite_needs_the_flag_and_keeps_user_files(src, tmp_path, capsys, seen):
    """An existing store of another config: refused without --overwrite; with --overwrite it
    is replaced, unless the user put a file of theirs into it (then refused, file kept)."""
    out = tmp_path / "store"
    assert _prepare(src, out) == 0
    capsys.readouterr()
    assert _prepare(src, out, "--set", "fs=100") == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err
    (out / "my_notes.txt").write_text("mine")
    assert _prepare(src, out, "--set", "fs=100", "--overwrite") == 2
    err2 = capsys.readouterr().err.strip()
    assert "my_notes.txt" in err2 and (out / "my_notes.txt").read_text() == "mine"
    (out / "my_notes.txt").unlink()
    assert _prepare(src, out, "--set", "fs=100", "--overwrite") == 0
    assert json.loads((out / "config.json").read_text())["fs"] == 100
    seen(err2, nothing_lost=True)


def test_a_foreign_partial_folder_is_not_deleted(src, tmp_path, capsys, seen):
    """<out>.partial exists but is the user's folder -> refused, not deleted."""
    user_folder(tmp_path / "store.partial")
    before = tree_digest(tmp_path / "store.partial")
    assert _prepare(src, tmp_path / "store") == 2
    err = capsys.readouterr().err.strip()
    assert "store.partial" in err and tree_digest(tmp_path / "store.partial") == before
    seen(err, nothing_lost=True)


def test_pretrain_into_a_finished_run_is_refused(tmp_path, seen):
    """pretrain into a finished run dir without --resume -> refused naming --resume and
    --overwrite; with --overwrite the run is redone (only ecgssl's files replaced)."""
    out = tmp_path / "run"
    drivers.toy_fit(str(out))
    before = tree_digest(out)
    with pytest.raises(OutputDirError) as info:
        drivers.toy_fit(str(out))
    message = str(info.value)
    assert "--resume" in message and "--overwrite" in message and "finished run" in message
    assert tree_digest(out) == before
    from ecgssl.train import run

    recipe = run.load_recipe(out / "config.yaml")
    with pytest.raises(OutputDirError):
        run.fit(recipe, None, None, out)  # refused before the method is even looked at
    seen(message, nothing_lost=True)


def test_pretrain_into_a_folder_of_the_users_is_refused(tmp_path, seen):
    """pretrain --out DIR holding the user's files -> refused, --overwrite too."""
    out = user_folder(tmp_path / "mine")
    before = tree_digest(out)
    from ecgssl.train import run

    for overwrite in (False, True):
        with pytest.raises(OutputDirError) as info:
            run.fit({}, None, None, out, overwrite=overwrite)
    assert tree_digest(out) == before
    seen(str(info.value), nothing_lost=True)


def test_report_into_a_folder_of_the_users_is_refused(tmp_path, seen):
    """A report (evaluate / report --out) into a folder of the user's -> refused."""
    from ecgssl.eval.report import Report

    out = user_folder(tmp_path / "mine")
    before = tree_digest(out)
    with pytest.raises(OutputDirError) as info:
        Report("t").write(out)
    assert tree_digest(out) == before
    # An ecgssl report folder is rewritten in place; a new one is marked as ecgssl's.
    Report("t").write(tmp_path / "rep")
    Report("t2").write(tmp_path / "rep")
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["title"] == "t2"
    seen(str(info.value), nothing_lost=True)
