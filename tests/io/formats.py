"""Writers of generated records in public database formats, for the "your own data" tests.

- ``write_wfdb16``: a WFDB record (format 16 ``.dat`` + ``.hea``), e.g. a 2-lead MLII/V5 Holter;
- ``write_cinc``: a PhysioNet/CinC record (MATLAB v4 ``.mat`` with ``val`` + ``.hea``), with
  ``# Dx:`` codes (2020/2021 form) or none (2017 form, labels in ``REFERENCE.csv``);
- ``make_own_data_folder``: the README's worked example (python tests/io/formats.py DIR).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.data.synthetic import synthetic_ecg  # noqa: E402


def _checksum(d: np.ndarray) -> int:
    total = int(d.astype(np.int64).sum())
    return ((total + 32768) % 65536) - 32768


def write_wfdb16(folder: Path, name: str, signal_mv: np.ndarray, fs: float, leads: list[str],
                 gain: float = 200.0, comments: tuple[str, ...] = ()) -> Path:
    """``folder/name.hea`` + ``name.dat`` (format 16, ``gain`` counts per mV); returns the stem."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digital = np.round(np.asarray(signal_mv) * gain).astype("<i2")
    digital.T.tofile(folder / f"{name}.dat")  # samples interleaved: frame by frame
    n_sig, n = digital.shape
    lines = [f"{name} {n_sig} {fs:g} {n}"]
    for k, lead in enumerate(leads):
        lines.append(f"{name}.dat 16 {gain:g}/mV 16 0 {int(digital[k, 0])} "
                     f"{_checksum(digital[k])} 0 {lead}")
    lines += [f"# {c}" for c in comments]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / name


def write_cinc(folder: Path, name: str, signal_mv: np.ndarray, fs: float, leads: list[str],
               dx: list[str] | None = None, gain: float = 1000.0) -> Path:
    """``folder/name.mat`` (MATLAB v4, int16 ``val``) + ``name.hea``; ``dx`` -> ``# Dx:``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    val = np.round(np.asarray(signal_mv) * gain).astype("<i2")
    rows, cols = val.shape
    head = np.array([30, rows, cols, 0, 4], dtype="<i4").tobytes() + b"val\x00"
    # MATLAB stores column-major: element (i, j) at j * rows + i.
    (folder / f"{name}.mat").write_bytes(head + np.ascontiguousarray(val.T).tobytes())
    lines = [f"{name} {rows} {fs:g} {cols}"]
    for k, lead in enumerate(leads):
        lines.append(f"{name}.mat 16+24 {gain:g}/mV 16 0 {int(val[k, 0])} "
                     f"{_checksum(val[k])} 0 {lead}")
    if dx is not None:
        lines += ["# Age: 60", "# Sex: Female", f"# Dx: {','.join(dx)}"]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / name


# The README's worked example: a CinC 2017-style single-lead folder at 300 Hz, labels in a
# headerless REFERENCE.csv, records of 6 to 40 s.
EXAMPLE = {"A00001": (30.0, "N"), "A00002": (6.0, "A"), "A00003": (40.0, "O"),
           "A00004": (9.5, "N")}


def make_own_data_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    for k, (name, (seconds, _)) in enumerate(EXAMPLE.items()):
        sig = synthetic_ecg(1, 300.0, seconds, hr=60 + 10 * k, seed=k)
        write_cinc(folder, name, sig, 300.0, ["ECG"])
    (folder / "REFERENCE.csv").write_text(
        "".join(f"{name},{label}\n" for name, (_, label) in EXAMPLE.items()))
    return folder


if __name__ == "__main__":
    print(make_own_data_folder(sys.argv[1] if len(sys.argv) > 1 else "mydata"))
