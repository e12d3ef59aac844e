import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgssl.eval.classification_metrics import bootstrap_weights, macro_auroc
from ecgssl.eval.compare import paired_probe_difference, paired_segmentation_difference
from ecgssl.eval.segmentation_metrics import SegmentationScorer


def _folds(n=60, k=3, n_folds=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, k)) < 0.35).astype(int)
    labels[:2] = [1] * k  # every class has positives in every fold below
    perm = rng.permutation(n)
    tests = [np.sort(perm[f::n_folds]) for f in range(n_folds)]
    return rng, labels, tests


def _reference_macro(y, s):
    """sklearn AUROC per class with positives and negatives, mean over classes."""
    per = [roc_auc_score(y[:, j], s[:, j]) for j in range(y.shape[1])
           if 0 < y[:, j].sum() < len(y)]
    return float(np.mean(per))


def test_probe_difference_matches_an_explicit_resampling_reference():
    rng, labels, tests = _folds()
    sa = [labels[t] + rng.normal(0, 0.8, (len(t), labels.shape[1])) for t in tests]
    sb = [rng.normal(0, 1, (len(t), labels.shape[1])) for t in tests]
    out = paired_probe_difference(labels, tests, sa, sb, n_boot=25, seed=3)
    # Observed: the suite's statistic (mean over folds of the macro AUROC).
    obs = np.mean([macro_auroc(labels[t], a)[0] - macro_auroc(labels[t], b)[0]
                   for t, a, b in zip(tests, sa, sb)])
    assert out["delta"] == pytest.approx(obs, abs=1e-12)
    # Resamples: draw the same multinomial counts, materialise the records, use sklearn.
    ref_rng = np.random.default_rng(3)
    weights = [bootstrap_weights(len(t), 25, ref_rng) for t in tests]
    diffs = []
    for b in range(25):
        per_fold = []
        for t, a, s_b, w in zip(tests, sa, sb, weights):
            idx = np.repeat(np.arange(len(t)), w[b].astype(int))
            y = labels[t][idx]
            per_fold.append(_reference_macro(y, a[idx]) - _reference_macro(y, s_b[idx]))
        diffs.append(np.mean(per_fold))
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    assert out["ci"] == pytest.approx([lo, hi], abs=1e-9)
    assert out["p_not_better"] == pytest.approx(np.mean(np.array(diffs) <= 0))


def test_probe_difference_of_a_row_with_itself_is_zero():
    rng, labels, tests = _folds(seed=1)
    s = [rng.normal(size=(len(t), labels.shape[1])) for t in tests]
    out = paired_probe_difference(labels, tests, s, s, n_boot=50)
    assert out["delta"] == 0.0 and out["ci"] == [0.0, 0.0]
    assert out["p_not_better"] == 1.0 and out["classes_better"] == 0


def test_probe_difference_detects_a_real_gap_and_reports_classes():
    rng, labels, tests = _folds(n=150, seed=2)
    sa = [labels[t] * 2.0 + rng.normal(0, 1, (len(t), labels.shape[1])) for t in tests]
    sb = [rng.normal(0, 1, (len(t), labels.shape[1])) for t in tests]
    out = paired_probe_difference(labels, tests, sa, sb, class_names=["x", "y", "z"],
                                  n_boot=200)
    assert out["ci"][0] > 0 and out["p_not_better"] < 0.01
    assert out["classes_better"] == out["n_classes"] == 3
    assert set(out["per_class"]) == {"x", "y", "z"} and len(out["per_fold"]) == 3


def test_probe_difference_rejects_mismatched_inputs():
    _, labels, tests = _folds()
    with pytest.raises(ValueError, match="same number"):
        paired_probe_difference(labels, tests, [], [])
    with pytest.raises(ValueError, match="differ in shape"):
        paired_probe_difference(labels, tests[:1], [np.zeros((3, 3))], [np.zeros((3, 3))])


def test_probe_difference_with_groups_draws_whole_groups():
    """Groups of one row each give the row-level bootstrap; duplicated rows in one group are
    drawn together, so the result equals that of the de-duplicated data with the same draws."""
    rng, labels, tests = _folds(n=45, seed=4)
    sa = [labels[t] + rng.normal(0, 1, (len(t), labels.shape[1])) for t in tests]
    sb = [rng.normal(0, 1, (len(t), labels.shape[1])) for t in tests]
    plain = paired_probe_difference(labels, tests, sa, sb, n_boot=40, seed=1)
    own = paired_probe_difference(labels, tests, sa, sb, groups=np.arange(45) * 7, n_boot=40,
                                  seed=1)
    assert own["ci"] == plain["ci"] and own["delta"] == plain["delta"]
    # Every row twice, both copies in one group: AUROC is unchanged by duplicating all rows.
    labels2 = np.repeat(labels, 2, axis=0)
    tests2 = [np.sort(np.r_[2 * t, 2 * t + 1]) for t in tests]
    sa2, sb2 = [np.repeat(a, 2, axis=0) for a in sa], [np.repeat(b, 2, axis=0) for b in sb]
    grouped = paired_probe_difference(labels2, tests2, sa2, sb2, groups=np.arange(90) // 2,
                                      n_boot=40, seed=1)
    assert grouped["delta"] == pytest.approx(plain["delta"])
    assert grouped["ci"] == pytest.approx(plain["ci"])
    # Treating the copies as independent records narrows the interval: the reason for groups.
    naive = paired_probe_difference(labels2, tests2, sa2, sb2, n_boot=400, seed=1)
    wide = paired_probe_difference(labels2, tests2, sa2, sb2, groups=np.arange(90) // 2,
                                   n_boot=400, seed=1)
    assert naive["ci"][1] - naive["ci"][0] < wide["ci"][1] - wide["ci"][0]
    with pytest.raises(ValueError, match="groups"):
        paired_probe_difference(labels, tests, sa, sb, groups=np.arange(3))


def _scorer(shift: int, records=("a", "b", "c", "d")):
    """QRS / T / P waves of 4 records; predictions shifted by ``shift`` samples (tolerance 150
    ms = 75 samples at 500 Hz), so a large shift turns matches into misses."""
    sc = SegmentationScorer(fs=500)
    true = np.array([[1, 100, 150], [2, 200, 250], [3, 400, 500],
                     [1, 600, 650], [2, 700, 750], [3, 900, 1000]])
    for i, rec in enumerate(records):
        pred = true.copy()
        pred[:, 1:] += shift * (i % 2)  # only every other record is off
        sc.add_lead(pred, true, span=(0, 1200), n_samples=1200, record_id=rec)
    return sc


def test_segmentation_difference_observed_and_paired():
    eight = tuple("abcdefgh")  # resamples of only unshifted records: 1 in 256
    good, bad = _scorer(0, eight), _scorer(200, eight)
    out = paired_segmentation_difference(good, bad, n_boot=200)
    def summary_mean_f1(scorer):  # the suite's "mean F1 (QRS, T, P)" from the summary
        summary = scorer.summary()
        return np.mean([(summary[w]["onset"]["f1"] + summary[w]["offset"]["f1"]) / 2
                        for w in ("P", "QRS", "T")])

    assert out["a_f1"] == pytest.approx(summary_mean_f1(good)) and out["a_f1"] == 1.0
    assert out["b_f1"] == pytest.approx(summary_mean_f1(bad))
    assert out["delta_f1"] > 0 and out["p_not_better_f1"] < 0.05
    assert out["delta_dice"] > 0 and set(out["per_wave_f1"]) == {"P", "QRS", "T"}
    same = paired_segmentation_difference(bad, _scorer(200, eight), n_boot=50)
    assert same["delta_f1"] == 0.0 and same["ci_f1"] == [0.0, 0.0]


def test_segmentation_difference_aligns_records_by_id():
    """B holds the same records added in reverse order: the pairing must follow the ids, so
    a row compared with itself (re-ordered) differs by exactly 0 in every resample."""
    a = _scorer(200)
    b = _scorer(200, records=("d", "c", "b", "a"))  # record "d" is now the unshifted one
    c = SegmentationScorer(fs=500)
    for rec in ("d", "c", "b", "a"):
        c.records[rec] = a.records[rec]
    same = paired_segmentation_difference(a, c, n_boot=100)
    assert same["delta_f1"] == 0.0 and same["ci_f1"] == [0.0, 0.0]
    assert same["ci_dice"] == [0.0, 0.0]
    # a and b differ record by record (other records are shifted) but not in total.
    diff = paired_segmentation_difference(a, b, n_boot=200)
    assert diff["delta_f1"] == pytest.approx(0.0)
    assert diff["ci_f1"][0] < 0 < diff["ci_f1"][1]


def test_segmentation_difference_needs_the_same_records():
    with pytest.raises(ValueError, match="different records"):
        paired_segmentation_difference(_scorer(0), _scorer(0, records=("a", "b", "c", "x")))
