"""Hand-computed checks of AUROC, thresholds, F1 and the bootstrap."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgssl.eval.classification_metrics import (
    auroc,
    choose_thresholds,
    evaluate_classification,
    f1_per_class,
    macro_auroc,
    per_class_auroc,
)


def test_auroc_hand_values():
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered right
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half
    assert auroc([0, 0, 1], [0.2, 0.5, 0.5]) == pytest.approx(0.75)
    assert auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert np.isnan(auroc([1, 1], [0.1, 0.2]))


def test_auroc_matches_sklearn_with_ties(rng):
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounding creates many ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_macro_auroc_skips_and_names_classes():
    labels = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.2, 0.3], [0.6, 0.3, 0.3], [0.4, 0.4, 0.3]])
    value, skipped = macro_auroc(labels, scores, ["A", "noPos", "noNeg"])
    assert value == pytest.approx(1.0)
    assert skipped == ["noPos", "noNeg"]
    per = per_class_auroc(labels, scores)
    assert per[0] == 1.0 and np.isnan(per[1]) and np.isnan(per[2])


def test_threshold_chosen_on_val_applied_to_test():
    val_y = np.array([[1], [1], [0], [0], [1]])
    val_s = np.array([[0.9], [0.8], [0.7], [0.3], [0.2]])
    # F1 by cut: 0.9 -> .4, 0.8 -> .8, 0.7 -> .667, 0.3 -> .571, 0.2 -> .75: cut between .8, .7
    th = choose_thresholds(val_y, val_s)
    assert th[0] == pytest.approx(0.75)
    test_y = np.array([[1], [0], [1], [0]])
    test_s = np.array([[0.76], [0.74], [0.99], [0.1]])
    res = evaluate_classification(test_y, test_s, th, ["X"], n_boot=0)
    assert res.macro_f1 == pytest.approx(1.0)
    assert res.thresholds["X"] == pytest.approx(0.75)
    # no positive in validation: never predicted positive
    assert np.isinf(choose_thresholds(np.zeros((3, 1)), np.ones((3, 1)))[0])


def test_f1_hand_value():
    y = np.array([[1], [1], [0], [0]])
    p = np.array([[1], [0], [1], [0]])  # tp 1, fp 1, fn 1 -> F1 0.5
    assert f1_per_class(y, p)[0] == pytest.approx(0.5)


def test_bootstrap_ci_contains_point_and_is_seeded(rng):
    n, k = 400, 4
    y = (rng.random((n, k)) < [0.5, 0.2, 0.05, 0.01]).astype(np.uint8)
    y[:, 3] = 0
    y[0, 3] = 1  # a single positive: absent from about 37 % of the resamples
    s = y + rng.normal(scale=0.8, size=(n, k))
    th = np.zeros(k) + 0.5
    a = evaluate_classification(y, s, th, list("abcd"), n_boot=300, seed=3)
    b = evaluate_classification(y, s, th, list("abcd"), n_boot=300, seed=3)
    c = evaluate_classification(y, s, th, list("abcd"), n_boot=300, seed=4)
    assert a.macro_auroc_ci == b.macro_auroc_ci
    assert a.macro_auroc_ci != c.macro_auroc_ci
    lo, hi = a.macro_auroc_ci
    assert lo <= a.macro_auroc <= hi and hi - lo > 0
    lo, hi = a.macro_f1_ci
    assert lo <= a.macro_f1 <= hi
    # the rare class is missing from some resamples: counted, not crashing
    assert a.bootstrap_undefined.get("d", 0) > 0
    d = a.to_dict()
    assert d["n_evaluated_classes"] == 4 and d["per_class_auroc"]["a"] > 0.5


def test_bad_input_raises():
    with pytest.raises(ValueError, match="shape"):
        macro_auroc(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        macro_auroc(np.zeros((2, 1)), np.array([[np.nan], [0.0]]))
