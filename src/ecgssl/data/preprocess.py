"""Preprocessing of one record: checks, resampling, filters, lead mapping, crop/pad.

Everything here is configured by ``PreprocessConfig``, which is stored (with its hash) in every
prepared store and checkpoint, so that the same transform can be applied again at inference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from ecgssl.data.leads import LEADS_12, derive_limb_leads, select_leads
from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError


def _prepare_detector() -> str:
    # One source of truth: the benchmark's choice lives next to the detectors it compared.
    from ecgssl.delineation.rpeaks import PREPARE_DETECTOR

    return PREPARE_DETECTOR


#: Values of fields added after stores were first written, as those older stores were made:
#: a stored config without ``rpeak_detector`` had its beats from our classical detector. A field
#: at its legacy value is left out of ``hash()``, so the hashes of those stores (and of the
#: checkpoints that carry them) stay what they were.
LEGACY_FIELDS = {"rpeak_detector": "ecgssl"}


@dataclass
class PreprocessConfig:
    """How raw records become fixed-size windows.

    Attributes:
        fs: output sampling rate (Hz).
        leads: output leads, in order (canonical names).
        window_s: output window length (s); ``n_samples = round(window_s * fs)``.
        long_record_s: records longer than this (Holter-type recordings) lose only a window
            that fails the checks (skipped and counted in the report); a shorter record with a
            bad window is rejected whole.
        stride_s: step between window starts of records longer than the window (default:
            ``window_s``, no overlap).
        short_records: ``"pad"`` (zero-pad at the end; the valid span says where) or ``"drop"``
            records shorter than the window (``ecgssl.data.windowing``; counted either way).
        long_records: ``"windows"`` (every window, the default) or ``"crop"`` (one window at
            ``crop``; the seconds left out are counted) for records longer than the window.
        last_window: the signal after the last full window: ``"end"`` (one more window
            aligned to the record end), ``"pad"`` (zero-padded) or ``"drop"`` (counted).
        crop: ``"start"`` or ``"center"``: which part ``long_records="crop"`` keeps.
        resample_method: ``"poly"`` (polyphase, default) or ``"fft"`` (what ECG-JEPA used).
        allow_upsampling: accept sources sampled below ``fs`` (upsampling invents no information,
            so by default it is an error).
        bandpass_hz: ``[low, high]`` zero-phase Butterworth band-pass, or None (raw).
        highpass_hz: zero-phase Butterworth high-pass for baseline wander (e.g. 0.5), or None.
        filter_order: Butterworth order (applied forward and backward).
        normalize: None (raw mV) or ``"zscore"`` (per lead per window).
        derive_limb_leads: compute III, aVR, aVL, aVF from I and II when absent.
        allow_missing_leads: missing output leads become zero rows flagged in the lead mask
            (otherwise an error).
        max_abs_mv: amplitude above which (after median removal) a lead is called absurd.
        flat_mv: peak-to-peak below which a lead is called flat.
        flat_leads: ``"error"`` (reject the record) or ``"mask"`` (zero the lead, flag it missing).
        beats: detect R-peaks and compute beat/rhythm features (Beat-SSL soft targets).
        rpeak_detector: the R-peak detector of the beats (a name of
            ``ecgssl.delineation.rpeaks.DETECTORS``; default the benchmark's choice,
            ``rpeaks.PREPARE_DETECTOR``): Beat-SSL's beat boxes and targets follow it. Part of
            the hash when ``beats`` is on, so a store whose beats another detector made is not
            reused. A stored config without the field predates it and was made with
            ``"ecgssl"`` (``LEGACY_FIELDS``, ``PreprocessConfig.from_stored``). With beats,
            ``fs`` must reach the detector's ``rpeaks.MIN_FS`` (delineator 100 Hz, ours 50 Hz).
        lead_aliases: treat a source lead as another, e.g. ``{"ECG": "I"}``; they extend and
            win over the alias table (``ecgssl.data.leads.LEAD_ALIASES``: MLII -> II, CM5 -> V5
            ...). Applied aliases are listed per window in the manifest.
        lead_alias_table: apply ``LEAD_ALIASES`` (False: only ``lead_aliases``).
        allow_unknown_leads: drop (and count) leads whose name is no known lead instead of
            rejecting the record with an error that names it.
    """

    fs: float = 250.0
    leads: list[str] = field(default_factory=lambda: list(LEADS_12))
    window_s: float = 10.0
    long_record_s: float = 20.0
    stride_s: float | None = None
    short_records: str = "pad"
    long_records: str = "windows"
    last_window: str = "end"
    crop: str = "start"
    resample_method: str = "poly"
    allow_upsampling: bool = False
    bandpass_hz: list[float] | None = None
    highpass_hz: float | None = None
    filter_order: int = 3
    normalize: str | None = None
    derive_limb_leads: bool = True
    allow_missing_leads: bool = True
    max_abs_mv: float = 25.0
    flat_mv: float = 0.01
    flat_leads: str = "mask"
    beats: bool = True
    rpeak_detector: str = field(default_factory=_prepare_detector)
    lead_aliases: dict[str, str] | None = None
    lead_alias_table: bool = True
    allow_unknown_leads: bool = False

    def __post_init__(self) -> None:
        from ecgssl.data.windowing import LAST_POLICIES, LONG_POLICIES, SHORT_POLICIES

        for name, allowed in (("short_records", SHORT_POLICIES), ("long_records", LONG_POLICIES),
                              ("last_window", LAST_POLICIES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.stride_s is not None and self.stride_s <= 0:
            raise ValueError(f"stride_s must be > 0, got {self.stride_s!r}")
        if self.fs <= 0 or self.window_s <= 0:
            raise ValueError("fs and window_s must be positive")
        if self.crop not in ("start", "center"):
            raise ValueError(f"crop must be 'start' or 'center', got {self.crop!r}")
        if self.resample_method not in ("poly", "fft"):
            raise ValueError(
                f"resample_method must be 'poly' or 'fft', got {self.resample_method!r}"
            )
        if self.normalize not in (None, "zscore"):
            raise ValueError(f"normalize must be None or 'zscore', got {self.normalize!r}")
        if self.flat_leads not in ("error", "mask"):
            raise ValueError(f"flat_leads must be 'error' or 'mask', got {self.flat_leads!r}")
        if self.bandpass_hz is not None:
            low, high = self.bandpass_hz
            if not 0 < low < high < self.fs / 2:
                raise ValueError(
                    f"bandpass_hz {self.bandpass_hz} must satisfy 0 < low < high < fs/2"
                )
        if not self.leads:
            raise ValueError("leads must not be empty")
        self.leads = list(self.leads)
        from ecgssl.delineation.rpeaks import DETECTORS, MIN_FS

        if self.rpeak_detector not in DETECTORS:
            raise ValueError(f"rpeak_detector must be one of {sorted(DETECTORS)}, got "
                             f"{self.rpeak_detector!r}")
        low = MIN_FS.get(self.rpeak_detector, 0.0)
        if self.beats and self.fs < low:
            # Otherwise every record would fail in the detector, one by one.
            raise ValueError(f"rpeak_detector {self.rpeak_detector!r} needs fs >= {low:g} Hz, "
                             f"got {self.fs:g}; raise fs, choose another rpeak_detector or set "
                             "beats=False")

    @property
    def n_samples(self) -> int:
        return int(round(self.window_s * self.fs))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown preprocessing options {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**d)

    @classmethod
    def from_stored(cls, d: dict) -> PreprocessConfig:
        """The config a store or checkpoint recorded (``config.json["preprocess"]``): fields
        it lacks because it predates them take their ``LEGACY_FIELDS`` value (what it was made
        with), not today's default; other missing fields take the defaults."""
        return cls.from_dict(with_legacy_fields(d))

    def hash(self) -> str:
        """Short, stable hash of the configuration (keys sorted).

        Left out: ``rpeak_detector`` when ``beats`` is off (it changes nothing in the store) or
        at its legacy value ``"ecgssl"`` (the hash such a config had before the field existed,
        so older stores are still recognised and reused when asked for with ``"ecgssl"``)."""
        d = self.to_dict()
        if not self.beats or d["rpeak_detector"] == LEGACY_FIELDS["rpeak_detector"]:
            del d["rpeak_detector"]
        text = json.dumps(d, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_legacy_fields(stored: dict) -> dict:
    """A stored preprocessing dict with the ``LEGACY_FIELDS`` it lacks filled in (a copy)."""
    return {**LEGACY_FIELDS, **stored}


def resample(x: np.ndarray, fs_in: float, fs_out: float, method: str = "poly") -> np.ndarray:
    """Resample (..., samples) from ``fs_in`` to ``fs_out`` Hz along the last axis."""
    if fs_in == fs_out:
        return x
    if method == "fft":
        n_out = int(round(x.shape[-1] * fs_out / fs_in))
        return sps.resample(x, n_out, axis=-1).astype(np.float32)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def _butter(x: np.ndarray, fs: float, order: int, cutoff, btype: str) -> np.ndarray:
    sos = sps.butter(order, cutoff, btype=btype, fs=fs, output="sos")
    # sosfiltfilt is zero-phase: wave timing (which the segmentation labels depend on) is preserved.
    padlen = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1) * 10)
    return sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen).astype(np.float32)


def apply_filters(x: np.ndarray, fs: float, cfg: PreprocessConfig) -> np.ndarray:
    """Zero-phase band-pass and/or baseline-wander high-pass, as configured."""
    if cfg.bandpass_hz is not None:
        x = _butter(x, fs, cfg.filter_order, list(cfg.bandpass_hz), "bandpass")
    if cfg.highpass_hz is not None:
        x = _butter(x, fs, cfg.filter_order, cfg.highpass_hz, "highpass")
    return x


def _units_hint(max_ptp_mv: float) -> str:
    """Name the units when a signal is a factor 1000 off a plausible ECG (0.2-20 mV p-p)."""
    for factor, read_as in ((1000.0, "volts (or a header gain 1000x too large)"),
                            (1e-3, "microvolts (or a header gain 1000x too small)")):
        if 0.2 <= max_ptp_mv * factor <= 20.0:
            return (f" (largest peak-to-peak {max_ptp_mv:.4g} mV; x{factor:g} would be a normal "
                    f"ECG: the samples look like {read_as}, not millivolts; fix the units/gain "
                    "of the source)")
    return ""


def check_signal(x: np.ndarray, leads: list[str], record_id: str, cfg: PreprocessConfig):
    """Reject NaN/inf and absurd amplitudes; find flat leads.

    Returns:
        bool array (leads,): True for flat leads (to be masked when ``cfg.flat_leads == "mask"``).
    """
    if x.shape[-1] == 0:
        raise ECGDataError(record_id, "signal has no samples")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = sorted({leads[i] for i in np.nonzero(bad.any(axis=1))[0]})
        raise ECGDataError(record_id, f"{int(bad.sum())} NaN/inf samples in leads {rows}")
    centred = x - np.median(x, axis=1, keepdims=True)
    peak = np.abs(centred).max(axis=1)
    absurd = peak > cfg.max_abs_mv
    if absurd.any():
        rows = [f"{leads[i]} ({peak[i]:.1f} mV)" for i in np.nonzero(absurd)[0]]
        raise ECGDataError(
            record_id, f"absurd amplitude in leads {rows} (> {cfg.max_abs_mv} mV): wrong units?"
            + _units_hint(float(np.max(np.ptp(x, axis=1))))
        )
    flat = np.ptp(x, axis=1) < cfg.flat_mv
    if flat.all():
        ptp = float(np.max(np.ptp(x, axis=1)))
        hint = _units_hint(ptp)
        raise ECGDataError(record_id, "all leads are flat (no signal)" if not hint else
                           f"all leads are below {cfg.flat_mv} mV peak-to-peak{hint}")
    if flat.any() and cfg.flat_leads == "error":
        raise ECGDataError(record_id, f"flat leads {[leads[i] for i in np.nonzero(flat)[0]]}")
    return flat


def fit_length(x: np.ndarray, n: int, crop: str = "start") -> tuple[np.ndarray, int]:
    """Crop or zero-pad (..., samples) to ``n`` samples.

    Returns:
        (array, offset): ``offset`` is the input sample that became output sample 0 (negative
        never; padding is at the end).
    """
    length = x.shape[-1]
    if length >= n:
        start = 0 if crop == "start" else (length - n) // 2
        return x[..., start : start + n], start
    pad = np.zeros(x.shape[:-1] + (n - length,), dtype=x.dtype)
    return np.concatenate([x, pad], axis=-1), 0


@dataclass
class Processed:
    """One window after preprocessing.

    Attributes:
        signal: float32 (len(cfg.leads), cfg.n_samples).
        present: bool (len(cfg.leads),): False for leads missing or flat (zero rows).
        offset: input samples (record rate) cropped from the window start.
        valid: (start, end) output samples of real signal; the rest is zero padding.
        aliases: lead aliases applied ``{input name: lead}``; dropped: unknown leads dropped.
    """

    signal: np.ndarray
    present: np.ndarray
    offset: int
    valid: tuple[int, int]
    aliases: dict[str, str]
    dropped: list[str]


def preprocess_window(record: Record, cfg: PreprocessConfig) -> Processed:
    """Turn one window of a record (at most ``window_s`` long; see ``ecgssl.data.windowing``)
    into the output leads, rate and length. ``prepare`` and inference both call this.

    Steps, in order: lead names (``resolve_leads``: alias table, ``lead_aliases``, unknown
    leads), checks (NaN, absurd amplitude = wrong units, flat leads), limb-lead derivation, lead
    selection, resampling, filters, crop/pad to ``n_samples``, z-score over the valid span.
    """
    from ecgssl.data.leads import resolve_leads

    rid = record.record_id
    if record.fs < cfg.fs and not cfg.allow_upsampling:
        raise ECGDataError(
            rid,
            f"sampling rate {record.fs:g} Hz is below the requested {cfg.fs:g} Hz "
            "(set allow_upsampling to accept it)",
        )
    mapping = resolve_leads(record.leads, cfg.lead_aliases, cfg.allow_unknown_leads, rid,
                            use_table=cfg.lead_alias_table)
    if not mapping.leads:
        raise ECGDataError(rid, f"no known lead among {record.leads} (all dropped as unknown)")
    x, leads = record.signal, mapping.leads
    if len(mapping.keep) != x.shape[0]:
        x = x[mapping.keep]
    flat = check_signal(x, leads, rid, cfg)
    if flat.any():
        x = x.copy()
        x[flat] = 0.0
    if cfg.derive_limb_leads:
        # Derive only from usable I and II, so a flat source lead is not propagated.
        usable = [name for name, f in zip(leads, flat) if not f]
        if "I" in usable and "II" in usable:
            x, leads_out = derive_limb_leads(x, leads, rid)
            flat = np.concatenate([flat, np.zeros(len(leads_out) - len(leads), dtype=bool)])
            leads = leads_out
    wanted_present = [name for name in cfg.leads if name in leads]
    if not wanted_present:
        raise ECGDataError(rid, f"none of the requested leads {cfg.leads} (record has {leads})")
    x, present = select_leads(x, leads, cfg.leads, rid, allow_missing=cfg.allow_missing_leads)
    for k, name in enumerate(cfg.leads):
        if present[k] and flat[leads.index(name)]:
            present[k] = False
    x = resample(x, record.fs, cfg.fs, cfg.resample_method)
    x = apply_filters(x, cfg.fs, cfg)
    n_real = x.shape[-1]
    x, start = fit_length(x, cfg.n_samples, cfg.crop)
    valid = (0, min(cfg.n_samples, n_real - start))
    if cfg.normalize == "zscore":
        # Statistics of the real signal only: zero padding must not shift them.
        lo, hi = valid
        real = x[:, lo:hi]
        mean, std = real.mean(axis=1, keepdims=True), real.std(axis=1, keepdims=True)
        z = np.where(std > 1e-6, (x - mean) / np.maximum(std, 1e-6), 0.0)
        z[:, hi:] = 0.0
        x = z
    x[~present] = 0.0
    offset = int(round(start * record.fs / cfg.fs))
    return Processed(np.ascontiguousarray(x, dtype=np.float32), present, offset,
                     (int(valid[0]), int(valid[1])), mapping.aliases, mapping.dropped)


def preprocess_signal(record: Record, cfg: PreprocessConfig):
    """``preprocess_window`` as (signal, lead_mask, offset) (the older interface)."""
    out = preprocess_window(record, cfg)
    return out.signal, out.present, out.offset
