"""Encoder export round trip, and input checking against the export's preprocessing spec."""

import json

import numpy as np
import pytest
import torch

from ecgssl.data.leads import LEADS_8, LEADS_12
from ecgssl.errors import SpecMismatchError
from ecgssl.models import create_encoder
from ecgssl.train.export import check_input, export_encoder, load_encoder, read_spec

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


SPEC = {"preprocessing": {"fs": 250.0, "leads": LEADS_8, "n_samples": 2500, "units": "mV"}}


def test_check_input_resamples_reorders_and_crops():
    fs, n = 500, 5400  # 10.8 s at 500 Hz, 12 leads in a shuffled order
    leads = list(reversed(LEADS_12))
    t = np.arange(n) / fs
    x = np.stack([np.sin(2 * np.pi * (1 + k) * t) for k in range(12)]).astype(np.float32)
    adapter = check_input(SPEC, fs, leads, n)
    assert (adapter.up, adapter.down) == (1, 2) and adapter.crop == 200 and adapter.pad == 0
    y = adapter(x)
    assert y.shape == (8, 2500) and y.dtype == np.float32
    t2 = np.arange(2500) / 250
    for row, name in enumerate(LEADS_8):
        k = leads.index(name)
        want = np.sin(2 * np.pi * (1 + k) * t2)
        assert np.abs(y[row, 50:-50] - want[50:-50]).max() < 0.02, name
    # Torch in, torch out; batched input.
    yt = adapter(torch.from_numpy(np.stack([x, x])))
    assert isinstance(yt, torch.Tensor) and yt.shape == (2, 8, 2500)


def test_check_input_derives_limb_leads_and_pads_a_little():
    spec = {"fs": 250, "leads": LEADS_12, "n_samples": 2500, "units": "mV"}
    x = np.random.default_rng(0).standard_normal((8, 2400)).astype(np.float32)
    adapter = check_input(spec, 250, LEADS_8, 2400)
    y = adapter(x)
    assert y.shape == (12, 2500) and adapter.pad == 100
    i, ii = x[0], x[1]
    np.testing.assert_allclose(y[2, :2400], ii - i, atol=1e-6)  # III
    np.testing.assert_allclose(y[3, :2400], -(i + ii) / 2, atol=1e-6)  # aVR
    assert not y[:, 2400:].any()


def test_check_input_refusals_and_reduced_leads():
    with pytest.raises(SpecMismatchError, match=r"lacks leads \['V1'"):
        check_input(SPEC, 250, ["I", "II"], 2500)
    with pytest.raises(SpecMismatchError, match="pads at most"):
        check_input(SPEC, 250, LEADS_8, 1000)
    with pytest.raises(SpecMismatchError, match="expects mV"):
        check_input(SPEC, 250, LEADS_8, 2500, units="uV")
    with pytest.raises(SpecMismatchError, match="none of the encoder's leads"):
        check_input(SPEC, 250, ["MLII"], 2500, missing_leads="drop")
    with pytest.raises(SpecMismatchError, match="duplicate"):
        check_input(SPEC, 250, ["I", "i"], 2500)
    x = np.ones((1, 2500), np.float32)
    zero = check_input(SPEC, 250, ["II"], 2500, missing_leads="zero")
    assert zero(x).shape == (8, 2500) and zero.present == [False, True] + [False] * 6
    drop = check_input(SPEC, 250, ["ii"], 2500, missing_leads="drop")
    assert drop.leads == ["II"] and drop(x).shape == (1, 2500)
