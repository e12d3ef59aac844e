import json

import numpy as np
import pytest
import torch

from ecgssl.data.dataset import StoreDataset, default_collate
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import ECGStore, prepare_store
from ecgssl.errors import ECGDataError, SpecMismatchError

from .synthetic import SyntheticSource

CFG = PreprocessConfig(beats=False)


def test_prepare_and_read_back(tmp_path):
    report = prepare_store(SyntheticSource(6), tmp_path / "s", CFG, workers=0, progress=False)
    assert report["n_windows"] == 6 and report["n_records_bad"] == 0
    store = ECGStore(tmp_path / "s")
    assert isinstance(store.signals, np.memmap)
    assert store.signals.shape == (6, 12, 2500) and store.signals.dtype == np.float32
    assert store.label_names == ["A", "B"]
    assert store.labels[:, 0].tolist() == [0, 1, 0, 1, 0, 1]
    assert store.manifest["record_id"].tolist() == [f"syn{i:05d}" for i in range(6)]
    assert store.manifest["fold"].tolist() == [1, 2, 3, 4, 5, 6]
    assert store.config["hash"] == CFG.hash() and store.config["units"] == "mV"
    item = store[3]
    assert item["signal"].shape == (12, 2500) and item["index"] == 3
    assert "syn" in store.describe()


def test_parallel_workers_give_the_same_store(tmp_path):
    prepare_store(SyntheticSource(5), tmp_path / "a", CFG, workers=0, progress=False)
    prepare_store(SyntheticSource(5), tmp_path / "b", CFG, workers=2, progress=False)
    a, b = ECGStore(tmp_path / "a"), ECGStore(tmp_path / "b")
    np.testing.assert_array_equal(a.signals, b.signals)


def test_bad_record_stops_or_is_skipped_and_reported(tmp_path):
    src = SyntheticSource(5, bad=("syn00002",))
    with pytest.raises(ECGDataError, match="syn00002.*deliberately bad"):
        prepare_store(src, tmp_path / "s", CFG, workers=0, progress=False)
    assert not (tmp_path / "s").exists()
    with pytest.raises(FileNotFoundError, match="partial"):
        ECGStore(tmp_path / "s")
    report = prepare_store(src, tmp_path / "s", CFG, workers=0, skip_bad=True, progress=False)
    assert report["n_windows"] == 4
    assert report["bad_records"] == [{"record_id": "syn00002", "problem": "deliberately bad"}]
    saved = json.loads((tmp_path / "s" / "report.json").read_text())
    assert saved["n_records_bad"] == 1
    assert "syn00002" not in ECGStore(tmp_path / "s").manifest["record_id"].tolist()


class _Interrupt(Exception):
    pass


class _FlakySource(SyntheticSource):
    """Fails hard (like a kill) at one record on the first run."""

    def __init__(self, n, fail_at):
        super().__init__(n)
        self.fail_at = fail_at
        self.reads = []

    def read(self, record_id):
        self.reads.append(record_id)
        if record_id == self.fail_at:
            raise KeyboardInterrupt
        return super().read(record_id)


def test_interrupted_prepare_resumes_without_redoing_chunks(tmp_path, monkeypatch):
    import ecgssl.data.store as store_mod

    monkeypatch.setattr(store_mod, "CHUNK_RECORDS", 4)
    src = _FlakySource(10, fail_at="syn00009")
    with pytest.raises(KeyboardInterrupt):
        prepare_store(src, tmp_path / "s", CFG, workers=0, progress=False)
    assert not (tmp_path / "s").exists()
    src.fail_at, src.reads = None, []
    prepare_store(src, tmp_path / "s", CFG, workers=0, progress=False)
    assert src.reads == ["syn00008", "syn00009"]  # two finished chunks were kept
    full = tmp_path / "full"
    prepare_store(SyntheticSource(10), full, CFG, workers=0, progress=False)
    np.testing.assert_array_equal(ECGStore(tmp_path / "s").signals, ECGStore(full).signals)


def test_existing_store_is_reused_or_refused(tmp_path):
    prepare_store(SyntheticSource(2), tmp_path / "s", CFG, workers=0, progress=False)
    again = prepare_store(SyntheticSource(2), tmp_path / "s", CFG, workers=0, progress=False)
    assert again["n_windows"] == 2
    with pytest.raises(FileExistsError, match="another preprocessing config"):
        prepare_store(SyntheticSource(2), tmp_path / "s", PreprocessConfig(fs=500, beats=False),
                      workers=0, progress=False)


def test_long_records_are_windowed(tmp_path):
    prepare_store(SyntheticSource(2, seconds=65), tmp_path / "s", CFG, workers=0, progress=False)
    store = ECGStore(tmp_path / "s")
    assert len(store) == 12  # 6 windows of 10 s from each 65 s record (the partial one dropped)
    assert store.manifest["start_s"].tolist()[:3] == [0.0, 10.0, 20.0]
    assert store.manifest["parent_id"].nunique() == 2


def test_dataset_selects_leads_and_collates(tmp_path):
    prepare_store(SyntheticSource(4), tmp_path / "s", CFG, workers=0, progress=False)
    ds = StoreDataset(tmp_path / "s", indices=[1, 3], leads=["II", "V1"])
    item = ds[0]
    assert item["signal"].shape == (2, 2500) and item["index"] == 1
    full = ECGStore(tmp_path / "s")
    np.testing.assert_array_equal(item["signal"][1], full.signals[1, 6])
    batch = default_collate([ds[0], ds[1]])
    assert batch["signal"].dtype == torch.float32 and batch["signal"].shape == (2, 2, 2500)
    assert batch["index"].tolist() == [1, 3]
    with pytest.raises(SpecMismatchError, match="no leads"):
        StoreDataset(tmp_path / "s", leads=["MLII"])
    import pickle

    assert len(pickle.dumps(ds)) < 20_000  # no arrays travel to workers
