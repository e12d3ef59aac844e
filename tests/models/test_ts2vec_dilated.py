"""TS2Vec's dilated encoder: the encoder interface, its receptive field, rebuild from the spec."""

import pytest
import torch

from ecgssl.errors import SpecMismatchError
from ecgssl.models.registry import create_encoder
from ecgssl.train.export import encoder_spec


def _enc(**kw):
    return create_encoder("ts2vec_dilated", **{"n_leads": 3, "hidden": 8, "depth": 3,
                                               "out_dim": 6, "dropout": 0.0, **kw}).eval()


def test_interface_shapes_and_pooling():
    enc = _enc(pool="meanmax")
    x = torch.randn(2, 3, 101)
    assert enc.stride == 1 and enc.embed_dim == 6
    assert enc.forward_features(x).shape == (2, 6, 101)
    assert [m.shape for m in enc.feature_pyramid(x)] == [(2, 6, 101)]
    h = enc.forward_features(x)
    assert torch.allclose(enc(x), torch.cat([h.mean(-1), h.amax(-1)], -1))
    assert enc.pooled_dim == 12


def test_receptive_field_doubles_per_block():
    # 3 hidden blocks + 1 output block, dilations 1, 2, 4, 8, two kernel-3 convs each:
    # radius 2 * (1 + 2 + 4 + 8) = 30 samples.
    torch.manual_seed(0)
    enc = _enc().double()
    x = torch.randn(1, 3, 200, dtype=torch.float64)
    y = x.clone()
    y[0, :, 100] += 5.0
    diff = (enc.forward_features(x) - enc.forward_features(y)).abs().sum(1)[0]
    changed = (diff > 0).nonzero().flatten()
    assert int(changed.min()) == 70 and int(changed.max()) == 130


def test_rebuilds_from_its_spec_and_checks_inputs():
    enc = _enc(leads=["I", "II", "V1"])
    spec = encoder_spec(enc)
    again = create_encoder(spec["name"], **spec["overrides"]).eval()
    again.load_state_dict(enc.state_dict())
    x = torch.randn(2, 3, 50)
    assert torch.equal(again(x), enc(x))
    with pytest.raises(SpecMismatchError, match="expects"):
        enc(torch.randn(2, 4, 50))
    with pytest.raises(SpecMismatchError, match="built for leads"):
        enc(x, leads=["I", "II", "V2"])
    with pytest.raises(ValueError, match="timestamp_mask"):
        enc.forward_features(x, timestamp_mask=torch.zeros(2, 49, dtype=torch.bool))
