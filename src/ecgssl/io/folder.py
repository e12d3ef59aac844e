"""A folder of the user's own ECG files.

Recognised files (searched recursively):
- WFDB records: ``name.hea`` + signal files;
- CinC-style records: ``name.hea`` whose signal file is a ``.mat`` (read by ``ecgssl.io.cinc``);
- NumPy arrays: ``name.npy`` (leads, samples) in mV. Sampling rate and lead names come from a
  sidecar ``name.json`` (``{"fs": 500, "leads": ["I", "II", ...], "patient_id": "..."}``) or
  from the ``fs`` / ``leads`` arguments (the sidecar wins).

Labels: from the files (CinC ``#Dx``, a sidecar's ``"labels"``) or from a labels CSV for any
source kind (``ecgssl.io.labels``: ``--labels FILE``, or a ``REFERENCE.csv`` in the folder).
Record ids are ``f"{name}/{relative path}"``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ecgssl.data.leads import canonical_lead
from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError
from ecgssl.io.checks import DEFAULT_CHECKS, SignalChecks, check_signal
from ecgssl.io.cinc import read_cinc
from ecgssl.io.wfdb_header import read_header
from ecgssl.io.wfdb_record import read_wfdb


def read_npy(path: str | Path, record_id: str, fs: float | None = None,
             leads: list[str] | None = None, source: str = "folder",
             checks: SignalChecks | None = DEFAULT_CHECKS) -> Record:
    """Read ``name.npy`` (leads, samples) mV with its optional ``name.json`` sidecar."""
    path = Path(path)
    side = path.with_suffix(".json")
    info = {}
    if side.is_file():
        try:
            info = json.loads(side.read_text())
        except json.JSONDecodeError as exc:
            raise ECGDataError(record_id, f"sidecar {side.name} is not valid JSON: {exc}") from None
    fs = info.get("fs", fs)
    leads = info.get("leads", leads)
    if fs is None:
        raise ECGDataError(record_id, f"no sampling rate for {path.name}: give fs= or a sidecar "
                           f"{side.name} with 'fs'")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ECGDataError(record_id, f"cannot read {path.name}: {exc}") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ECGDataError(record_id, f"{path.name} must be (leads, samples), got {arr.shape}")
    if leads is None:
        raise ECGDataError(record_id, f"no lead names for {path.name}: give leads= or a sidecar "
                           f"{side.name} with 'leads'")
    if len(leads) != arr.shape[0]:
        raise ECGDataError(record_id, f"{path.name} has {arr.shape[0]} rows but {len(leads)} lead "
                           f"names {list(leads)} (the array must be leads x samples)")
    if not np.issubdtype(arr.dtype, np.number):
        raise ECGDataError(record_id, f"{path.name} holds {arr.dtype}, not numbers")
    record = Record(signal=arr.astype(np.float32), fs=float(fs),
                    leads=[canonical_lead(n) for n in leads], record_id=record_id,
                    patient_id=info.get("patient_id"), source=source,
                    labels=list(info.get("labels", [])))
    return check_signal(record, checks)


def scan_folder(root: str | Path) -> dict[str, tuple[str, str]]:
    """``{relative id: (kind, path)}`` with kind ``"wfdb"``, ``"cinc"`` or ``"npy"``."""
    root = Path(root)
    found: dict[str, tuple[str, str]] = {}
    for hea in sorted(root.rglob("*.hea")):
        rel = hea.relative_to(root).with_suffix("").as_posix()
        kind = "wfdb"
        try:
            header = read_header(hea, rel)
            if header.signals and header.signals[0].file_name.lower().endswith(".mat"):
                kind = "cinc"
        except ECGDataError:
            pass  # reported when the record is read
        found[rel] = (kind, str(hea.with_suffix("")))
    for npy in sorted(root.rglob("*.npy")):
        rel = npy.relative_to(root).with_suffix("").as_posix()
        if rel not in found:
            found[rel] = ("npy", str(npy))
    return found


def read_folder_record(kind: str, path: str, record_id: str, fs=None, leads=None,
                       source: str = "folder", checks: SignalChecks | None = DEFAULT_CHECKS
                       ) -> Record:
    """Read one entry of ``scan_folder``; a record without a patient id is its own patient."""
    if kind == "cinc":
        record = read_cinc(path, record_id=record_id, source=source, checks=checks)
    elif kind == "wfdb":
        record = read_wfdb(path, record_id=record_id, source=source, checks=checks)
    elif kind == "npy":
        record = read_npy(path, record_id, fs=fs, leads=leads, source=source, checks=checks)
    else:
        raise ValueError(f"unknown folder entry kind {kind!r}")
    if record.patient_id is None:
        record.patient_id = record_id
    return record
