"""Released-checkpoint files: recognised by content, loaded with their spec, input converted."""

import numpy as np
import pytest
import torch

from ecgssl.api import describe_checkpoint, load_encoder
from ecgssl.data.leads import LEADS_8, LEADS_12
from ecgssl.errors import SpecMismatchError
from ecgssl.models import create_encoder
from ecgssl.models.foundation.checkpoints import detect
from ecgssl.train.export import encoder_spec

from .helpers import group, load_fixture


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("released")
    founder, _ = load_fixture("ecgfounder")
    stmem, _ = load_fixture("stmem")
    torch.save({"state_dict": group(founder, "l12.state"), "epoch": 3}, root / "founder.pth")
    torch.save({"model": group(stmem, "state")}, root / "stmem.pth")
    return root


def test_detect_by_contents(files):
    assert detect(torch.load(files / "founder.pth", weights_only=True)) == "founder"
    assert detect(torch.load(files / "stmem.pth", weights_only=True)) == "stmem"
    assert detect({"encoder": {"W_P.weight": torch.zeros(1)}}) is None


def test_load_encoder_gives_spec_licence_and_converts_input(files):
    enc = load_encoder(files / "founder.pth")
    pre, training = enc.preprocessing, enc.spec["training"]
    assert (pre["fs"], pre["n_samples"], pre["leads"]) == (500.0, 5000, LEADS_12)
    assert [s["op"] for s in pre["encoder_applies"]] == ["notch", "butter", "median_baseline",
                                                        "zscore"]
    assert training["pretraining_data"][0]["database"] == "HEEDB"
    assert training["load_report"]["dropped_tensors"]["dense head"] == 2
    # 8 leads at 250 Hz: refused (upsampling invents information) unless allowed; then
    # resampled to 500 Hz, III/aVR/aVL/aVF derived from I and II.
    rng = np.random.default_rng(0)
    x250 = rng.normal(size=(8, 2500)).astype(np.float32)
    with pytest.raises(SpecMismatchError, match="below the encoder's 500 Hz"):
        enc.embed(x250, 250.0, LEADS_8)
    z = enc.embed(x250, 250.0, LEADS_8, allow_upsampling=True)
    assert z.shape == (enc.pooled_dim,) and np.isfinite(z).all()
    with pytest.raises(SpecMismatchError, match="lacks leads"):
        enc.embed(np.zeros((2, 5000), np.float32), 500.0, ["V1", "V2"])
    # The architecture is on the registry: exports and random-init twins rebuild it.
    twin = create_encoder(enc.spec["encoder"]["name"], **enc.spec["encoder"]["overrides"])
    assert twin.embed_dim == enc.embed_dim
    assert encoder_spec(enc.module)["name"] == "ecgfounder_12lead"


def test_info_shows_licence_and_pretraining_data(files):
    text = describe_checkpoint(files / "stmem.pth")
    assert "CC BY-NC 4.0" in text and "NON-COMMERCIAL" in text
    assert "Chapman" in text and "250 Hz, 2250 samples" in text


def test_pickled_objects_are_refused_not_run(files):
    import argparse

    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1)}, files / "pickled.pth")
    with pytest.raises(SpecMismatchError, match="tensors only"):
        load_encoder(files / "pickled.pth")


@pytest.mark.parametrize("name", ["founder.pth", "stmem.pth"])
def test_frozen_encoder_segmentation_head_runs(files, name):
    from ecgssl.models.seg_heads import build_seg_model

    enc = load_encoder(files / name)
    seg = build_seg_model(enc.module, n_leads=12, freeze_encoder=True)
    n = enc.preprocessing["n_samples"]
    out = seg(torch.randn(2, 12, n))
    assert out.shape == (2, 12, 4, n) and torch.isfinite(out).all()


def test_ecgssl_info_prints_the_model_card(files, capsys):
    from ecgssl.cli import main

    assert main(["info", str(files / "founder.pth")]) == 0
    out = capsys.readouterr().out
    assert "ecgfounder_12lead" in out and "HEEDB" in out and "not stated" in out
    assert "500 Hz, 5000 samples" in out and '"op": "notch"' in out


@pytest.mark.parametrize("name", ["ecgfounder_12lead", "ecgfounder_1lead", "stmem_vit_base",
                                  "merl_resnet18", "merl_vit_tiny", "ecgfm_wav2vec2"])
def test_random_init_twins_are_finite(name):
    """The suite's random-init rows are built from the registry: fresh weights must work."""
    torch.manual_seed(0)
    enc = create_encoder(name).eval()
    x = torch.randn(2, len(enc.lead_order), enc.card.n_samples) * 0.5
    with torch.no_grad():
        z = enc(x)
    assert z.shape == (2, enc.pooled_dim) and torch.isfinite(z).all()
    assert z.std(0).mean() > 0  # two different inputs give different embeddings


def test_registry_n_leads_must_fit():
    assert create_encoder("ecgfounder_12lead", n_leads=12, filter_list=[8, 16],
                          m_blocks_list=[1, 1], base_filters=8, groups_width=4).embed_dim == 16
    with pytest.raises(ValueError, match="n_leads=8 does not fit"):
        create_encoder("stmem_vit_base", n_leads=8)
