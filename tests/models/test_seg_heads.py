import pytest
import torch
from torch import nn

from ecgssl.models.seg_heads import (
    SegmentationModel,
    UNetDecoder,
    UpsamplingHead,
    build_seg_model,
)


class TinyCNN(nn.Module):
    """A 3-level CNN encoder exposing the pyramid interface (strides 1, 2, 4)."""

    pyramid_strides = (1, 2, 4)
    pyramid_channels = (8, 12, 16)
    stride = 4
    embed_dim = 16

    def __init__(self, n_leads):
        super().__init__()
        self.c0 = nn.Conv1d(n_leads, 8, 5, padding=2)
        self.c1 = nn.Conv1d(8, 12, 5, stride=2, padding=2)
        self.c2 = nn.Conv1d(12, 16, 5, stride=2, padding=2)
        self.bn = nn.BatchNorm1d(8)

    def feature_pyramid(self, x, leads=None):
        t = x.shape[-1]
        a = torch.relu(self.bn(self.c0(x)))
        b = torch.relu(self.c1(a))
        c = torch.relu(self.c2(b))
        return [a, b[..., : t // 2], c[..., : t // 4]]

    def forward_features(self, x, leads=None):
        return self.feature_pyramid(x)[-1]


class TinyViT(nn.Module):
    """Per-lead tokens (B, L * P, D), lead-major, like ecgssl.models.vit."""

    embed_dim = 8
    stride = 10

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(10, 8)

    def forward_tokens(self, x, leads=None):
        b, n_leads, t = x.shape
        return self.proj(x.reshape(b, n_leads, t // 10, 10)).reshape(b, -1, 8)

    def forward_features(self, x, leads=None):
        b, n_leads = x.shape[:2]
        return self.forward_tokens(x).view(b, n_leads, -1, 8).mean(1).transpose(1, 2)


class MapOnly(nn.Module):
    embed_dim = 8
    stride = 10

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv1d(3, 8, 10, stride=10)

    def forward_features(self, x, leads=None):
        return self.proj(x)


@pytest.mark.parametrize("t", [64, 70])
def test_unet_decoder_shapes(t):
    enc = TinyCNN(3)
    model = build_seg_model(enc, n_leads=3)
    assert isinstance(model.head, UNetDecoder) and model.mode == "pyramid"
    out = model(torch.randn(2, 3, t))
    assert out.shape == (2, 3, 4, t)


def test_vit_tokens_head_is_per_lead():
    model = build_seg_model(TinyViT(), n_leads=3, hidden=16)
    assert isinstance(model.head, UpsamplingHead) and model.mode == "tokens"
    x = torch.randn(2, 3, 100)
    out = model(x)
    assert out.shape == (2, 3, 4, 100)
    # Per-lead decoding: changing lead 0 must not change lead 1's logits.
    model.eval()
    x2 = x.clone()
    x2[:, 0] += 1.0
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, 1], model(x2)[:, 1])


def test_feature_map_head():
    model = build_seg_model(MapOnly(), n_leads=3, hidden=16)
    assert model.mode == "features"
    assert model(torch.randn(2, 3, 100)).shape == (2, 3, 4, 100)


def test_freeze_encoder_keeps_eval_and_no_grad():
    enc = TinyCNN(2)
    model = build_seg_model(enc, n_leads=2, freeze_encoder=True)
    model.train()
    assert not enc.training and model.head.training
    out = model(torch.randn(2, 2, 32))
    out.sum().backward()
    assert all(p.grad is None for p in enc.parameters())
    assert any(p.grad is not None for p in model.head.parameters())


def test_validation_errors():
    with pytest.raises(ValueError):
        UNetDecoder([8, 16], [2, 1], n_leads=2)
    with pytest.raises(ValueError):
        UNetDecoder([8], [1, 2], n_leads=2)
    with pytest.raises(ValueError):
        UpsamplingHead(8, 10, n_leads=2, kernel=4)
    with pytest.raises(ValueError):
        build_seg_model(nn.Linear(2, 2), n_leads=2)
    with pytest.raises(ValueError):
        SegmentationModel(TinyCNN(2), nn.Identity(), "bogus", False)
    dec = UNetDecoder([8, 12, 16], [1, 2, 4], n_leads=2)
    with pytest.raises(ValueError):
        dec([torch.zeros(1, 8, 8)], torch.zeros(1, 2, 8))


def test_real_encoders_if_available():
    from ecgssl.models import create_encoder

    enc = create_encoder("unet1d", n_leads=2)
    model = build_seg_model(enc, n_leads=2)
    assert model(torch.randn(1, 2, 160)).shape == (1, 2, 4, 160)
    vit = create_encoder("vit_tiny", n_leads=2, n_patches=4)
    model = build_seg_model(vit, n_leads=2)
    assert model.mode == "tokens"
    assert model(torch.randn(1, 2, 200)).shape == (1, 2, 4, 200)
