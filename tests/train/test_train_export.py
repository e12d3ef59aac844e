"""Encoder export round trip (inference input: tests/data/test_inference.py)."""

import json

import numpy as np
import pytest
import torch

from ecgssl.data.leads import LEADS_8
from ecgssl.errors import SpecMismatchError
from ecgssl.models import create_encoder
from ecgssl.train.export import export_encoder, load_encoder, read_spec

STORE_CONFIG = {"fs": 250, "leads": LEADS_8, "n_samples": 2500, "hash": "abc",
                "preprocess": {"filters": None, "normalisation": None, "fs": 250}}


@pytest.mark.parametrize("name, kwargs, n_leads", [("vit_tiny", {"n_leads": 8}, 8),
                                                   ("resnet1d_small", {"n_leads": 8}, 8)])
def test_export_round_trip(tmp_path, name, kwargs, n_leads):
    torch.manual_seed(0)
    encoder = create_encoder(name, **kwargs).eval()
    weights, meta = export_encoder(encoder, tmp_path / "enc", STORE_CONFIG,
                                   training={"method": "jepa", "n_windows": np.int64(10)})
    assert weights.name == "enc.safetensors" and meta.name == "enc.json"
    spec = json.loads(meta.read_text())
    assert spec["format"] == "ecgssl-encoder" and spec["ecgssl_version"]
    assert spec["preprocessing"]["units"] == "mV"
    assert spec["preprocessing"]["leads"] == LEADS_8 and spec["preprocessing"]["fs"] == 250
    assert spec["training"]["n_windows"] == 10
    loaded, spec2 = load_encoder(tmp_path / "enc.json")
    assert spec2 == spec and not loaded.training
    x = torch.randn(2, n_leads, 2500)
    with torch.no_grad():
        assert torch.equal(encoder(x), loaded(x))


def test_load_refuses_mismatched_weights(tmp_path):
    export_encoder(create_encoder("vit_tiny", n_leads=8), tmp_path / "enc", STORE_CONFIG)
    spec = read_spec(tmp_path / "enc")
    spec["encoder"]["overrides"]["depth"] = 3
    (tmp_path / "enc.json").write_text(json.dumps(spec))
    with pytest.raises(SpecMismatchError, match="does not fit"):
        load_encoder(tmp_path / "enc")


def test_read_spec_refuses_other_files(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(SpecMismatchError, match="not an ecgssl-encoder"):
        read_spec(tmp_path / "x.json")
