"""PTB-XL native layout, on the fixture written from the ten HR0600x records."""

from __future__ import annotations

import numpy as np
import pytest

from ecgssl.io import open_source
from ecgssl.io.ptbxl import PTBXL_AGGREGATIONS, aggregate_scp, load_scp_statements, ptbxl_split
from ecgssl.io.ptbxl_fixture import write_ptbxl_fixture


@pytest.fixture(scope="module")
def ptbxl_root(tmp_path_factory, shared_data):
    return write_ptbxl_fixture(tmp_path_factory.mktemp("ptbxl"), shared_data / "cinc2021-sample")


def test_split():
    assert [ptbxl_split(f) for f in (1, 8, 9, 10)] == ["train", "train", "val", "test"]
    for bad in (0, 11, 2.5, "x"):
        with pytest.raises(ValueError):
            ptbxl_split(bad)


def test_aggregations(ptbxl_root):
    st = load_scp_statements(ptbxl_root / "scp_statements.csv")
    scp = {"IRBBB": 100.0, "1AVB": 100.0, "NDT": 0.0, "SBRAD": 0.0, "XYZ": 50.0}
    got = {a: aggregate_scp(scp, st, a) for a in PTBXL_AGGREGATIONS}
    assert got == {"all": ["1AVB", "IRBBB", "NDT", "SBRAD", "XYZ"],
                   "diagnostic": ["1AVB", "IRBBB", "NDT"],
                   "subdiagnostic": ["IRBBB", "STTC", "_AVB"],
                   "superdiagnostic": ["CD", "STTC"], "form": ["NDT"], "rhythm": ["SBRAD"]}
    with pytest.raises(ValueError):
        aggregate_scp(scp, st, "nope")


def test_source_500_and_100(ptbxl_root, shared_data):
    src = open_source(ptbxl_root)
    assert src.name == "ptbxl" and src.record_ids() == [f"ptbxl/{i}" for i in range(1, 11)]
    rec = src.read("ptbxl/2")
    assert rec.fs == 500 and rec.signal.shape == (12, 5000)
    assert rec.leads[3:6] == ["aVR", "aVL", "aVF"]
    assert rec.labels == ["STTC"] and rec.patient_id == "ptbxl/101"
    assert rec.meta["strat_fold"] == 2 and rec.meta["split"] == "train"
    assert rec.meta["labels_subdiagnostic"] == "ISC_;NST_"
    from ecgssl.io.cinc import read_cinc

    cinc = read_cinc(shared_data / "cinc2021-sample" / "HR06001")
    np.testing.assert_allclose(rec.signal, cinc.signal, atol=1e-3)
    lr = open_source(ptbxl_root, fs=100, aggregation="rhythm")
    r9, r10 = lr.read("ptbxl/9"), lr.read("ptbxl/10")
    assert r9.fs == 100 and r9.signal.shape == (12, 1000)
    assert r9.meta["split"] == "val" and r10.meta["split"] == "test"
    assert r10.labels == ["SR"] and lr.read("ptbxl/3").labels == ["SBRAD"]
    assert lr.read("ptbxl/1").patient_id == lr.read("ptbxl/2").patient_id
    folds = sorted(lr.read(i).meta["strat_fold"] for i in lr.record_ids())
    assert folds == list(range(1, 11))
    # 100 Hz is the 500 Hz record decimated: same amplitude range.
    assert abs(np.ptp(r9.signal) - np.ptp(src.read("ptbxl/9").signal)) < 0.5


def test_form_and_all(ptbxl_root):
    src = open_source(ptbxl_root, aggregation="form")
    assert src.read("ptbxl/6").labels == ["ABQRS"]
    assert src.read("ptbxl/5").labels == []  # no form statement: empty, kept
    assert open_source(ptbxl_root, aggregation="all").read("ptbxl/10").labels == [
        "1AVB", "LAFB", "SR"]
    with pytest.raises(ValueError, match="aggregation"):
        open_source(ptbxl_root, aggregation="bogus")
    with pytest.raises(ValueError, match="fs"):
        open_source(ptbxl_root, fs=250)
