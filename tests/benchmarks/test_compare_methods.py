"""benchmarks/compare_methods.py renders its committed results from their JSON alone, and the
fine-tuned rows (``--finetune``) get their own paired table and direction lines."""

import copy
import json
from pathlib import Path

import pytest

from tests.benchmarks.helpers import load_benchmark

REPO = Path(__file__).resolve().parents[2]
RESULTS = sorted(p for p in (REPO / "benchmarks" / "results").glob("compare_methods*.json")
                 if not p.stem.endswith("_partial"))


def _benchmark():
    return load_benchmark("compare_methods")


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.stem)
def test_markdown_and_directions_come_from_the_json(path):
    bench = _benchmark()
    res = json.loads(path.read_text())
    assert bench.directions(res) == res["directions"]
    assert bench.markdown(res) == path.with_suffix(".md").read_text()


def _pooled(f1):
    return {w: {"onset": {"f1": f1}, "offset": {"f1": f1}} for w in ("P", "QRS", "T")}


def test_finetuned_rows_get_a_paired_table_and_directions():
    bench = _benchmark()
    res = json.loads(RESULTS[0].read_text())
    res = copy.deepcopy(res)
    suite = res["suite"]
    for k, (title, f1, lo) in enumerate([("Beat-SSL", 0.95, 0.01), ("ECG-JEPA", 0.90, -0.02)]):
        name = f"{title} fine-tuned"
        suite["rows"].append(name)
        suite["segmentation"][name] = {"pooled": _pooled(f1)}
        suite["paired_probe"][name] = {"vs": "supervised", "delta": 0.01, "ci": [-0.01, 0.03]}
        suite["paired_segmentation"][name] = {"vs": "supervised", "delta_f1": 0.02 - k * 0.03,
                                              "ci_f1": [lo, lo + 0.03]}
    md = bench.markdown(res | {"directions": bench.directions(res)})
    assert "| Beat-SSL fine-tuned | supervised | +0.010 [-0.010, +0.030] | +0.020" in md
    lines = bench.directions(res)
    assert any("fine-tuned: seen" in line and "Beat-SSL 0.950" in line for line in lines)
    assert any("above supervised from scratch: Beat-SSL." in line for line in lines)
