"""Per-sample wave classes -> waves (code, onset, offset), and back.

Conventions used by all of ``ecgssl.eval`` segmentation code:

* A per-sample class array holds the wave codes of ``ecgssl.data.record``: 0 none, 1 P, 2 QRS,
  3 T (the ``masks.npy`` codes of a prepared store).
* A *wave array* is an int64 array of shape (n, 3) with rows ``(code, onset, offset)`` in samples,
  sorted by onset. ``onset`` is the first sample of the wave and ``offset`` its **last** sample
  (inclusive), like the ``(`` and ``)`` marks of LUDB. Either may be -1 when unknown (e.g. a
  classical delineator found an onset but no offset); such a wave still contributes its known
  fiducial point to the metrics but is not drawn into a mask.

Post-processing of a network's output (``mask_to_waves``):

1. runs of equal non-zero class are found;
2. runs of the same class separated by a gap of at most ``max_gap_ms`` (default 10 ms) of
   background are merged (a network often splits a wave with a one- or two-sample hole);
3. runs shorter than the physiological minimum of their class are dropped: by default P 30 ms,
   QRS 30 ms, T 50 ms (shortest normal P and QRS are about 60-80 ms, T about 100 ms, so these
   minima only remove fragments, never a real wave);
4. step 2 is repeated, so a fragment of another class inside a wave (QRS QRS T QRS QRS) that step 3
   removed no longer splits it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ecgssl.data.record import WAVE_P, WAVE_QRS, WAVE_T

#: Default minimum wave durations (ms) below which a predicted wave is a fragment and is dropped.
DEFAULT_MIN_DURATION_MS: dict[int, float] = {WAVE_P: 30.0, WAVE_QRS: 30.0, WAVE_T: 50.0}
#: Default largest background gap (ms) between two runs of the same class that are merged.
DEFAULT_MAX_GAP_MS = 10.0

EMPTY_WAVES = np.zeros((0, 3), dtype=np.int64)


def _runs(classes: np.ndarray) -> np.ndarray:
    """Runs of equal non-zero values: int64 (n, 3) of (code, first sample, last sample)."""
    if classes.size == 0:
        return EMPTY_WAVES.copy()
    change = np.flatnonzero(np.diff(classes)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [classes.size]]) - 1
    codes = classes[starts].astype(np.int64)
    keep = codes != 0
    return np.stack([codes[keep], starts[keep], ends[keep]], axis=1).astype(np.int64)


def _merge(waves: np.ndarray, max_gap: int) -> np.ndarray:
    """Merge consecutive waves of the same code whose gap (samples between them) <= max_gap."""
    if len(waves) < 2:
        return waves
    out = [waves[0].copy()]
    for wave in waves[1:]:
        last = out[-1]
        gap = wave[1] - last[2] - 1
        if wave[0] == last[0] and gap <= max_gap:
            last[2] = max(last[2], wave[2])
        else:
            out.append(wave.copy())
    return np.asarray(out, dtype=np.int64)


def _min_samples(min_duration_ms: Mapping[int, float] | None, fs: float) -> dict[int, int]:
    table = dict(DEFAULT_MIN_DURATION_MS if min_duration_ms is None else min_duration_ms)
    for code, ms in table.items():
        if ms < 0:
            raise ValueError(f"minimum duration of wave code {code} must be >= 0 ms, got {ms}")
    return {int(code): int(round(ms * fs / 1000.0)) for code, ms in table.items()}


def mask_to_waves(classes, fs: float, min_duration_ms: Mapping[int, float] | None = None,
                  max_gap_ms: float = DEFAULT_MAX_GAP_MS) -> np.ndarray:
    """Turn one lead's per-sample classes into waves, with fragment merging and removal.

    Args:
        classes: int array (T,) of wave codes 0..3.
        fs: sampling rate in Hz (converts the ms parameters to samples).
        min_duration_ms: {code: ms}; waves shorter than this (duration = offset - onset + 1
            samples) are dropped. Default ``DEFAULT_MIN_DURATION_MS``; ``{}`` keeps everything.
        max_gap_ms: runs of one class separated by at most this much background are merged;
            0 merges only touching runs (which never exist), i.e. no merging.
    Returns:
        int64 (n, 3) wave array ``(code, onset, offset)``, offset inclusive, sorted by onset.
    """
    classes = np.asarray(classes)
    if classes.ndim != 1:
        raise ValueError(f"classes must be 1-D (T,), got shape {classes.shape}")
    if fs <= 0:
        raise ValueError(f"fs must be > 0, got {fs}")
    if max_gap_ms < 0:
        raise ValueError(f"max_gap_ms must be >= 0, got {max_gap_ms}")
    max_gap = int(round(max_gap_ms * fs / 1000.0))
    min_len = _min_samples(min_duration_ms, fs)
    waves = _merge(_runs(classes), max_gap)
    if len(waves):
        lengths = waves[:, 2] - waves[:, 1] + 1
        minima = np.array([min_len.get(int(c), 0) for c in waves[:, 0]], dtype=np.int64)
        waves = waves[lengths >= minima]
    # Dropping a fragment can make two runs of one class neighbours again: merge once more.
    return _merge(waves, max_gap) if len(waves) else EMPTY_WAVES.copy()


def as_waves(waves) -> np.ndarray:
    """Validate and normalise a wave array-like to int64 (n, 3), sorted by onset (or offset)."""
    arr = np.asarray(waves, dtype=np.int64)
    if arr.size == 0:
        return EMPTY_WAVES.copy()
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"waves must have shape (n, 3) (code, onset, offset), got {arr.shape}")
    if not np.isin(arr[:, 0], (WAVE_P, WAVE_QRS, WAVE_T)).all():
        raise ValueError(f"wave codes must be 1 (P), 2 (QRS) or 3 (T), got {np.unique(arr[:, 0])}")
    if (arr[:, 1:] < -1).any():
        raise ValueError("onsets/offsets must be sample indices >= 0, or -1 for unknown")
    key = np.where(arr[:, 1] >= 0, arr[:, 1], arr[:, 2])
    return arr[np.argsort(key, kind="stable")]


def waves_to_mask(waves, n_samples: int) -> np.ndarray:
    """Draw waves into an int8 (T,) class array (0 where no wave).

    Waves with an unknown (-1) onset or offset, or with offset < onset, are not drawn. Samples
    beyond ``n_samples`` are clipped. Later waves overwrite earlier ones where they overlap.
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    mask = np.zeros(n_samples, dtype=np.int8)
    for code, onset, offset in as_waves(waves):
        if onset < 0 or offset < 0 or offset < onset:
            continue
        mask[onset:min(offset + 1, n_samples)] = code
    return mask
