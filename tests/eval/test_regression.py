"""LUDB interval targets on a hand-made annotation; ridge on frozen features."""

import numpy as np
import pytest

from ecgssl.eval.regression import (
    interval_target_matrix,
    ludb_interval_targets,
    ridge_probe,
    ridge_probe_cv,
)
from ecgssl.eval.splits import Split, patient_kfold


def _beat(shift, qrs_len=50):
    # (code, onset, peak, offset): P 100-150, QRS 200-250, T 300-400, then shifted
    return [[1, 100 + shift, 120 + shift, 150 + shift],
            [2, 200 + shift, 220 + shift, 200 + shift + qrs_len],
            [3, 300 + shift, 350 + shift, 400 + shift]]


def test_interval_targets_hand_made():
    ii = np.array(_beat(0) + _beat(400, qrs_len=60) + _beat(800), dtype=np.int64)
    t = ludb_interval_targets({"ii": ii}, fs=500)
    assert t["hr_bpm"] == pytest.approx(75.0)  # RR 400 samples = 0.8 s
    assert t["qrs_ms"] == pytest.approx(100.0)  # median of 50, 60, 50 samples
    assert t["pr_ms"] == pytest.approx(200.0)  # 100 samples
    assert t["qt_ms"] == pytest.approx(400.0)  # 200 samples


def test_af_has_no_pr_and_unknown_points_skipped():
    af = np.array([b for s in (0, 350, 720) for b in _beat(s)[1:]], dtype=np.int64)
    af[0, 1] = -1  # unknown onset: that beat gives no QRS / QT
    t = ludb_interval_targets({"II": af, "V1": af}, fs=500)
    assert np.isnan(t["pr_ms"])
    assert t["qrs_ms"] == pytest.approx(100.0)
    assert t["hr_bpm"] == pytest.approx(60 * 500 / 360)  # RRs 350, 370 -> median 360
    assert np.isnan(ludb_interval_targets({"V1": af}, fs=500)["hr_bpm"])  # no lead II
    over_leads = ludb_interval_targets({"V1": af}, fs=500, lead=None)
    assert over_leads["qrs_ms"] == pytest.approx(100.0)
    m = interval_target_matrix([{"II": af}, {}], fs=500)
    assert m.shape == (2, 4) and np.isnan(m[1]).all()


def test_ridge_probe_recovers_linear_target_and_excludes_nan(rng):
    n = 300
    feats = rng.normal(size=(n, 10)).astype(np.float32)
    targets = np.stack([60 + 10 * feats[:, 0], 100 + 5 * feats[:, 1] - 3 * feats[:, 2],
                        rng.normal(size=n)], axis=1)
    targets[:20, 1] = np.nan
    split = Split(np.arange(0, 200), np.arange(200, 250), np.arange(250, n))
    res = ridge_probe(feats + 0.01 * rng.normal(size=feats.shape), targets, split,
                      target_names=["hr_bpm", "qrs_ms", "noise"], n_boot=100)
    assert res["hr_bpm"].mae < 0.5 and res["hr_bpm"].r2 > 0.99
    assert res["hr_bpm"].unit == "bpm"
    assert res["noise"].r2 < 0.2
    assert res["hr_bpm"].extra["alpha"] in (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
    targets[250:260, 0] = np.nan  # test rows without a measurable target
    assert ridge_probe(feats, targets, split, n_boot=0)["t0"].n_excluded == 10
    cv = ridge_probe_cv(feats, targets, patient_kfold(4, n_records=n), n_boot=50,
                        target_names=["hr_bpm", "qrs_ms", "noise"])
    assert cv["results"]["qrs_ms"].n_excluded == 20
    assert len(cv["fold_mae"]["hr_bpm"]) == 4
    assert np.isfinite(cv["predictions"][:, 0]).all()
