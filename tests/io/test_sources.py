"""open_source / detect_source_kind over the real databases and user folders."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import wfdb

from ecgssl.errors import ECGDataError
from ecgssl.io import SignalChecks, detect_source_kind, open_source


@pytest.mark.parametrize("folder,kind,n", [("ludb", "ludb", 200), ("cinc2021-sample", "cinc", 50),
                                           ("mitdb-100", "long", 1),
                                           ("cpsc2021-sample", "long", 18)])
def test_detect_and_read_real_sources(shared_data, folder, kind, n):
    path = shared_data / folder
    assert detect_source_kind(path) == kind
    src = open_source(path)
    assert src.name == kind and len(src) == n == len(src.record_ids())
    clone = pickle.loads(pickle.dumps(src))  # workers receive the Source by pickling
    rid = src.record_ids()[-1]
    rec = clone.read(rid)
    assert rec.record_id == rid and rec.source == kind
    with pytest.raises(KeyError, match="not a record"):
        src.read(f"{kind}/nope")


def test_generic_wfdb_folder_and_name(tmp_path, rng):
    for k in range(3):
        sig = np.cumsum(rng.normal(0, 0.05, size=(2500, 2)), axis=0)
        wfdb.wrsamp(f"r{k}", fs=250, units=["mV"] * 2, sig_name=["II", "V1"], p_signal=sig,
                    fmt=["16"] * 2, write_dir=str(tmp_path))
    assert detect_source_kind(tmp_path) == "wfdb"
    src = open_source(tmp_path, name="mine")
    assert src.record_ids() == ["mine/r0", "mine/r1", "mine/r2"]
    assert [r.record_id for r in src] == src.record_ids()


def test_user_folder_with_npy_sidecar_and_labels(tmp_path, shared_data, rng):
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "a.npy", rng.normal(0, 0.3, size=(2, 1000)).astype(np.float32))
    (tmp_path / "a.json").write_text(json.dumps({"fs": 250, "leads": ["ii", "v2"]}))
    np.save(tmp_path / "sub" / "b.npy", rng.normal(0, 0.3, size=(3, 500)))
    for ext in (".hea", ".mat"):
        shutil.copy(shared_data / "cinc2021-sample" / f"HR06003{ext}", tmp_path / f"HR06003{ext}")
    (tmp_path / "labels.csv").write_text("record_id,labels\na,AF;PVC\nsub/b,NORM\n")
    assert detect_source_kind(tmp_path) == "folder"
    src = open_source(tmp_path, fs=500, leads=["I", "II", "III"],
                      labels_csv=tmp_path / "labels.csv")
    assert src.record_ids() == ["folder/HR06003", "folder/a", "folder/sub/b"]
    a = src.read("folder/a")
    assert a.fs == 250 and a.leads == ["II", "V2"] and a.labels == ["AF", "PVC"]
    b = src.read("folder/sub/b")
    assert b.fs == 500 and b.signal.shape == (3, 500) and b.labels == ["NORM"]
    cinc = src.read("folder/HR06003")
    assert cinc.labels == ["426783006", "427084000"]  # Dx codes kept when not in the CSV
    pickle.loads(pickle.dumps(src)).read("folder/a")


def test_user_folder_errors(tmp_path, rng):
    np.save(tmp_path / "x.npy", rng.normal(size=(2, 100)))
    src = open_source(tmp_path)
    with pytest.raises(ECGDataError, match=r"'folder/x'.*no sampling rate"):
        src.read("folder/x")
    src = open_source(tmp_path, fs=100, leads=["I", "II", "III"])
    with pytest.raises(ECGDataError, match=r"'folder/x'.*2 rows but 3 lead names"):
        src.read("folder/x")
    (tmp_path / "labels.csv").write_text("record_id,labels\nmissing,AF\n")
    with pytest.raises(ValueError, match="not in"):
        open_source(tmp_path, fs=100, leads=["I", "II"], labels_csv=tmp_path / "labels.csv")
    with pytest.raises(ValueError, match="checks"):
        open_source(tmp_path, checks="strict")
    src = open_source(tmp_path, fs=100, leads=["I", "II"], checks=SignalChecks(max_abs_mv=1e-3))
    with pytest.raises(ECGDataError, match="absurd amplitude"):
        src.read("folder/x")


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        detect_source_kind(tmp_path / "nothing")
    with pytest.raises(ValueError, match="no ECG records found"):
        detect_source_kind(tmp_path)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        detect_source_kind(tmp_path / "f.txt")
    with pytest.raises(ValueError, match="unknown source kind"):
        open_source(tmp_path, kind="edf")
