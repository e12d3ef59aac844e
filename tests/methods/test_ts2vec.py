"""TS2Vec: losses against slow references, crops, timestamp masking, a short pretraining."""

import math

import pytest
import torch
from torch import nn

from ecgssl.data.leads import LEADS_12
from ecgssl.methods.registry import create_method
from ecgssl.methods.ts2vec import (
    TS2Vec,
    hierarchical_contrastive_loss,
    instance_contrastive_loss,
    temporal_contrastive_loss,
)
from tests.methods.pretrain_helpers import mean, pretrain_losses, tiny_store


def _ref_instance(z1, z2):
    """-log exp(r_it.r'_it) / (sum_j exp(r_it.r'_jt) + sum_{j != i} exp(r_it.r_jt)), both views
    as anchors, averaged over anchors and time."""
    b, t_len, _ = z1.shape
    terms = []
    for a, o in ((z1, z2), (z2, z1)):
        for t in range(t_len):
            for i in range(b):
                den = sum(math.exp(float(a[i, t] @ o[j, t])) for j in range(b))
                den += sum(math.exp(float(a[i, t] @ a[j, t])) for j in range(b) if j != i)
                terms.append(-(float(a[i, t] @ o[i, t]) - math.log(den)))
    return sum(terms) / len(terms)


def _ref_temporal(z1, z2):
    b, t_len, _ = z1.shape
    terms = []
    for a, o in ((z1, z2), (z2, z1)):
        for i in range(b):
            for t in range(t_len):
                den = sum(math.exp(float(a[i, t] @ o[i, s])) for s in range(t_len))
                den += sum(math.exp(float(a[i, t] @ a[i, s])) for s in range(t_len) if s != t)
                terms.append(-(float(a[i, t] @ o[i, t]) - math.log(den)))
    return sum(terms) / len(terms)


def _ref_hierarchical(z1, z2, alpha):
    total, scales = 0.0, 0
    while z1.shape[1] > 1:
        total += alpha * _ref_instance(z1, z2) + (1 - alpha) * _ref_temporal(z1, z2)
        scales += 1
        n = z1.shape[1] // 2  # max over pairs of steps, an odd last one dropped
        z1 = torch.stack([torch.maximum(z1[:, 2 * k], z1[:, 2 * k + 1]) for k in range(n)], 1)
        z2 = torch.stack([torch.maximum(z2[:, 2 * k], z2[:, 2 * k + 1]) for k in range(n)], 1)
    total += alpha * _ref_instance(z1, z2)
    return total / (scales + 1)


@pytest.fixture
def reps():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(3, 5, 4, generator=g, dtype=torch.float64) * 0.7,
            torch.randn(3, 5, 4, generator=g, dtype=torch.float64) * 0.7)


def test_instance_and_temporal_losses_match_the_references(reps):
    z1, z2 = reps
    assert float(instance_contrastive_loss(z1, z2)) == pytest.approx(_ref_instance(z1, z2),
                                                                     rel=1e-9)
    assert float(temporal_contrastive_loss(z1, z2)) == pytest.approx(_ref_temporal(z1, z2),
                                                                     rel=1e-9)


@pytest.mark.parametrize("alpha", [0.5, 0.2])
def test_hierarchical_loss_matches_the_reference(reps, alpha):
    z1, z2 = reps  # 5 steps -> 2 -> 1: three scales, an odd step dropped on the way
    got = float(hierarchical_contrastive_loss(z1, z2, alpha=alpha))
    assert got == pytest.approx(_ref_hierarchical(z1, z2, alpha), rel=1e-9)


def test_degenerate_sizes_give_zero_with_a_gradient():
    z = torch.randn(1, 3, 4, requires_grad=True)
    loss = instance_contrastive_loss(z, z)
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    assert float(temporal_contrastive_loss(z[:, :1], z[:, :1])) == 0.0


class PointwiseEncoder(nn.Module):
    """1x1 convolution: each output step sees only its own input sample (stride 1)."""

    embed_dim, stride = 4, 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(12, 4, 1)

    def forward_features(self, x, leads=None):
        return self.conv(x)


def test_crops_overlap_on_whole_steps_inside_the_section():
    enc = PointwiseEncoder()
    enc.stride = 5
    m = TS2Vec(enc, max_length=200, min_overlap=23, seed=3)
    for _ in range(200):
        a1, b1, a2, b2 = m.draw_crops(1000)
        assert 0 <= a1 <= a2 < b1 <= b2 <= 1000 and b2 - a1 <= 200
        assert all(v % 5 == 0 for v in (a1, b1, a2, b2)) and b1 - a2 >= 25


def test_the_overlap_representations_are_of_the_same_samples():
    m = TS2Vec(PointwiseEncoder(), mask_prob=0.0, seed=1)
    x = torch.randn(2, 12, 300)
    for _ in range(10):
        r1, r2 = m.overlap_representations(x, m.draw_crops(300))
        assert r1.shape == r2.shape and torch.allclose(r1, r2)


def test_timestamp_masking_is_in_the_latent_for_the_dilated_encoder():
    from ecgssl.models.registry import create_encoder

    enc = create_encoder("ts2vec_dilated", n_leads=12, hidden=8, depth=2, out_dim=8).eval()
    x = torch.randn(2, 12, 64)
    everything = torch.ones(2, 64, dtype=torch.bool)
    # All latents zeroed: the output no longer depends on the input.
    a = enc.forward_features(x, timestamp_mask=everything)
    b = enc.forward_features(torch.randn(2, 12, 64), timestamp_mask=everything)
    assert torch.allclose(a, b)
    assert TS2Vec(enc).latent_mask and not TS2Vec(PointwiseEncoder()).latent_mask


def test_input_masking_for_other_encoders_zeroes_whole_steps():
    enc = PointwiseEncoder()
    m = TS2Vec(enc, mask_prob=0.5, seed=0)
    x = torch.randn(1, 12, 40)
    mask = torch.zeros(1, 40, dtype=torch.bool)
    mask[0, 10:20] = True
    h = m._encode(x, mask)  # (1, 40, 4)
    bias = enc.conv.bias.detach()
    assert torch.allclose(h[0, 10:20], bias.expand(10, 4))
    assert not torch.allclose(h[0, :10], bias.expand(10, 4))


@pytest.mark.parametrize("encoder", [
    {"name": "ts2vec_dilated", "hidden": 8, "depth": 2, "out_dim": 8},
    {"name": "resnet1d_small", "widths": [8, 8, 8, 16, 16], "kernel": 5, "stem_kernel": 5},
    {"name": "vit_tiny", "depth": 1},
])
def test_the_method_runs_on_every_encoder_family(encoder):
    m = create_method("ts2vec", {"max_length": 800, "min_overlap": 64}, encoder,
                      {"leads": list(LEADS_12)})
    loss, metrics = m.training_step_loss({"signal": torch.randn(3, 12, 2500)}, 0, 10)
    loss.backward()
    assert math.isfinite(float(loss)) and metrics["overlap_samples"] >= 64
    assert all(p.grad is not None for p in m.encoder.parameters() if p.requires_grad)


def test_unknown_options_and_too_short_windows_are_refused():
    with pytest.raises(ValueError, match="unknown ts2vec options"):
        create_method("ts2vec", {"tau": 1}, {"name": "ts2vec_dilated"}, {})
    m = TS2Vec(PointwiseEncoder(), min_overlap=100)
    with pytest.raises(ValueError, match="overlap"):
        m.draw_crops(50)


def test_a_short_pretraining_lowers_the_loss(tmp_path):
    store = tiny_store(tmp_path / "store")
    # Crops fixed at one 128-sample section so the loss's scale (log of the set sizes) does not
    # change from step to step; only the masks and the section's place vary.
    recipe = {"method": {"name": "ts2vec", "max_length": 128, "min_overlap": 128},
              "encoder": {"name": "ts2vec_dilated", "hidden": 16, "depth": 4, "out_dim": 16,
                          "dropout": 0.0},
              "data": {"fs": 250, "n_samples": 2500}, "train": {"lr": 5e-3, "min_lr": 5e-3}}
    losses = pretrain_losses(recipe, store, tmp_path / "run", steps=60)
    assert mean(losses[-8:]) < 0.7 * mean(losses[:8])
