"""R-peaks, per-beat features and classes, and rhythm features of one ECG window.

Used once per window at ``prepare`` time (the "beats" extra of the store, docs/architecture.md)
to give Beat-SSL its R-peaks and its offline targets (docs/methods.md section 2). The R-peaks come
from the detector ``PreprocessConfig.rpeak_detector`` names (``ecgssl.delineation.rpeaks``; the
prepare default is the benchmark's choice, the bundled delineator: ~17 ms per 10 s 12-lead window
at 250 Hz on one thread); with ``"ecgssl"`` they come from steps 2-3 below and the whole of
``annotate_beats`` costs a few milliseconds (~9 ms). Every measure below is a simple, documented
template estimate, not a full wave delineator.

Pipeline (all leads at once):

1. **Clean.** Zero-phase Butterworth band-pass 0.5-40 Hz (order 2) per lead: removes baseline
   wander (so amplitudes are measured from a flat line) and mains/EMG noise.
2. **Detect.** A multi-lead Pan-Tompkins-style energy: the sum over leads of the squared first
   difference of the clean signal, integrated over 0.10 s. Candidate peaks at least 0.25 s apart
   (at most 240 bpm) above 20 % of the typical beat energy (median of the k largest candidates,
   k = the number of beats at 30 bpm, so that a few artefacts cannot set the scale), plus a
   search-back at half that threshold inside RR gaps longer than 1.6 x the median RR. Combining
   leads makes the detector robust to a single flat or noisy lead.
3. **Refine.** Each peak moves to the largest absolute deflection of the reference lead (II, or
   MLII, else the lead with the most QRS energy) within +-32 ms of the energy peak.
4. **Median beat.** The median over beats of the clean signal in [R - 0.35 s, R + 0.65 s] (NaN
   padded at the edges) gives a low-noise template for the rhythm features.

QRS onset / offset: where a multi-lead slope envelope (root sum of squared first differences,
smoothed over 20 ms) falls below ``floor + 0.10 x (peak - floor)`` walking out from R (floor = its
10th percentile around the beat). Baseline = mean of [QRS onset - 40 ms, QRS onset - 10 ms]
(the PR segment).
T wave: extremum after QRS offset + 60 ms up to R + min(0.6 s, 0.7 RR); T end by the tangent
method (steepest descending slope after the T peak, extended to the baseline). P wave: extremum in
[QRS onset - 0.25 s, QRS onset - 0.02 s] (window shortened to fit 0.45 RR); P onset where the
deflection falls below 10 % of the P amplitude. P waves below 0.03 mV and T waves below 0.05 mV
are "not measurable" (NaN), e.g. atrial fibrillation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from ecgssl.errors import ECGDataError

BEAT_CLASS_NAMES = ("normal", "supraventricular", "ventricular")
BEAT_FEATURE_NAMES = (
    "rr_prev_s",       # RR interval before the beat (first beat: the record's median RR)
    "rr_next_s",       # RR interval after the beat (last beat: the record's median RR)
    "rr_ratio",        # rr_prev / median RR of the record (prematurity, < 1 = early)
    "qrs_width_s",     # QRS width from the multi-lead slope envelope
    "r_amp_mv",        # reference-lead value at R, from baseline (signed)
    "t_amp_mv",        # reference-lead T extremum from baseline (signed)
    "p_amp_mv",        # reference-lead P extremum from baseline (signed)
    "template_corr",   # correlation (all leads, R +- 0.1 s) with the record's median beat
)
RHYTHM_FEATURE_NAMES = (
    "heart_rate_bpm", "rr_sdnn_ms", "rr_rmssd_ms", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms",
    "p_amp_mv", "r_amp_mv", "t_amp_mv", "qrs_axis_deg",
)
# Beat classification rule thresholds (module constants so they are visible and testable).
PREMATURE_RATIO = 0.85   # RR before < 0.85 x median RR = premature
WIDE_QRS_S = 0.12        # QRS wider than 120 ms = wide
ABERRANT_CORR = 0.7      # correlation with the median beat below this = different morphology

_REFERENCE_LEADS = ("II", "MLII")

# AAMI EC57 beat classes and the mapping of MIT-BIH beat annotation symbols onto them, used to
# score ``classify_beats`` against reference beat labels (benchmarks/beat_classifier_accuracy.py).
AAMI_CLASS_NAMES = ("N", "S", "V", "F", "Q")
_AAMI_OF_SYMBOL = {
    **dict.fromkeys("NLRej", "N"),   # normal, bundle branch block, atrial / nodal escape
    **dict.fromkeys("AaJS", "S"),    # atrial (aberrated) / nodal / supraventricular premature
    **dict.fromkeys("VE", "V"),      # premature ventricular contraction, ventricular escape
    "F": "F",                        # fusion of ventricular and normal
    # Every other MIT beat symbol: paced '/', paced fusion 'f', unclassifiable 'Q' (the EC57 Q
    # class) and those outside the EC57 table ('?', 'r' R-on-T PVC, 'n' SV escape, 'B' BBB).
    **dict.fromkeys("/fQ?rnB", "Q"),
}
# ``classify_beats`` class index -> AAMI class (normal -> N, supraventricular -> S, ventricular -> V).
BEAT_CLASS_TO_AAMI = ("N", "S", "V")


@dataclass
class BeatAnnotation:
    """Beats of one window.

    Attributes:
        rpeaks: (n,) int64 R-peak sample indices, increasing.
        beat_features: (n, len(BEAT_FEATURE_NAMES)) float32, raw units (s, mV, ratio); NaN only
            where a record has fewer than two beats (no RR) or a wave was not measurable.
        beat_classes: (n,) int8 index into ``BEAT_CLASS_NAMES``.
        rhythm_features: (len(RHYTHM_FEATURE_NAMES),) float32, NaN where not measurable.
        reference_lead: name of the lead the R-peaks and amplitudes refer to.
    """

    rpeaks: np.ndarray
    beat_features: np.ndarray
    beat_classes: np.ndarray
    rhythm_features: np.ndarray
    reference_lead: str = ""


@lru_cache(maxsize=16)
def _bandpass_sos(fs: float) -> np.ndarray:
    high = min(40.0, 0.45 * fs)
    return sps.butter(2, [0.5, high], btype="bandpass", fs=fs, output="sos")


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along the last axis (same length)."""
    width = max(int(width), 1)
    kernel = np.ones(width) / width
    if x.ndim == 1:
        return np.convolve(x, kernel, mode="same")
    return np.stack([np.convolve(row, kernel, mode="same") for row in x])


def _validate(signal: np.ndarray, fs: float, leads, record_id: str) -> np.ndarray:
    x = np.asarray(signal)
    if x.ndim != 2:
        raise ECGDataError(record_id, f"signal must be (leads, samples), got shape {x.shape}")
    if leads is not None and len(leads) != x.shape[0]:
        raise ECGDataError(record_id, f"{len(leads)} lead names for {x.shape[0]} signal rows")
    if not fs >= 50:
        raise ECGDataError(record_id, f"sampling rate {fs} Hz too low for R-peak detection "
                                      "(need >= 50 Hz)")
    if x.shape[1] < int(2 * fs):
        raise ECGDataError(record_id, f"{x.shape[1]} samples at {fs} Hz: need at least 2 s")
    if not np.isfinite(x).all():
        raise ECGDataError(record_id, "signal contains NaN or infinite values")
    return x.astype(np.float64, copy=False)


def clean_signal(signal: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase 0.5-40 Hz band-pass of (L, T) -> (L, T) float64."""
    return sps.sosfiltfilt(_bandpass_sos(float(fs)), signal, axis=-1)


def reference_lead(clean: np.ndarray, leads) -> int:
    """Row of the reference lead: II (or MLII) when present and not flat, else the lead with
    the most slope energy. ``clean``: (L, T) band-passed signal (``clean_signal``)."""
    if leads is not None:
        for name in _REFERENCE_LEADS:
            if name in leads:
                k = list(leads).index(name)
                if np.ptp(clean[k]) > 1e-3:  # not flat
                    return k
    energy = (np.diff(clean, axis=1) ** 2).sum(axis=1)
    return int(np.argmax(energy))


def _detect(clean: np.ndarray, fs: float) -> np.ndarray:
    """Envelope peaks (samples) of the multi-lead slope energy."""
    energy = (np.diff(clean, axis=1, prepend=clean[:, :1]) ** 2).sum(axis=0)
    env = _moving_average(energy, round(0.10 * fs))
    distance = max(int(0.25 * fs), 1)
    cand, props = sps.find_peaks(env, height=0.0, distance=distance)
    if len(cand) == 0 or env.max() <= 0:
        return np.zeros(0, dtype=np.int64)
    # Typical beat energy: the median of the k largest candidates, k = the number of beats at
    # 30 bpm. Robust to a few huge artefacts (pacing spikes, electrode pops) that would swamp a
    # percentile of the envelope, and to noise between beats.
    k = max(1, min(len(cand), int(len(env) / fs / 2)))
    level = np.median(np.sort(props["peak_heights"])[-k:])
    threshold = 0.2 * level
    peaks = cand[props["peak_heights"] > threshold]
    if len(peaks) >= 3:
        # Search back in long gaps (a low-amplitude beat next to large ones) at half threshold.
        rr = np.diff(peaks)
        med = np.median(rr)
        extra = []
        for a, b in zip(peaks[:-1][rr > 1.6 * med], peaks[1:][rr > 1.6 * med]):
            lo, hi = a + distance, b - distance
            if hi > lo:
                seg, _ = sps.find_peaks(env[lo:hi], height=threshold / 2, distance=distance)
                if len(seg):
                    best = seg[np.argmax(env[lo:hi][seg])]
                    extra.append(lo + best)
        if extra:
            peaks = np.sort(np.concatenate([peaks, extra]))
    return peaks.astype(np.int64)


def _refine(peaks: np.ndarray, ref: np.ndarray, fs: float) -> np.ndarray:
    """Move each peak to the largest |deflection| of the reference lead within +-32 ms.

    The window is kept short on purpose: on wide (paced, bundle-branch) complexes a wider one
    jumps from the centre of the QRS energy to a deep S wave, 80-120 ms away from where
    annotators put the beat (LUDB: sensitivity 99.1 % at +-32 ms, 98.1 % at +-80 ms).
    """
    if len(peaks) == 0:
        return peaks
    half = max(int(round(0.032 * fs)), 1)
    n = len(ref)
    offs = np.arange(-half, half + 1)
    idx = np.clip(peaks[:, None] + offs[None, :], 0, n - 1)
    refined = idx[np.arange(len(peaks)), np.argmax(np.abs(ref[idx]), axis=1)]
    refined = np.unique(refined)
    # Two detections moved onto nearby extrema: keep the larger of any pair < 0.2 s apart.
    keep = [0]
    for k in range(1, len(refined)):
        if refined[k] - refined[keep[-1]] < 0.2 * fs:
            if abs(ref[refined[k]]) > abs(ref[refined[keep[-1]]]):
                keep[-1] = k
        else:
            keep.append(k)
    return refined[keep].astype(np.int64)


def detect_rpeaks(signal: np.ndarray, fs: float, leads=None, record_id: str = "?") -> np.ndarray:
    """R-peak sample indices (n,) int64 of a (L, T) mV signal (see the module docstring)."""
    x = _validate(signal, fs, leads, record_id)
    clean = clean_signal(x, fs)
    ref = reference_lead(clean, leads)
    return _refine(_detect(clean, fs), clean[ref], fs)


def _slope_envelope(clean: np.ndarray, fs: float) -> np.ndarray:
    d = np.diff(clean, axis=-1, prepend=clean[..., :1]) * fs  # mV / s
    env = np.sqrt((d**2).sum(axis=0))
    return _moving_average(env, round(0.02 * fs))


def _qrs_bounds(env: np.ndarray, r: int, fs: float) -> tuple[int, int]:
    """QRS onset/offset around R (sample indices) on a slope envelope."""
    n = len(env)
    lo, hi = max(r - int(0.3 * fs), 0), min(r + int(0.4 * fs), n)
    near = env[max(r - int(0.06 * fs), 0): min(r + int(0.06 * fs) + 1, n)]
    floor = np.percentile(env[lo:hi], 10)
    thr = floor + 0.10 * (near.max() - floor)
    left = env[max(r - int(0.15 * fs), 0): r + 1][::-1]
    right = env[r: min(r + int(0.2 * fs), n)]
    below_l = np.flatnonzero(left < thr)
    below_r = np.flatnonzero(right < thr)
    on = r - (below_l[0] if len(below_l) else len(left) - 1)
    off = r + (below_r[0] if len(below_r) else len(right) - 1)
    return int(on), int(off)


def _baseline(y: np.ndarray, on: int, fs: float):
    """Isoelectric level: mean over [on - 40 ms, on - 10 ms] (the PR segment), per row."""
    a = max(on - int(round(0.04 * fs)), 0)
    b = max(on - int(round(0.01 * fs)), a + 1)
    return y[..., a:b].mean(axis=-1)


def _signed_extremum(y: np.ndarray) -> tuple[int, float]:
    k = int(np.argmax(np.abs(y)))
    return k, float(y[k])


def _tangent_t_end(y: np.ndarray, tp: int, stop: int, base: float, fs: float) -> float:
    """T end (fractional index) by the tangent method on the descending limb after the T peak."""
    if stop - tp < 3:
        return np.nan
    sign = 1.0 if y[tp] >= base else -1.0
    slope = np.diff(y[tp:stop]) * sign  # the descending limb has the most negative value
    k = int(np.argmin(slope))
    if slope[k] >= 0:
        return np.nan
    t_s = tp + k
    return t_s + (base - y[t_s]) / (slope[k] * sign)


@dataclass
class _Waves:
    on: int
    off: int
    base: np.ndarray


def _median_beat(clean: np.ndarray, rpeaks: np.ndarray, fs: float):
    pre, post = int(round(0.35 * fs)), int(round(0.65 * fs))
    padded = np.pad(clean, ((0, 0), (pre, post)), constant_values=np.nan)
    idx = rpeaks[:, None] + np.arange(pre + post)[None, :]  # R at index `pre` of each window
    beats = padded[:, idx]  # (L, n, W)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(beats, axis=1)
    return np.nan_to_num(med, nan=0.0), pre


def _rhythm_features(clean, rpeaks, fs, leads, ref, rr) -> np.ndarray:
    out = np.full(len(RHYTHM_FEATURE_NAMES), np.nan)
    if len(rr):
        out[0] = 60.0 / rr.mean()
    if len(rr) >= 2:
        out[1] = rr.std(ddof=1) * 1000
        out[2] = np.sqrt(np.mean(np.diff(rr) ** 2)) * 1000
    if len(rpeaks) == 0:
        return out.astype(np.float32)
    med, r0 = _median_beat(clean, rpeaks, fs)
    rr_med = float(np.median(rr)) if len(rr) else 1.0
    env = _slope_envelope(med, fs)
    on, off = _qrs_bounds(env, r0, fs)
    w = med.shape[1]
    base = _baseline(med, on, fs)
    y = med[ref] - base[ref]
    out[4] = (off - on) / fs * 1000
    out[8] = float(y[on:off + 1].max())
    # T wave (reference lead for the amplitude, the lead with the largest T for the QT).
    t_lo = off + int(round(0.06 * fs))
    t_hi = min(r0 + int(round(min(0.6, 0.7 * rr_med) * fs)), w)
    if t_hi - t_lo > 3:
        dev = med[:, t_lo:t_hi] - base[:, None]
        k_t, t_amp = _signed_extremum(y[t_lo:t_hi])
        if abs(t_amp) >= 0.05:
            out[9] = t_amp
        lead_t = int(np.argmax(np.abs(dev).max(axis=1)))
        k_best, amp_best = _signed_extremum(dev[lead_t])
        if abs(amp_best) >= 0.05:
            stop = min(t_hi + int(round(0.1 * fs)), w)
            t_end = _tangent_t_end(med[lead_t], t_lo + k_best, stop, base[lead_t], fs)
            if np.isfinite(t_end) and t_lo + k_best <= t_end <= stop + 0.1 * fs:
                qt = (t_end - on) / fs
                out[5] = qt * 1000
                out[6] = qt / np.sqrt(rr_med) * 1000  # Bazett
    # P wave (reference lead).
    p_span = min(0.25, 0.45 * rr_med)
    p_lo = max(on - int(round(p_span * fs)), 0)
    p_hi = on - int(round(0.02 * fs))
    if p_hi - p_lo > 3:
        k_p, p_amp = _signed_extremum(y[p_lo:p_hi])
        if abs(p_amp) >= 0.03:
            out[7] = p_amp
            tp = p_lo + k_p
            left = np.abs(y[max(tp - int(0.12 * fs), 0): tp + 1])[::-1]
            below = np.flatnonzero(left < 0.1 * abs(p_amp))
            p_on = tp - (below[0] if len(below) else len(left) - 1)
            out[3] = (on - p_on) / fs * 1000
    # Electrical axis from the net QRS areas of I and aVF (aVF = II - I/2 when absent).
    names = list(leads) if leads is not None else []
    if "I" in names and ("aVF" in names or "II" in names):
        area_i = (med[names.index("I"), on:off + 1] - base[names.index("I")]).sum()
        if "aVF" in names:
            k = names.index("aVF")
            area_f = (med[k, on:off + 1] - base[k]).sum()
        else:
            k = names.index("II")
            area_f = (med[k, on:off + 1] - base[k]).sum() - area_i / 2
        if abs(area_i) + abs(area_f) > 0:
            out[10] = np.degrees(np.arctan2(area_f, area_i))
    return out.astype(np.float32)


def _beat_features(clean, rpeaks, fs, ref, rr) -> np.ndarray:
    n = len(rpeaks)
    feats = np.full((n, len(BEAT_FEATURE_NAMES)), np.nan)
    if n == 0:
        return feats.astype(np.float32)
    rr_med = float(np.median(rr)) if len(rr) else np.nan
    feats[:, 0] = np.concatenate([[rr_med], rr]) if n > 1 else rr_med
    feats[:, 1] = np.concatenate([rr, [rr_med]]) if n > 1 else rr_med
    feats[:, 2] = feats[:, 0] / rr_med
    env = _slope_envelope(clean, fs)
    t = clean.shape[1]
    y = clean[ref]
    med, r0 = _median_beat(clean, rpeaks, fs)
    half = int(round(0.1 * fs))
    template = med[:, r0 - half: r0 + half + 1].ravel()
    padded = np.pad(clean, ((0, 0), (half, half)), constant_values=np.nan)
    for k, r in enumerate(rpeaks):
        on, off = _qrs_bounds(env, int(r), fs)
        feats[k, 3] = (off - on) / fs
        base = _baseline(y, on, fs)
        feats[k, 4] = y[r] - base
        rr_next = feats[k, 1] if np.isfinite(feats[k, 1]) else 1.0
        rr_prev = feats[k, 0] if np.isfinite(feats[k, 0]) else 1.0
        t_lo = off + int(round(0.06 * fs))
        t_hi = min(int(r) + int(round(min(0.45, 0.6 * rr_next) * fs)), t)
        if t_hi - t_lo > 3:
            _, amp = _signed_extremum(y[t_lo:t_hi] - base)
            feats[k, 5] = amp if abs(amp) >= 0.05 else 0.0
        p_lo = max(on - int(round(min(0.25, 0.45 * rr_prev) * fs)), 0)
        p_hi = on - int(round(0.02 * fs))
        if p_hi - p_lo > 3:
            _, amp = _signed_extremum(y[p_lo:p_hi] - base)
            feats[k, 6] = amp if abs(amp) >= 0.03 else 0.0
        seg = padded[:, r: r + 2 * half + 1].ravel()
        ok = np.isfinite(seg)
        if ok.sum() > 10 and np.std(seg[ok]) > 0 and np.std(template[ok]) > 0:
            feats[k, 7] = np.corrcoef(seg[ok], template[ok])[0, 1]
    return feats.astype(np.float32)


def classify_beats(beat_features: np.ndarray) -> np.ndarray:
    """Rule-based beat classes (n,) int8 from ``beat_features`` (see ``BEAT_FEATURE_NAMES``).

    - ventricular (2): wide QRS (> 120 ms) and either premature (RR before < 0.85 x the
      record's median RR) or of a different morphology (correlation with the median beat < 0.7);
    - supraventricular (1): premature and not ventricular (narrow, or a normal morphology);
    - normal (0): everything else, including beats whose RR is unknown.
    """
    f = np.asarray(beat_features, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        premature = f[:, 2] < PREMATURE_RATIO
        wide = f[:, 3] > WIDE_QRS_S
        aberrant = f[:, 7] < ABERRANT_CORR
    ventricular = wide & (premature | aberrant)
    classes = np.zeros(len(f), dtype=np.int8)
    classes[premature & ~ventricular] = 1
    classes[ventricular] = 2
    return classes


def aami_class(symbol: str) -> str:
    """AAMI EC57 class (one of ``AAMI_CLASS_NAMES``) of one MIT-BIH beat annotation symbol.

    N, L, R, e, j -> N; A, a, J, S -> S; V, E -> V; F -> F; every other beat symbol
    (/, f, Q, ?, r, n, B) -> Q. Raises ``ValueError`` for a non-beat annotation ('+', '~', ...).
    """
    try:
        return _AAMI_OF_SYMBOL[symbol]
    except KeyError:
        raise ValueError(f"{symbol!r} is not a MIT-BIH beat annotation symbol") from None


def aami_classes(symbols) -> np.ndarray:
    """(n,) int8 indices into ``AAMI_CLASS_NAMES`` of n beat annotation symbols (``aami_class``)."""
    return np.array([AAMI_CLASS_NAMES.index(aami_class(s)) for s in symbols], dtype=np.int8)


def annotate_beats(signal: np.ndarray, fs: float, leads=None, record_id: str = "?",
                   detector: str | None = None):
    """R-peaks, beat features, beat classes and rhythm features of one window.

    The R-peaks come from ``ecgssl.delineation.rpeaks``: ``detector`` names one of its
    ``DETECTORS``; None takes its ``PREPARE_DETECTOR`` (chosen by the benchmark, see there).
    ``prepare`` passes its ``PreprocessConfig.rpeak_detector`` (whose default that is), so
    Beat-SSL's targets follow the choice and the store records it. ``"ecgssl"`` is this
    module's own multi-lead detector; the others run on the reference lead alone.

    Args:
        signal: (L, T) float array in mV (at least 2 s).
        fs: sampling rate in Hz (>= 50).
        leads: the L canonical lead names (used to pick the reference lead II and the axis
            leads I / aVF); None = pick by QRS energy, no axis.
        record_id: for error messages.
    Returns:
        ``BeatAnnotation``.
    Raises:
        ECGDataError: wrong shape, too short, too low a rate, NaN/inf.
    """
    x = _validate(signal, fs, leads, record_id)
    clean = clean_signal(x, fs)
    ref = reference_lead(clean, leads)
    from ecgssl.delineation.rpeaks import PREPARE_DETECTOR, detect_lead

    name = PREPARE_DETECTOR if detector is None else detector
    if name == "ecgssl":
        rpeaks = _refine(_detect(clean, fs), clean[ref], fs)
    else:
        rpeaks = np.unique(detect_lead(x[ref], fs, name, record_id)).astype(np.int64)
    rr = np.diff(rpeaks) / fs
    beat_features = _beat_features(clean, rpeaks, fs, ref, rr)
    return BeatAnnotation(
        rpeaks=rpeaks,
        beat_features=beat_features,
        beat_classes=classify_beats(beat_features),
        rhythm_features=_rhythm_features(clean, rpeaks, fs, leads, ref, rr),
        reference_lead=list(leads)[ref] if leads is not None else str(ref),
    )
