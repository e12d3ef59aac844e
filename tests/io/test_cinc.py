"""CinC 2020/2021 records: Dx codes, mV scaling, scored-class mapping."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import wfdb

from ecgssl.errors import ECGDataError
from ecgssl.io.cinc import read_cinc
from ecgssl.io.snomed import (
    cpsc2018_to_snomed,
    map_to_scored,
    scored_classes,
    scored_codes,
    snomed_abbreviation,
)


def test_read_cinc_codes_and_mv(shared_data):
    base = shared_data / "cinc2021-sample" / "HR06002"
    rec = read_cinc(base)
    assert rec.record_id == "cinc/HR06002" and rec.patient_id == "cinc/HR06002"
    assert rec.labels == ["426177001", "426783006", "713426002"]
    assert rec.signal.shape == (12, 5000) and rec.fs == 500.0
    assert rec.leads[3] == "aVR"
    ref = wfdb.rdrecord(str(base))  # gain 1000/mV: physical = digital / 1000
    np.testing.assert_allclose(rec.signal, ref.p_signal.T, atol=1e-6)
    ptp = np.ptp(rec.signal, axis=1)
    assert 0.2 < np.median(ptp) < 5.0  # millivolts, not microvolts
    assert rec.meta["sex"] in ("M", "F") and rec.meta["age"] > 0


def test_lowercase_mv_header_and_all_sample_records(shared_data):
    n_ok = 0
    for hea in sorted((shared_data / "cinc2021-sample").glob("*.hea")):
        try:
            rec = read_cinc(hea.with_suffix(""))
        except ECGDataError as exc:
            assert "flat leads" in str(exc)  # two Chapman records have all-zero leads
            continue
        assert rec.labels and all(code.isdigit() for code in rec.labels)
        n_ok += 1
    assert n_ok == 48


def test_scored_mapping():
    assert len(scored_codes(2020)) == 27 and len(scored_classes(2020)) == 24
    assert len(scored_codes(2021)) == 30 and len(scored_classes(2021)) == 26
    assert map_to_scored(["59118001", "63593006", "17338001", "164909002"], 2021) == [
        "713427006", "284470004", "427172004", "733534002"]
    # CLBBB was not scored in 2020, so LBBB stays LBBB; unscored codes dropped or kept.
    assert map_to_scored(["164909002", "55930002"], 2020) == ["164909002"]
    assert map_to_scored(["55930002", "426783006"], 2021, drop_unscored=False) == [
        "55930002", "426783006"]
    assert snomed_abbreviation("164889003") == "AF"
    assert snomed_abbreviation("426783006") == "NSR"
    with pytest.raises(ValueError):
        scored_classes(2019)


def test_cpsc2018_labels():
    assert cpsc2018_to_snomed(["Normal", "AF", "I-AVB", "RBBB"]) == [
        "426783006", "164889003", "270492004", "59118001"]
    with pytest.raises(ValueError, match="unknown CPSC 2018 label"):
        cpsc2018_to_snomed(["XYZ"])


def test_read_cinc_scored_year(shared_data):
    rec = read_cinc(shared_data / "cinc2021-sample" / "HR06001", scored_year=2021)
    assert rec.labels == ["426783006"]  # 55930002 (ST changes) is not scored
    assert rec.meta["dx"] == ["426783006", "55930002"]


def test_truncated_mat(tmp_path, shared_data):
    for ext in (".hea", ".mat"):
        shutil.copy(shared_data / "cinc2021-sample" / f"E07500{ext}", tmp_path / f"E07500{ext}")
    mat = tmp_path / "E07500.mat"
    mat.write_bytes(mat.read_bytes()[:4000])
    with pytest.raises(ECGDataError, match=r"'cinc/E07500'.*truncated"):
        read_cinc(tmp_path / "E07500")
    (tmp_path / "E07500.mat").unlink()
    with pytest.raises(ECGDataError, match=r"'cinc/E07500'.*missing"):
        read_cinc(tmp_path / "E07500")


def test_header_sample_count_mismatch(tmp_path, shared_data):
    for ext in (".hea", ".mat"):
        shutil.copy(shared_data / "cinc2021-sample" / f"E07501{ext}", tmp_path / f"E07501{ext}")
    hea = tmp_path / "E07501.hea"
    lines = hea.read_text().splitlines()
    first = lines[0].split()
    first[3] = "6000"
    hea.write_text("\n".join([" ".join(first)] + lines[1:]) + "\n")
    with pytest.raises(ECGDataError, match=r"'cinc/E07501'.*5000 samples but the header promises "
                                           r"6000"):
        read_cinc(tmp_path / "E07501")
