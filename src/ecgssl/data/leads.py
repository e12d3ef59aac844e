"""Lead names: canonical spelling, standard sets, and derivation of the limb leads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ecgssl.errors import ECGDataError

LEADS_12 = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
# The 8 independent leads used by ECG-JEPA (III, aVR, aVL, aVF are combinations of I and II).
LEADS_8 = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]

# Spellings of the standard leads (compared lower case, spaces removed).
_SPELLINGS = {name.lower(): name for name in LEADS_12}
_SPELLINGS.update({"d1": "I", "d2": "II", "d3": "III", "di": "I", "dii": "II", "diii": "III",
                   "lead1": "I", "lead2": "II", "lead3": "III", "leadi": "I", "leadii": "II",
                   "leadiii": "III"})

# The lead alias table: names of leads that are not one of the 12 standard leads but record
# (approximately) the same projection. Applied by prepare, embed, delineate and the API; every
# use is recorded (manifest column ``lead_aliases``, the inference result's ``aliases``), and
# ``--lead-alias NAME=LEAD`` overrides or extends it.
#   MLI/MLII/MLIII: Mason-Likar modified limb leads (torso electrodes), as in MIT-BIH;
#   CM5: bipolar chest lead, manubrium to the V5 position (exercise testing, Holters);
#   Vn with a modifier (MV1...): modified chest leads at the Vn position.
LEAD_ALIASES: dict[str, str] = {
    "mli": "I", "ml1": "I", "mlii": "II", "ml2": "II", "mliii": "III", "ml3": "III",
    "cm5": "V5", "cc5": "V5", "cm2": "V2", "mv1": "V1", "mv2": "V2", "mv3": "V3", "mv4": "V4",
    "mv5": "V5", "mv6": "V6",
}

# Channel names without a known electrode placement: refused (or dropped with
# allow_unknown_leads) until the user says which lead they are, e.g. ``--lead-alias ECG=I``
# (a handheld single-lead device such as the AliveCor of the CinC 2017 challenge records lead I).
NO_PLACEMENT = ("ECG", "ECG1", "ECG2", "ECG3", "EKG", "CH1", "CH2")

KNOWN_LEADS = frozenset(LEADS_12)


def canonical_lead(name: str) -> str:
    """Canonical spelling of a lead name: ``'avr' -> 'aVR'``, ``'v1' -> 'V1'``, ``'D2' -> 'II'``.

    Only spellings of the 12 standard leads are changed; other names (``MLII``, ``CM5``,
    ``ECG``) are kept as they are (stripped): the alias table (``resolve_leads``) maps those,
    and says so.
    """
    key = name.strip().lower().replace(" ", "").replace("_", "")
    return _SPELLINGS.get(key, name.strip())


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("_", "").replace("-", "")


@dataclass
class LeadMapping:
    """What ``resolve_leads`` did to one record's lead names.

    Attributes:
        leads: the resulting canonical names, one per kept row.
        keep: indices of the kept input rows (unknown leads dropped with ``allow_unknown``).
        aliases: ``{input name: lead}`` for every alias applied (table or user).
        dropped: input names that are not ECG leads ecgssl knows, dropped (allow_unknown).
    """

    leads: list[str]
    keep: list[int]
    aliases: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def resolve_leads(names, aliases: dict[str, str] | None = None, allow_unknown: bool = False,
                  record_id: str = "?", use_table: bool = True) -> LeadMapping:
    """Map a record's lead names onto the standard leads: spelling, the alias table, user aliases.

    Args:
        names: the record's lead names, one per signal row.
        aliases: user aliases ``{name: lead}`` (e.g. ``{"ECG": "I"}``), matched case- and
            space-insensitively; they win over the table.
        allow_unknown: drop leads whose name is no known lead (counted in ``dropped``) instead of
            refusing the record.
        use_table: apply ``LEAD_ALIASES`` (``MLII -> II`` ...); False keeps such names unknown.
    Raises:
        ECGDataError: a name is no known lead (names the record, the lead and the fix), or two
            rows end up as the same lead.
    """
    user = {_key(k): canonical_lead(v) for k, v in (aliases or {}).items()}
    for src, dst in user.items():
        if dst not in KNOWN_LEADS:
            raise ECGDataError(record_id, f"lead alias {src}={dst}: {dst!r} is not a standard "
                               f"lead (choose from {LEADS_12})")
    out, keep, applied, dropped = [], [], {}, []
    for k, raw in enumerate(names):
        name = canonical_lead(str(raw))
        key = _key(str(raw))
        if key in user:
            lead = user[key]
        elif name in KNOWN_LEADS:
            lead = name
        elif use_table and key in LEAD_ALIASES:
            lead = LEAD_ALIASES[key]
        else:
            if allow_unknown:
                dropped.append(str(raw))
                continue
            hint = (f"say which lead it is, e.g. --lead-alias {raw}=I (API: lead_aliases="
                    f"{{'{raw}': 'I'}})" if name.upper() in NO_PLACEMENT else
                    f"map it with --lead-alias {raw}=LEAD")
            raise ECGDataError(record_id, f"unknown lead {raw!r} (leads {list(names)}): {hint}, "
                               "or drop unknown leads with --allow-unknown-leads "
                               "(allow_unknown_leads=True)")
        if lead != name:
            applied[str(raw)] = lead
        out.append(lead)
        keep.append(k)
    if len(set(out)) != len(out):
        dup = sorted({x for x in out if out.count(x) > 1})
        raise ECGDataError(record_id, f"leads {list(names)} map to the same lead twice {dup} "
                           "(check the lead aliases)")
    return LeadMapping(out, keep, applied, dropped)


def parse_lead_aliases(items) -> dict[str, str]:
    """``["ECG=I", "ML II=II"]`` (the CLI's ``--lead-alias``) -> ``{"ECG": "I", "ML II": "II"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, lead = str(item).partition("=")
        if not sep or not name.strip() or not lead.strip():
            raise ValueError(f"--lead-alias {item!r} must look like NAME=LEAD (e.g. ECG=I)")
        out[name.strip()] = lead.strip()
    return out


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
