"""The input pipelines of public ECG foundation models, as data: a list of steps per model.

Each model's authors filter and normalise a recording before their network sees it (their
``dataset.py`` / ``transforms.py``); the steps below describe those operations so that they are
written in the encoder's spec (``spec["preprocessing"]["encoder_applies"]``) and applied by the
encoder itself to spec-conform millivolt input. Every step is one dict with an ``"op"`` key:

- ``{"op": "notch", "hz": f0, "q": Q}``: IIR notch (``scipy.signal.iirnotch``), zero-phase
  (``filtfilt``), per lead;
- ``{"op": "butter", "btype": "bandpass"|"highpass"|"lowpass", "hz": f or [lo, hi],
  "order": n, "form": "ba"|"sos"}``: Butterworth, zero-phase (``filtfilt`` for the
  numerator/denominator form, ``sosfiltfilt`` for second-order sections: the two differ
  numerically, so the form the authors used is kept);
- ``{"op": "fir", "btype": "bandpass", "hz": [lo, hi], "taps_s": s}``: windowed-sinc FIR
  (``scipy.signal.firwin``, Hamming) of ``int(s * fs)`` taps (made odd), zero-phase
  (``filtfilt`` with denominator 1), per lead;
- ``{"op": "median_baseline", "window_s": w}``: subtract a median filter of ``w`` s (rounded up
  to an odd number of samples), per lead;
- ``{"op": "zscore", "axis": "record"|"lead", "eps": e}``: subtract the mean and divide by the
  standard deviation (+ ``eps``) over the whole (leads, samples) window (``"record"``) or over
  each lead (``"lead"``); with ``eps == 0`` a zero deviation gives zeros (no division by zero);
- ``{"op": "minmax", "axis": "record"|"lead", "eps": e, "range": [a, b]}``: scale to [a, b]
  (default [0, 1]): ``a + (b - a) * (x - min) / (max - min + eps)``.

Arithmetic is float64 (the authors' numpy code is), the result float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

OPS = ("notch", "butter", "fir", "median_baseline", "zscore", "minmax")


def check_steps(steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate a step list (unknown ops are an error, not ignored)."""
    out = []
    for step in steps:
        if not isinstance(step, dict) or step.get("op") not in OPS:
            raise ValueError(f"unknown preprocessing step {step!r}; known ops: {OPS}")
        out.append(dict(step))
    return out


def _axes(axis: str) -> tuple[int, ...]:
    if axis == "record":
        return (-2, -1)
    if axis == "lead":
        return (-1,)
    raise ValueError(f"normalisation axis must be 'record' or 'lead', got {axis!r}")


def apply_steps(x: np.ndarray, fs: float, steps: Sequence[dict[str, Any]]) -> np.ndarray:
    """Apply ``steps`` to ``x`` (..., leads, samples) sampled at ``fs`` Hz; float32 out."""
    from scipy import signal as sps

    y = np.asarray(x, dtype=np.float64)
    for step in check_steps(steps):
        op = step["op"]
        if op == "notch":
            b, a = sps.iirnotch(step["hz"], step["q"], fs)
            y = sps.filtfilt(b, a, y, axis=-1)
        elif op == "butter":
            form = step.get("form", "ba")
            if form == "sos":
                sos = sps.butter(step["order"], step["hz"], btype=step["btype"], fs=fs,
                                 output="sos")
                y = sps.sosfiltfilt(sos, y, axis=-1)
            else:
                b, a = sps.butter(step["order"], step["hz"], btype=step["btype"], fs=fs)
                y = sps.filtfilt(b, a, y, axis=-1)
        elif op == "fir":
            taps = int(step["taps_s"] * fs)
            taps += 1 - taps % 2  # odd: a type-I linear-phase band-pass
            b = sps.firwin(taps, [f / (fs / 2) for f in step["hz"]], pass_zero=False)
            y = sps.filtfilt(b, np.array([1.0]), y, axis=-1)
        elif op == "median_baseline":
            k = int(step["window_s"] * fs) + 1
            k += 1 - k % 2  # odd, as a median filter needs
            flat = y.reshape(-1, y.shape[-1])
            base = np.stack([sps.medfilt(row, kernel_size=k) for row in flat])
            y = y - base.reshape(y.shape)
        elif op == "zscore":
            axes, eps = _axes(step.get("axis", "record")), float(step.get("eps", 0.0))
            loc, scale = y.mean(axis=axes, keepdims=True), y.std(axis=axes, keepdims=True)
            if eps:
                y = (y - loc) / (scale + eps)
            else:
                y = np.divide(y - loc, scale, out=np.zeros_like(y), where=scale != 0)
        elif op == "minmax":
            axes, eps = _axes(step.get("axis", "record")), float(step.get("eps", 0.0))
            lo, hi = y.min(axis=axes, keepdims=True), y.max(axis=axes, keepdims=True)
            a, b = step.get("range", (0.0, 1.0))
            y = np.divide(y - lo, hi - lo + eps, out=np.zeros_like(y), where=(hi - lo + eps) != 0)
            if (a, b) != (0.0, 1.0):
                y = a + (b - a) * y
    return y.astype(np.float32)
