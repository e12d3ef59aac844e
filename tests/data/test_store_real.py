"""Prepared stores from the real databases in ../shared/data."""

import numpy as np
import pytest

from ecgssl.cli import main
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import ECGStore, prepare_store
from ecgssl.io import open_source

NO_BEATS = PreprocessConfig(beats=False)


@pytest.fixture(scope="module")
def ludb_store(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("ludb") / "store"
    source = open_source(shared_data / "ludb", checks=None)
    prepare_store(source, out, NO_BEATS, workers=0, max_records=12, progress=False)
    return ECGStore(out)


def test_ludb_store_has_real_millivolts_masks_and_spans(ludb_store):
    s = ludb_store
    assert s.signals.shape == (12, 12, 2500)
    ptp = np.ptp(np.asarray(s.signals[:, :3]), axis=-1)
    assert 0.5 < np.median(ptp) < 2.5  # real mV, not wfdb's per-lead-normalised ~1
    assert s.masks.shape == (12, 12, 2500)
    assert set(np.unique(s.masks)) <= {0, 1, 2, 3}
    start, end = s.spans[0, 1]
    assert 0 < start < end < 2500  # first/last beats of LUDB are not annotated
    inside = s.masks[0, 1, start:end]
    assert (inside == 2).mean() > 0.05 and (inside == 3).mean() > 0.1
    assert (s.masks[0, 1, :start] == 0).all()
    assert any(name.startswith("rhythm:") for name in s.label_names)


def test_ludb_masks_survive_resampling(ludb_store, shared_data):
    from ecgssl.io import read_ludb

    rec = read_ludb(shared_data / "ludb", 1)
    qrs = rec.annotations["waves"]["II"]
    qrs = qrs[qrs[:, 0] == 2]
    onset_250 = np.round(qrs[:, 1] / 2).astype(int)
    store_mask = ludb_store.masks[0, 1]
    assert all(store_mask[o] == 2 for o in onset_250 if o >= 0)


def test_cinc_store_masks_flat_leads_instead_of_dropping_records(tmp_path, shared_data):
    source = open_source(shared_data / "cinc2021-sample", checks=None)
    report = prepare_store(source, tmp_path / "s", NO_BEATS, workers=0, progress=False)
    s = ECGStore(tmp_path / "s")
    assert report["n_windows"] == 50 and report["n_records_bad"] == 0
    row = s.manifest.index[s.manifest["record_id"] == "cinc/JS20004"][0]
    assert not s.lead_mask[row, s.leads.index("V2")]
    assert (s.signals[row, s.leads.index("V2")] == 0).all()
    assert "426783006" in s.label_names or "426177001" in s.label_names


def test_long_record_windows_with_beats_and_lead_alias(tmp_path, shared_data):
    cfg = PreprocessConfig(beats=False)  # MLII -> II by the alias table
    prepare_store(open_source(shared_data / "mitdb-100", checks=None), tmp_path / "s", cfg,
                  workers=0, progress=False)
    s = ECGStore(tmp_path / "s")
    # 1805.6 s in 10 s windows: 180, plus the last 5.6 s in one window aligned to the end.
    assert len(s) == 181 and s.manifest["start_sample"].iloc[-1] == 1805 * 250 - 2500 + 139
    assert set(s.manifest["lead_aliases"]) == {"MLII=II"}
    assert s.lead_mask[:, s.leads.index("II")].all() and s.lead_mask[:, s.leads.index("V5")].all()
    assert s.lead_mask[:, s.leads.index("III")].sum() == 0  # cannot derive without lead I
    assert s.manifest["n_beats"].sum() >= 2239


def test_cli_prepare_and_info_and_errors(tmp_path, shared_data, capsys):
    out = tmp_path / "store"
    rc = main(["prepare", str(shared_data / "ludb"), "--out", str(out), "--max-records", "3",
               "--workers", "0", "--no-progress", "--set", "beats=false"])
    assert rc == 0 and "wrote store" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "windows: 3" in capsys.readouterr().out
    rc = main(["prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = main(["prepare", str(shared_data / "cpsc2021-sample"), "--out", str(tmp_path / "c"),
               "--max-records", "1", "--workers", "0", "--no-progress", "--set", "beats=false"])
    err = capsys.readouterr().err
    assert rc == 2 and "200 Hz is below the requested 250 Hz" in err and "data_101_6" in err


def test_truncated_copy_is_skipped_and_reported(tmp_path, shared_data):
    import shutil

    root = tmp_path / "ludb"
    (root / "data").mkdir(parents=True)
    shutil.copy(shared_data / "ludb" / "ludb.csv", root)
    for n in (1, 2, 3):
        for f in (shared_data / "ludb" / "data").glob(f"{n}.*"):
            shutil.copy(f, root / "data")
    dat = root / "data" / "2.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    source = open_source(root, checks=None)
    report = prepare_store(source, tmp_path / "s", NO_BEATS, workers=0, skip_bad=True,
                           progress=False)
    assert report["n_windows"] == 2
    (bad,) = report["bad_records"]
    assert bad["record_id"] == "ludb/2" and "truncated" in bad["problem"].lower()


def test_several_sources_in_one_store(tmp_path, shared_data):
    rc = main(["prepare", str(shared_data / "cinc2021-sample"), str(shared_data / "mitdb-100"),
               "--out", str(tmp_path / "mix"), "--workers", "0", "--no-progress",
               "--set", "beats=false", "--set", "lead_aliases={MLII: II}"])
    assert rc == 0
    s = ECGStore(tmp_path / "mix")
    assert len(s) == 50 + 181
    assert set(s.manifest["source"]) == {"cinc2021-sample", "mitdb-100"}
    assert s.manifest["record_id"].str.startswith("mitdb-100/100@").sum() == 181


def test_ludb_beats_by_the_delineator_in_parallel_workers_match_experts(tmp_path, shared_data):
    """Beat-SSL's stored R-peaks (the prepare default, the delineator) with 2 worker processes:
    the same as in-process, and on LUDB's expert QRS peaks (lead II, +-75 ms)."""
    import wfdb

    cfg = PreprocessConfig()
    assert cfg.rpeak_detector == "delineator"
    source = open_source(shared_data / "ludb", checks=None)
    prepare_store(source, tmp_path / "a", cfg, workers=0, max_records=8, progress=False)
    prepare_store(source, tmp_path / "b", cfg, workers=2, max_records=8, progress=False)
    a, b = ECGStore(tmp_path / "a"), ECGStore(tmp_path / "b")
    assert a.rpeak_detector == b.rpeak_detector == "delineator"
    assert np.array_equal(np.asarray(a._array("rpeaks")), np.asarray(b._array("rpeaks")))
    tp = n_ref = n_det = 0
    for i in range(len(a)):
        rid = a.manifest["record_id"].iloc[i].split("/")[-1]
        ann = wfdb.rdann(str(shared_data / "ludb" / "data" / rid), "ii")
        ref = ann.sample[np.array(ann.symbol) == "N"] / 2  # 500 -> 250 Hz
        lo, hi = ann.sample.min() / 2 - 19, ann.sample.max() / 2 + 19
        det = a.rpeaks(i)
        det = det[(det >= lo) & (det <= hi)]
        tp += sum(np.abs(det - r).min() <= 19 for r in ref) if len(det) else 0
        n_ref, n_det = n_ref + len(ref), n_det + len(det)
    assert n_ref > 60 and tp / n_ref >= 0.98 and tp / n_det >= 0.98
