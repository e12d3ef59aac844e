"""Reader of any WFDB record (``.hea`` + signal files) into a ``Record`` in millivolts.

Common formats (16, 61, 80, 160, 212, 24, 32; one sample per frame, no skew) are decoded with
numpy directly (about 0.3 ms for a 12-lead 10 s record); anything else (format 8, 310, 311, FLAC,
multi-frequency) goes through ``wfdb.rdrecord``. Before decoding, the size of every signal file is
checked against what the header promises, so a truncated download fails with a clear message
instead of a silently short record.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ecgssl.data.leads import canonical_lead
from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError
from ecgssl.io.checks import DEFAULT_CHECKS, SignalChecks, check_signal
from ecgssl.io.wfdb_header import WFDBHeader, read_header, unit_scale_to_mv

# Bytes per sample of each format (212: 2 samples in 3 bytes; 310/311: 3 samples in 4 bytes).
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5,
                     "24": 3.0, "32": 4.0, "310": 4 / 3, "311": 4 / 3}
# WFDB's "invalid sample" marker for each format, in digital units.
_INVALID = {"16": -(2**15), "61": -(2**15), "80": -(2**7), "160": -(2**15), "212": -(2**11),
            "24": -(2**23), "32": -(2**31), "8": -(2**7), "310": -(2**9), "311": -(2**9)}
_FAST_FORMATS = {"16", "61", "80", "160", "212", "24", "32"}
_PATIENT_RE = re.compile(r"^\s*<?(patient[ _-]?id|patient|subject[ _-]?id|subject)>?\s*[:=]\s*"
                         r"(\S+)", re.IGNORECASE)


def expected_file_bytes(fmt: str, n_samples_total: int, byte_offset: int = 0) -> int | None:
    """Bytes a signal file needs for ``n_samples_total`` samples (all its signals), or None when
    the format is compressed (size unknown in advance)."""
    bps = _BYTES_PER_SAMPLE.get(fmt)
    if bps is None:
        return None
    if fmt in ("310", "311"):
        return byte_offset + 4 * math.ceil(n_samples_total / 3)
    return byte_offset + math.ceil(n_samples_total * bps)


def _file_groups(header: WFDBHeader) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for k, spec in enumerate(header.signals):
        groups.setdefault(spec.file_name, []).append(k)
    return groups


def check_signal_files(header: WFDBHeader, directory: Path, record_id: str) -> int:
    """Check that every signal file exists and holds what the header promises.

    Returns:
        the number of samples per signal (from the header, or inferred from the file size when the
        header gives no length).
    Raises:
        ECGDataError naming the record, the file and the sizes.
    """
    sig_len = header.sig_len
    for fname, idx in _file_groups(header).items():
        spec = header.signals[idx[0]]
        path = directory / fname
        if not path.is_file():
            raise ECGDataError(record_id, f"signal file {path} named in the header is missing")
        if any(header.signals[k].fmt != spec.fmt for k in idx):
            raise ECGDataError(record_id, f"signals in {fname} have mixed formats")
        frame = sum(header.signals[k].samps_per_frame for k in idx)
        size = path.stat().st_size
        if not sig_len:  # length not in the header: infer it from the file size
            bps = _BYTES_PER_SAMPLE.get(spec.fmt)
            if bps is None:
                continue
            sig_len = int((size - spec.byte_offset) // (bps * frame))
            header.sig_len = sig_len
            continue
        need = expected_file_bytes(spec.fmt, sig_len * frame, spec.byte_offset)
        if need is not None and size < need:
            have = max(size - spec.byte_offset, 0) / (_BYTES_PER_SAMPLE[spec.fmt] * frame)
            raise ECGDataError(
                record_id,
                f"signal file {path.name} is truncated or the header length is wrong: the header "
                f"promises {sig_len} samples x {len(idx)} signals in format {spec.fmt} "
                f"({need} bytes) but the file has {size} bytes (about {int(have)} samples)")
    if not sig_len:
        raise ECGDataError(record_id, "header gives no signal length and it cannot be inferred")
    return int(sig_len)


def _decode(raw: np.ndarray, fmt: str, n_total: int) -> np.ndarray:
    """Decode ``n_total`` samples of ``fmt`` from the bytes ``raw`` -> int32 array."""
    if fmt == "16":
        return raw[: 2 * n_total].view("<i2").astype(np.int32)
    if fmt == "61":
        return raw[: 2 * n_total].view(">i2").astype(np.int32)
    if fmt == "80":
        return raw[:n_total].astype(np.int32) - 128
    if fmt == "160":
        return raw[: 2 * n_total].view("<u2").astype(np.int32) - 32768
    if fmt == "32":
        return raw[: 4 * n_total].view("<i4").astype(np.int32)
    if fmt == "24":
        b = raw[: 3 * n_total].reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(v >= 1 << 23, v - (1 << 24), v)
    if fmt == "212":
        # Two 12-bit samples in three bytes: s0 = b0 + low nibble of b1 << 8,
        # s1 = b2 + high nibble of b1 << 8; both two's complement.
        nbytes = math.ceil(n_total * 1.5)
        b = raw[:nbytes]
        if b.size % 3:
            b = np.concatenate([b, np.zeros(3 - b.size % 3, dtype=np.uint8)])
        b = b.reshape(-1, 3).astype(np.int32)
        out = np.empty(2 * b.shape[0], dtype=np.int32)
        out[0::2] = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
        out[1::2] = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
        out = np.where(out >= 2048, out - 4096, out)
        return out[:n_total]
    raise ValueError(fmt)


def read_digital(path_without_ext: str | Path, header: WFDBHeader, record_id: str,
                 sig_len: int) -> np.ndarray:
    """Digital samples (n_sig, sig_len) int32 of a WFDB record whose files were checked."""
    base = Path(path_without_ext)
    simple = all(s.fmt in _FAST_FORMATS and s.samps_per_frame == 1 and s.skew == 0
                 for s in header.signals)
    if not simple:
        return _read_digital_wfdb(base, header, record_id, sig_len)
    out = np.empty((header.n_sig, sig_len), dtype=np.int32)
    for fname, idx in _file_groups(header).items():
        spec = header.signals[idx[0]]
        n_total = sig_len * len(idx)
        raw = np.fromfile(base.parent / fname, dtype=np.uint8, offset=spec.byte_offset)
        frames = _decode(raw, spec.fmt, n_total).reshape(sig_len, len(idx))
        out[idx] = frames.T
    return out


def _read_digital_wfdb(base: Path, header: WFDBHeader, record_id: str, sig_len: int):
    import wfdb  # slow import, only for uncommon formats

    try:
        rec = wfdb.rdrecord(str(base), physical=False, smooth_frames=True)
    except Exception as exc:  # wfdb raises many types; name the record
        raise ECGDataError(record_id, f"wfdb could not read the signals: {exc}") from exc
    d = np.asarray(rec.d_signal, dtype=np.int32).T
    if d.shape != (header.n_sig, sig_len):
        raise ECGDataError(record_id, f"signal shape {d.shape} does not match the header "
                           f"({header.n_sig} signals x {sig_len} samples)")
    return d


def verify_checksums(header: WFDBHeader, digital: np.ndarray, record_id: str) -> None:
    """Compare each signal's 16-bit sample sum with the header checksum (when given)."""
    for k, spec in enumerate(header.signals):
        if spec.checksum is None:
            continue
        total = int(digital[k].astype(np.int64).sum())
        got = ((total + 32768) % 65536) - 32768
        # Some writers (CPSC 2021) store the sum as an unsigned 16-bit value: compare mod 2**16.
        if (total - spec.checksum) % 65536:
            raise ECGDataError(record_id, f"checksum of signal {k} ({spec.description or k}) is "
                               f"{got}, header says {spec.checksum}: corrupted data file?")


def digital_to_mv(header: WFDBHeader, digital: np.ndarray, record_id: str,
                  skip_non_voltage: bool = False) -> tuple[np.ndarray, list[int]]:
    """Physical signal in mV, float32 (n_kept, samples), and the kept signal indices.

    Invalid-sample markers become NaN. Units are read per signal (uV, mV, V ...); a non-voltage
    unit is an error unless ``skip_non_voltage`` (then that channel is dropped).
    """
    keep, scales = [], []
    for k, spec in enumerate(header.signals):
        scale = unit_scale_to_mv(spec.units)
        if scale is None:
            if skip_non_voltage:
                continue
            raise ECGDataError(record_id, f"signal {k} ({spec.description!r}) has non-voltage "
                               f"units {spec.units!r}")
        keep.append(k)
        scales.append(scale)
    out = np.empty((len(keep), digital.shape[1]), dtype=np.float32)
    for row, (k, scale) in enumerate(zip(keep, scales)):
        spec = header.signals[k]
        d = digital[k]
        # float64 for the subtraction: gains like 30061.27 with baselines of -161790 lose
        # precision in float32 before the division.
        phys = (d - float(spec.baseline)) * (scale / spec.adc_gain)
        invalid = _INVALID.get(spec.fmt)
        if invalid is not None:
            bad = d == invalid
            if bad.any():
                phys[bad] = np.nan
        out[row] = phys
    return out, keep


def patient_from_comments(comments: list[str]) -> str | None:
    """A patient/subject id from header comments such as ``# patient_id: 42``, else None."""
    for c in comments:
        m = _PATIENT_RE.match(c)
        if m:
            return m.group(2)
    return None


def read_wfdb(path_without_ext: str | Path, record_id: str | None = None, source: str = "wfdb",
              checks: SignalChecks | None = DEFAULT_CHECKS, patient_id: str | None = None,
              skip_non_voltage: bool = False, verify_checksum: bool = True,
              header: WFDBHeader | None = None) -> Record:
    """Read a WFDB record in mV with canonical lead names.

    Args:
        path_without_ext: record path without ``.hea``.
        record_id: id of the Record (default ``f"{source}/{record name}"``).
        source: source name stored in the Record.
        checks: signal checks to run (None: none).
        patient_id: override; else taken from a ``patient``/``subject`` header comment, else None.
        skip_non_voltage: drop channels with non-voltage units instead of failing.
        verify_checksum: compare the header checksums (where given) with the data; catches
            corrupted files that still have the right size (costs one sum per lead).
        header: an already parsed header (saves parsing it twice).
    Returns:
        Record with ``signal`` (leads, samples) float32 mV; ``meta`` has ``comments``,
        ``units``, ``fmt``.
    """
    base = Path(path_without_ext)
    if base.suffix in (".hea", ".dat"):
        base = base.with_suffix("")
    rid = record_id or f"{source}/{base.name}"
    if header is None:
        header = read_header(base.with_suffix(".hea") if base.suffix == "" else
                             Path(str(base) + ".hea"), rid)
    if header.n_segments is not None:
        raise ECGDataError(rid, "multi-segment WFDB records are not supported")
    if header.n_sig == 0:
        raise ECGDataError(rid, "header declares no signals")
    sig_len = check_signal_files(header, base.parent, rid)
    digital = read_digital(base, header, rid, sig_len)
    if verify_checksum:
        verify_checksums(header, digital, rid)
    signal, keep = digital_to_mv(header, digital, rid, skip_non_voltage)
    if not keep:
        raise ECGDataError(rid, "no voltage channels")
    leads = [canonical_lead(header.signals[k].description or f"ch{k}") for k in keep]
    record = Record(signal=signal, fs=header.fs, leads=leads, record_id=rid,
                    patient_id=patient_id or patient_from_comments(header.comments),
                    source=source,
                    meta={"comments": list(header.comments),
                          "units": [header.signals[k].units for k in keep],
                          "fmt": header.signals[keep[0]].fmt})
    return check_signal(record, checks)
