"""Delineate any lead(s), any length, any rate >= 100 Hz with a single-channel delineator.

Pipeline per lead: resample to the model rate (250 Hz, polyphase, ``ecgssl.data.preprocess``),
stitched window probabilities (``ecgssl.delineation.windows``), per-sample argmax, waves by
``ecgssl.eval.postprocess.mask_to_waves``, physiological rules
(``ecgssl.delineation.rules.apply_rules``) with the setting chosen on validation and stored in
the model's JSON, then onsets/offsets mapped back to samples (and seconds) of the input rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgssl.data.record import WAVE_NAMES
from ecgssl.delineation.model import DEFAULT_MODEL, load_delineator
from ecgssl.delineation.rules import apply_rules, split_setting
from ecgssl.delineation.windows import MIN_SECONDS, stitched_probs
from ecgssl.errors import SpecMismatchError
from ecgssl.eval.postprocess import EMPTY_WAVES, mask_to_waves

#: Lowest input rate accepted (Hz): below it QRS boundaries are not resolved.
MIN_FS = 100.0


def lead_names(leads: Sequence[str], lead_aliases: Mapping[str, str] | None = None) -> list[str]:
    """Output names of the input rows through the one lead table
    (``ecgssl.data.leads.resolve_leads``: spellings, ``LEAD_ALIASES`` such as MLII -> II, user
    aliases first). A name that is no known lead (``ECG``, ``XYZ``) is kept as given: the
    single-channel model delineates any lead, and its waves are reported under that name."""
    from ecgssl.data.leads import resolve_leads
    from ecgssl.errors import ECGDataError

    names = []
    for raw in leads:
        try:
            names.append(resolve_leads([str(raw)], dict(lead_aliases or {})).leads[0])
        except ECGDataError:
            names.append(str(raw).strip())
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecMismatchError(f"lead names {dup} occur twice (after aliases) in {list(leads)}")
    return names


def as_leads(signal, leads: Sequence[str] | str) -> tuple[np.ndarray, list[str]]:
    """(T,) with one lead name, or (L, T) with L names -> float32 (L, T), list of names."""
    x = np.asarray(signal, dtype=np.float32)
    names = [leads] if isinstance(leads, str) else list(leads)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise SpecMismatchError(f"signal must be (samples,) or (leads, samples), got {x.shape}")
    if x.shape[0] != len(names):
        raise SpecMismatchError(f"signal has {x.shape[0]} leads but {len(names)} lead names were "
                                f"given ({names})")
    return x, names


@dataclass
class Delineator:
    """A loaded single-channel delineator (``load``) and the steps of ``delineate``."""

    model: torch.nn.Module
    spec: dict[str, Any]
    path: Path | None = None
    last_counts: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Delineator:
        """The delineator at ``path`` (stem, .json or .safetensors); None = the bundled one."""
        model, spec = load_delineator(path)
        return cls(model, spec, Path(path) if path is not None else DEFAULT_MODEL)

    @property
    def fs(self) -> float:
        return float(self.spec["input"]["fs"])

    @property
    def postprocess(self) -> dict:
        return dict(self.spec.get("postprocess", {}))

    def _check(self, x: np.ndarray, fs: float, names: Sequence[str]) -> None:
        if not fs >= MIN_FS:
            raise SpecMismatchError(f"sampling rate {fs} Hz is below {MIN_FS:g} Hz: QRS "
                                    "boundaries cannot be resolved; record at >= 100 Hz")
        if x.shape[-1] < MIN_SECONDS * fs:
            raise SpecMismatchError(f"signal of {x.shape[-1] / fs:.2f} s is shorter than "
                                    f"{MIN_SECONDS:g} s: give at least one beat")
        bad = [n for n, row in zip(names, x) if not np.isfinite(row).all()]
        if bad:
            raise SpecMismatchError(f"leads {bad} contain NaN or inf samples: cut or fill the "
                                    "gaps before delineating")

    def probabilities(self, x: np.ndarray, fs: float, names: Sequence[str] | None = None,
                      batch_size: int = 32) -> np.ndarray:
        """(L, T) mV at ``fs`` -> (L, 4, T') class probabilities at the model rate."""
        from ecgssl.data.preprocess import resample

        names = names or [str(k) for k in range(len(x))]
        self._check(x, fs, names)
        y = resample(np.asarray(x, dtype=np.float32), float(fs), self.fs)
        inp = self.spec["input"]
        return stitched_probs(self.model, y, int(inp["window"]), int(inp["overlap"]), batch_size)

    def waves_from_probs(self, probs: np.ndarray, fs: float, n_samples: int,
                         setting: dict | None = None, signal: np.ndarray | None = None
                         ) -> np.ndarray:
        """(4, T') probabilities of one lead -> (n, 3) waves in samples of the input rate.

        ``signal``: the lead (T,) at the input rate, needed by ``rpeak_anchor`` settings."""
        pp, rules = split_setting(self.postprocess if setting is None else setting)
        waves = mask_to_waves(np.argmax(probs, axis=0), self.fs, **pp)
        counts: dict = {}
        rpeaks = None
        if rules.get("rpeak_anchor") and signal is not None:
            from ecgssl.delineation.rpeaks import detect_lead
            from ecgssl.errors import ECGDataError

            try:
                found = detect_lead(signal, fs, rules["rpeak_anchor"])
                rpeaks = np.round(found * (self.fs / fs)).astype(np.int64)
            except ECGDataError:
                rpeaks = None  # the detector failed on this lead: counted as anchor_skipped
        waves = apply_rules(waves, self.fs, probs, rpeaks=rpeaks, counts=counts, **rules)
        for k, v in counts.items():
            self.last_counts[k] = self.last_counts.get(k, 0) + v
        if len(waves) == 0:
            return EMPTY_WAVES.copy()
        out = waves.copy()
        out[:, 1:] = np.clip(np.round(waves[:, 1:] * (fs / self.fs)), 0, n_samples - 1)
        return out

    def waves(self, signal, fs: float, leads: Sequence[str] | str,
              setting: dict | None = None) -> dict[str, np.ndarray]:
        """lead -> (n, 3) int64 waves ``(code, onset, offset)`` in samples of the input rate."""
        x, names = as_leads(signal, leads)
        probs = self.probabilities(x, fs, names)
        return {name: self.waves_from_probs(p, fs, x.shape[-1], setting, row)
                for name, p, row in zip(names, probs, x)}


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> Delineator:
    return Delineator.load(None if path == "" else path)


def get_delineator(path: str | Path | None = None) -> Delineator:
    """Load (once per file version) the delineator at ``path``; None = the bundled one."""
    stem = (DEFAULT_MODEL if path is None else Path(path)).with_suffix(".json")
    mtime = stem.stat().st_mtime if stem.exists() else 0.0
    return _cached("" if path is None else str(path), mtime)


def waves_to_dicts(waves: np.ndarray, fs: float) -> list[dict[str, float]]:
    """(n, 3) waves in samples -> ``[{"wave", "onset_s", "offset_s"}]`` (seconds)."""
    return [{"wave": WAVE_NAMES[int(c)], "onset_s": float(on) / fs, "offset_s": float(off) / fs}
            for c, on, off in waves]


def delineate_signal(signal, fs: float, leads: Sequence[str] | str,
                     model: str | Path | Delineator | None = None,
                     lead_aliases: Mapping[str, str] | None = None,
                     postprocess: dict | None = None) -> dict[str, list[dict[str, float]]]:
    """P/QRS/T waves of every given lead (each lead delineated on its own).

    Args:
        signal: (T,) or (L, T) millivolts at ``fs`` Hz (>= 100), any length >= 1 s.
        leads: lead name(s) of the rows (any names; canonicalised, ``lead_aliases`` applied).
        model: a delineator (path or loaded); None = the bundled LUDB-trained default.
        postprocess: override the model's post-processing setting (``rules.CANDIDATES``).
    Returns:
        lead -> list of ``{"wave": "P"|"QRS"|"T", "onset_s", "offset_s"}`` (seconds from the
        start of the input; offset = last sample of the wave).
    """
    dl = model if isinstance(model, Delineator) else get_delineator(model)
    x, names = as_leads(signal, leads)
    out = dl.waves(x, fs, lead_names(names, lead_aliases), postprocess)
    return {lead: waves_to_dicts(w, fs) for lead, w in out.items()}
