"""Physiological rules: one QRS per refractory period, one P before and one T after each QRS."""

import numpy as np

from ecgssl.delineation.rules import CANDIDATES, apply_rules, split_setting

FS = 250.0


def test_refractory_keeps_the_stronger_qrs():
    waves = np.array([[2, 100, 120], [2, 140, 150], [2, 400, 420]])
    probs = np.zeros((4, 600))
    probs[2, 100:121] = 0.9
    probs[2, 140:151] = 0.6
    counts = {}
    out = apply_rules(waves, FS, probs, qrs_refractory_ms=200.0, counts=counts)
    assert out[:, 1].tolist() == [100, 400] and counts["qrs_refractory"] == 1


def test_one_p_and_one_t_per_beat():
    waves = np.array([[1, 10, 30], [1, 50, 70], [2, 90, 110], [3, 150, 190], [3, 200, 210],
                      [1, 260, 280], [2, 300, 320], [3, 360, 400]])
    counts = {}
    out = apply_rules(waves, FS, None, one_p=True, one_t=True, counts=counts)
    # By duration without probabilities: the first P (tie, the earlier), the longer T.
    assert out.tolist() == [[1, 10, 30], [2, 90, 110], [3, 150, 190], [1, 260, 280],
                            [2, 300, 320], [3, 360, 400]]
    assert counts["extra_p"] == 1 and counts["extra_t"] == 1


def test_max_pr_drops_a_p_far_from_its_qrs():
    waves = np.array([[1, 150, 170], [2, 200, 220]])  # P offset 120 ms before the QRS
    out = apply_rules(waves, FS, None, one_p=True, max_pr_ms=250.0)
    assert out[:, 0].tolist() == [1, 2]
    out = apply_rules(waves, FS, None, one_p=True, max_pr_ms=100.0)
    assert out[:, 0].tolist() == [2]


def test_plain_setting_changes_nothing_and_candidates_split():
    waves = np.array([[1, 10, 30], [1, 50, 70], [2, 90, 110]])
    assert np.array_equal(apply_rules(waves, FS), waves)
    for setting in CANDIDATES.values():
        pp, rules = split_setting(setting)
        assert set(pp) <= {"min_duration_ms", "max_gap_ms"}
    pp, _ = split_setting({"min_duration_ms": {"1": 40}})
    assert pp["min_duration_ms"] == {1: 40.0}


def test_rpeak_anchoring_drops_qrs_without_a_peak():
    waves = np.array([[2, 100, 120], [2, 400, 420], [3, 450, 500]])
    counts = {}
    out = apply_rules(waves, FS, None, rpeak_anchor="nk_neurokit", rpeaks=np.array([110]),
                      counts=counts)
    assert out.tolist() == [[2, 100, 120], [3, 450, 500]] and counts["qrs_unanchored"] == 1
    counts = {}
    out = apply_rules(waves, FS, None, rpeak_anchor="nk_neurokit", rpeaks=None, counts=counts)
    assert len(out) == 3 and counts["anchor_skipped"] == 1
