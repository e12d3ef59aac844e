import numpy as np
import pytest

from ecgssl.eval.postprocess import as_waves, mask_to_waves, waves_to_mask


def test_runs_offsets_are_inclusive_and_roundtrip():
    m = np.zeros(40, dtype=np.int8)
    m[2:10] = 1
    m[15:22] = 2
    m[25:39] = 3
    w = mask_to_waves(m, fs=1000, min_duration_ms={}, max_gap_ms=0)
    np.testing.assert_array_equal(w, [[1, 2, 9], [2, 15, 21], [3, 25, 38]])
    np.testing.assert_array_equal(waves_to_mask(w, 40), m)


def test_merge_small_gap_and_drop_fragments():
    fs = 500  # 2 ms per sample: 10 ms gap = 5 samples, QRS min 30 ms = 15 samples
    m = np.zeros(200, dtype=np.int8)
    m[10:30] = 2
    m[33:50] = 2          # 3-sample gap -> merged with the first
    m[60:70] = 2          # 10 samples = 20 ms < 30 ms -> dropped
    m[100:130] = 3        # T 30 samples = 60 ms kept
    m[140:160] = 3        # gap 10 samples = 20 ms > 10 ms -> not merged; 40 ms < 50 ms dropped
    w = mask_to_waves(m, fs)
    np.testing.assert_array_equal(w, [[2, 10, 49], [3, 100, 129]])


def test_fragment_of_other_class_inside_wave_is_removed_then_merged():
    fs = 500
    m = np.zeros(100, dtype=np.int8)
    m[10:40] = 2
    m[40:42] = 3  # 2-sample T fragment inside a QRS
    m[42:60] = 2
    w = mask_to_waves(m, fs)
    np.testing.assert_array_equal(w, [[2, 10, 59]])


def test_wave_touching_edges_and_empty():
    m = np.full(50, 2, dtype=np.int8)
    np.testing.assert_array_equal(mask_to_waves(m, 500), [[2, 0, 49]])
    assert mask_to_waves(np.zeros(50, dtype=np.int8), 500).shape == (0, 3)
    assert mask_to_waves(np.zeros(0, dtype=np.int8), 500).shape == (0, 3)


def test_multi_lead_and_validation():
    m = np.zeros((2, 100), dtype=np.int8)
    m[1, 10:60] = 3
    out = [mask_to_waves(row, 500) for row in m]
    assert len(out) == 2 and out[0].shape == (0, 3)
    np.testing.assert_array_equal(out[1], [[3, 10, 59]])
    with pytest.raises(ValueError):
        mask_to_waves(m, 500)
    with pytest.raises(ValueError):
        mask_to_waves(m[0], 0)
    with pytest.raises(ValueError):
        mask_to_waves(m[0], 500, min_duration_ms={1: -5})
    with pytest.raises(ValueError):
        as_waves([[4, 1, 2]])


def test_waves_to_mask_skips_unknown_and_clips():
    w = [[1, -1, 5], [2, 10, 14], [3, 20, 200], [1, 8, 6]]
    m = waves_to_mask(w, 30)
    expected = np.zeros(30, dtype=np.int8)
    expected[10:15] = 2
    expected[20:30] = 3
    np.testing.assert_array_equal(m, expected)
