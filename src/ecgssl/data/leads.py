"""Lead names: canonical spelling, standard sets, and derivation of the limb leads."""

from __future__ import annotations

import numpy as np

from ecgssl.errors import ECGDataError

LEADS_12 = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
# The 8 independent leads used by ECG-JEPA (III, aVR, aVL, aVF are combinations of I and II).
LEADS_8 = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]

_ALIASES = {name.lower(): name for name in LEADS_12}
_ALIASES.update({"avr": "aVR", "avl": "aVL", "avf": "aVF", "mlii": "MLII", "mli": "MLI",
                 "mliii": "MLIII", "ml2": "MLII", "d1": "I", "d2": "II", "d3": "III"})


def canonical_lead(name: str) -> str:
    """Canonical spelling of a lead name: ``'avr' -> 'aVR'``, ``'v1' -> 'V1'``, ``'MLII'`` kept.

    Names that are not standard leads are kept as they are (stripped), so that records with
    e.g. ``MLII`` or ``V5`` from a Holter keep their own names.
    """
    key = name.strip().lower().replace(" ", "")
    return _ALIASES.get(key, name.strip())


def derive_limb_leads(signal: np.ndarray, leads: list[str], record_id: str = "?"):
    """Add III, aVR, aVL, aVF computed from I and II where they are absent.

    Args:
        signal: (leads, samples) array in mV.
        leads: canonical names of its rows.
    Returns:
        (signal, leads) with the derived rows appended; unchanged when nothing can be derived.
    """
    if "I" not in leads or "II" not in leads:
        return signal, list(leads)
    lead_i, lead_ii = signal[leads.index("I")], signal[leads.index("II")]
    derived = {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }
    extra = [name for name in derived if name not in leads]
    if not extra:
        return signal, list(leads)
    rows = np.stack([derived[name] for name in extra]).astype(signal.dtype)
    return np.concatenate([signal, rows], axis=0), list(leads) + extra


def select_leads(signal: np.ndarray, leads: list[str], wanted: list[str], record_id: str = "?",
                 allow_missing: bool = False):
    """Rows of ``signal`` in the order of ``wanted``.

    Returns:
        (selected (len(wanted), samples) array, present bool mask (len(wanted),)). Missing leads are
        zero rows flagged False in the mask when ``allow_missing``; otherwise an ``ECGDataError``.
    """
    out = np.zeros((len(wanted), signal.shape[1]), dtype=np.float32)
    present = np.zeros(len(wanted), dtype=bool)
    for k, name in enumerate(wanted):
        if name in leads:
            out[k] = signal[leads.index(name)]
            present[k] = True
    if not allow_missing and not present.all():
        missing = [name for name, ok in zip(wanted, present) if not ok]
        raise ECGDataError(record_id, f"missing leads {missing} (record has {leads})")
    return out, present
