"""R-peak detector registry and the public ecgssl.detect_rpeaks."""

import numpy as np
import pytest

import ecgssl
from ecgssl.delineation.rpeaks import DEFAULT_DETECTOR, DETECTORS, NK_PEAK_METHODS, detect_lead
from ecgssl.errors import ECGDataError


def _ecg(fs: float, seconds: float = 10.0, rr: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian QRS spikes (1 mV, 10 ms wide) every ``rr`` s plus a small T wave."""
    t = np.arange(int(seconds * fs)) / fs
    beats = np.arange(0.4, seconds - 0.2, rr)
    x = np.zeros_like(t)
    for b in beats:
        x += np.exp(-0.5 * ((t - b) / 0.01) ** 2)
        x += 0.2 * np.exp(-0.5 * ((t - b - 0.25) / 0.04) ** 2)
    return x.astype(np.float32), np.round(beats * fs).astype(np.int64)


def test_registry_names_every_neurokit_method():
    assert {f"nk_{m}" for m in NK_PEAK_METHODS} <= set(DETECTORS)
    assert DEFAULT_DETECTOR in DETECTORS
    with pytest.raises(ValueError, match="unknown R-peak detector"):
        detect_lead(np.zeros(100), 250, "nope")


@pytest.mark.parametrize("method", ["ecgssl", "nk_neurokit", "nk_pantompkins1985"])
def test_detectors_find_synthetic_beats(method):
    x, beats = _ecg(360.0)
    peaks = detect_lead(x, 360.0, method)
    assert len(peaks) == len(beats)
    # Within the benchmark tolerance (75 ms): neurokit's Pan-Tompkins lags by about 55 ms.
    assert np.abs(peaks - beats).max() <= 0.075 * 360


def test_public_detect_rpeaks_multi_lead_and_refusals():
    x, beats = _ecg(250.0)
    both = np.stack([0.1 * x, x])
    peaks = ecgssl.detect_rpeaks(both, 250.0, ["V1", "II"])
    assert len(peaks) == len(beats)
    with pytest.raises(ECGDataError, match="names"):
        ecgssl.detect_rpeaks(both, 250.0, ["II"])
    bad = x.copy()
    bad[5] = np.nan
    with pytest.raises(ECGDataError):
        detect_lead(bad, 250.0, "nk_neurokit")


def test_windowed_detection_owns_every_stretch_once():
    from ecgssl.delineation.rpeaks import windowed

    x, beats = _ecg(250.0, seconds=95.0, rr=0.77)
    x[: x.size // 2] *= 0.1  # a long record whose amplitude changes
    calls = []

    def spy(w, fs):
        calls.append(w.shape[-1])
        return detect_lead(w, fs, "nk_neurokit")

    peaks = windowed(spy, x, 250.0)
    assert len(calls) > 1 and max(calls) == 2500
    assert len(peaks) == len(beats) and np.abs(peaks - beats).max() <= 0.03 * 250
    # Our detector's threshold adapts to its input: over the whole record it loses the small
    # half; over 10 s windows only the window that straddles the change loses a few beats.
    from ecgssl.delineation.rpeaks import _ours_window

    whole, ours = _ours_window(x, 250.0), detect_lead(x, 250.0, "ecgssl")
    assert len(whole) < 0.7 * len(beats) and len(ours) >= 0.9 * len(beats)


def test_beat_ssl_targets_follow_the_prepare_detector(monkeypatch):
    import ecgssl.delineation.rpeaks as rpeaks
    from ecgssl.data.beats import annotate_beats

    x, beats = _ecg(250.0)
    used = []
    monkeypatch.setitem(rpeaks.DETECTORS, "spy", lambda w, fs: used.append(fs) or beats)
    monkeypatch.setattr(rpeaks, "PREPARE_DETECTOR", "spy")
    ann = annotate_beats(np.stack([x, x]), 250.0, ["I", "II"])
    assert used == [250.0] and np.array_equal(ann.rpeaks, beats)


def test_detector_minimum_rates_agree_with_the_detectors():
    from ecgssl.data.beats import _validate
    from ecgssl.delineation.infer import MIN_FS as DELINEATOR_MIN_FS
    from ecgssl.delineation.rpeaks import MIN_FS

    assert MIN_FS["delineator"] == DELINEATOR_MIN_FS
    x = np.zeros((1, 500))
    _validate(x, MIN_FS["ecgssl"], None, "r")  # accepted at the minimum
    with pytest.raises(ECGDataError, match="too low"):
        _validate(x, MIN_FS["ecgssl"] - 1, None, "r")
