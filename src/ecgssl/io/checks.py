"""Signal sanity checks shared by all readers.

A reader calls ``check_signal(record, checks)`` before returning; a failed check raises an
``ECGDataError`` naming the record, the lead and the problem, so that ``prepare`` can skip the
record and say why in its report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError


@dataclass(frozen=True)
class SignalChecks:
    """Which checks to run (picklable, so Sources can carry it to worker processes).

    Attributes:
        allow_nan: accept NaN/inf samples (e.g. WFDB "invalid sample" values) instead of failing.
        flat_ptp_mv: a lead whose peak-to-peak over the whole record is below this (mV) is flat
            (disconnected electrode, all-zero lead); None disables the check.
        max_abs_mv: fail when any sample is further than this (mV) from its lead's median
            (median subtraction removes DC offsets such as LUDB record 115 lead V6, about 4.8 mV);
            None disables the check.
        strict_leads: when given, every lead name must be in this set.
        flat_action: ``"error"`` (default) fails on a flat lead; ``"drop"`` removes flat leads
            from the record instead (listed in ``meta["dropped_flat_leads"]``), so that a store
            can treat them as missing leads (e.g. the all-zero V2/V4/V6 of some Chapman records).
    """

    allow_nan: bool = False
    flat_ptp_mv: float | None = 1e-3
    max_abs_mv: float | None = 20.0
    strict_leads: tuple[str, ...] | None = None
    flat_action: str = "error"

    def __post_init__(self) -> None:
        if self.flat_action not in ("error", "drop"):
            raise ValueError(f"flat_action must be 'error' or 'drop', got {self.flat_action!r}")
        if self.flat_ptp_mv is not None and self.flat_ptp_mv < 0:
            raise ValueError(f"flat_ptp_mv must be >= 0, got {self.flat_ptp_mv}")
        if self.max_abs_mv is not None and self.max_abs_mv <= 0:
            raise ValueError(f"max_abs_mv must be > 0, got {self.max_abs_mv}")
        if self.strict_leads is not None:
            object.__setattr__(self, "strict_leads", tuple(self.strict_leads))


DEFAULT_CHECKS = SignalChecks()


def check_signal(record: Record, checks: SignalChecks | None = DEFAULT_CHECKS) -> Record:
    """Raise ``ECGDataError`` if ``record`` fails ``checks``; return it unchanged otherwise.

    ``checks=None`` skips everything (duplicate lead names are always an error).
    """
    rid = record.record_id
    if len(set(record.leads)) != len(record.leads):
        dup = sorted({n for n in record.leads if record.leads.count(n) > 1})
        raise ECGDataError(rid, f"duplicate lead names {dup} (leads: {record.leads})")
    if checks is None:
        return record
    if checks.strict_leads is not None:
        unknown = [n for n in record.leads if n not in checks.strict_leads]
        if unknown:
            raise ECGDataError(rid, f"unknown lead names {unknown}; expected leads from "
                               f"{list(checks.strict_leads)}")
    sig = record.signal
    if sig.shape[1] == 0:
        raise ECGDataError(rid, "signal has no samples")
    finite = np.isfinite(sig)
    if not checks.allow_nan and not finite.all():
        bad = [record.leads[i] for i in np.flatnonzero(~finite.all(axis=1))]
        n_bad = int((~finite).sum())
        raise ECGDataError(rid, f"{n_bad} NaN/inf samples in leads {bad}")
    if checks.flat_ptp_mv is None and checks.max_abs_mv is None:
        return record
    if finite.all():
        ptp = sig.max(axis=1) - sig.min(axis=1)
    else:
        ptp = np.nanmax(np.where(finite, sig, np.nan), axis=1) - np.nanmin(
            np.where(finite, sig, np.nan), axis=1)
    if checks.flat_ptp_mv is not None:
        flat_idx = np.flatnonzero(~(ptp >= checks.flat_ptp_mv))
        flat = [record.leads[i] for i in flat_idx]
        if flat and checks.flat_action == "drop" and len(flat) < len(record.leads):
            keep = np.flatnonzero(ptp >= checks.flat_ptp_mv)
            record.signal = record.signal[keep]
            record.leads = [record.leads[i] for i in keep]
            record.meta["dropped_flat_leads"] = flat
            sig, finite, ptp = record.signal, finite[keep], ptp[keep]
        elif flat:
            raise ECGDataError(rid, f"flat leads {flat} (peak-to-peak < {checks.flat_ptp_mv} mV "
                               "over the whole record)")
    if checks.max_abs_mv is not None and (ptp > checks.max_abs_mv).any():
        # Only leads whose range could exceed the limit need the (costly) median.
        for i in np.flatnonzero(ptp > checks.max_abs_mv):
            row = sig[i][finite[i]]
            dev = float(np.abs(row - np.median(row)).max())
            if dev > checks.max_abs_mv:
                raise ECGDataError(rid, f"absurd amplitude in lead {record.leads[i]!r}: "
                                   f"{dev:.1f} mV from the lead's median (limit "
                                   f"{checks.max_abs_mv} mV); wrong units or gain?")
    return record
