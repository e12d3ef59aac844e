"""Every subcommand on tiny inputs, including its error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ecgssl.cli import main
from ecgssl.data.leads import LEADS_8

LUDB_RECORDS = 40


@pytest.fixture(scope="module")
def small(tmp_path_factory, shared_data):
    """A 12-record LUDB store, a tiny pretraining run and a tiny exported CNN."""
    root = tmp_path_factory.mktemp("cli")
    store = root / "store"
    assert main(["prepare", str(shared_data / "ludb"), "--out", str(store), "--max-records",
                 str(LUDB_RECORDS), "--workers", "0", "--no-progress"]) == 0
    torch.set_num_threads(1)
    run = root / "jepa"
    assert main(["pretrain", "--recipe", "configs/jepa_cpu.yaml", "--data", str(store),
                 "--out", str(run), "train.max_steps=4", "train.batch_size=4",
                 "train.warmup_epochs=0"]) == 0
    from ecgssl.data.store import ECGStore
    from ecgssl.models import create_encoder
    from ecgssl.train.export import export_encoder

    cnn = create_encoder("resnet1d_small", n_leads=8, widths=[8, 8, 8, 8, 16])
    export_encoder(cnn, root / "cnn", ECGStore(store).config, leads=list(LEADS_8))
    return {"root": root, "store": store, "run": run, "cnn": root / "cnn.safetensors"}


def test_help_has_an_example_for_every_subcommand(capsys):
    for command in ["prepare", "info", "pretrain", "evaluate", "embed", "delineate", "report",
                    "demo"]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example:" in capsys.readouterr().out


def test_pretrain_writes_a_run_and_info_describes_it(small, capsys):
    run = small["run"]
    for name in ["config.yaml", "metrics.csv", "encoder.safetensors", "encoder.json"]:
        assert (run / name).exists(), name
    spec = json.loads((run / "encoder.json").read_text())
    assert spec["preprocessing"]["leads"] == LEADS_8  # the leads the encoder reads
    assert main(["info", str(run / "encoder.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "250 Hz" in out and "I, II, V1" in out


def test_pretrain_errors(small, capsys):
    rc = main(["pretrain", "--recipe", "configs/jepa_cpu.yaml", "--data", str(small["root"]),
               "--out", str(small["root"] / "x")])
    assert rc == 2 and "not a prepared store" in capsys.readouterr().err
    rc = main(["pretrain", "--recipe", "configs/jepa_cpu.yaml", "--data", str(small["store"]),
               "--out", str(small["root"] / "x"), "train.lrr=1"])
    assert rc == 2 and "lrr" in capsys.readouterr().err


def test_embed_records_and_store(small, shared_data, tmp_path, capsys):
    out = tmp_path / "f.npz"
    assert main(["embed", str(small["run"]), str(small["store"]), "--out", str(out)]) == 0
    f = np.load(out)
    assert f["features"].shape == (LUDB_RECORDS, 64) and len(f["record_id"]) == LUDB_RECORDS
    # Raw records at their own rate (500 Hz CinC) are converted by the encoder's spec.
    out2 = tmp_path / "cinc.npz"
    assert main(["embed", str(small["run"]), str(shared_data / "cinc2021-sample"), "--out",
                 str(out2), "--no-progress", "--skip-bad"]) == 0
    assert np.load(out2)["features"].shape[1] == 64
    # --pool meanmax: mean and max over time, twice the features, the same mean half.
    out3 = tmp_path / "mm.npz"
    assert main(["embed", str(small["run"]), str(small["store"]), "--out", str(out3),
                 "--pool", "meanmax"]) == 0
    mm = np.load(out3)["features"]
    assert mm.shape == (LUDB_RECORDS, 128)
    np.testing.assert_allclose(mm[:, :64], f["features"], rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    rc = main(["embed", str(small["root"] / "nope.safetensors"), str(small["store"]), "--out",
               str(out)])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_embed_refuses_a_lead_mismatch_and_a_wrong_rate(small, tmp_path, capsys):
    from ecgssl.api import load_encoder
    from ecgssl.errors import SpecMismatchError

    enc = load_encoder(small["cnn"])  # needs exactly I, II, V1-V6
    x = np.random.default_rng(0).normal(0, 0.3, (2, 2500)).astype(np.float32)
    with pytest.raises(SpecMismatchError, match="lacks leads"):
        enc.embed(x, 250.0, ["II", "V1"])
    with pytest.raises(SpecMismatchError, match="needs exactly the leads"):
        enc.embed(x, 250.0, ["II", "V1"], missing_leads="drop")
    with pytest.raises(SpecMismatchError, match="rational ratio|2.00 s|expects"):
        enc.embed(np.zeros((8, 100), np.float32), 50.0, LEADS_8)
    np.save(tmp_path / "sig.npy", np.zeros((2, 5000), np.float32))
    rc = main(["delineate", str(tmp_path / "sig.npy"), "--model", str(tmp_path / "m.pt"),
               "--fs", "500", "--leads", "II,V1"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_evaluate_delineate_and_report(small, shared_data, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", f"jepa={small['run']}", f"cnn={small['cnn']}", "--data",
               str(small["store"]), "--out", str(out), "--folds", "3", "--no-progress",
               "--set", "seg_epochs=1", "--set", "seg_folds=[0]", "--set", "n_boot=20",
               "--set", "min_positives=8", "--set", "supervised=false",
               "--set", "classical=false", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert "random-init" in report and "Linear probe" in report and "segmentation" in report
    model = out / "segmentation_model.safetensors"
    assert model.exists() and list((out / "figures").glob("*.png"))
    capsys.readouterr()
    rc = main(["delineate", str(shared_data / "ludb" / "data" / "3"), "--model", str(model),
               "--plot", str(tmp_path / "w.png"), "--json", str(tmp_path / "w.json")])
    assert rc == 0 and "QRS" in capsys.readouterr().out
    assert (tmp_path / "w.png").exists()
    assert set(json.loads((tmp_path / "w.json").read_text())["waves"]) == set(LEADS_8)
    rc = main(["evaluate", str(small["run"]), "--data", str(small["store"]), "--out",
               str(out), "--set", "bogus=1"])
    assert rc == 2 and "unknown evaluation options" in capsys.readouterr().err
    assert main(["report", str(small["run"]), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.md").exists()


def test_evaluate_refuses_a_store_at_another_rate(small, shared_data, tmp_path, capsys):
    store500 = tmp_path / "s500"
    assert main(["prepare", str(shared_data / "ludb"), "--out", str(store500), "--max-records",
                 "3", "--workers", "0", "--no-progress", "--set", "fs=500",
                 "--set", "beats=false"]) == 0
    capsys.readouterr()
    rc = main(["evaluate", str(small["run"]), "--data", str(store500), "--out",
               str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and "expects 250 Hz" in err and "500 Hz" in err


def test_demo_rejects_a_wrong_path(tmp_path, capsys):
    rc = main(["demo", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d")])
    assert rc == 2 and "LUDB not found" in capsys.readouterr().err


def test_demo_summary_prints_paired_differences():
    from ecgssl.demo import _summary_lines

    results = {
        "probe": {"JEPA": {"macro_auroc": {"mean": 0.61}}},
        "paired_probe": {"JEPA": {"delta": 0.047, "ci": [0.010, 0.084], "vs": "random-init vit"}},
        "paired_segmentation": {"JEPA (frozen encoder + decoder)": {"delta_f1": -0.075,
                                                                    "ci_f1": [-0.086, -0.063]}},
    }
    text = "\n".join(_summary_lines(results))
    assert "JEPA: probe +0.047 [+0.010, +0.084] vs random-init vit" in text
    assert "segmentation mean F1 -0.075 [-0.086, -0.063]" in text


def test_delineate_without_a_model_single_and_batch(shared_data, tmp_path, capsys):
    """The bundled model: one record printed, a folder delineated into one CSV, R-peaks too."""
    import csv
    import shutil

    rec = shared_data / "ludb" / "data" / "4"
    assert main(["delineate", str(rec), "--only-leads", "II,v1", "--out",
                 str(tmp_path / "one.csv"), "--json", str(tmp_path / "one.json")]) == 0
    out = capsys.readouterr().out
    assert "QRS" in out and "II" in out
    assert set(json.loads((tmp_path / "one.json").read_text())["waves"]) == {"II", "V1"}
    # A folder of 3 LUDB records (copied: ecgssl never writes into the data folder).
    folder = tmp_path / "ludb"
    (folder / "data").mkdir(parents=True)
    for n in ("1", "2", "3"):
        for f in (shared_data / "ludb" / "data").glob(f"{n}.*"):
            shutil.copy(f, folder / "data" / f.name)
    (folder / "RECORDS").write_text("data/1\ndata/2\ndata/3\n")
    assert main(["delineate", str(folder), "--kind", "ludb", "--only-leads", "II", "--out",
                 str(tmp_path / "waves.csv"), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "waves.csv")))
    assert {r["record_id"] for r in rows} == {"ludb/1", "ludb/2", "ludb/3"}
    assert {r["wave"] for r in rows} == {"P", "QRS", "T"}
    assert main(["delineate", str(folder), "--kind", "ludb", "--rpeaks", "--out",
                 str(tmp_path / "r.csv"), "--no-progress"]) == 0
    peaks = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(peaks) > 20 and set(peaks[0]) == {"record_id", "lead", "rpeak_s"}
    capsys.readouterr()
    assert main(["delineate", str(folder), "--kind", "ludb"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["delineate", str(rec), "--only-leads", "X9"]) == 2
    assert "X9" in capsys.readouterr().err


def test_a_broken_subcommand_module_fails_loudly(monkeypatch):
    """A failing import of a command module (ecgssl.cli.pretrain) is an ImportError naming it,
    not a parser that lacks 'pretrain' ("invalid choice")."""
    import sys

    from ecgssl import cli
    from ecgssl.cli import build_parser

    monkeypatch.setitem(sys.modules, "ecgssl.cli.pretrain", None)  # import now raises ImportError
    monkeypatch.delattr(cli, "pretrain", raising=False)  # (an earlier import set it)
    with pytest.raises(ImportError, match=r"ecgssl\.cli\.pretrain"):
        build_parser()
