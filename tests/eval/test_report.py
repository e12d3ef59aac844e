"""Report folder: Markdown tables, JSON with every number, figures."""

import json

import numpy as np

from ecgssl.eval.classification_metrics import evaluate_classification
from ecgssl.eval.regression_metrics import evaluate_regression
from ecgssl.eval.report import Report, classification_table, format_value, segmentation_table
from ecgssl.plots import plot_error_histogram


def _cls(rng, strength):
    y = (rng.random((200, 3)) < 0.3).astype(np.uint8)
    y[:, 2] = 0  # a class without positives: must be reported as skipped
    s = strength * y + rng.normal(size=y.shape)
    return evaluate_classification(y, s, np.zeros(3), ["NORM", "MI", "HYP"], n_boot=50,
                                   extra={"best_c": 0.1})


def test_format_value():
    assert format_value(0.91234, (0.9, 0.92)) == "0.912 [0.900, 0.920]"
    assert format_value(0.5, std=0.01, digits=2) == "0.50 +- 0.01"
    assert format_value(float("nan")) == "-"


def test_report_written(tmp_path, rng):
    pre, rnd = _cls(rng, 2.0), _cls(rng, 0.2)
    md, js = classification_table([("ECG-JEPA", pre), ("random init", rnd)])
    assert "ECG-JEPA" in md and "2 (1)" in md and "C=0.1" in md
    assert "- ECG-JEPA: skipped (no positive or no negative test record): HYP" in md
    assert js[0]["skipped_classes"] == ["HYP"]
    y = rng.normal(70, 10, 100)
    reg = {"hr_bpm": evaluate_regression(y, y + rng.normal(size=100), "hr_bpm", "bpm", n_boot=50)}
    seg = {"P": {"dice": 0.9, "onset": {"f1": 0.97, "error_mean_ms": 1.5, "error_sd_ms": 12.0}}}
    rep = Report("test report", "a tiny report", meta={"seed": 0})
    rep.add_classification("Linear probe", [("ECG-JEPA", pre), ("random init", rnd)])
    rep.add_classification("Low label", {"1 %": {"macro_auroc": {"mean": 0.8, "std": 0.02,
                                                                 "n": 3}}})
    rep.add_regression("Intervals", [("ECG-JEPA", reg)])
    rep.add_segmentation("Delineation", [{"name": "U-Net", **seg}])
    rep.add_figure("errors", plot_error_histogram(y, y + 1, name="hr", unit="bpm"), "HR errors")
    out = rep.write(tmp_path / "rep")
    text = (out / "report.md").read_text()
    assert "## Linear probe" in text and "0.800 +- 0.020 (n=3)" in text
    assert "hr_bpm MAE (bpm)" in text and "| U-Net | P | 0.900 |" in text
    assert "1.5 +- 12.0" in text and "onset F1" in text
    assert "figures/errors.png" in text and (out / "figures" / "errors.png").stat().st_size > 0
    data = json.loads((out / "report.json").read_text())
    assert data["sections"][0]["rows"][0]["macro_auroc"] == pre.macro_auroc
    assert data["sections"][2]["rows"][0]["targets"]["hr_bpm"]["unit"] == "bpm"
    md, _ = segmentation_table([("nk", {"QRS": {"f1": 0.9, "f1_ci": [0.85, 0.95]}})])  # generic
    assert "0.900 [0.850, 0.950]" in md
