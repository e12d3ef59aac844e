"""Output-directory guard: what counts as ecgssl's, what is refused, what --overwrite removes."""

import json

import pytest

from ecgssl.errors import OutputDirError
from ecgssl.safety.outputs import (
    MARKER,
    claim_output_dir,
    ecgssl_kind,
    guard_output_dir,
    remove_own_entries,
)


def test_new_empty_and_marked_directories(tmp_path):
    assert guard_output_dir(tmp_path / "new", "run") == "new"
    (tmp_path / "empty").mkdir()
    assert guard_output_dir(tmp_path / "empty", "run") == "empty"
    claim_output_dir(tmp_path / "r", "run")
    assert json.loads((tmp_path / "r" / MARKER).read_text())["kind"] == "run"
    assert guard_output_dir(tmp_path / "r", "run", existing_ok=True) == "ours"
    with pytest.raises(OutputDirError, match="--overwrite"):
        guard_output_dir(tmp_path / "r", "run")
    with pytest.raises(OutputDirError, match="not a store"):
        guard_output_dir(tmp_path / "r", "store", overwrite=True)


def test_older_directories_are_recognised_by_their_contents(tmp_path):
    store = tmp_path / "s"
    store.mkdir()
    (store / "config.json").write_text(json.dumps({"hash": "h", "n_windows": 3, "leads": []}))
    assert ecgssl_kind(store) == "store"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("a: 1")
    assert ecgssl_kind(run) == "run"
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "report.json").write_text(json.dumps({"title": "t", "sections": []}))
    assert ecgssl_kind(rep) == "report"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text(json.dumps({"model": "bert"}))
    assert ecgssl_kind(tmp_path / "x") is None


def test_overwrite_removes_only_ecgssl_files(tmp_path):
    run = tmp_path / "run"
    claim_output_dir(run, "run")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run / "metrics.csv").write_text("step\n")
    assert guard_output_dir(run, "run", overwrite=True) == "ours"
    assert remove_own_entries(run, "run") == ["checkpoints", "metrics.csv"]
    assert sorted(p.name for p in run.iterdir()) == [MARKER]
    (run / "mine.txt").write_text("keep")
    with pytest.raises(OutputDirError, match="mine.txt"):
        guard_output_dir(run, "run", overwrite=True)
