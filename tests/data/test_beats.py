"""R-peaks, beat features/classes and rhythm features on synthetic and real ECGs."""

import time

import numpy as np
import pytest
import wfdb
from scipy.signal import resample_poly

from ecgssl.data.beats import (
    BEAT_CLASS_NAMES,
    BEAT_FEATURE_NAMES,
    RHYTHM_FEATURE_NAMES,
    annotate_beats,
    detect_rpeaks,
)
from ecgssl.data.leads import LEADS_12
from ecgssl.errors import ECGDataError

FS = 250
TOL = int(0.075 * FS)


def _gauss(t, mu, sigma, amp):
    return amp * np.exp(-0.5 * ((t - mu) / sigma) ** 2)


def synthetic_ecg(beats, seconds=10.0, fs=FS, noise=0.01, seed=0):
    """12-lead ECG from Gaussian waves. ``beats``: list of (R time s, kind 'N' | 'V')."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    # Lead II-like template per kind; leads are gains of it (a fixed heart axis).
    ii = np.zeros_like(t)
    for r, kind in beats:
        if kind == "N":
            ii += _gauss(t, r - 0.16, 0.02, 0.15) + _gauss(t, r - 0.025, 0.008, -0.1)
            ii += _gauss(t, r, 0.01, 1.2) + _gauss(t, r + 0.025, 0.008, -0.2)
            ii += _gauss(t, r + 0.30, 0.04, 0.3)
        else:  # wide, bizarre, no P
            ii += _gauss(t, r, 0.035, 1.4) + _gauss(t, r + 0.08, 0.03, -0.6)
            ii += _gauss(t, r + 0.34, 0.05, -0.4)
    gains = {"I": 0.6, "II": 1.0, "V1": -0.5, "V2": 0.3, "V3": 0.8, "V4": 1.1, "V5": 0.9,
             "V6": 0.7}
    rows = {name: g * ii for name, g in gains.items()}
    i, ii_ = rows["I"], rows["II"]
    rows.update({"III": ii_ - i, "aVR": -(i + ii_) / 2, "aVL": i - ii_ / 2, "aVF": ii_ - i / 2})
    sig = np.stack([rows[name] for name in LEADS_12])
    sig += 0.1 * np.sin(2 * np.pi * 0.3 * t)  # baseline wander
    return (sig + noise * rng.normal(size=sig.shape)).astype(np.float32)


def _matched(ref, det, tol=TOL):
    return sum(np.abs(det - r).min() <= tol for r in ref) if len(det) else 0


def test_regular_rhythm_features():
    r_times = np.arange(0.5, 10.0, 0.8)  # 75 bpm
    ann = annotate_beats(synthetic_ecg([(r, "N") for r in r_times]), FS, LEADS_12)
    ref = np.round(r_times * FS).astype(int)
    assert len(ann.rpeaks) == len(ref) and np.abs(ann.rpeaks - ref).max() <= 2
    f = dict(zip(RHYTHM_FEATURE_NAMES, ann.rhythm_features))
    assert ann.rhythm_features.dtype == np.float32 and len(f) == len(RHYTHM_FEATURE_NAMES)
    assert f["heart_rate_bpm"] == pytest.approx(75, abs=0.5)
    assert f["rr_sdnn_ms"] < 5 and f["rr_rmssd_ms"] < 5
    assert 50 <= f["qrs_ms"] <= 120
    assert 130 <= f["pr_ms"] <= 230
    assert 330 <= f["qt_ms"] <= 480
    assert f["qtc_ms"] == pytest.approx(f["qt_ms"] / np.sqrt(0.8), rel=1e-3)
    assert f["p_amp_mv"] == pytest.approx(0.15, abs=0.05)
    assert f["r_amp_mv"] == pytest.approx(1.2, abs=0.2)
    assert f["t_amp_mv"] == pytest.approx(0.3, abs=0.08)
    # I = 0.6 II, aVF = 0.7 II: axis = atan2(0.7, 0.6) = 49 degrees.
    assert f["qrs_axis_deg"] == pytest.approx(49.4, abs=5)
    assert ann.beat_features.shape == (len(ref), len(BEAT_FEATURE_NAMES))
    assert ann.beat_features.dtype == np.float32 and np.isfinite(ann.beat_features).all()
    assert (ann.beat_classes == 0).all() and ann.beat_classes.dtype == np.int8


def test_premature_beats_are_classified():
    beats = []
    r = 0.4
    for k in range(11):
        beats.append((r, "N"))
        if k in (3, 7):
            beats.append((r + 0.55, "V" if k == 3 else "N"))  # premature: 0.55 s vs 0.9 s
            r += 0.55 + 1.2  # compensatory pause
        else:
            r += 0.9
    beats = [b for b in beats if b[0] < 9.6]
    ann = annotate_beats(synthetic_ecg(beats), FS, LEADS_12)
    ref = np.round(np.array([b[0] for b in beats]) * FS).astype(int)
    assert len(ann.rpeaks) == len(ref) and _matched(ref, ann.rpeaks) == len(ref)
    expected = [{"N": 0, "V": 2}[kind] for _, kind in beats]
    expected[[b[0] for b in beats].index(beats[9][0])] = 1  # the premature narrow beat
    names = [BEAT_CLASS_NAMES[c] for c in ann.beat_classes]
    assert names.count("ventricular") == 1 and names.count("supraventricular") == 1
    assert list(ann.beat_classes) == expected


def test_errors_name_the_record():
    with pytest.raises(ECGDataError, match="rec7"):
        annotate_beats(np.zeros(2500), FS, record_id="rec7")
    bad = synthetic_ecg([(1.0, "N")])
    bad[0, 5] = np.nan
    with pytest.raises(ECGDataError, match="NaN"):
        annotate_beats(bad, FS, LEADS_12, record_id="x")
    with pytest.raises(ECGDataError, match="lead names"):
        annotate_beats(bad[:3], FS, LEADS_12)
    with pytest.raises(ECGDataError, match="too low"):
        annotate_beats(bad, 20, LEADS_12)


def test_flat_signal_gives_no_beats_and_nan_features():
    ann = annotate_beats(np.zeros((12, 2500), np.float32), FS, LEADS_12)
    assert len(ann.rpeaks) == 0 and ann.beat_features.shape == (0, len(BEAT_FEATURE_NAMES))
    assert np.isnan(ann.rhythm_features).all()


def test_mitdb_100_first_two_minutes(shared_data):
    path = str(shared_data / "mitdb-100" / "100")
    rec = wfdb.rdrecord(path, sampto=120 * 360)
    ann = wfdb.rdann(path, "atr", sampto=120 * 360)
    keep = np.isin(ann.symbol, list("NLRBAaJSVrFejnE/fQ?"))
    ref_all = np.round(ann.sample[keep] * FS / 360).astype(int)
    x = resample_poly(rec.p_signal.T, 25, 36, axis=1).astype(np.float32)
    tp = n_ref = n_det = 0
    for start in range(0, x.shape[1] - 2500 + 1, 2500):
        det = detect_rpeaks(x[:, start:start + 2500], FS, rec.sig_name, record_id="100")
        ref = ref_all[(ref_all >= start) & (ref_all < start + 2500)] - start
        tp += _matched(ref, det)
        n_ref, n_det = n_ref + len(ref), n_det + len(det)
    assert n_ref > 130
    assert tp / n_ref >= 0.99 and tp / n_det >= 0.99


def test_ludb_ten_records(shared_data):
    tp = n_ref = n_det = 0
    times = []
    for rid in range(1, 11):
        path = str(shared_data / "ludb" / "data" / str(rid))
        rec = wfdb.rdrecord(path, physical=False)
        x = resample_poly(rec.d_signal.T / 1000.0, 1, 2, axis=1).astype(np.float32)
        qrs = wfdb.rdann(path, "ii")
        ref = np.round(qrs.sample[np.array(qrs.symbol) == "N"] / 2).astype(int)
        lo, hi = qrs.sample.min() / 2 - TOL, qrs.sample.max() / 2 + TOL
        t0 = time.perf_counter()
        ann = annotate_beats(x, FS, LEADS_12, record_id=f"ludb/{rid}")
        times.append(time.perf_counter() - t0)
        det = ann.rpeaks[(ann.rpeaks >= lo) & (ann.rpeaks <= hi)]
        tp += _matched(ref, det)
        n_ref, n_det = n_ref + len(ref), n_det + len(det)
        hr = ann.rhythm_features[RHYTHM_FEATURE_NAMES.index("heart_rate_bpm")]
        assert 40 < hr < 150
    assert tp / n_ref >= 0.99 and tp / n_det >= 0.99
    assert np.median(times) < 0.1  # a few ms on a quiet machine; generous for a busy one
