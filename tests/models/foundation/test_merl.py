"""Golden test: MERL's ResNet ECG encoder loaded from the authors' tensor layout matches their
code (fixture weights are int8 codes x scale; their model ran on exactly those values)."""

import numpy as np
import pytest
import torch

from ecgssl.models.foundation import merl
from ecgssl.models.foundation.preprocess import apply_steps

from .helpers import assert_close, group, load_fixture


def dequantised(tensors):
    state = group(tensors, "state")
    out = {k: v for k, v in state.items() if not k.endswith((".int8", ".scale"))}
    for k in state:
        if k.endswith(".int8"):
            name = k[: -len(".int8")]
            out[name] = state[k].float() * state[f"{name}.scale"]
    return out


@pytest.fixture(scope="module")
def fixture():
    tensors, _ = load_fixture("merl")
    return tensors, dequantised(tensors)


def test_resnet_matches_authors_code(fixture):
    tensors, state = fixture
    enc, report = merl.from_state_dict(state, authors_steps=False)
    assert enc.spec["overrides"]["depths"] == [1, 1, 1, 1]
    assert enc.spec["overrides"]["widths"] == [64, 128, 256, 512]
    assert report["dropped_tensors"]["linear head"] == 2
    with torch.no_grad():
        assert_close(enc(tensors["x"]), tensors["features"])


def test_raw_record_end_to_end(fixture):
    tensors, state = fixture
    enc, _ = merl.from_state_dict(state)
    raw = tensors["record.raw"]
    with torch.no_grad():
        assert_close(enc(raw[None]), tensors["record.features"])
    scaled = apply_steps(raw.numpy(), 500.0, merl.STEPS)
    assert scaled.min() == 0.0 and abs(scaled.max() - 1.0) < 1e-6


def test_full_clip_model_prefix_and_refusals(fixture):
    tensors, state = fixture
    full = {f"ecg_encoder.{k}": v for k, v in state.items()}
    full["proj_t.0.weight"] = torch.zeros(2, 2)
    enc, report = merl.from_state_dict(full, authors_steps=False)
    assert report["dropped_tensors"]["not the ECG encoder (text model, projections)"] == 1
    with torch.no_grad():
        assert_close(enc(tensors["x"]), tensors["features"])
    with pytest.raises(ValueError, match="bottleneck"):
        merl.from_state_dict({**state, "layer1.0.conv3.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="does not know"):
        merl.map_state_dict({"conv1.weight": torch.zeros(1), "layer1.0.foo.weight": 0})


def test_released_configuration():
    enc = merl.merl_resnet18()
    assert enc.embed_dim == 512 and enc.stride == 16
    assert enc.forward_features(torch.zeros(1, 12, 5000)).shape == (1, 512, 313)
    assert np.isclose(sum(p.numel() for p in enc.parameters()) / 1e6, 3.85, atol=0.1)


def test_vit_matches_authors_code():
    tensors, meta = load_fixture("merl_vit")
    raw = load_fixture("merl")[0]["record.raw"]
    enc, report = merl.from_state_dict(group(tensors, "state"), authors_steps=False)
    assert isinstance(enc, merl.MERLViTEncoder) and enc.spec["overrides"]["heads"] == 2
    with torch.no_grad():
        assert_close(enc(tensors["x"]), tensors["features"])
        assert enc.forward_features(tensors["x"]).shape == (1, 32, 100)
    enc, _ = merl.from_state_dict({f"ecg_encoder.{k}": v
                                   for k, v in group(tensors, "state").items()})
    with torch.no_grad():  # end to end: raw mV, their min-max, their ViT
        assert_close(enc(raw[None]), tensors["record.features"])
    with pytest.raises(ValueError, match="positional embedding per patch"):
        enc(torch.zeros(1, 12, 2500))
