"""ST-MEM's ViT: separator tokens and lead embeddings, per-lead visible sets, the contract."""

import pytest
import torch

from ecgssl.data.leads import LEADS_12
from ecgssl.models.registry import create_encoder
from ecgssl.train.export import encoder_spec


def _enc(**kw):
    return create_encoder("vit_tiny_stmem", depth=1, n_patches=10, patch_size=5, **kw).eval()


def test_tokens_features_and_pooling_follow_the_vit_contract():
    enc = _enc()
    x = torch.randn(2, 12, 50)
    assert enc.forward_tokens(x).shape == (2, 12 * 10, 64)
    assert enc.forward_features(x).shape == (2, 64, 10)
    assert enc(x).shape == (2, 64)
    assert enc.forward_visible(x).shape == (2, 12, 12, 64)  # + 2 separators per lead
    assert enc.attention == "full"
    with pytest.raises(ValueError, match="not a lead x patch grid"):
        enc.set_attention("cropa")


def test_a_lead_subset_uses_its_own_lead_embeddings():
    enc = _enc()
    x = torch.randn(1, 2, 50)
    a = enc.forward_tokens(x, leads=["I", "II"])
    b = enc.forward_tokens(x, leads=["V1", "V2"])
    assert a.shape == (1, 20, 64) and not torch.allclose(a, b)


def test_visible_tokens_do_not_see_the_masked_patches():
    enc = _enc()
    x = torch.randn(2, 12, 50)
    keep = torch.stack([torch.randperm(10)[:3].sort().values for _ in range(24)]).view(2, 12, 3)
    y = x.clone().view(2, 12, 10, 5)
    hidden = torch.ones(2, 12, 10, dtype=torch.bool)
    hidden.scatter_(2, keep, False)
    y[hidden] = torch.randn(int(hidden.sum()), 5)  # change only the masked patches
    a = enc.forward_visible(x, keep=keep)
    b = enc.forward_visible(y.view(2, 12, 50), keep=keep)
    assert torch.allclose(a, b, atol=1e-6)


def test_rebuilds_from_its_spec():
    enc = _enc(input_scale=4.0, pool="meanmax")
    spec = encoder_spec(enc)
    assert spec["name"] == "vit_tiny_stmem" and spec["overrides"]["lead_names"] == LEADS_12
    again = create_encoder(spec["name"], **spec["overrides"]).eval()
    again.load_state_dict(enc.state_dict())
    x = torch.randn(2, 12, 50)
    assert torch.equal(again(x), enc(x))
