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
    # 6 windows of 10 s from each 65 s record, plus one aligned to the record end (last_window
    # "end": the last 5 s are not lost).
    assert len(store) == 14
    assert store.manifest["start_s"].tolist()[:7] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 55.0]
    assert store.manifest["parent_id"].nunique() == 2
    assert store.manifest["n_windows_record"].tolist() == [7] * 14
    assert (store.valid_spans == [0, 2500]).all()
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert report["windowing"]["windows_per_record"] == {"min": 7, "median": 7.0, "max": 7}
    assert report["windowing"]["seconds_not_in_any_window"] == 0


@pytest.mark.parametrize("last, n, dropped_s, last_valid", [
    ("drop", 6, 5.0, 2500), ("pad", 7, 0.0, 1250), ("end", 7, 0.0, 2500)])
def test_last_partial_window_policy(tmp_path, last, n, dropped_s, last_valid):
    cfg = PreprocessConfig(beats=False, last_window=last)
    prepare_store(SyntheticSource(1, seconds=65), tmp_path / "s", cfg, workers=0, progress=False)
    store = ECGStore(tmp_path / "s")
    assert len(store) == n
    assert store.manifest["dropped_s"].tolist() == [dropped_s] * n
    assert store.valid_spans[-1].tolist() == [0, last_valid]
    assert store[n - 1]["valid_span"].tolist() == [0, last_valid]
    if last == "pad":
        assert not store.signals[-1][:, 1250:].any() and store.signals[-1][:, :1250].any()


def test_stride_and_crop_policies(tmp_path):
    cfg = PreprocessConfig(beats=False, stride_s=5.0, last_window="drop")
    prepare_store(SyntheticSource(1, seconds=30), tmp_path / "a", cfg, workers=0, progress=False)
    assert ECGStore(tmp_path / "a").manifest["start_s"].tolist() == [0, 5, 10, 15, 20]
    crop = PreprocessConfig(beats=False, long_records="crop", crop="center")
    prepare_store(SyntheticSource(1, seconds=30), tmp_path / "b", crop, workers=0, progress=False)
    store = ECGStore(tmp_path / "b")
    assert len(store) == 1 and store.manifest["start_s"].tolist() == [10.0]
    assert store.manifest["dropped_s"].tolist() == [20.0]


def test_short_records_padded_or_dropped_and_counted(tmp_path):
    prepare_store(SyntheticSource(3, seconds=6), tmp_path / "pad", CFG, workers=0,
                  progress=False)
    store = ECGStore(tmp_path / "pad")
    assert store.valid_spans.tolist() == [[0, 1500]] * 3
    assert store.manifest["padded_s"].tolist() == [4.0] * 3
    assert not store.signals[:, :, 1500:].any()
    report = json.loads((tmp_path / "pad" / "report.json").read_text())
    assert report["windowing"]["n_records_padded"] == 3
    drop = PreprocessConfig(beats=False, short_records="drop")
    report = prepare_store(_MixedLengths(4), tmp_path / "drop", drop, workers=0, progress=False)
    assert report["n_windows"] == 4 and report["n_records_read"] == 2  # 12 s: 0-10, 2-12
    assert report["n_records_bad"] == 0
    win = report["windowing"]
    assert win["n_records_dropped_short"] == 2
    assert [d["record_id"] for d in win["records_dropped_short"]] == ["syn00000", "syn00002"]
    assert "shorter than the 10 s window" in win["records_dropped_short"][0]["problem"]


class _MixedLengths(SyntheticSource):
    """Even records 6 s, odd ones 12 s."""

    def read(self, record_id):
        rec = super().read(record_id)
        n = int(rec.fs * (6 if int(record_id[3:]) % 2 == 0 else 12))
        rec.signal = rec.signal[:, :n] if n <= rec.n_samples else np.tile(rec.signal, 2)[:, :n]
        return rec


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


def test_store_records_the_rpeak_detector_of_its_beats(tmp_path, monkeypatch):
    import ecgssl.delineation.rpeaks as rpeaks

    beats = np.array([100, 600, 1100, 1600], dtype=np.int64)
    monkeypatch.setitem(rpeaks.DETECTORS, "spy", lambda x, fs: beats)
    cfg = PreprocessConfig(rpeak_detector="spy")
    prepare_store(SyntheticSource(3), tmp_path / "s", cfg, workers=0, progress=False)
    store = ECGStore(tmp_path / "s")
    assert store.config["preprocess"]["rpeak_detector"] == "spy" and store.rpeak_detector == "spy"
    assert store.rpeaks(0).tolist() == beats.tolist()  # the beats are the named detector's
    assert "R-peaks (beats) by: spy" in store.describe()
    # Another detector is another store: never silently reused.
    with pytest.raises(FileExistsError, match="another preprocessing config"):
        prepare_store(SyntheticSource(3), tmp_path / "s", PreprocessConfig(), workers=0,
                      progress=False)
    # A store from before the field existed says what made its beats: ours.
    path = tmp_path / "s" / "config.json"
    config = json.loads(path.read_text())
    del config["preprocess"]["rpeak_detector"]
    path.write_text(json.dumps(config))
    assert ECGStore(tmp_path / "s").rpeak_detector == "ecgssl"


def test_store_without_beats_names_no_detector(tmp_path):
    prepare_store(SyntheticSource(2), tmp_path / "s", CFG, workers=0, progress=False)
    store = ECGStore(tmp_path / "s")
    assert store.rpeak_detector is None and "R-peaks" not in store.describe()
