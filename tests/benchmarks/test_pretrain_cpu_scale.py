"""benchmarks/pretrain_cpu_scale.py re-renders every committed result from its JSON alone
(``--report-only``): the JSON is reproduced exactly (choices, statements) and the Markdown is
the committed one."""

import shutil
from pathlib import Path

import pytest

from tests.benchmarks.helpers import load_benchmark

REPO = Path(__file__).resolve().parents[2]
RESULTS = sorted((REPO / "benchmarks" / "results").glob("pretrain_cpu_scale*.json"))


def _benchmark():
    return load_benchmark("pretrain_cpu_scale")


def test_the_benchmark_is_a_short_caller():
    assert len((REPO / "benchmarks" / "pretrain_cpu_scale.py").read_text().splitlines()) < 300


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.stem)
def test_report_only_reproduces_the_committed_results(path, tmp_path, capsys):
    shutil.copy2(path, tmp_path / path.name)
    argv = ["--report-only", "--results", str(tmp_path), "--out", str(tmp_path / "runs")]
    if path.stem != "pretrain_cpu_scale":
        argv += ["--stem", path.stem]
    assert _benchmark().main(argv) == 0
    assert (tmp_path / path.name).read_text() == path.read_text()
    md = path.with_suffix(".md")
    assert (tmp_path / md.name).read_text() == md.read_text()
