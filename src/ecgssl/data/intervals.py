"""Expert interval targets (heart rate, QRS, PR, QT) from wave annotations.

Pure numpy, so ``prepare`` workers can compute them without importing the evaluation stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ecgssl.data.leads import canonical_lead
from ecgssl.data.record import WAVE_P, WAVE_QRS, WAVE_T

INTERVAL_TARGETS = ("hr_bpm", "qrs_ms", "pr_ms", "qt_ms")
INTERVAL_UNITS = {"hr_bpm": "bpm", "qrs_ms": "ms", "pr_ms": "ms", "qt_ms": "ms"}


def _lead_measures(waves: np.ndarray, fs: float) -> dict[str, float]:
    """Median HR / QRS / PR / QT of one lead's annotation (n, 4) = (code, onset, peak, offset).

    Beats are formed from the annotation order: the P wave immediately before a QRS complex is
    that beat's P; the T wave immediately after it is its T. Unknown points (-1) drop that beat
    from the measures that need them.
    """
    w = np.asarray(waves, dtype=np.int64).reshape(-1, 4)
    nan = float("nan")
    if len(w) == 0:
        return dict.fromkeys(INTERVAL_TARGETS, nan)
    # Order by peak where known, else onset, else offset.
    key = np.where(w[:, 2] >= 0, w[:, 2], np.where(w[:, 1] >= 0, w[:, 1], w[:, 3]))
    w = w[np.argsort(key, kind="stable")]
    codes = w[:, 0]
    qrs_idx = np.flatnonzero(codes == WAVE_QRS)
    qrs, pr, qt = [], [], []
    for i in qrs_idx:
        _, on, _, off = w[i]
        if on >= 0 and off > on:
            qrs.append(off - on)
        if i > 0 and codes[i - 1] == WAVE_P and w[i - 1, 1] >= 0 and on > w[i - 1, 1]:
            pr.append(on - w[i - 1, 1])
        if i + 1 < len(w) and codes[i + 1] == WAVE_T and on >= 0 and w[i + 1, 3] > on:
            qt.append(w[i + 1, 3] - on)
    peaks = w[qrs_idx, 2]
    peaks = peaks[peaks >= 0]
    rr = np.diff(peaks)
    rr = rr[rr > 0]
    ms = 1000.0 / fs
    return {
        "hr_bpm": 60.0 * fs / float(np.median(rr)) if rr.size else nan,
        "qrs_ms": float(np.median(qrs)) * ms if qrs else nan,
        "pr_ms": float(np.median(pr)) * ms if pr else nan,
        "qt_ms": float(np.median(qt)) * ms if qt else nan,
    }


def ludb_interval_targets(
    waves_by_lead: Mapping[str, np.ndarray], fs: float, lead: str | None = "II"
) -> dict[str, float]:
    """Per-record HR (bpm), QRS duration, PR and QT intervals (ms) from expert annotations.

    Definitions (per beat, then the median over the beats of the lead):
        HR = 60 / RR with RR the interval between consecutive QRS peaks (median RR);
        QRS = QRS offset - QRS onset; PR = QRS onset - P onset; QT = T offset - QRS onset.

    Args:
        waves_by_lead: lead name -> int array (n, 4) of (code 1 P / 2 QRS / 3 T, onset, peak,
            offset) in samples (``Record.annotations["waves"]``); names in any case.
        fs: sampling rate in Hz.
        lead: measure on this lead only (default lead II, the clinical rhythm lead). With
            ``None`` each lead is measured and the median over the leads that give a value is
            taken (more robust to one badly annotated lead, but mixes lead-specific durations).
    Returns:
        {"hr_bpm", "qrs_ms", "pr_ms", "qt_ms"}: NaN where not measurable (no P waves in atrial
        fibrillation -> PR NaN; lead absent; fewer than two QRS peaks -> HR NaN).
    """
    if fs <= 0:
        raise ValueError(f"fs must be > 0, got {fs}")
    by_lead = {canonical_lead(k): v for k, v in waves_by_lead.items()}
    if lead is not None:
        name = canonical_lead(lead)
        if name not in by_lead:
            return dict.fromkeys(INTERVAL_TARGETS, float("nan"))
        return _lead_measures(by_lead[name], fs)
    per = [_lead_measures(v, fs) for v in by_lead.values()]
    out = {}
    for t in INTERVAL_TARGETS:
        vals = np.array([p[t] for p in per], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[t] = float(np.median(vals)) if vals.size else float("nan")
    return out


def interval_target_matrix(
    waves_per_record: Sequence[Mapping[str, np.ndarray]], fs: float, lead: str | None = "II"
) -> np.ndarray:
    """(N, 4) float32 targets in ``INTERVAL_TARGETS`` order, one row per record."""
    rows = [ludb_interval_targets(w, fs, lead) for w in waves_per_record]
    return np.array([[r[t] for t in INTERVAL_TARGETS] for r in rows], dtype=np.float32)
