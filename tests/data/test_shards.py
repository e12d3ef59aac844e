"""Sharded store: 3 shards merged == one prepare (float32 bit for bit, float16 within its bound),
float16 storage error bounded, flat reads through the dataset, refusals named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ecgssl.data.dataset import StoreDataset
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.shards import (
    INDEX_FILE,
    ShardedSignals,
    SignalLayout,
    float16_bound,
    merge_stores,
    parse_shard,
    prepare_shard,
    shard_bounds,
)
from ecgssl.data.store import ECGStore, prepare_store
from ecgssl.errors import SpecMismatchError

from .synthetic import SyntheticSource

CFG = PreprocessConfig(fs=250, beats=True)


class LabelledSource(SyntheticSource):
    """Labels that differ between shards (the merged label set is their union)."""

    def read(self, record_id):
        rec = super().read(record_id)
        i = int(record_id[3:])
        rec.labels = ["B"] if i < 3 else (["A", "C"] if i % 2 else ["C"])
        return rec


def _source():
    return LabelledSource(8, bad=("syn00004",))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    kw = dict(workers=0, progress=False, skip_bad=True)
    prepare_store(_source(), tmp / "one", CFG, **kw)
    prepare_store(_source(), tmp / "one16", CFG, signal_layout=SignalLayout("float16", 3), **kw)
    shards = [tmp / f"shard{i}" for i in range(3)]
    for i, d in enumerate(shards):
        prepare_shard(_source(), d, i, 3, CFG, **kw)
    merge_stores([shards[2], shards[0], shards[1]], tmp / "merged")  # any order
    merge_stores(shards, tmp / "merged16", SignalLayout("float16", shard_windows=3))
    return tmp


def _arrays(path):
    return {p.stem: np.load(p) for p in sorted(path.glob("*.npy"))}


def test_shard_parsing_and_bounds():
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(ValueError, match="I/N"):
        parse_shard("4")
    with pytest.raises(ValueError, match="0 <= I < N"):
        parse_shard("4/4")
    blocks = [shard_bounds(10, i, 3) for i in range(3)]
    assert blocks == [(0, 3), (3, 6), (6, 10)]


def test_three_shards_merged_equal_one_prepare_bit_for_bit(stores):
    one, merged = ECGStore(stores / "one"), ECGStore(stores / "merged")
    assert len(one) == len(merged) == 7  # 8 records, one bad
    assert np.array_equal(np.asarray(merged.signals[:]), np.asarray(one.signals[:]))
    assert merged.signals[:].dtype == np.float32
    a, b = _arrays(stores / "one"), _arrays(stores / "merged")
    assert set(a) - {"signals"} == set(b) and "beat_features_raw" in b
    for name in b:
        nan = a[name].dtype.kind == "f"  # raw features keep NaN (not measurable)
        assert a[name].dtype == b[name].dtype, name
        assert np.array_equal(a[name], b[name], equal_nan=nan), name
    pd.testing.assert_frame_equal(one.manifest, merged.manifest)
    for key in ("label_names", "n_windows", "feature_standardisation", "hash", "leads",
                "beat_feature_standardisation", "extras", "source", "preprocess"):
        assert one.config[key] == merged.config[key], key
    assert one.label_names == ["A", "B", "C"]
    r1 = json.loads((stores / "one" / "report.json").read_text())
    r2 = json.loads((stores / "merged" / "report.json").read_text())
    for key in ("n_records_read", "n_records_bad", "n_windows", "bad_records"):
        assert r1[key] == r2[key], key
    for i in range(len(one)):  # what training reads
        x, y = one[i], merged[i]
        assert x.keys() == y.keys()
        assert all(np.array_equal(x[k], y[k], equal_nan=np.asarray(x[k]).dtype.kind == "f")
                   for k in x)


def test_float16_within_the_bound_and_equal_to_a_float16_prepare(stores):
    ref = np.asarray(ECGStore(stores / "one").signals[:])
    for name in ("merged16", "one16"):
        store = ECGStore(stores / name)
        sig = store.signals
        assert isinstance(sig, ShardedSignals) and sig.stored_dtype == np.float16
        index = json.loads((stores / name / INDEX_FILE).read_text())
        assert [s["n"] for s in index["shards"]] == [3, 3, 1]
        got = np.asarray(sig[:])
        err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        assert (err <= float16_bound(ref)).all()
        assert err.max() > 0  # float16 does round: the check can fail
        assert index["float16_error"]["max_abs"] == pytest.approx(err.max())
        assert err.max() < 1e-3  # mV: below 1 uV for these sub-2 mV signals
        assert (stores / name / "signals" / "000000.npy").stat().st_size < \
            (stores / "one" / "signals.npy").stat().st_size / 2
    assert np.array_equal(ECGStore(stores / "merged16").signals[:],
                          ECGStore(stores / "one16").signals[:])


def test_sharded_reads_index_like_an_array(stores):
    sig, ref = ECGStore(stores / "merged16").signals, ECGStore(stores / "one16").signals[:]
    assert len(sig) == 7 and sig.shape == ref.shape and sig.ndim == 3
    for key in (0, 6, -1, slice(2, 5), slice(None, None, 2), np.array([6, 0, 3])):
        assert np.array_equal(sig[key], ref[key]), key
    assert np.array_equal(sig[2, 1], ref[2, 1])
    with pytest.raises(IndexError):
        sig[7]
    # Through the dataset (as DataLoader workers and distributed samplers read it).
    ds = StoreDataset(stores / "merged16")
    assert np.array_equal(ds[5]["signal"], ref[5]) and ds[5]["signal"].dtype == np.float32


def test_float16_refuses_values_it_cannot_hold(tmp_path):
    from ecgssl.data.shards import ShardWriter

    writer = ShardWriter(tmp_path, 2, (1, 3), SignalLayout("float16"))
    writer.write(np.zeros((1, 1, 3), np.float32))
    with pytest.raises(OverflowError, match="window 1"):
        writer.write(np.full((1, 1, 3), 7e4, np.float32))


def test_merge_refuses_what_is_not_one_corpus(stores, tmp_path):
    shards = [stores / f"shard{i}" for i in range(3)]
    with pytest.raises(SpecMismatchError, match="exactly once"):
        merge_stores(shards[:2], tmp_path / "m")
    with pytest.raises(SpecMismatchError, match="not a shard"):
        merge_stores([*shards[:2], stores / "one"], tmp_path / "m")
    with pytest.raises(FileExistsError, match="exists"):
        merge_stores(shards, stores / "merged")
    other = tmp_path / "other2"
    prepare_shard(_source(), other, 2, 3, PreprocessConfig(fs=250, beats=True, window_s=8.0),
                  workers=0, progress=False, skip_bad=True)
    with pytest.raises(SpecMismatchError, match="hash"):
        merge_stores([*shards[:2], other], tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_cli_prepare_shards_then_merge_equals_one_prepare(tmp_path, shared_data, capsys):
    from ecgssl.cli import main

    ludb = str(shared_data / "ludb")
    common = ["--max-records", "6", "--workers", "0", "--no-progress", "--set", "beats=false"]
    assert main(["prepare", ludb, "--out", str(tmp_path / "one"), *common]) == 0
    for i in range(2):
        assert main(["prepare", ludb, "--out", str(tmp_path / f"p{i}"), "--shard", f"{i}/2",
                     "--signal-dtype", "float16", *common]) == 0
    assert main(["merge", str(tmp_path / "p1"), str(tmp_path / "p0"), "--out",
                 str(tmp_path / "all")]) == 0
    assert "2 shards" in capsys.readouterr().out
    one, merged = ECGStore(tmp_path / "one"), ECGStore(tmp_path / "all")
    ref = np.asarray(one.signals[:])
    got = np.asarray(merged.signals[:])
    assert got.shape == ref.shape
    assert (np.abs(got.astype(np.float64) - ref) <= float16_bound(ref)).all()
    pd.testing.assert_frame_equal(one.manifest, merged.manifest)
    assert main(["info", str(tmp_path / "all")]) == 0
    assert main(["merge", str(tmp_path / "p0"), "--out", str(tmp_path / "x")]) == 2
    assert "exactly once" in capsys.readouterr().err
