"""The window policy: how a record of any length becomes fixed-length windows, and wave masks.

One place decides, for ``prepare`` and for inference alike (``ecgssl.data.inference``):

- a record **shorter** than the window is zero-padded at the end (``short_records="pad"``; the
  window's valid span says where the real signal ends) or dropped (``"drop"``, counted and
  named in the store's report);
- a record **longer** than the window is cut into every window of ``window_s`` starting each
  ``stride_s`` (``long_records="windows"``, the default) or cropped to one window
  (``"crop"``, at ``crop`` = start/center; the seconds left out are counted);
- the **last partial window** of a long record is aligned to the record end (``last_window=
  "end"``: real signal only, overlapping the previous window), zero-padded (``"pad"``) or
  dropped (``"drop"``: the seconds dropped are counted).

Labels belong to the record: every window carries the record's labels, except that rhythm
labels derived from time-stamped rhythm episodes (``annotations["rhythm"]``, e.g. AF episodes)
are replaced by the rhythms present in the window. Beats and rhythm episodes are clipped and
shifted into window samples.

Everything here works on raw records at their own rate; ``data/preprocess.py`` turns each window
into the output rate and leads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ecgssl.data.record import WAVE_NONE, Record

SHORT_POLICIES = ("pad", "drop")
LONG_POLICIES = ("windows", "crop")
LAST_POLICIES = ("end", "pad", "drop")


def window_starts(n_samples: int, window: int, stride: int, last: str = "drop") -> list[int]:
    """Start samples of the windows of length ``window`` every ``stride`` samples.

    Args:
        last: what to do with signal after the last full window: ``"drop"`` (nothing),
            ``"end"`` (one more window ending at the record end), ``"pad"`` (one more window
            starting at the next stride, running past the end: the caller pads it).
    Returns:
        Sorted unique starts. A record no longer than one window gives ``[0]``.
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be > 0 samples, got {window}, {stride}")
    if last not in LAST_POLICIES:
        raise ValueError(f"last must be one of {LAST_POLICIES}, got {last!r}")
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, stride))
    covered = starts[-1] + window
    if covered < n_samples:
        if last == "end":
            starts.append(n_samples - window)
        elif last == "pad":
            starts.append(starts[-1] + stride)
    return sorted(set(starts))


def _window_labels(record: Record, segs: list | None) -> list[str]:
    """The record's labels, with rhythm-episode labels replaced by the window's rhythms."""
    rhythm = record.annotations.get("rhythm")
    if rhythm is None or segs is None:
        return list(record.labels)
    episode_labels = {f"rhythm:{lab}" for _, _, lab in rhythm}
    keep = [lab for lab in record.labels if lab not in episode_labels]
    return sorted(set(keep) | {f"rhythm:{lab}" for _, _, lab in segs})


def slice_record(record: Record, start: int, end: int, record_id: str | None = None) -> Record:
    """Samples ``[start, end)`` of ``record`` (end may pass the record end: the slice is shorter)
    with beats, rhythm episodes and waves clipped and shifted, labels per ``_window_labels``.

    Meta gains ``start_sample`` (in the record's samples) and ``parent_id``.
    """
    n = record.n_samples
    start, stop = max(0, int(start)), min(int(end), n)
    ann: dict = {}
    meta = dict(record.meta)
    meta.update(start_sample=start, parent_id=record.record_id)
    beats = record.annotations.get("beats")
    if beats is not None:
        samples = np.asarray(beats["samples"], dtype=np.int64)
        symbols = np.asarray(beats["symbols"], dtype=object)
        lo, hi = np.searchsorted(samples, [start, stop])
        syms = symbols[lo:hi].tolist()
        ann["beats"] = {"samples": samples[lo:hi] - start, "symbols": syms}
        meta["beat_counts"] = dict(Counter(syms))
        meta["n_beats"] = len(syms)
    segs = None
    rhythm = record.annotations.get("rhythm")
    if rhythm is not None:
        segs = [(max(s, start) - start, min(e, stop) - start, lab)
                for s, e, lab in rhythm if s < stop and e > start]
        ann["rhythm"] = segs
    waves = record.annotations.get("waves")
    if waves is not None:
        shifted = {}
        for lead, w in waves.items():
            w = np.asarray(w, dtype=np.int64).reshape(-1, 4)
            # Keep waves whose peak lies inside the slice; positions outside become unknown.
            inside = (w[:, 2] >= start) & (w[:, 2] < stop)
            w = w[inside].copy()
            cols = w[:, 1:]
            known = cols >= 0
            cols[known] -= start
            cols[(cols < 0) | (cols >= stop - start)] = -1
            w[:, 1:] = cols
            shifted[lead] = w
        ann["waves"] = shifted
    for key, value in record.annotations.items():
        ann.setdefault(key, value)
    return Record(signal=np.ascontiguousarray(record.signal[:, start:stop]), fs=record.fs,
                  leads=list(record.leads), record_id=record_id or record.record_id,
                  patient_id=record.patient_id, labels=_window_labels(record, segs),
                  source=record.source, annotations=ann, meta=meta)


def iter_windows(record: Record, window_s: float, stride_s: float | None = None,
                 last: str = "drop") -> Iterator[Record]:
    """Fixed-length windows of ``record`` (see ``window_starts`` for ``last``).

    Args:
        window_s: window length in seconds (rounded to samples).
        stride_s: step between window starts in seconds (default: ``window_s``, no overlap).
    Yields:
        Records ``f"{record_id}@{start_sample}"`` with the signal slice (shorter than the window
        for a ``last="pad"`` window), beats and rhythm episodes clipped and shifted into window
        samples, the record's labels with rhythm-episode labels replaced by the window's
        rhythms, meta ``start_sample`` (record samples), ``parent_id``, ``beat_counts`` and
        ``n_beats`` besides the parent's meta.
    """
    if window_s is None or window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s!r}")
    if stride_s is not None and stride_s <= 0:
        raise ValueError(f"stride_s must be > 0, got {stride_s!r}")
    window = int(round(window_s * record.fs))
    stride = int(round((stride_s if stride_s is not None else window_s) * record.fs))
    if record.n_samples < window:
        return
    for start in window_starts(record.n_samples, window, stride, last):
        yield slice_record(record, start, start + window, f"{record.record_id}@{start}")


@dataclass
class WindowPlan:
    """The windows a policy cuts from one record (raw samples at the record's rate).

    Attributes:
        parts: one Record per window (a short record: itself; a cropped one: the crop).
        dropped: None, or why the whole record is dropped (``short_records="drop"``).
        dropped_s: seconds of the record in no window (crop, ``last_window="drop"``).
        padded: True for a short record to be zero-padded.
    """

    parts: list[Record]
    dropped: str | None = None
    dropped_s: float = 0.0
    padded: bool = False


def plan_windows(record: Record, window_s: float, stride_s: float | None = None,
                 short_records: str = "pad", long_records: str = "windows",
                 last_window: str = "end", crop: str = "start") -> WindowPlan:
    """Apply the window policy (module docstring) to one record."""
    if short_records not in SHORT_POLICIES:
        raise ValueError(f"short_records must be one of {SHORT_POLICIES}, got {short_records!r}")
    if long_records not in LONG_POLICIES:
        raise ValueError(f"long_records must be one of {LONG_POLICIES}, got {long_records!r}")
    window = int(round(window_s * record.fs))
    n = record.n_samples
    if n < window:
        if short_records == "drop":
            return WindowPlan([], dropped=f"{record.duration_s:.2f} s is shorter than the "
                              f"{window_s:g} s window (short_records=drop)")
        return WindowPlan([record], padded=True)
    if n == window:
        return WindowPlan([record])
    if long_records == "crop":
        start = 0 if crop == "start" else (n - window) // 2
        part = slice_record(record, start, start + window, record.record_id)
        return WindowPlan([part], dropped_s=(n - window) / record.fs)
    parts = list(iter_windows(record, window_s, stride_s, last_window))
    stride = int(round((stride_s if stride_s is not None else window_s) * record.fs))
    covered = np.zeros(n, dtype=bool)
    for start in window_starts(n, window, stride, last_window):
        covered[start:start + window] = True
    return WindowPlan(parts, dropped_s=float((~covered).sum()) / record.fs)


def wave_mask(waves: np.ndarray, n_samples: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Per-sample wave codes of one lead and its annotated span.

    Args:
        waves: (n, 4) (code, onset, peak, offset). A wave missing its onset is drawn from its
            peak, one missing its offset up to its peak (the best the annotation allows).
        n_samples: length of the lead.
    Returns:
        mask int8 (n_samples,) with ``WAVE_NONE/P/QRS/T`` (onset..offset inclusive) and span
        ``(start, end)``: from the first annotated onset to the last annotated offset, half-open
        ``[start, end)``, (0, 0) when the lead has no onset or no offset.
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    mask = np.full(n_samples, WAVE_NONE, dtype=np.int8)
    waves = np.asarray(waves, dtype=np.int64).reshape(-1, 4)
    for code, on, pk, off in waves.tolist():
        lo = on if on >= 0 else pk
        hi = off if off >= 0 else pk
        if hi >= lo >= 0:
            mask[lo:min(hi + 1, n_samples)] = code
    onsets, offsets = waves[waves[:, 1] >= 0, 1], waves[waves[:, 3] >= 0, 3]
    if onsets.size == 0 or offsets.size == 0:
        return mask, (0, 0)
    start = int(min(onsets.min(), n_samples))
    end = int(min(offsets.max() + 1, n_samples))
    if end <= start:
        return mask, (0, 0)
    return mask, (start, end)


def window_wave_masks(waves: dict | None, leads: list[str], n_samples: int, scale: float,
                      offset: int, valid_end: int | None = None):
    """Masks int8 (L, T) and spans int32 (L, 2) of one window in output samples, or (None, None).

    Args:
        waves: lead -> (n, 4) waves in the window's input samples.
        scale: output rate / input rate; offset: input samples cropped from the window start.
        valid_end: spans are clipped to the real (not padded) signal.
    """
    if not waves:
        return None, None
    masks = np.zeros((len(leads), n_samples), dtype=np.int8)
    spans = np.zeros((len(leads), 2), dtype=np.int32)
    end = n_samples if valid_end is None else int(valid_end)
    for k, lead in enumerate(leads):
        w = waves.get(lead)
        if w is None or len(w) == 0:
            continue
        w = np.asarray(w, dtype=np.int64).copy()
        cols = w[:, 1:]
        known = cols >= 0
        # Sample positions are rescaled to the output rate and shifted by the crop offset.
        cols[known] = np.round((cols[known] - offset) * scale).astype(np.int64)
        w[:, 1:] = cols
        mask, span = wave_mask(w, n_samples)
        masks[k] = mask
        spans[k] = np.clip(np.asarray(span, dtype=np.int64), 0, end)
    return masks, spans
