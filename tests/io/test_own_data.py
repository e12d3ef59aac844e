"""Your own data, nothing lost: generated records in public formats through prepare / embed.

Formats: a CinC 2017-style set (single lead named ``ECG`` at 300 Hz, headerless REFERENCE.csv),
a 2-lead MLII/V5 15-minute Holter record (WFDB format 16), a CinC 2020-style 12-lead set with
6-60 s records and ``#Dx`` labels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ecgssl.cli import main
from ecgssl.data.leads import LEADS_12
from ecgssl.data.store import ECGStore
from ecgssl.errors import ECGDataError
from ecgssl.eval.labels import check_unlabelled
from ecgssl.eval.splits import patient_kfold

from ..data.synthetic import synthetic_ecg
from .formats import EXAMPLE, make_own_data_folder, write_cinc, write_wfdb16

QUICK = ["--workers", "0", "--no-progress", "--set", "beats=false"]
CINC_SECONDS = [6, 10, 15, 20, 35, 60]
DX = [["164889003"], ["426783006"], ["164889003", "59118001"], ["426783006"], ["270492004"],
      ["164889003"]]


@pytest.fixture(scope="module")
def cinc2020(tmp_path_factory):
    root = tmp_path_factory.mktemp("cinc2020")
    for k, (sec, dx) in enumerate(zip(CINC_SECONDS, DX)):
        write_cinc(root, f"Q{k:04d}", synthetic_ecg(12, 500.0, sec, seed=k), 500.0,
                   [x.lower() for x in LEADS_12], dx)
    return root


def _holter_signal() -> np.ndarray:
    """15 minutes at 360 Hz, 2 leads: one synthetic minute repeated (generating is slow)."""
    return np.tile(synthetic_ecg(2, 360.0, 60.0, seed=3), 15)


@pytest.fixture(scope="module")
def holter(tmp_path_factory):
    root = tmp_path_factory.mktemp("holter")
    write_wfdb16(root, "h100", _holter_signal(), 360.0, ["MLII", "V5"])
    return root


def test_cinc2020_every_window_keeps_its_record_labels(cinc2020, tmp_path, capsys):
    store_dir = tmp_path / "s"
    assert main(["prepare", str(cinc2020), "--out", str(store_dir), *QUICK]) == 0
    out = capsys.readouterr().out
    store = ECGStore(store_dir)
    m = store.manifest
    # 6 s padded; 10 s one window; 15 s 0-10 + 5-15; 20 s two; 35 s four (last at 25 s); 60 s six.
    per = m.groupby("parent_id", sort=False)["window"].size().tolist()
    assert per == [1, 1, 2, 2, 4, 6]
    assert m["n_windows_record"].tolist() == sum([[n] * n for n in per], [])
    assert (store.labels.sum(axis=1) > 0).all()  # no window without its record's Dx
    for rid, dx in zip(m["parent_id"], m["labels"]):
        assert dx.split(";") == sorted(DX[int(rid.split("Q")[-1])])
    assert store.valid_spans[0].tolist() == [0, 1500] and m["padded_s"][0] == 4.0
    assert (store.valid_spans[1:] == [0, 2500]).all()
    assert "windows per record: min 1, median 2, max 6" in out and "1 records shorter" in out
    assert check_unlabelled(store) is None
    # Windows of one record share its patient id: no record on both sides of a split.
    for split in patient_kfold(3, patient_ids=m["patient_id"].astype(str).tolist(), seed=0):
        parents = m["parent_id"].to_numpy()
        assert not set(parents[split.train]) & set(parents[split.test])
    report = json.loads((store_dir / "report.json").read_text())
    assert report["windowing"]["n_windows_unlabelled"] == 0
    # short_records=drop: the 6 s record is dropped, named and counted, not an error.
    assert main(["prepare", str(cinc2020), "--out", str(tmp_path / "d"), *QUICK,
                 "--set", "short_records=drop"]) == 0
    assert "1 records shorter than 10 s dropped (short_records=drop): cinc/Q0000" in \
        capsys.readouterr().out


def test_labels_file_with_header_for_a_cinc_set(cinc2020, tmp_path, capsys):
    (tmp_path / "mine.csv").write_text("recording,label\nQ0001.mat,AF;PVC\nQ0004,NORM\n")
    assert main(["prepare", str(cinc2020), "--out", str(tmp_path / "s"), *QUICK,
                 "--labels", str(tmp_path / "mine.csv")]) == 0
    out = capsys.readouterr().out
    assert "labels from" in out and "2 of 6 records (header recording,label)" in out
    assert "4 records not in the file keep their own labels" in out and "cinc/Q0000" in out
    m = ECGStore(tmp_path / "s").manifest
    assert set(m.loc[m["parent_id"] == "cinc/Q0001", "labels"]) == {"AF;PVC"}
    assert set(m.loc[m["parent_id"] == "cinc/Q0004", "labels"]) == {"NORM"}
    assert set(m.loc[m["parent_id"] == "cinc/Q0000", "labels"]) == {"164889003"}
    info = json.loads((tmp_path / "s" / "config.json").read_text())["source"]["labels"]
    assert info[0]["n_records_labelled"] == 2


def test_source_options_through_the_cli(cinc2020, tmp_path, capsys):
    assert main(["prepare", str(cinc2020), "--out", str(tmp_path / "s"), *QUICK,
                 "--set", "scored_year=2020", "--max-records", "2"]) == 0
    assert ECGStore(tmp_path / "s").label_names  # mapped onto the 2020 scored classes
    rc = main(["prepare", str(cinc2020), "--out", str(tmp_path / "x"), *QUICK,
               "--set", "labels_csv=x.csv"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown option 'labels_csv'" in err and "source kind cinc" in err
    assert "scored_year" in err and "Traceback" not in err
    rc = main(["prepare", str(cinc2020), "--out", str(tmp_path / "x"), *QUICK,
               "--set", "source.fs=300"])
    err = capsys.readouterr().err
    assert rc == 2 and "source option 'fs' is not taken by source kind cinc" in err
    (tmp_path / "c.yaml").write_text("preprocess: {beats: false}\nsource: {annotations: true}\n")
    rc = main(["prepare", str(cinc2020), "--out", str(tmp_path / "x"), "--workers", "0",
               "--no-progress", "--config", str(tmp_path / "c.yaml")])
    assert rc == 2 and "'annotations' is not taken by source kind cinc" in capsys.readouterr().err


def test_cinc2017_single_ecg_lead_300hz_with_headerless_reference(tmp_path, capsys):
    folder = make_own_data_folder(tmp_path / "af")
    rc = main(["prepare", str(folder), "--out", str(tmp_path / "s"), *QUICK])
    err = capsys.readouterr().err
    assert rc == 2 and "'cinc/A00001'" in err and "unknown lead 'ECG'" in err
    assert "--lead-alias ECG=I" in err
    assert main(["prepare", str(folder), "--out", str(tmp_path / "s"), *QUICK,
                 "--lead-alias", "ECG=I"]) == 0
    out = capsys.readouterr().out
    assert "REFERENCE.csv: 4 of 4 records (no header)" in out
    store = ECGStore(tmp_path / "s")
    m = store.manifest
    want = {f"cinc/{k}": v[1] for k, v in EXAMPLE.items()}
    assert all(lab == want[rid] for rid, lab in zip(m["parent_id"], m["labels"]))
    assert m.groupby("parent_id", sort=False)["window"].size().tolist() == [3, 1, 4, 1]
    assert set(m["lead_aliases"]) == {"ECG=I"}
    assert store.lead_mask[:, store.leads.index("I")].all()
    assert store.lead_mask.sum(axis=1).tolist() == [1] * len(store)


def test_holter_mlii_v5_fifteen_minutes(holter, tmp_path, capsys):
    assert main(["prepare", str(holter), "--out", str(tmp_path / "s"), *QUICK]) == 0
    store = ECGStore(tmp_path / "s")
    assert len(store) == 90 and store.manifest["start_s"].iloc[-1] == 890.0
    assert set(store.manifest["lead_aliases"]) == {"MLII=II"}
    present = [store.leads[k] for k in np.flatnonzero(store.lead_mask[0])]
    assert present == ["II", "V5"]
    # The same record with channels named ECG1 / ECG2 (no placement): refused, then aliased.
    sig = _holter_signal()
    write_wfdb16(tmp_path / "h2", "h200", sig, 360.0, ["ECG1", "ECG2"])
    rc = main(["prepare", str(tmp_path / "h2"), "--out", str(tmp_path / "t"), *QUICK])
    assert rc == 2 and "unknown lead 'ECG1'" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "h2"), "--out", str(tmp_path / "t"), *QUICK,
                 "--lead-alias", "ECG1=II", "--lead-alias", "ECG2=V5"]) == 0
    np.testing.assert_allclose(ECGStore(tmp_path / "t").signals, store.signals, atol=1e-6)
    # An unknown extra channel: refused, or dropped and counted when allowed.
    write_wfdb16(tmp_path / "h3", "h300", np.vstack([sig[:, :36000], sig[:1, :36000]]), 360.0,
                 ["MLII", "V5", "XYZ"])
    rc = main(["prepare", str(tmp_path / "h3"), "--out", str(tmp_path / "u"), *QUICK])
    assert rc == 2 and "unknown lead 'XYZ'" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "h3"), "--out", str(tmp_path / "u"), *QUICK,
                 "--allow-unknown-leads"]) == 0
    assert "unknown leads ['XYZ'] dropped in 1 records" in capsys.readouterr().out


def _vit(tmp_path, store_config):
    from ecgssl.api import load_encoder
    from ecgssl.models import create_encoder
    from ecgssl.train.export import export_encoder

    torch.manual_seed(0)
    export_encoder(create_encoder("vit_tiny", n_leads=12).eval(), tmp_path / "vit", store_config)
    return load_encoder(tmp_path / "vit.safetensors"), tmp_path / "vit.safetensors"


def test_embed_a_holter_record_any_length_and_its_store_alike(holter, tmp_path, capsys):
    store_dir = tmp_path / "s"
    assert main(["prepare", str(holter), "--out", str(store_dir), *QUICK]) == 0
    store = ECGStore(store_dir)
    enc, ckpt = _vit(tmp_path, store.config)
    from ecgssl.io import open_source

    rec = open_source(holter).read("long/h100")
    with pytest.raises(ValueError, match="lacks leads"):
        enc.embed(rec.signal, rec.fs, rec.leads)
    for mode in ("zero", "drop"):
        e = enc.embed_windows(rec.signal, rec.fs, rec.leads, missing_leads=mode)
        assert e.n_windows == 90 and e.aliases == {"MLII": "II"}
        files = {}
        for name, src in (("store", store_dir), ("records", holter)):
            out = tmp_path / f"{name}_{mode}.npz"
            assert main(["embed", str(ckpt), str(src), "--out", str(out), "--no-progress",
                         "--missing-leads", mode, "--aggregate", "none"]) == 0
            files[name] = np.load(out)
        assert "90 x 64 features from 90 windows of 1 records" in capsys.readouterr().out
        np.testing.assert_allclose(files["store"]["features"], e.windows, atol=1e-5)
        np.testing.assert_allclose(files["records"]["features"], e.windows, atol=1e-5)
        assert files["records"]["start_s"].tolist() == e.starts_s.tolist()
    mean = tmp_path / "mean.npz"
    assert main(["embed", str(ckpt), str(store_dir), "--out", str(mean), "--missing-leads",
                 "drop"]) == 0
    f = np.load(mean)
    assert f["features"].shape == (1, 64) and f["n_windows"].tolist() == [90]
    np.testing.assert_allclose(f["features"][0], e.mean, atol=1e-5)


def test_embed_joined_ludb_records_equals_each_record(shared_data, tmp_path, capsys):
    """Three LUDB records end to end: one 30 s recording, its windows = the three records."""
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.io import open_source

    src = open_source(shared_data / "ludb")
    recs = [src.read(f"ludb/{n}") for n in (1, 2, 3)]
    joined = np.concatenate([r.signal for r in recs], axis=1)
    config = {"fs": 250.0, "leads": LEADS_12, "n_samples": 2500, "hash": "x",
              "preprocess": PreprocessConfig(highpass_hz=0.5, beats=False).to_dict()}
    enc, ckpt = _vit(tmp_path, config)
    e = enc.embed_windows(joined, 500.0, recs[0].leads)
    assert e.n_windows == 3 and e.starts_s.tolist() == [0.0, 10.0, 20.0]
    each = np.stack([enc.embed(r.signal, r.fs, r.leads) for r in recs])
    np.testing.assert_allclose(e.windows, each, atol=1e-5)
    np.testing.assert_allclose(enc.embed(joined, 500.0, recs[0].leads), each.mean(0), atol=1e-5)
    folder = tmp_path / "joined"
    folder.mkdir()
    np.save(folder / "j.npy", joined)
    (folder / "j.json").write_text(json.dumps({"fs": 500, "leads": recs[0].leads}))
    out = tmp_path / "j.npz"
    assert main(["embed", str(ckpt), str(folder), "--out", str(out), "--aggregate", "none",
                 "--no-progress"]) == 0
    np.testing.assert_allclose(np.load(out)["features"], each, atol=1e-5)


def test_evaluate_refuses_a_labelled_store_with_unlabelled_windows(tmp_path, capsys):
    folder = make_own_data_folder(tmp_path / "af")
    (folder / "REFERENCE.csv").write_text("A00001,N\nA00003,O\n")  # two records unlabelled
    assert main(["prepare", str(folder), "--out", str(tmp_path / "s"), *QUICK,
                 "--lead-alias", "ECG=I"]) == 0
    assert "2 windows carry no label" in capsys.readouterr().out
    store = ECGStore(tmp_path / "s")
    with pytest.raises(ECGDataError, match=r"2 of 9 windows \(2 records, e.g. cinc/A00002, "
                       r"cinc/A00004\) carry no label.*unlabelled=negative"):
        check_unlabelled(store)
    assert "scored as negatives" in check_unlabelled(store, "negative")
    _, ckpt = _vit(tmp_path, store.config)
    rc = main(["evaluate", str(ckpt), "--data", str(tmp_path / "s"), "--out",
               str(tmp_path / "e"), "--tasks", "probe", "--no-progress"])
    assert rc == 2 and "carry no label" in capsys.readouterr().err


def test_folder_of_arrays_takes_its_source_options_through_set(tmp_path, capsys):
    """``.npy`` arrays without sidecars: rate and lead names are source options."""
    folder = tmp_path / "arrays"
    folder.mkdir()
    for k in range(2):
        np.save(folder / f"r{k}.npy", synthetic_ecg(1, 300.0, 20.0, seed=k))
    (folder / "labels.csv").write_text("r0,AF\nr1,N\n")
    args = ["prepare", str(folder), "--out", str(tmp_path / "s"), *QUICK, "--labels",
            str(folder / "labels.csv"), "--set", "source.fs=300", "--set", "source.leads=[ECG]",
            "--lead-alias", "ECG=I"]
    assert main(args) == 0
    store = ECGStore(tmp_path / "s")
    m = store.manifest
    assert len(store) == 4 and set(m["source_fs"]) == {300.0}
    assert m["labels"].tolist() == ["AF", "AF", "N", "N"]
    rc = main(["prepare", str(folder), "--out", str(tmp_path / "t"), *QUICK])  # no rate given
    assert rc == 2 and "'folder/r0': no sampling rate" in capsys.readouterr().err
