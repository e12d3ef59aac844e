"""MAE / RMSE / R^2 by hand, NaN targets excluded, seeded bootstrap."""

import numpy as np
import pytest

from ecgssl.eval.regression_metrics import evaluate_regression, regression_metrics


def test_hand_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 3.0, 3.0, 2.0])  # errors 0, 1, 0, -2
    m = regression_metrics(y, p)
    assert m["mae"] == pytest.approx(0.75)
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 4))
    assert m["r2"] == pytest.approx(1 - 5 / 5)  # ss_tot = 2.25+.25+.25+2.25 = 5


def test_nan_targets_excluded_and_counted(rng):
    y = rng.normal(size=200)
    p = y + rng.normal(scale=0.3, size=200)
    y[:10] = np.nan
    r = evaluate_regression(y, p, "qrs", "ms", n_boot=200, seed=1)
    assert r.n_excluded == 10 and r.n_records == 190
    assert r.mae_ci[0] <= r.mae <= r.mae_ci[1]
    assert r.r2_ci[0] <= r.r2 <= r.r2_ci[1]
    r2 = evaluate_regression(y, p, "qrs", "ms", n_boot=200, seed=1)
    assert r.mae_ci == r2.mae_ci
    assert r.to_dict()["target"] == "qrs"
