"""CPC: the InfoNCE loss against a slow loop, gradients, causality, a short pretraining, errors."""

import math

import pytest
import torch
from torch import nn

from ecgssl.methods.cpc import CPC, cpc_infonce_loss
from ecgssl.methods.registry import create_method, list_methods
from tests.methods.pretrain_helpers import mean, pretrain_losses, tiny_store


def _ref_loss(z, preds):
    """Loop over every window i, offset k and step t with t + k < T': the positive z[i, t+k]
    against z[j, t+k] of every window j, scored by dot products with preds[k-1][i, t]."""
    batch, steps, _ = z.shape
    terms = []
    for k, p in enumerate(preds, start=1):
        for i in range(batch):
            for t in range(steps - k):
                scores = [float(z[j, t + k] @ p[i, t]) for j in range(batch)]
                top = max(scores)
                log_den = top + math.log(sum(math.exp(s - top) for s in scores))
                terms.append(-(scores[i] - log_den))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("batch,steps,k", [(4, 7, 3), (3, 3, 5), (2, 5, 1)])
def test_loss_matches_the_slow_reference(batch, steps, k):
    g = torch.Generator().manual_seed(batch * 10 + k)
    z = torch.randn(batch, steps, 6, generator=g)
    preds = [torch.randn(batch, steps, 6, generator=g) for _ in range(k)]
    got = float(cpc_infonce_loss(z, preds))
    assert got == pytest.approx(_ref_loss(z.double(), [p.double() for p in preds]), abs=1e-5)


def test_only_targets_inside_the_window_count():
    """Changing a prediction at a step whose target lies past the window changes nothing."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, 5, 4, generator=g)
    preds = [torch.randn(3, 5, 4, generator=g) for _ in range(2)]
    before = cpc_infonce_loss(z, preds)
    preds[1][:, 3:] = 100.0  # offset 2: steps 3, 4 point at steps 5, 6 (outside)
    preds[0][:, 4:] = -100.0  # offset 1: step 4 points at step 5
    assert torch.equal(cpc_infonce_loss(z, preds), before)
    preds[0][:, 3] = 100.0  # offset 1, step 3 -> step 4: inside
    assert not torch.equal(cpc_infonce_loss(z, preds), before)


def test_one_window_and_no_valid_offset_give_zero():
    z = torch.randn(1, 6, 4, requires_grad=True)
    loss = cpc_infonce_loss(z, [torch.randn(1, 6, 4)])
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    z = torch.randn(3, 2, 4)
    loss = cpc_infonce_loss(z, [torch.randn(3, 2, 4) for _ in range(3)])  # only k=1 valid
    assert loss > 0
    loss = cpc_infonce_loss(z, [torch.zeros(3, 2, 4), torch.randn(3, 2, 4)])
    assert float(loss) == pytest.approx(math.log(3))  # k=2 dropped; k=1 scores all 0


def test_loss_argument_errors():
    z = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"\(B, T', D\)"):
        cpc_infonce_loss(z[0], [z[0]])
    with pytest.raises(ValueError, match="at least one offset"):
        cpc_infonce_loss(z, [])
    with pytest.raises(ValueError, match="offset 2"):
        cpc_infonce_loss(z, [z, z[:, :4]])


class StepEncoder(nn.Module):
    """A per-step linear map (stride 4 by averaging): its z_t sees only samples of step t."""

    embed_dim, stride = 5, 4

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(12, 5, 4, stride=4)

    def forward_features(self, x, leads=None):
        return self.conv(x)

    def forward(self, x, leads=None):
        return self.forward_features(x).mean(-1)


def _tiny_cpc(**kw):
    torch.manual_seed(0)
    return CPC(StepEncoder(), context_dim=6, n_offsets=3, **kw)


def test_gradient_reaches_encoder_gru_and_every_predictor():
    m = _tiny_cpc()
    loss, metrics = m.training_step_loss({"signal": torch.randn(4, 12, 40)}, 0, 1)
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert metrics["steps"] == 10.0 and metrics["negatives"] == 3.0
    assert metrics["predictions_per_window"] == 9 + 8 + 7
    assert metrics["dropped_pairs"] == 6.0 and metrics["dropped_offsets"] == 0.0


def test_context_is_causal():
    """c_t depends on z_1..z_t only: changing the input after step t leaves c_<=t unchanged."""
    m = _tiny_cpc().eval()
    x = torch.randn(2, 12, 40)
    x2 = x.clone()
    x2[..., 24:] += 1.0  # steps 6..9
    with torch.no_grad():
        _, c = m.latents_and_context(x)
        _, c2 = m.latents_and_context(x2)
    assert torch.equal(c[:, :6], c2[:, :6]) and not torch.allclose(c[:, 6:], c2[:, 6:])


def test_short_windows_report_dropped_offsets_and_too_short_ones_fail():
    m = _tiny_cpc()
    _, metrics = m.training_step_loss({"signal": torch.randn(3, 12, 8)}, 0, 1)  # T' = 2
    assert metrics["dropped_offsets"] == 2.0 and metrics["predictions_per_window"] == 1.0
    with pytest.raises(ValueError, match="needs >= 2"):
        m.training_step_loss({"signal": torch.randn(3, 12, 4)}, 0, 1)
    with pytest.raises(ValueError, match=r"\(B, L, T\)"):
        m.training_step_loss({"signal": torch.randn(12, 40)}, 0, 1)


def test_constructor_and_factory_errors():
    with pytest.raises(ValueError, match="n_offsets"):
        CPC(StepEncoder(), n_offsets=0)
    with pytest.raises(ValueError, match="context_dim"):
        CPC(StepEncoder(), context_dim=2.5)
    with pytest.raises(ValueError, match="lacks 'embed_dim'"):
        CPC(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unknown cpc options.*temperature"):
        create_method("cpc", {"temperature": 0.1}, {}, {})


def test_registry_lists_cpc_and_the_exported_encoder_is_the_backbone():
    assert "cpc" in list_methods()
    m = create_method("cpc", {"context_dim": 8, "n_offsets": 2},
                      {"name": "resnet1d_small", "widths": [4, 8, 8, 16, 16]}, {})
    assert isinstance(m, CPC) and m.encoder.name.startswith("resnet1d")
    assert not any(n.startswith(("context", "predictors")) for n, _ in
                   m.encoder.named_parameters())
    assert len(m.predictors) == 2 and m.context.hidden_size == 8


def test_a_short_pretraining_lowers_the_loss(tmp_path):
    store = tiny_store(tmp_path / "store")
    recipe = {"method": {"name": "cpc", "context_dim": 16, "n_offsets": 4},
              "encoder": {"name": "resnet1d_small", "widths": [8, 8, 16, 16, 32], "kernel": 5,
                          "stem_kernel": 7},
              "data": {"fs": 250, "n_samples": 2500},
              "train": {"lr": 1e-3, "min_lr": 1e-3}}
    losses = pretrain_losses(recipe, store, tmp_path / "run", steps=30)
    # Chance is log 4 = 1.39 (batch 4: three negatives); unnormalised scores start above it
    # (1.84 at seed 0), so the loss must also end below chance, not just fall towards it.
    assert mean(losses[-6:]) < 0.8 * mean(losses[:6])
    assert mean(losses[-6:]) < 0.8 * math.log(4)
