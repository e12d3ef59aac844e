"""Contrastive losses against slow, obvious loop references over a grid of parameters."""

import math

import pytest
import torch

from ecgssl.methods.losses import (
    beat_targets,
    hard_targets,
    nt_xent_loss,
    partner_accuracy,
    similarity_targets,
    soft_contrastive_loss,
)


def _ref_logp(z1, z2, tau):
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2 = z.shape[0]
    logp = [[0.0] * n2 for _ in range(n2)]
    for i in range(n2):
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n2) if k != i)
        for j in range(n2):
            if j != i:
                logp[i][j] = float(z[i] @ z[j]) / tau - math.log(denom)
    return logp


def _ref_nt_xent(z1, z2, tau):
    n = z1.shape[0]
    logp = _ref_logp(z1, z2, tau)
    return -sum(logp[i][(i + n) % (2 * n)] for i in range(2 * n)) / (2 * n)


def _ref_soft(z1, z2, w, tau, form):
    logp = _ref_logp(z1, z2, tau)
    n2 = w.shape[0]
    total = 0.0
    for i in range(n2):
        row = [float(w[i, j]) if j != i else 0.0 for j in range(n2)]
        norm = sum(row) if form == "soft_2" else 1.0
        total += -sum(row[j] / norm * logp[i][j] for j in range(n2) if j != i)
    return total / n2


GRID = [(n, d, tau) for n in (2, 3, 6) for d in (4, 16) for tau in (0.05, 0.1, 0.5, 1.0)]


@pytest.mark.parametrize("n,d,tau", GRID)
def test_nt_xent_matches_reference(n, d, tau):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert nt_xent_loss(z1, z2, tau).item() == pytest.approx(_ref_nt_xent(z1, z2, tau), rel=1e-4)


@pytest.mark.parametrize("form", ["soft_1", "soft_2"])
@pytest.mark.parametrize("n,d,tau", GRID)
def test_hard_targets_reduce_exactly_to_nt_xent(form, n, d, tau):
    g = torch.Generator().manual_seed(7 + n + d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    soft = soft_contrastive_loss(z1, z2, hard_targets(n), tau, form)
    hard = nt_xent_loss(z1, z2, tau)
    assert torch.allclose(soft, hard, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("form", ["soft_1", "soft_2"])
@pytest.mark.parametrize("gamma", [1.0, 50.0])
@pytest.mark.parametrize("kind", ["cosine01", "gaussian"])
@pytest.mark.parametrize("n,tau", [(3, 0.1), (5, 0.5)])
def test_soft_loss_matches_reference(form, gamma, kind, n, tau):
    g = torch.Generator().manual_seed(n)
    z1, z2 = torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g)
    w = similarity_targets(torch.randn(n, 5, generator=g), gamma, kind)
    got = soft_contrastive_loss(z1, z2, w, tau, form).item()
    assert got == pytest.approx(_ref_soft(z1, z2, w, tau, form), rel=1e-4)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 50.0])
@pytest.mark.parametrize("kind", ["cosine01", "gaussian"])
def test_similarity_targets_reference(gamma, kind):
    f = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    w = similarity_targets(f, gamma, kind)
    n = 4
    for i in range(2 * n):
        for j in range(2 * n):
            a, b = f[i % n].double(), f[j % n].double()
            if kind == "cosine01":
                s = (1 + float(a @ b / (a.norm() * b.norm()))) / 2
            else:
                s = math.exp(-float(((a - b) ** 2).sum()) / (2 * 6))
            expected = 0.0 if i == j else 1.0 if j == (i + n) % (2 * n) else s**gamma
            assert float(w[i, j]) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_beat_targets_hard_and_soft():
    classes = torch.tensor([0, 0, 2])
    w = beat_targets(3, classes=classes)
    expected = torch.tensor([
        [0, 1, 0, 1, 1, 0], [1, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1],
        [1, 1, 0, 0, 1, 0], [1, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(w, expected)
    feats = torch.randn(3, 4)
    assert torch.equal(beat_targets(3, features=feats, gamma=3.0), similarity_targets(feats, 3.0))
    with pytest.raises(ValueError):
        beat_targets(3)
    with pytest.raises(ValueError):
        beat_targets(3, classes=classes, features=feats)


def test_gradients_and_validation():
    z1 = torch.randn(4, 8, requires_grad=True)
    z2 = torch.randn(4, 8, requires_grad=True)
    w = similarity_targets(torch.randn(4, 3), 50.0)
    loss = soft_contrastive_loss(z1, z2, w, 0.1, "soft_1")
    loss.backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(z1, z2, 0.0)
    with pytest.raises(ValueError, match="form"):
        soft_contrastive_loss(z1, z2, w, 0.1, "soft_3")
    with pytest.raises(ValueError, match="targets"):
        soft_contrastive_loss(z1, z2, w[:4, :4], 0.1)
    with pytest.raises(ValueError):
        nt_xent_loss(z1, z2[:3], 0.1)


def test_loss_is_low_for_aligned_views_and_partner_accuracy():
    z = torch.nn.functional.normalize(torch.randn(8, 32), dim=1)
    assert nt_xent_loss(z, z, 0.05) < nt_xent_loss(z, torch.randn(8, 32), 0.05)
    assert partner_accuracy(z, z) == 1.0
