"""One effective rank, one batch std (ecgssl.methods.diagnostics) and the momentum helper."""

import numpy as np
import pytest
import torch
from torch import nn

from ecgssl.methods.base import MomentumMethod
from ecgssl.methods.diagnostics import batch_std, effective_rank


def test_effective_rank_counts_directions():
    gen = torch.Generator().manual_seed(0)
    assert effective_rank(torch.randn(256, 8, generator=gen)) > 7.0
    line = torch.randn(64, 1, generator=gen) * torch.randn(1, 16, generator=gen)
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    # Two equal directions: exactly 2.
    two = torch.zeros(4, 3)
    two[0, 0], two[1, 0], two[2, 1], two[3, 1] = 1, -1, 1, -1
    assert effective_rank(two) == pytest.approx(2.0, abs=1e-5)


def test_effective_rank_edge_cases_and_numpy():
    assert effective_rank(torch.ones(5, 3)) == 0.0  # every row the same: no direction
    assert np.isnan(effective_rank(torch.ones(1, 3)))
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    assert effective_rank(x) == pytest.approx(effective_rank(torch.from_numpy(x)))
    with pytest.raises(ValueError, match="B, D"):
        effective_rank(torch.ones(3))


def test_batch_std_plain_and_normalised():
    z = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
    assert batch_std(z) == pytest.approx(float(z.std(0).mean()))
    assert batch_std(z * 10, normalise=True) == pytest.approx(batch_std(z, normalise=True))
    assert batch_std(torch.ones(8, 4)) == 0.0
    assert np.isnan(batch_std(torch.ones(1, 4)))


class _Momentum(MomentumMethod):
    def __init__(self):
        super().__init__(nn.Linear(3, 2), ema=(0.5, 1.0))
        self.target = self.add_momentum_copy("encoder", "target")


def test_momentum_copy_follows_by_ema_and_is_declared_untrained():
    m = _Momentum()
    assert not any(p.requires_grad for p in m.target.parameters())
    assert m.untrained_parameter_names() == {"target.weight", "target.bias"}
    assert m.momentum(0, 10) == 0.5 and m.momentum(10, 10) == 1.0 and m.momentum(0, 0) == 1.0
    before = m.target.weight.clone()
    with torch.no_grad():
        m.encoder.weight.add_(1.0)
    m.after_optimizer_step(0, 10)  # m = 0.5: halfway to the online weights
    assert torch.allclose(m.target.weight, before + 0.5)
    assert m._momentum == 0.5
    m.after_optimizer_step(10, 10)  # m = 1: the target no longer moves
    assert torch.allclose(m.target.weight, before + 0.5)
    with pytest.raises(ValueError, match="ema"):
        MomentumMethod(nn.Linear(1, 1), ema=(1.0, 0.5))
