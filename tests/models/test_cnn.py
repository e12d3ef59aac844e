"""1-D CNN encoders: shapes, strides, pyramid, odd lengths, spec round trip, validation."""

import pytest
import torch

from ecgssl.errors import SpecMismatchError
from ecgssl.models import cnn
from ecgssl.models.registry import _REGISTRY

TINY = {"widths": (4, 8, 8, 16, 16)}
BUILDERS = {"resnet1d_small": cnn.resnet1d_small, "resnet1d_base": cnn.resnet1d_base,
            "unet1d": cnn.unet1d}


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("t", [256, 250, 37])
def test_interface_shapes(name, t):
    enc = BUILDERS[name](n_leads=3, **TINY)
    assert enc.stride == 16 and enc.embed_dim == 16
    x = torch.randn(2, 3, t)
    pyr = enc.feature_pyramid(x)
    assert [p.shape[-1] for p in pyr] == [t // s for s in enc.pyramid_strides]
    assert [p.shape[1] for p in pyr] == list(enc.pyramid_channels)
    assert enc.forward_features(x).shape == (2, 16, t // 16)
    assert torch.allclose(enc(x), enc.forward_features(x).mean(-1))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_registered_and_spec_round_trip(name):
    assert name in _REGISTRY
    enc = BUILDERS[name](n_leads=2, norm="batch", **TINY).eval()
    clone = _REGISTRY[enc.spec["name"]](**enc.spec).eval()
    clone.load_state_dict(enc.state_dict())
    x = torch.randn(1, 2, 64)
    assert torch.allclose(enc(x), clone(x))


def test_right_padding_only_affects_the_end():
    # Right-padding an odd length must leave the first feature steps, which only see the start
    # of the signal, unchanged (BatchNorm in eval mode: every operation is local in time).
    enc = cnn.resnet1d_small(n_leads=1, norm="batch", **TINY).eval()
    x = torch.randn(1, 1, 512)
    a = enc.forward_features(x)[..., :8]
    b = enc.forward_features(x[..., :500])[..., :8]
    assert torch.allclose(a, b, atol=1e-5)


def test_groupnorm_is_batch_independent():
    enc = cnn.unet1d(n_leads=2, **TINY).train()
    x = torch.randn(4, 2, 64)
    assert torch.allclose(enc(x)[:1], enc(x[:1]), atol=1e-5)


def test_gradients_flow():
    enc = cnn.resnet1d_small(n_leads=12, widths=(8, 8, 16, 16, 32))
    enc(torch.randn(2, 12, 160)).sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_validation():
    enc = cnn.resnet1d_small(n_leads=3, leads=["I", "II", "V1"], **TINY)
    with pytest.raises(SpecMismatchError):
        enc(torch.randn(1, 4, 64))
    with pytest.raises(SpecMismatchError):
        enc(torch.randn(1, 3, 8))
    with pytest.raises(SpecMismatchError):
        enc(torch.randn(1, 3, 64), leads=["I", "II", "V2"])
    with pytest.raises(ValueError):
        cnn.resnet1d_small(n_leads=3, norm="layer")
    with pytest.raises(ValueError):
        cnn.unet1d(n_leads=3, widths=(4, 8))
    with pytest.raises(ValueError):
        cnn.resnet1d_small(n_leads=2, leads=["I"])
