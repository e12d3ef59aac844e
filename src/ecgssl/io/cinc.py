"""Reader of PhysioNet/CinC Challenge 2020/2021 records: ``.mat`` (variable ``val``) + ``.hea``.

Signals: the ``.mat`` holds the digital samples (leads, samples), usually int16; the header gives
gain (``1000.0(0)/mV`` or ``/mv``), baseline and lead names, so mV = (digital - baseline) / gain.
Labels: the SNOMED CT codes of the header line ``# Dx: code,code`` as strings (see
``ecgssl.io.snomed`` for the scored classes). Age and sex go to ``meta``.

Patient ids: the challenge data carry no patient identifiers, so ``patient_id`` is the record id;
splits by patient are then splits by record (documented limitation: a few source databases hold
several records per patient).

MAT files: the challenge files are MATLAB v4, so we read the 20-byte v4 header and the data with
numpy (about 0.1 ms); other MAT versions fall back to ``scipy.io.loadmat``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgssl.data.leads import canonical_lead
from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError
from ecgssl.io.checks import DEFAULT_CHECKS, SignalChecks, check_signal
from ecgssl.io.snomed import map_to_scored
from ecgssl.io.wfdb_header import WFDBHeader, read_header
from ecgssl.io.wfdb_record import digital_to_mv

# MAT v4 precision digit P of the type code MOPT -> numpy type.
_MAT4_TYPES = {0: "f8", 1: "f4", 2: "i4", 3: "i2", 4: "u2", 5: "u1"}


def read_mat_val(mat_path: str | Path, record_id: str, var: str = "val") -> np.ndarray:
    """The matrix ``var`` of a MAT file as a 2-D array (rows as stored in MATLAB)."""
    mat_path = Path(mat_path)
    try:
        raw = np.fromfile(mat_path, dtype=np.uint8)
    except FileNotFoundError:
        raise ECGDataError(record_id, f"signal file {mat_path} is missing") from None
    if raw.size >= 20:
        hdr = raw[:20].view("<i4")
        mopt, mrows, ncols, imagf, namlen = (int(v) for v in hdr)
        m, o, p, t = mopt // 1000, (mopt // 100) % 10, (mopt // 10) % 10, mopt % 10
        if m == 0 and o == 0 and t == 0 and imagf == 0 and p in _MAT4_TYPES and 0 < namlen < 64:
            name = bytes(raw[20:20 + namlen]).rstrip(b"\x00").decode("latin-1")
            dtype = np.dtype("<" + _MAT4_TYPES[p])
            start = 20 + namlen
            need = start + mrows * ncols * dtype.itemsize
            if name == var:
                if raw.size < need:
                    raise ECGDataError(record_id, f"{mat_path.name} is truncated: {raw.size} bytes,"
                                       f" {need} needed for a {mrows}x{ncols} {dtype} matrix")
                data = raw[start:need].view(dtype)
                # MATLAB stores column-major: element (i, j) at j * mrows + i.
                return data.reshape(ncols, mrows).T
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(mat_path))
    except Exception as exc:
        raise ECGDataError(record_id, f"cannot read {mat_path.name}: {exc}") from exc
    if var not in mat:
        raise ECGDataError(record_id, f"{mat_path.name} has no variable {var!r} "
                           f"(has {[k for k in mat if not k.startswith('__')]})")
    return np.atleast_2d(mat[var])


def parse_cinc_comments(comments: list[str]) -> dict:
    """``{'dx': [codes], 'age': float|None, 'sex': 'M'|'F'|None, ...}`` from header comments."""
    out: dict = {"dx": [], "age": None, "sex": None}
    for c in comments:
        key, sep, value = c.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "dx":
            out["dx"] = [v.strip() for v in value.split(",") if v.strip()]
        elif key == "age":
            try:
                age = float(value)
                out["age"] = None if np.isnan(age) else age
            except ValueError:
                out["age"] = None
        elif key == "sex":
            v = value.lower()
            out["sex"] = "M" if v in ("male", "m") else "F" if v in ("female", "f") else None
        elif key in ("rx", "hx", "sx"):
            out[key] = value
    return out


def read_cinc(path_without_ext: str | Path, record_id: str | None = None, source: str = "cinc",
              checks: SignalChecks | None = DEFAULT_CHECKS, scored_year: int | None = None,
              header: WFDBHeader | None = None) -> Record:
    """Read one challenge record.

    Args:
        path_without_ext: e.g. ``.../HR06001``.
        record_id: default ``f"{source}/{name}"``; it is also the patient id.
        scored_year: None keeps every Dx code as the labels; 2020 or 2021 maps them onto that
            year's scored classes (``map_to_scored``, unscored codes dropped). The raw codes are
            always in ``meta["dx"]``.
    Returns:
        Record (leads, samples) float32 mV; meta ``age``, ``sex``, ``dx``.
    """
    base = Path(path_without_ext)
    if base.suffix in (".hea", ".mat"):
        base = base.with_suffix("")
    rid = record_id or f"{source}/{base.name}"
    if header is None:
        header = read_header(Path(str(base) + ".hea"), rid)
    if header.n_sig == 0 or not header.signals:
        raise ECGDataError(rid, "header declares no signals")
    files = {s.file_name for s in header.signals}
    if len(files) != 1:
        raise ECGDataError(rid, f"expected one .mat file, header names {sorted(files)}")
    mat_path = base.parent / files.pop()
    val = read_mat_val(mat_path, rid)
    if val.shape[0] != header.n_sig:
        raise ECGDataError(rid, f"{mat_path.name} holds {val.shape[0]} rows but the header "
                           f"declares {header.n_sig} signals")
    if header.sig_len and val.shape[1] != header.sig_len:
        raise ECGDataError(rid, f"{mat_path.name} holds {val.shape[1]} samples but the header "
                           f"promises {header.sig_len}: truncated file or wrong header")
    signal, keep = digital_to_mv(header, np.asarray(val, dtype=np.float64), rid)
    info = parse_cinc_comments(header.comments)
    labels = list(info["dx"])
    if scored_year is not None:
        labels = map_to_scored(labels, year=scored_year, drop_unscored=True)
    leads = [canonical_lead(header.signals[k].description or f"ch{k}") for k in keep]
    record = Record(signal=signal, fs=header.fs, leads=leads, record_id=rid, patient_id=rid,
                    labels=labels, source=source,
                    meta={"age": info["age"], "sex": info["sex"], "dx": list(info["dx"])})
    return check_signal(record, checks)
