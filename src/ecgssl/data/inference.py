"""Inference input: a recording of any length, in any units, through a checkpoint's preprocessing.

One preprocessing path: a checkpoint's spec carries the ``PreprocessConfig`` of the store it was
trained on (``spec["preprocessing"]["config"]``); ``inference_config`` rebuilds it, and
``prepare_input`` runs the very functions ``prepare`` runs (``ecgssl.data.windowing`` for the
window policy, ``ecgssl.data.preprocess.preprocess_window`` for leads, checks, limb-lead
derivation, resampling method, filters, crop/pad and normalisation), so a raw record at
inference gives exactly the windows its store holds.

What inference adds: units at the door (``to_millivolts``: mV, uV, or ADC counts with a gain,
then the same amplitude plausibility check as ``prepare``), the caller's lead aliases and
unknown-lead choice, a limit on zero padding for short input, and the missing-lead policy
(``apply_missing_leads``) shared with embedding a store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgssl.data.leads import resolve_leads
from ecgssl.data.preprocess import PreprocessConfig, preprocess_window, with_legacy_fields
from ecgssl.data.record import Record
from ecgssl.data.windowing import plan_windows
from ecgssl.errors import ECGDataError, SpecMismatchError

UNITS = ("mV", "uV", "counts")
MISSING_LEADS = ("error", "zero", "drop")
LIMB_DERIVED = ("III", "aVR", "aVL", "aVF")
# The config fields that change what a window holds: a store embedded by an encoder must agree.
SIGNAL_FIELDS = ("fs", "window_s", "resample_method", "bandpass_hz", "highpass_hz",
                 "filter_order", "normalize")


def inference_config(spec: dict[str, Any], *, lead_aliases: dict[str, str] | None = None,
                     allow_unknown_leads: bool = False) -> PreprocessConfig:
    """The ``PreprocessConfig`` an encoder's inputs go through, from its spec.

    ``spec`` is an export's metadata or its ``preprocessing`` part. With the training store's
    config (every export since the config was stored) it is that config with the encoder's
    leads; older specs give fs, leads, length, filters and normalisation only (the rest default).
    ``lead_aliases`` extend (and win over) the config's; beats are never computed at inference.
    """
    pre = spec.get("preprocessing", spec)
    known = set(PreprocessConfig.__dataclass_fields__)
    stored = pre.get("config")
    base: dict[str, Any] = {}
    if isinstance(stored, dict) and "fs" in stored:
        # A stored config that predates a field says how it was made (LEGACY_FIELDS).
        base = {k: v for k, v in with_legacy_fields(stored).items() if k in known}
    else:
        filters = pre.get("filters") or {}
        if isinstance(filters, dict):
            base.update({k: filters[k] for k in ("bandpass_hz", "highpass_hz", "filter_order")
                         if filters.get(k) is not None})
        norm = pre.get("normalisation")
        base["normalize"] = None if norm in (None, False, "none") else norm
    base["fs"] = float(pre["fs"])
    base["window_s"] = int(pre["n_samples"]) / float(pre["fs"])
    base["leads"] = [str(x) for x in pre["leads"]]
    base["beats"] = False
    base["allow_missing_leads"] = True  # apply_missing_leads decides, after preprocessing
    aliases = dict(base.get("lead_aliases") or {})
    aliases.update(lead_aliases or {})
    base["lead_aliases"] = aliases or None
    base["allow_unknown_leads"] = bool(allow_unknown_leads or base.get("allow_unknown_leads"))
    cfg = PreprocessConfig.from_dict(base)
    if cfg.n_samples != int(pre["n_samples"]):
        raise SpecMismatchError(f"spec window {pre['n_samples']} samples at {pre['fs']} Hz does "
                                "not round-trip through window_s")
    return cfg


def to_millivolts(signal: np.ndarray, units: str = "mV", gain: float | None = None,
                  baseline: float = 0.0) -> np.ndarray:
    """Convert input samples to mV: ``"uV"`` / 1000, ``"counts"`` (ADC) (x - baseline) / gain
    with ``gain`` in counts per mV (WFDB's ``adc_gain``, e.g. 1000 for the CinC files)."""
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    x = np.asarray(signal, dtype=np.float64)
    if units == "counts":
        if gain is None or not np.isfinite(gain) or gain <= 0:
            raise ValueError("units='counts' needs gain= (ADC counts per mV, e.g. 1000 or 200)")
        x = (x - baseline) / float(gain)
    elif gain is not None:
        raise ValueError(f"gain= applies to units='counts' only (got units={units!r})")
    elif units == "uV":
        x = x / 1000.0
    return x.astype(np.float32)


@dataclass
class PreparedInput:
    """Windows ready for an encoder, and what was done to get them.

    Attributes:
        x: float32 (W, L, T) windows, rows in ``leads`` order (zero rows where not ``present``).
        leads: the encoder's input leads (``missing_leads="drop"`` leaves out leads absent from
            the whole input).
        present: bool (W, L): False for missing or flat (zeroed) leads.
        item: int (W,) index of the input item (0 for a single (L, T) input) of each window.
        starts_s: (W,) window start in seconds of its input item.
        valid_spans: int (W, 2) [start, end) samples of real signal (the rest is padding).
        fs: output rate (Hz).
        aliases: lead aliases applied; dropped: unknown leads dropped (allow_unknown_leads).
    """

    x: np.ndarray
    leads: list[str]
    present: np.ndarray
    item: np.ndarray
    starts_s: np.ndarray
    valid_spans: np.ndarray
    fs: float
    aliases: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    @property
    def n_windows(self) -> int:
        return int(len(self.x))


def _available(names: list[str], cfg: PreprocessConfig) -> set[str]:
    have = set(names)
    if cfg.derive_limb_leads and {"I", "II"} <= have:
        have |= set(LIMB_DERIVED)
    return have


def prepare_input(spec: dict[str, Any], signal: np.ndarray, fs: float, leads, *,
                  missing_leads: str = "error", lead_aliases: dict[str, str] | None = None,
                  allow_unknown_leads: bool = False, units: str = "mV",
                  gain: float | None = None, baseline: float = 0.0,
                  max_pad_fraction: float = 0.1, allow_upsampling: bool | None = None,
                  record_id: str = "input") -> PreparedInput:
    """Cut (L, T) or (N, L, T) input at ``fs`` Hz into the encoder's windows.

    Args:
        spec: the encoder's spec (``Encoder.spec``) or its ``preprocessing`` part.
        missing_leads: ``"error"`` (refuse input lacking an encoder lead), ``"zero"`` (zero rows,
            flagged in ``present``) or ``"drop"`` (leave the lead out).
        lead_aliases, allow_unknown_leads: see ``ecgssl.data.leads.resolve_leads``.
        units, gain, baseline: see ``to_millivolts``; the amplitude check of ``prepare``
            (``max_abs_mv``) then refuses input that cannot be millivolts.
        max_pad_fraction: input shorter than one window is zero-padded by at most this fraction
            of the window (1.0 accepts any padding; the valid span says where it is).
        allow_upsampling: accept input sampled below the encoder's rate (None: as its store).
    Raises:
        SpecMismatchError: what differs and how to accept it.
    """
    if missing_leads not in MISSING_LEADS:
        raise ValueError(f"missing_leads must be one of {MISSING_LEADS}, got {missing_leads!r}")
    if not fs or fs <= 0:
        raise SpecMismatchError(f"input sampling rate must be > 0 Hz, got {fs}")
    x = to_millivolts(signal, units, gain, baseline)
    if x.ndim not in (2, 3):
        raise SpecMismatchError(f"signal must be (leads, samples) or (N, leads, samples), got "
                                f"shape {x.shape}")
    leads = [str(n) for n in leads]
    if x.shape[-2] != len(leads):
        raise SpecMismatchError(f"signal has {x.shape[-2]} leads but {len(leads)} lead names were "
                                f"given ({leads})")
    if x.shape[-1] == 0:
        raise SpecMismatchError("input has no samples")
    if not np.isfinite(x).all():
        raise SpecMismatchError("signal contains NaN or inf samples")
    cfg = inference_config(spec, lead_aliases=lead_aliases,
                           allow_unknown_leads=allow_unknown_leads)
    if allow_upsampling is not None:
        cfg.allow_upsampling = bool(allow_upsampling)
    try:
        mapping = resolve_leads(leads, cfg.lead_aliases, cfg.allow_unknown_leads, record_id,
                                use_table=cfg.lead_alias_table)
    except ECGDataError as err:
        raise SpecMismatchError(err.problem) from None
    have = _available(mapping.leads, cfg)
    missing = [name for name in cfg.leads if name not in have]
    if not [name for name in cfg.leads if name in have]:
        raise SpecMismatchError(f"none of the encoder's leads {cfg.leads} is in the input "
                                f"{mapping.leads}")
    if missing and missing_leads == "error":
        raise SpecMismatchError(
            f"input lacks leads {missing} that the encoder was trained on (expects {cfg.leads}, "
            f"got {mapping.leads}); pass missing_leads='zero' or 'drop' (CLI --missing-leads) to "
            "accept reduced-lead input knowingly")
    if missing and missing_leads == "drop":
        cfg = PreprocessConfig.from_dict({**cfg.to_dict(),
                                          "leads": [n for n in cfg.leads if n in have]})
    window = int(round(cfg.window_s * fs))
    if x.shape[-1] < window and (window - x.shape[-1]) > max_pad_fraction * window:
        raise SpecMismatchError(
            f"input is {x.shape[-1] / fs:.2f} s; the encoder reads {cfg.window_s:g} s windows and "
            f"pads at most {max_pad_fraction:.0%} (max_pad_fraction=1.0, CLI --max-pad-fraction 1, "
            "accepts more padding)")
    if fs < cfg.fs and not cfg.allow_upsampling:
        raise SpecMismatchError(f"input at {fs:g} Hz is below the encoder's {cfg.fs:g} Hz; "
                                "upsampling invents no information (allow_upsampling=True "
                                "accepts it)")
    items = x[None] if x.ndim == 2 else x
    out_x, present, item_of, starts, valid = [], [], [], [], []
    for i, item in enumerate(items):
        rid = record_id if len(items) == 1 else f"{record_id}[{i}]"
        record = Record(item, fs, list(leads), rid)
        plan = plan_windows(record, cfg.window_s, cfg.stride_s, "pad", cfg.long_records,
                            cfg.last_window, cfg.crop)
        for part in plan.parts:
            try:
                out = preprocess_window(part, cfg)
            except ECGDataError as err:
                hint = ("; pass units='uV', or units='counts' with gain= (counts per mV)"
                        if "absurd amplitude" in err.problem else "")
                raise SpecMismatchError(f"{err}{hint}") from None
            out_x.append(out.signal)
            present.append(out.present)
            item_of.append(i)
            starts.append((int(part.meta.get("start_sample", 0)) + out.offset) / fs)
            valid.append(out.valid)
    return PreparedInput(np.stack(out_x), list(cfg.leads), np.stack(present),
                         np.asarray(item_of, dtype=np.int64), np.asarray(starts, np.float64),
                         np.asarray(valid, dtype=np.int64), cfg.fs, mapping.aliases,
                         mapping.dropped)


def check_store_matches(spec: dict[str, Any], store_config: dict[str, Any]) -> None:
    """Refuse to embed a store whose windows were made otherwise than the encoder's inputs.

    A store's windows are already preprocessed, so they go to the encoder as they are; a rate,
    length, filter or normalisation that differs from the encoder's would feed it other signals.
    """
    pre = spec.get("preprocessing", spec)
    if float(pre["fs"]) != float(store_config["fs"]) or \
            int(pre["n_samples"]) != int(store_config["n_samples"]):
        raise SpecMismatchError(
            f"the encoder reads {pre['n_samples']} samples at {pre['fs']:g} Hz; the store holds "
            f"{store_config['n_samples']} at {store_config['fs']:g} Hz: prepare the store with "
            f"--set fs={pre['fs']:g} --set window_s={int(pre['n_samples']) / float(pre['fs']):g},"
            " or embed the raw records")
    stored = pre.get("config")
    if not isinstance(stored, dict):
        return  # an older or foreign spec: only rate and length are known
    theirs = store_config.get("preprocess") or {}
    diffs = [f"{k}={theirs.get(k)!r} (encoder {stored.get(k)!r})" for k in SIGNAL_FIELDS
             if k in stored and k in theirs and stored.get(k) != theirs.get(k)]
    if diffs:
        raise SpecMismatchError("the store was prepared otherwise than the encoder's inputs: "
                                + ", ".join(diffs) + "; prepare it with the encoder's settings "
                                "(--set ...) or embed the raw records")


def apply_missing_leads(present: np.ndarray, leads: list[str], missing_leads: str,
                        names: list[str] | None = None) -> list[np.ndarray]:
    """Group windows for the encoder by the leads they may use.

    Args:
        present: bool (W, L) per window and lead (False: missing or flat, a zero row).
        missing_leads: ``"error"`` refuses a window with an absent lead (naming it),
            ``"zero"`` keeps every row, ``"drop"`` gives each window only its present leads.
        names: per-window names for the error message (record ids).
    Returns:
        ``[(rows, windows), ...]``: bool (L,) rows to feed and int indices of the windows that
        use them (``"zero"``, or nothing absent: one group with every row).
    """
    present = np.asarray(present, dtype=bool)
    if missing_leads == "zero" or present.all():
        return [(np.ones(len(leads), dtype=bool), np.arange(len(present)))]
    if missing_leads == "error":
        w = int(np.flatnonzero(~present.all(axis=1))[0])
        which = names[w] if names is not None else f"window {w}"
        absent = [leads[k] for k in np.flatnonzero(~present[w])]
        n_bad = int((~present.all(axis=1)).sum())
        raise SpecMismatchError(
            f"{which} (and {n_bad - 1} more windows) lack leads {absent} (missing or flat, zero "
            "rows); pass missing_leads='zero' or 'drop' (CLI --missing-leads) to accept that")
    groups = []
    patterns, inverse = np.unique(present, axis=0, return_inverse=True)
    for g, rows in enumerate(patterns):
        if not rows.any():
            which = names[int(np.flatnonzero(inverse == g)[0])] if names else "a window"
            raise SpecMismatchError(f"{which} has none of the encoder's leads {leads}")
        groups.append((rows, np.flatnonzero(inverse.reshape(-1) == g)))
    return groups
