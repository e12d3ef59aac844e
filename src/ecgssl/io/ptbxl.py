"""Reader of PTB-XL in its native PhysioNet layout.

Layout: ``ptbxl_database.csv`` (one row per ECG: ``ecg_id``, ``patient_id``, ``scp_codes`` as a
Python dict string, ``strat_fold`` 1-10, ``filename_lr``/``filename_hr``, demographics),
``scp_statements.csv`` (index = SCP code; ``diagnostic``, ``form``, ``rhythm`` flags,
``diagnostic_class``, ``diagnostic_subclass``), ``records100/``, ``records500/`` (WFDB, 12 leads,
10 s).

Label aggregations follow the benchmark of Strodthoff et al., "Deep learning for ECG analysis:
benchmarks and insights from PTB-XL", IEEE JBHI 25 (2021):
``all`` every SCP statement of the record; ``diagnostic`` statements flagged diagnostic;
``subdiagnostic`` / ``superdiagnostic`` their ``diagnostic_subclass`` / ``diagnostic_class``;
``form`` / ``rhythm`` statements flagged form / rhythm. As in the benchmark, every statement in
``scp_codes`` counts whatever its likelihood (0.0 there means "likelihood not given", e.g. for
``SR``), and records left with no label in an aggregation keep an empty label list (the benchmark
drops them from that task; that is the dataset builder's choice, not the reader's).
Standard split (``ptbxl_split``): folds 1-8 train, 9 validation, 10 test.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError
from ecgssl.io.checks import DEFAULT_CHECKS, SignalChecks
from ecgssl.io.wfdb_record import read_wfdb

PTBXL_AGGREGATIONS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")


def ptbxl_split(fold: int) -> str:
    """``'train'`` for folds 1-8, ``'val'`` for 9, ``'test'`` for 10."""
    try:
        f = int(fold)
    except (TypeError, ValueError):
        raise ValueError(f"PTB-XL fold must be an integer 1-10, got {fold!r}") from None
    if f != fold or not 1 <= f <= 10:
        raise ValueError(f"PTB-XL fold must be an integer 1-10, got {fold!r}")
    return "train" if f <= 8 else "val" if f == 9 else "test"


def _flag(value) -> bool:
    try:
        return float(value) == 1.0
    except (TypeError, ValueError):
        return False


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip()
    return s or None


def load_scp_statements(path: str | Path) -> dict[str, dict]:
    """``{code: {'diagnostic', 'form', 'rhythm' (bool), 'class', 'subclass' (str|None)}}``."""
    df = pd.read_csv(path, index_col=0)
    missing = [c for c in ("diagnostic", "form", "rhythm", "diagnostic_class",
                           "diagnostic_subclass") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: scp_statements.csv lacks columns {missing}")
    out = {}
    for code, row in df.iterrows():
        out[str(code).strip()] = {
            "diagnostic": _flag(row["diagnostic"]), "form": _flag(row["form"]),
            "rhythm": _flag(row["rhythm"]), "class": _text(row["diagnostic_class"]),
            "subclass": _text(row["diagnostic_subclass"])}
    return out


def aggregate_scp(scp_codes: dict, statements: dict[str, dict], aggregation: str) -> list[str]:
    """Labels of one record under ``aggregation`` (sorted, unique); unknown codes are ignored
    except in ``all``."""
    if aggregation not in PTBXL_AGGREGATIONS:
        raise ValueError(f"unknown PTB-XL aggregation {aggregation!r}; "
                         f"choose from {PTBXL_AGGREGATIONS}")
    out = set()
    for code in scp_codes:
        st = statements.get(code)
        if aggregation == "all":
            out.add(code)
        elif st is None:
            continue
        elif aggregation == "diagnostic" and st["diagnostic"]:
            out.add(code)
        elif aggregation == "subdiagnostic" and st["diagnostic"] and st["subclass"]:
            out.add(st["subclass"])
        elif aggregation == "superdiagnostic" and st["diagnostic"] and st["class"]:
            out.add(st["class"])
        elif aggregation in ("form", "rhythm") and st[aggregation]:
            out.add(code)
    return sorted(out)


def parse_scp_codes(text: str, record_id: str) -> dict[str, float]:
    """The ``scp_codes`` column (``"{'NORM': 100.0, 'SR': 0.0}"``) as a dict."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ECGDataError(record_id, f"unreadable scp_codes {text!r}") from None
    if not isinstance(value, dict):
        raise ECGDataError(record_id, f"scp_codes is not a dict: {text!r}")
    return {str(k): float(v) for k, v in value.items()}


@dataclass(frozen=True)
class PTBXLEntry:
    """What the database row of one ECG tells (kept small so Sources pickle cheaply)."""

    ecg_id: int
    patient_id: str | None
    strat_fold: int
    filename: str
    labels: dict  # aggregation -> tuple of labels
    scp_codes: dict
    age: float | None
    sex: str | None


def load_ptbxl_index(root: str | Path, fs: int = 500) -> dict[str, PTBXLEntry]:
    """Parse ``ptbxl_database.csv`` + ``scp_statements.csv`` into entries keyed by record id
    ``ptbxl/<ecg_id>``."""
    if fs not in (100, 500):
        raise ValueError(f"PTB-XL fs must be 100 or 500, got {fs!r}")
    root = Path(root)
    db_path, st_path = root / "ptbxl_database.csv", root / "scp_statements.csv"
    for p in (db_path, st_path):
        if not p.is_file():
            raise FileNotFoundError(f"PTB-XL file {p} is missing")
    statements = load_scp_statements(st_path)
    df = pd.read_csv(db_path)
    col = "filename_hr" if fs == 500 else "filename_lr"
    need = ["ecg_id", "patient_id", "scp_codes", "strat_fold", col]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{db_path} lacks columns {missing}")
    out: dict[str, PTBXLEntry] = {}
    for row in df.itertuples(index=False):
        ecg_id = int(row.ecg_id)
        rid = f"ptbxl/{ecg_id}"
        scp = parse_scp_codes(row.scp_codes, rid)
        pid = row.patient_id
        pid = None if pd.isna(pid) else f"ptbxl/{int(float(pid))}"
        age = getattr(row, "age", None)
        sex = getattr(row, "sex", None)
        out[rid] = PTBXLEntry(
            ecg_id=ecg_id, patient_id=pid, strat_fold=int(row.strat_fold),
            filename=str(getattr(row, col)),
            labels={a: tuple(aggregate_scp(scp, statements, a)) for a in PTBXL_AGGREGATIONS},
            scp_codes=scp, age=None if age is None or pd.isna(age) else float(age),
            # PTB-XL codes sex as 0 = male, 1 = female.
            sex=None if sex is None or pd.isna(sex) else ("M" if int(sex) == 0 else "F"))
    return out


def read_ptbxl_entry(root: str | Path, entry: PTBXLEntry, aggregation: str = "superdiagnostic",
                     checks: SignalChecks | None = DEFAULT_CHECKS,
                     source: str = "ptbxl") -> Record:
    """Read the waveform of one indexed ECG.

    Returns:
        Record ``ptbxl/<ecg_id>``: labels of ``aggregation``; meta ``strat_fold``, ``split``,
        ``age``, ``sex``, ``scp_codes`` and ``labels_<aggregation>`` (``;``-joined) for all six.
    """
    if aggregation not in PTBXL_AGGREGATIONS:
        raise ValueError(f"unknown PTB-XL aggregation {aggregation!r}; "
                         f"choose from {PTBXL_AGGREGATIONS}")
    rid = f"{source}/{entry.ecg_id}"
    record = read_wfdb(Path(root) / entry.filename, record_id=rid, source=source, checks=checks,
                       patient_id=entry.patient_id)
    record.labels = list(entry.labels[aggregation])
    meta = {"strat_fold": entry.strat_fold, "split": ptbxl_split(entry.strat_fold),
            "age": entry.age, "sex": entry.sex, "scp_codes": dict(entry.scp_codes)}
    for agg in PTBXL_AGGREGATIONS:
        meta[f"labels_{agg}"] = ";".join(entry.labels[agg])
    record.meta = meta
    return record
