"""Padding (valid spans) and missing leads out of the losses: hand-built padded windows."""

from __future__ import annotations

import pytest
import torch

from ecgssl.data.leads import LEADS_12
from ecgssl.methods.jepa import masked_smooth_l1
from ecgssl.methods.validity import batch_spans, steps_with_signal
from tests.methods.test_beat_ssl import T, _method, _samples
from tests.methods.test_jepa import _ecg_batch
from tests.methods.test_jepa import _method as _jepa


def test_spans_default_to_the_whole_window_and_are_checked():
    assert batch_spans({}, 2, 100).tolist() == [[0, 100], [0, 100]]
    with pytest.raises(ValueError, match="valid_span"):
        batch_spans({"valid_span": torch.tensor([[0, 101]])}, 1, 100)
    with pytest.raises(ValueError, match="valid_span"):
        batch_spans({"valid_span": torch.tensor([[0, 10]])}, 2, 100)


def test_steps_with_signal():
    spans = torch.tensor([[0, 100], [0, 45], [30, 60], [0, 0]])
    got = steps_with_signal(spans, 4, 25)  # steps [0,25) [25,50) [50,75) [75,100)
    assert got.tolist() == [[True] * 4, [True, True, False, False], [False, True, True, False],
                            [False] * 4]


def test_masked_loss_leaves_padding_columns_out():
    torch.manual_seed(0)
    n_leads, n_cols, dim = 2, 3, 4
    pred, target = torch.randn(2, n_leads * n_cols, dim), torch.randn(2, n_leads * n_cols, dim)
    cols = torch.tensor([[True, True, False], [True, True, True]])
    keep = torch.cat([cols[0].repeat(n_leads), cols[1].repeat(n_leads)])
    expected = torch.nn.functional.smooth_l1_loss(pred.reshape(-1, dim)[keep],
                                                  target.reshape(-1, dim)[keep])
    got = masked_smooth_l1(pred, target, 1.0, None, n_cols, cols)
    assert torch.allclose(got, expected)
    leads = torch.tensor([[True, False], [True, True]])
    keep2 = keep & torch.cat([leads[0].repeat_interleave(n_cols),
                              leads[1].repeat_interleave(n_cols)])
    expected2 = torch.nn.functional.smooth_l1_loss(pred.reshape(-1, dim)[keep2],
                                                   target.reshape(-1, dim)[keep2])
    assert torch.allclose(masked_smooth_l1(pred, target, 1.0, leads, n_cols, cols), expected2)


def test_jepa_loss_ignores_what_is_in_the_padding():
    method = _jepa()
    method.eval()  # no drop-path: two calls give the same numbers
    x = _ecg_batch(2, n_leads=8)
    x[1, :, 1500:] = 0.0  # a 6 s record padded into the 10 s window
    span = torch.tensor([[0, 2500], [0, 1500]])
    mask = torch.zeros(50, dtype=torch.bool)
    mask[20:45] = True  # masked columns 20-44: 30-44 of sample 1 lie wholly in padding
    parts = method.forward_parts(x, mask, None, span)
    assert parts["col_mask"][0].all()
    assert parts["col_mask"][1].tolist() == [True] * 10 + [False] * 15
    # Attention carries the padding into real tokens too, so check the loss against its own
    # per-token terms: the padded columns of sample 1 have weight 0.
    per_token = torch.nn.functional.smooth_l1_loss(parts["prediction"], parts["target"],
                                                   reduction="none").mean(-1)
    w = parts["col_mask"].float().repeat(1, 8)
    assert torch.allclose(parts["loss"], (per_token * w).sum() / w.sum())
    assert not torch.allclose(parts["loss"], per_token.mean())
    _, metrics = method.training_step_loss({"signal": x, "valid_span": span}, 0, 10)
    assert metrics["loss_tokens_dropped_padding"] > 0
    assert metrics["loss_tokens_dropped_leads"] == 0
    _, metrics = method.training_step_loss({"signal": x}, 0, 10)
    assert metrics["loss_tokens_dropped_padding"] == 0
    # Per-sample masks (B, P_mask): the columns are looked up per row.
    per_row = torch.zeros(2, 50, dtype=torch.bool)
    per_row[0, 5:30], per_row[1, 20:45] = True, True
    parts = method.forward_parts(x, per_row, None, span)
    assert parts["col_mask"][0].all()
    assert parts["col_mask"][1].tolist() == [True] * 10 + [False] * 15


def test_beat_ssl_drops_padded_beats_and_windows_without_its_leads():
    samples = _samples(n=6, seed=5)
    half = T // 2
    samples[1]["signal"][:, half:] = 0.0  # padded second half
    for s in samples:
        s["valid_span"] = torch.tensor([0, T])
        s["lead_mask"] = torch.ones(12, dtype=torch.bool)
    samples[1]["valid_span"] = torch.tensor([0, half])
    samples[2]["lead_mask"][LEADS_12.index("V3")] = False  # 3KG needs V3: window not used
    samples[2]["signal"][LEADS_12.index("V3")] = 0.0
    samples[3]["lead_mask"][LEADS_12.index("aVR")] = False  # not needed: used, kept at zero
    m = _method(rhythm_loss="soft_1", beat_loss="hard")
    batch = m.make_collate()(samples)
    assert batch["valid_span"].shape == (6, 2)
    assert (batch["view1"][3, LEADS_12.index("aVR")] == 0).all()
    loss, metrics = m.training_step_loss(batch, 0, 10)
    assert torch.isfinite(loss)
    assert metrics["windows_dropped_leads"] == 1 and metrics["windows_dropped_padding"] == 0
    r1 = torch.as_tensor(samples[1]["rpeaks"])
    before, after = round(0.25 * 250), round(0.45 * 250)
    inside = (r1 - before >= 0) & (r1 + after <= T)
    in_padding = inside & (r1 + after > half)
    assert metrics["beats_dropped_padding"] == int(in_padding.sum()) > 0
    # The dropped window and the padded beats do not enter the loss: changing them does not
    # change it (same views, same weights).
    batch2 = dict(batch)
    for key in ("view1", "view2"):
        batch2[key] = batch[key].clone()
        batch2[key][2] += 5.0
    loss2, _ = m.training_step_loss(batch2, 0, 10)
    assert torch.allclose(loss, loss2)


def test_beat_ssl_rhythm_vector_is_the_mean_over_real_signal():
    # The encoder itself still sees the zeros (its GroupNorm and receptive field span the
    # window); what the loss leaves out is the padded feature steps in the rhythm mean.
    from ecgssl.methods.losses import nt_xent_loss

    samples = _samples(n=4, seed=6)
    m = _method(rhythm_loss="hard", beat_loss="none")
    batch = m.make_collate()(samples)
    batch["valid_span"] = torch.tensor([[0, T], [0, T // 2], [0, T], [0, T]])
    loss, _ = m.training_step_loss(batch, 0, 10)
    e = m.encoder.forward_features(torch.cat([batch["view1"], batch["view2"]]), leads=m.leads)
    keep = steps_with_signal(batch["valid_span"], e.shape[-1], m.encoder.stride).float()
    assert keep[1].sum() < e.shape[-1] and keep[0].all()
    keep = torch.cat([keep, keep])[:, None]
    z = m.rhythm_projector((e * keep).sum(-1) / keep.sum(-1))
    assert torch.allclose(loss, nt_xent_loss(z[:4], z[4:], m.temperature), atol=1e-6)
    batch.pop("valid_span")
    loss_all, _ = m.training_step_loss(batch, 0, 10)
    assert not torch.allclose(loss, loss_all, atol=1e-4)
