import numpy as np
import pytest

from ecgssl.eval.segmentation_metrics import (
    SegmentationScorer,
    dice_counts,
    dice_score,
    match_points,
    score_points,
)


def test_match_points_one_to_one_and_tolerance():
    pi, ti = match_points([100, 104], [102], tolerance=5)
    assert len(pi) == 1 and ti.tolist() == [0]        # duplicate detection: only one matches
    pi, ti = match_points([0, 50], [20], tolerance=10)
    assert len(pi) == 0
    pi, ti = match_points([10], [20], tolerance=10)    # inclusive tolerance
    assert pi.tolist() == [0] and ti.tolist() == [0]
    assert len(match_points([], [1, 2], 5)[0]) == 0
    with pytest.raises(ValueError):
        match_points([1], [1], 5, method="nearest")


def test_hungarian_maximises_pairs_where_greedy_does_not():
    # valid pairs (pred, true): (5, 1) d=4, (5, 7) d=2, (10, 7) d=3.
    pred, true = [5, 10], [1, 7]
    # greedy takes (5, 7) first, which blocks both others -> one pair.
    pg, tg = match_points(pred, true, tolerance=4, method="greedy")
    ph, th = match_points(pred, true, tolerance=4, method="hungarian")
    assert len(pg) == 1 and (pg.tolist(), tg.tolist()) == ([0], [1])
    # hungarian: (5,1) d=4 and (10,7) d=3 -> two pairs
    assert len(ph) == 2 and ph.tolist() == [0, 1] and th.tolist() == [0, 1]


def test_score_points_span_rules():
    span = (100, 1000)
    # expert at 100 (span edge); predicted 95 is outside the span but within tolerance: matches.
    s = score_points([95, 50, 500, 990, 1005], [100, 500], span, tolerance=10)
    # 50: outside span, unmatched -> not FP. 990: inside, unmatched -> FP. 1005: outside -> ignored.
    assert (s.tp, s.fp, s.fn) == (2, 1, 0)
    assert sorted(s.errors.tolist()) == [-5, 0]
    # negative values (unknown) are ignored
    s = score_points([-1, 500], [500], span, tolerance=10)
    assert (s.tp, s.fp, s.fn) == (1, 0, 0)


def test_dice_hand_computed():
    pred = np.array([0, 1, 1, 1, 0, 2, 2, 0, 3, 3])
    true = np.array([0, 0, 1, 1, 1, 2, 2, 2, 0, 0])
    c = dice_counts(pred, true)
    np.testing.assert_array_equal(c, [[2, 3, 3], [2, 2, 3], [0, 2, 0]])
    d = dice_score(pred, true)
    assert d["P"] == pytest.approx(4 / 6) and d["QRS"] == pytest.approx(4 / 5) and d["T"] == 0
    # span [0, 5): only first five samples
    np.testing.assert_array_equal(dice_counts(pred, true, (0, 5)), [[2, 3, 3], [0, 0, 0],
                                                                    [0, 0, 0]])
    assert np.isnan(dice_score(pred, true, (0, 5))["QRS"])


def _waves():
    true = np.array([[1, 100, 140], [2, 180, 230], [3, 330, 430],
                     [1, 600, 640], [2, 680, 730], [3, 830, 930]])
    return true


def test_scorer_exact_example():
    fs = 1000  # 1 ms per sample
    true = _waves()
    pred = true.copy()
    pred[1, 1] += 10   # QRS onset +10 ms
    pred[4, 1] -= 20   # QRS onset -20 ms
    pred[2, 2] += 200  # T offset 200 ms off -> FN and FP
    pred = np.vstack([pred, [[2, 950, 990]]])  # extra QRS inside span -> FP for onset and offset
    sc = SegmentationScorer(fs=fs, tolerance_ms=150)
    sc.add_lead(pred, true, span=(100, 1000), record_id="r1")
    s = sc.summary()
    qrs = s["QRS"]
    assert (qrs["onset"]["tp"], qrs["onset"]["fp"], qrs["onset"]["fn"]) == (2, 1, 0)
    assert qrs["onset"]["se"] == 1.0 and qrs["onset"]["ppv"] == pytest.approx(2 / 3)
    assert qrs["onset"]["f1"] == pytest.approx(4 / 5)
    assert qrs["onset"]["error_mean_ms"] == pytest.approx(-5.0)
    assert qrs["onset"]["error_sd_ms"] == pytest.approx(np.std([10, -20], ddof=1))
    t_off = s["T"]["offset"]
    assert (t_off["tp"], t_off["fp"], t_off["fn"]) == (1, 1, 1)
    assert s["P"]["onset"]["f1"] == 1.0 and s["P"]["dice"] == 1.0
    # QRS Dice by hand: expert 51 + 51 samples; pred 41 (190..230) + 71 (660..730) + 41 extra
    inter = 41 + 51
    assert qrs["dice"] == pytest.approx(2 * inter / (102 + 41 + 71 + 41))
    table = sc.table()
    assert list(table.index) == ["P", "QRS", "T"]
    assert "| QRS |" in sc.to_markdown("x")


def test_no_predictions_and_no_expert_waves():
    fs = 500
    true = _waves()
    sc = SegmentationScorer(fs=fs)
    sc.add_lead(np.zeros((0, 3)), true, span=(100, 1000), n_samples=1000)
    s = sc.summary()
    assert s["QRS"]["onset"]["se"] == 0 and np.isnan(s["QRS"]["onset"]["ppv"])
    assert s["QRS"]["dice"] == 0 and np.isnan(s["QRS"]["onset"]["error_mean_ms"])
    # no expert QRS/T but predictions: all FPs; no expert P: P skipped (AF convention)
    sc = SegmentationScorer(fs=fs)
    sc.add_lead(true, np.zeros((0, 3)), span=(0, 1000), n_samples=1000)
    s = sc.summary()
    assert s["QRS"]["onset"]["fp"] == 2 and s["QRS"]["onset"]["f1"] == 0
    assert s["P"]["n_leads_skipped"] == 1 and s["P"]["onset"]["fp"] == 0
    assert np.isnan(s["P"]["onset"]["f1"])
    # with skip_absent=() the predicted P waves count as false positives
    sc = SegmentationScorer(fs=fs, skip_absent=())
    sc.add_lead(true, np.zeros((0, 3)), span=(0, 1000), n_samples=1000)
    assert sc.summary()["P"]["onset"]["fp"] == 2


def test_empty_span_not_scored_and_merge_and_bootstrap():
    true = _waves()
    a = SegmentationScorer(fs=1000)
    a.add_lead(true, true, span=(0, 0), record_id="x")
    assert a.summary()["n_leads_no_span"] == 1 and a.summary()["QRS"]["onset"]["tp"] == 0
    b = SegmentationScorer(fs=1000)
    b.add_record([true, true], [true, true], [(0, 1000), (0, 1000)], record_id="x")
    a.merge(b)
    s = a.summary()
    assert s["n_records"] == 2 and s["QRS"]["onset"]["tp"] == 4
    ci = a.bootstrap(n_boot=50)
    assert ci["QRS"]["dice"] == (1.0, 1.0)
    with pytest.raises(ValueError):
        a.merge(SegmentationScorer(fs=500))


def test_add_masks_and_record_mean():
    fs = 500
    true = np.zeros((2, 500), dtype=np.int8)
    true[:, 100:150] = 2
    pred = true.copy()
    pred[1, 100:125] = 0  # half the QRS missing in lead 2 (25 samples = 50 ms still kept)
    sc = SegmentationScorer(fs=fs)
    sc.add_masks(pred, true, [(0, 500), (0, 500)], record_id="a")
    s = sc.summary()
    assert s["QRS"]["dice"] == pytest.approx(2 * 75 / (75 + 100))
    assert s["QRS"]["offset"]["f1"] == 1.0
    assert s["QRS"]["onset"]["error_mean_ms"] == pytest.approx(25.0)  # (0 + 50 ms) / 2
    assert s["QRS"]["dice_record_mean"] == pytest.approx(s["QRS"]["dice"])


def test_constructor_validation():
    with pytest.raises(ValueError):
        SegmentationScorer(fs=0)
    with pytest.raises(ValueError):
        SegmentationScorer(fs=500, matching="foo")
    with pytest.raises(ValueError):
        SegmentationScorer(fs=500, skip_absent=(7,))
