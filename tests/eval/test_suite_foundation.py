"""`ecgssl evaluate` over three foundation encoders (fixture weights, released file layouts)
beside one of ours, on 30 LUDB records at 500 Hz; the overlap warning names ours."""

import json

import pytest
import torch
import yaml

from ecgssl.cli import main
from ecgssl.data.leads import LEADS_12
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import ECGStore, prepare_store
from ecgssl.eval.overlap import PretrainingOverlapWarning
from ecgssl.io import open_source
from ecgssl.models import create_encoder
from ecgssl.train.export import export_encoder
from ecgssl.train.run import _store_summary
from tests.models.foundation.helpers import group, load_fixture
from tests.models.foundation.test_merl import dequantised


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("suite_fm")
    prepare_store(open_source(shared_data / "ludb", checks=None), root / "store",
                  PreprocessConfig(fs=500.0, beats=False), workers=0, max_records=30,
                  progress=False)
    store = ECGStore(root / "store")
    founder, _ = load_fixture("ecgfounder")
    torch.save({"state_dict": group(founder, "l12.state")}, root / "founder.pth")
    merl, _ = load_fixture("merl")
    torch.save(dequantised(merl), root / "merl.pth")
    ecgfm, meta = load_fixture("ecgfm")
    torch.save({"model": group(ecgfm, "post.state")}, root / "ecgfm.pt")
    (root / "ecgfm.yaml").write_text(yaml.safe_dump({"model": meta["config"]}))
    torch.manual_seed(0)
    cnn = create_encoder("resnet1d_small", n_leads=12, widths=[8, 8, 8, 8, 16])
    # "Pretrained" on this very store: the training summary lists its record ids.
    export_encoder(cnn, root / "cnn", store.config, leads=list(LEADS_12),
                   training=_store_summary(store.path, store.config, len(store)))
    return store, root


def test_evaluate_foundation_encoders_beside_ours(setup, capsys):
    store, root = setup
    out = root / "report"
    with pytest.warns(PretrainingOverlapWarning, match="'cnn': 30 of 30 evaluation records"):
        rc = main(["evaluate", f"ecgfm={root / 'ecgfm.pt'}", f"founder={root / 'founder.pth'}",
                   f"merl={root / 'merl.pth'}",
                   f"cnn={root / 'cnn.safetensors'}", "--data", str(store.path), "--out",
                   str(out), "--tasks", "probe", "--folds", "3", "--no-progress",
                   "--set", "n_boot=10", "--set", "min_positives=6", "--set",
                   "supervised=false", "--set", "plots=false", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "report.json").read_text())
    text = (out / "report.md").read_text()
    for row in ("ecgfm", "founder", "merl", "cnn", "random-init ecgfounder_12lead",
                "random-init merl_resnet18", "random-init ecgfm_wav2vec2"):
        assert row in text, row
    assert "Pretraining overlap" in text and "founder: no evaluation record" in text
    sections = {s["title"]: s for s in res["sections"]}
    assert "Pretraining overlap" in sections
    overlap = res["meta"]["pretraining_overlap"]
    assert overlap["cnn"]["by_record_id"] == 30 and overlap["founder"]["by_database"] == {}
    probe = next(s for t, s in sections.items() if t.startswith("Linear probe"))
    assert {"ecgfm", "founder", "merl", "cnn"} <= {r["name"] for r in probe["rows"]}
    # ECG-FM was pretrained on PhysioNet 2021, which does not hold LUDB.
    assert overlap["ecgfm"]["by_database"] == {}


def test_evaluate_refuses_stmem_on_a_500hz_store(setup, capsys):
    store, root = setup
    stmem, _ = load_fixture("stmem")
    torch.save({"model": group(stmem, "state")}, root / "stmem.pth")
    rc = main(["evaluate", f"stmem={root / 'stmem.pth'}", "--data", str(store.path), "--out",
               str(root / "r2"), "--tasks", "probe", "--no-progress"])
    assert rc == 2
    assert "--set fs=250 --set window_s=9" in capsys.readouterr().err
