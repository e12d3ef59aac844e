"""Reader of LUDB v1.0.1 (Lobachevsky University Electrocardiography Database).

Layout: ``<root>/data/N.hea``, ``N.dat`` (format 16, 12 leads, 500 Hz, 10 s) and one MIT annotation
file per lead ``N.i`` ... ``N.v6``; ``<root>/ludb.csv``; ``<root>/RECORDS``.

Amplitudes: in v1.0.1 each lead's header gain equals that lead's digital peak-to-peak, so the
physical values of ``wfdb`` are normalised to about 1 unit per lead. The stored digital values are
microvolts, so we return digital / 1000 mV (the header gain and baseline are ignored on purpose).

Waves: each lead file marks waves as ``(`` onset, peak (``p`` P, ``N`` QRS, ``t`` T), ``)`` offset.
They become ``annotations["waves"][lead]``, an int64 array (n, 4) of (code, onset, peak, offset)
with codes ``WAVE_P, WAVE_QRS, WAVE_T``; a missing onset or offset is -1. The first and last beats
of most records are not annotated, so segmentation targets come with the annotated span of each
lead (``wave_mask``, ``ludb_masks``).

Labels: the cardiologists' diagnoses of the header ``#`` lines, as ``"group:name"`` strings in the
groups of ``LUDB_LABEL_GROUPS`` (coarse on purpose: wall locations and extrasystole subtypes are
merged, the original text is kept in ``meta["diagnoses"]``). One record per patient, so
``patient_id`` is the record id.

Reference: Kalyakulina et al., "LUDB: a new open-access validation tool for electrocardiogram
delineation algorithms", IEEE Access 8 (2020); PhysioNet.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ecgssl.data.leads import LEADS_12
from ecgssl.data.record import WAVE_P, WAVE_QRS, WAVE_T, Record
from ecgssl.data.windowing import wave_mask  # noqa: F401  (re-exported: ecgssl.io.wave_mask)
from ecgssl.errors import ECGDataError
from ecgssl.io.checks import DEFAULT_CHECKS, SignalChecks, check_signal
from ecgssl.io.mitann import SYMBOL_TO_CODE, Annotations, read_annotations
from ecgssl.io.wfdb_header import read_header
from ecgssl.io.wfdb_record import check_signal_files, read_digital

# Annotation file extension of each lead, in the order of the header.
LUDB_LEAD_EXTENSIONS = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
LUDB_FS = 500.0

_PEAK_TO_WAVE = {SYMBOL_TO_CODE["p"]: WAVE_P, SYMBOL_TO_CODE["N"]: WAVE_QRS,
                 SYMBOL_TO_CODE["t"]: WAVE_T}
_ONSET, _OFFSET = SYMBOL_TO_CODE["("], SYMBOL_TO_CODE[")"]

# Label groups. Exact diagnosis texts (lower case, trailing dot removed) -> label.
_EXACT = {
    "rhythm: sinus rhythm": "rhythm:sinus_rhythm",
    "rhythm: sinus tachycardia": "rhythm:sinus_tachycardia",
    "rhythm: sinus bradycardia": "rhythm:sinus_bradycardia",
    "rhythm: sinus arrhythmia": "rhythm:sinus_arrhythmia",
    "rhythm: irregular sinus rhythm": "rhythm:irregular_sinus_rhythm",
    "rhythm: atrial fibrillation": "rhythm:atrial_fibrillation",
    "rhythm: atrial flutter, typical": "rhythm:atrial_flutter",
    "wandering atrial pacemaker": "rhythm:wandering_atrial_pacemaker",
    "electric axis of the heart: normal": "axis:normal",
    "electric axis of the heart: left axis deviation": "axis:left_deviation",
    "electric axis of the heart: right axis deviation": "axis:right_deviation",
    "electric axis of the heart: vertical": "axis:vertical",
    "electric axis of the heart: horizontal": "axis:horizontal",
    "sinoatrial blockade, undefined": "conduction:sa_block",
    "i degree av block": "conduction:av_block_1",
    "iii degree av-block": "conduction:av_block_3",
    "incomplete right bundle branch block": "conduction:irbbb",
    "incomplete left bundle branch block": "conduction:ilbbb",
    "left anterior hemiblock": "conduction:left_anterior_hemiblock",
    "complete right bundle branch block": "conduction:crbbb",
    "complete left bundle branch block": "conduction:clbbb",
    "non-specific intravintricular conduction delay": "conduction:ivcd",
    "aberrant conduction": "conduction:aberrant_conduction",
    "right atrial hypertrophy": "hypertrophy:rah",
    "left atrial hypertrophy": "hypertrophy:lah",
    "right atrial overload": "hypertrophy:rao",
    "left atrial overload": "hypertrophy:lao",
    "left ventricular hypertrophy": "hypertrophy:lvh",
    "right ventricular hypertrophy": "hypertrophy:rvh",
    "left ventricular overload": "hypertrophy:lvo",
    "unipolar atrial pacing": "pacing:atrial",
    "unipolar ventricular pacing": "pacing:ventricular",
    "bipolar ventricular pacing": "pacing:ventricular",
    "biventricular pacing": "pacing:biventricular",
    "p-synchrony": "pacing:p_synchrony",
    "early repolarization syndrome": "repolarisation:early_repolarization",
}
# Diagnoses qualified by a wall or subtype: prefix -> label.
_PREFIX = [
    ("atrial extrasystole", "extrasystoles:atrial"),
    ("ventricular extrasystole", "extrasystoles:ventricular"),
    ("stemi:", "ischemia:stemi"),
    ("ischemia:", "ischemia:ischemia"),
    ("scar formation:", "ischemia:scar"),
    ("undefined ischemia/scar/supp.nstemi:", "ischemia:undefined_ischemia_scar_nstemi"),
    ("non-specific repolarization abnormalities:", "repolarisation:nonspecific"),
]


def _build_groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {g: [] for g in (
        "rhythm", "axis", "conduction", "extrasystoles", "hypertrophy", "pacing", "ischemia",
        "repolarisation")}
    for label in list(_EXACT.values()) + [lab for _, lab in _PREFIX]:
        group = label.split(":")[0]
        if label not in groups[group]:
            groups[group].append(label)
    return groups


LUDB_LABEL_GROUPS: dict[str, list[str]] = _build_groups()


def ludb_label_names(groups=None) -> list[str]:
    """All LUDB labels (optionally only those of the named groups), in a fixed order."""
    groups = list(LUDB_LABEL_GROUPS) if groups is None else list(groups)
    unknown = [g for g in groups if g not in LUDB_LABEL_GROUPS]
    if unknown:
        raise ValueError(f"unknown LUDB label groups {unknown}; known: {list(LUDB_LABEL_GROUPS)}")
    return [lab for g in groups for lab in LUDB_LABEL_GROUPS[g]]


def diagnosis_to_label(text: str) -> str | None:
    """One diagnosis line (``'Rhythm: Sinus bradycardia.'``) -> label, None if unknown."""
    key = re.sub(r"\s+", " ", text.strip().rstrip(".").strip().lower())
    if key in _EXACT:
        return _EXACT[key]
    for prefix, label in _PREFIX:
        if key.startswith(prefix):
            return label
    return None


def parse_ludb_comments(comments: list[str]) -> dict:
    """``{'age', 'sex', 'diagnoses': [text], 'labels': [label], 'unmapped': [text]}``."""
    out: dict = {"age": None, "sex": None, "diagnoses": [], "labels": [], "unmapped": []}
    in_dx = False
    for c in comments:
        low = c.lower()
        if low.startswith("<age>:"):
            try:
                out["age"] = float(c.split(":", 1)[1])
            except ValueError:
                out["age"] = None
        elif low.startswith("<sex>:"):
            out["sex"] = c.split(":", 1)[1].strip().upper() or None
        elif low.startswith("<diagnoses>"):
            in_dx = True
        elif in_dx and c.strip():
            text = c.strip().rstrip(".").strip()
            out["diagnoses"].append(text)
            label = diagnosis_to_label(text)
            if label is None:
                out["unmapped"].append(text)
            elif label not in out["labels"]:
                out["labels"].append(label)
    return out


def parse_waves(ann: Annotations) -> np.ndarray:
    """(n, 4) int64 (code, onset, peak, offset) from one lead's annotations, one row per peak.

    The regular pattern is ``( peak )``. LUDB also has irregular runs, handled per group of
    annotations closed by a ``)``: a peak whose ``(`` is missing gets onset -1 (the first beat,
    cut by the record start); a ``(`` placed a sample after its peak (``N ( )``) still opens that
    wave (onset = min(onset, peak)); a trailing peak without ``)`` gets offset -1; bracket pairs
    with no peak are dropped (their wave type is unknown).
    """
    codes = ann.code.astype(np.int64)
    samples = ann.sample.astype(np.int64)
    n = codes.size
    if n == 0:
        return np.zeros((0, 4), dtype=np.int64)
    lut = np.zeros(64, dtype=np.int64)
    for c, w in _PEAK_TO_WAVE.items():
        lut[c] = w
    if (n % 3 == 0 and (codes[0::3] == _ONSET).all() and (codes[2::3] == _OFFSET).all()
            and (lut[codes[1::3]] > 0).all()):
        # Fast path: the whole file is "( peak )" triplets (most LUDB leads).
        return np.stack([lut[codes[1::3]], samples[0::3], samples[1::3], samples[2::3]], axis=1)
    rows: list[list[int]] = []
    onset, peaks = -1, []
    for c, t in zip(codes.tolist(), samples.tolist()):
        if c == _ONSET:
            onset = t
        elif lut[c] > 0:
            peaks.append((int(lut[c]), t))
        elif c == _OFFSET:
            for k, (code, pk) in enumerate(peaks):
                on = min(onset, pk) if (k == 0 and onset >= 0) else -1
                off = t if k == len(peaks) - 1 else -1
                rows.append([code, on, pk, off])
            onset, peaks = -1, []
    for k, (code, pk) in enumerate(peaks):  # peaks left open at the end of the file
        rows.append([code, min(onset, pk) if (k == 0 and onset >= 0) else -1, pk, -1])
    if not rows:
        return np.zeros((0, 4), dtype=np.int64)
    return np.asarray(rows, dtype=np.int64)


def ludb_masks(record: Record) -> tuple[np.ndarray, np.ndarray]:
    """Masks int8 (L, T) and spans int32 (L, 2) for every lead of a record with ``waves``.

    Leads without annotations get an all-zero mask and span (0, 0).
    """
    waves = record.annotations.get("waves")
    if waves is None:
        raise ECGDataError(record.record_id, "has no wave annotations (annotations['waves'])")
    masks = np.zeros((len(record.leads), record.n_samples), dtype=np.int8)
    spans = np.zeros((len(record.leads), 2), dtype=np.int32)
    for i, lead in enumerate(record.leads):
        if lead in waves:
            masks[i], spans[i] = wave_mask(waves[lead], record.n_samples)
    return masks, spans


def ludb_data_dir(root: str | Path) -> Path:
    """``root/data`` when it exists (the PhysioNet layout), else ``root``."""
    root = Path(root)
    return root / "data" if (root / "data").is_dir() else root


def read_ludb(root: str | Path, number: int | str, annotations: bool = True,
              checks: SignalChecks | None = DEFAULT_CHECKS, source: str = "ludb") -> Record:
    """Read LUDB record ``number`` (1..200) from ``root`` (the folder holding ``data/``).

    Returns:
        Record ``ludb/<number>``: 12 leads x 5000 samples, mV (digital / 1000), labels from the
        diagnoses, ``annotations["waves"]`` (when ``annotations``), meta ``age``, ``sex``,
        ``diagnoses``.
    """
    name = str(number).strip()
    rid = f"{source}/{name}"
    base = ludb_data_dir(root) / name
    header = read_header(Path(str(base) + ".hea"), rid)
    sig_len = check_signal_files(header, base.parent, rid)
    digital = read_digital(base, header, rid, sig_len)
    # Digital values are microvolts (see the module docstring): ignore gain and baseline.
    signal = digital.astype(np.float32) / np.float32(1000.0)
    exts = [s.description.strip().lower() for s in header.signals]
    leads = [LEADS_12[LUDB_LEAD_EXTENSIONS.index(e)] if e in LUDB_LEAD_EXTENSIONS else e
             for e in exts]
    info = parse_ludb_comments(header.comments)
    if info["unmapped"]:
        warnings.warn(f"LUDB record {rid}: diagnoses without a label: {info['unmapped']}",
                      stacklevel=2)
    ann = {}
    if annotations:
        waves = {}
        for ext, lead in zip(exts, leads):
            path = Path(f"{base}.{ext}")
            waves[lead] = parse_waves(read_annotations(path, rid))
        ann["waves"] = waves
    record = Record(signal=signal, fs=header.fs, leads=leads, record_id=rid, patient_id=rid,
                    labels=info["labels"], source=source, annotations=ann,
                    meta={"age": info["age"], "sex": info["sex"],
                          "diagnoses": info["diagnoses"]})
    return check_signal(record, checks)


def ludb_record_numbers(root: str | Path) -> list[str]:
    """Record numbers listed in ``RECORDS`` (or found as ``data/*.hea``), numerically sorted."""
    root = Path(root)
    names: list[str] = []
    rec_file = root / "RECORDS"
    if rec_file.is_file():
        names = [Path(line.strip()).name for line in rec_file.read_text().splitlines()
                 if line.strip()]
    if not names:
        names = [p.stem for p in ludb_data_dir(root).glob("*.hea")]
    return sorted(set(names), key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))
