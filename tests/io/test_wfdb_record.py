"""Generic WFDB reading: formats, units, and clear errors on corrupted copies of real files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import wfdb

from ecgssl.errors import ECGDataError
from ecgssl.io.checks import SignalChecks, check_signal
from ecgssl.io.wfdb_record import read_wfdb


def _copy_record(src_dir, name, dst, exts=(".hea", ".dat")):
    for ext in exts:
        shutil.copy(src_dir / f"{name}{ext}", dst / f"{name}{ext}")
    return dst / name


@pytest.mark.parametrize("fmt", ["16", "80", "212", "24", "32"])
def test_formats_match_wfdb(tmp_path, rng, fmt):
    sig = np.cumsum(rng.normal(0, 0.05, size=(1001, 3)), axis=0)
    wfdb.wrsamp("r", fs=250, units=["mV"] * 3, sig_name=["i", "AVF", "v2"], p_signal=sig,
                fmt=[fmt] * 3, write_dir=str(tmp_path))
    rec = read_wfdb(tmp_path / "r", checks=None)
    ref = wfdb.rdrecord(str(tmp_path / "r"))
    assert rec.leads == ["I", "aVF", "V2"]
    assert rec.record_id == "wfdb/r" and rec.fs == 250.0
    np.testing.assert_allclose(rec.signal, ref.p_signal.T, atol=1e-6)


@pytest.mark.parametrize("units,scale", [("uV", 1e-3), ("mV", 1.0), ("V", 1e3)])
def test_units_are_converted_to_mv(tmp_path, units, scale):
    sig = np.linspace(-1, 1, 500)[:, None] * np.array([[1.0, 2.0]])
    wfdb.wrsamp("u", fs=500, units=[units] * 2, sig_name=["II", "V5"], p_signal=sig,
                fmt=["16"] * 2, adc_gain=[1000.0] * 2, baseline=[0] * 2, write_dir=str(tmp_path))
    rec = read_wfdb(tmp_path / "u", checks=None)
    np.testing.assert_allclose(rec.signal, sig.T * scale, rtol=0, atol=6e-4 * scale)


def test_real_records_match_wfdb(shared_data):
    for path in ("mitdb-100/100", "cpsc2021-sample/data_101_6", "ludb/data/115"):
        rec = read_wfdb(shared_data / path, checks=None)
        ref = wfdb.rdrecord(str(shared_data / path))
        np.testing.assert_allclose(rec.signal, ref.p_signal.T, atol=1e-5)


def test_missing_header(tmp_path, shared_data):
    base = _copy_record(shared_data / "ludb" / "data", "1", tmp_path, exts=(".dat",))
    with pytest.raises(ECGDataError, match=r"'wfdb/1'.*header file .* is missing"):
        read_wfdb(base)


def test_missing_dat(tmp_path, shared_data):
    base = _copy_record(shared_data / "ludb" / "data", "1", tmp_path, exts=(".hea",))
    with pytest.raises(ECGDataError, match=r"'wfdb/1'.*signal file .*1.dat.* missing"):
        read_wfdb(base)


def test_truncated_dat(tmp_path, shared_data):
    base = _copy_record(shared_data / "ludb" / "data", "1", tmp_path)
    dat = base.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:50000])
    with pytest.raises(ECGDataError, match=r"'wfdb/1'.*truncated.*5000 samples x 12 signals.*"
                                           r"120000 bytes.*50000 bytes"):
        read_wfdb(base)


def test_header_length_mismatch(tmp_path, shared_data):
    base = _copy_record(shared_data / "mitdb-100", "100", tmp_path)
    hea = base.with_suffix(".hea")
    hea.write_text(hea.read_text().replace("100 2 360 650000", "100 2 360 700000"))
    with pytest.raises(ECGDataError, match=r"'wfdb/100'.*header length is wrong.*700000"):
        read_wfdb(base)


def test_checksum_mismatch_names_signal(tmp_path, shared_data):
    base = _copy_record(shared_data / "ludb" / "data", "2", tmp_path)
    dat = base.with_suffix(".dat")
    raw = bytearray(dat.read_bytes())
    raw[1000] ^= 0x10
    dat.write_bytes(bytes(raw))
    with pytest.raises(ECGDataError, match=r"'wfdb/2'.*checksum"):
        read_wfdb(base)


def test_invalid_samples_give_nan_error(tmp_path, shared_data):
    base = _copy_record(shared_data / "ludb" / "data", "3", tmp_path)
    dat = base.with_suffix(".dat")
    d = np.fromfile(dat, dtype="<i2").reshape(-1, 12)
    d[100:110, 4] = -32768  # WFDB's invalid-sample marker for format 16
    d.tofile(dat)
    with pytest.raises(ECGDataError, match=r"'wfdb/3'.*10 NaN/inf samples in leads \['aVL'\]"):
        read_wfdb(base, verify_checksum=False)
    rec = read_wfdb(base, verify_checksum=False, checks=SignalChecks(allow_nan=True))
    assert np.isnan(rec.signal[4, 100:110]).all()


def test_flat_lead(tmp_path, shared_data):
    base = _copy_record(shared_data / "ludb" / "data", "4", tmp_path)
    dat = base.with_suffix(".dat")
    d = np.fromfile(dat, dtype="<i2").reshape(-1, 12)
    d[:, 7] = 0
    d.tofile(dat)
    with pytest.raises(ECGDataError, match=r"'wfdb/4'.*flat leads \['V2'\]"):
        read_wfdb(base, verify_checksum=False)
    rec = read_wfdb(base, verify_checksum=False, checks=SignalChecks(flat_action="drop"))
    assert "V2" not in rec.leads and rec.meta["dropped_flat_leads"] == ["V2"]
    assert rec.signal.shape == (11, 5000)


def test_real_flat_leads_of_chapman_records(shared_data):
    with pytest.raises(ECGDataError, match=r"JS20004.*flat leads \['V2', 'V4', 'V6'\]"):
        read_wfdb(shared_data / "cinc2021-sample" / "JS20004")


def test_unknown_lead_name_with_strict_set(tmp_path, shared_data):
    base = _copy_record(shared_data / "ludb" / "data", "5", tmp_path)
    hea = base.with_suffix(".hea")
    hea.write_text(hea.read_text().replace(" v6\n", " chest7\n"))
    rec = read_wfdb(base)  # lenient by default: the odd name is kept
    assert rec.leads[-1] == "chest7"
    strict = SignalChecks(strict_leads=("I", "II", "III", "aVR", "aVL", "aVF",
                                        "V1", "V2", "V3", "V4", "V5", "V6"))
    with pytest.raises(ECGDataError, match=r"'wfdb/5'.*unknown lead names \['chest7'\]"):
        read_wfdb(base, checks=strict)


def test_absurd_amplitude_after_median_removal(rng):
    from ecgssl.data.record import Record

    sig = rng.normal(0, 0.1, size=(2, 1000)).astype(np.float32)
    sig[1] += 50.0  # a DC offset alone is fine
    check_signal(Record(sig.copy(), 500, ["I", "II"], "ok"))
    sig[0, 500] = 25.0
    with pytest.raises(ECGDataError, match=r"'bad'.*absurd amplitude in lead 'I'"):
        check_signal(Record(sig, 500, ["I", "II"], "bad"))


def test_duplicate_lead_names_rejected(rng):
    from ecgssl.data.record import Record

    rec = Record(rng.normal(size=(2, 100)), 100, ["I", "I"], "dup")
    with pytest.raises(ECGDataError, match="duplicate lead names"):
        check_signal(rec, None)


def test_signal_checks_validate_arguments():
    with pytest.raises(ValueError):
        SignalChecks(flat_ptp_mv=-1)
    with pytest.raises(ValueError):
        SignalChecks(flat_action="ignore")
