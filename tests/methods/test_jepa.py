"""ECG-JEPA method: lead selection, EMA schedule, masks, resume, collapse metrics, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ecgssl.data.leads import LEADS_8, LEADS_12
from ecgssl.methods.jepa import ECGJEPA, build_jepa
from ecgssl.methods.masking import TimeColumnMasker
from ecgssl.models.vit import create_vit

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _ecg_batch(batch=8, n_leads=12, seed=0):
    """ECG-like (B, L, 2500) mV at 250 Hz: Gaussian P/QRS/T bumps with per-lead gains."""
    rng = np.random.default_rng(seed)
    t = np.arange(2500) / 250.0
    out = np.zeros((batch, n_leads, t.size))
    for b in range(batch):
        rr = 60.0 / rng.uniform(55, 100)
        gains = rng.uniform(-1.0, 1.5, size=(n_leads, 3))
        for beat in np.arange(rng.uniform(0.1, rr), 10.0, rr):
            for k, (dt, width, amp) in enumerate([(-0.16, 0.025, 0.15), (0.0, 0.012, 1.0),
                                                  (0.25, 0.05, 0.3)]):
                out[b] += gains[:, k:k + 1] * amp * np.exp(-0.5 * ((t - beat - dt) / width) ** 2)
    out += 0.01 * rng.standard_normal(out.shape)
    return torch.from_numpy(out.astype(np.float32))


def _method(**kwargs):
    torch.manual_seed(0)
    enc = create_vit("vit_tiny", width=32, depth=2, num_heads=2)
    return ECGJEPA(enc, predictor_embed_dim=16, predictor_depth=1, predictor_num_heads=2,
                   **kwargs)


def test_selects_its_leads_by_name():
    method = _method()
    x = _ecg_batch(2)
    picked = method.select_leads({"signal": x})  # 12 store leads, default order
    assert torch.equal(picked, x[:, [LEADS_12.index(n) for n in LEADS_8]])
    assert method.select_leads({"signal": picked}) is picked  # already the 8 leads
    shuffled = list(reversed(LEADS_12))
    assert torch.equal(method.select_leads({"signal": x.flip(1), "leads": shuffled}), picked)
    with pytest.raises(ValueError, match="not in the batch"):
        method.select_leads({"signal": x[:, :6], "leads": LEADS_12[:6]})
    with pytest.raises(ValueError, match="input_leads"):
        method.select_leads({"signal": x[:, :5]})


def test_ema_schedule_and_update():
    method = _method()
    assert method.momentum(0, 100) == pytest.approx(0.996)
    assert method.momentum(50, 100) == pytest.approx(0.998)
    assert method.momentum(100, 100) == pytest.approx(1.0)
    assert method.momentum(500, 100) == pytest.approx(1.0)
    student, target = method.encoder, method.target_encoder
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    before = [p.clone() for p in target.parameters()]
    method.after_optimizer_step(0, 100)
    for p_t, p_b, p_s in zip(target.parameters(), before, student.parameters()):
        torch.testing.assert_close(p_t, 0.996 * p_b + 0.004 * p_s)
    frozen = [p.clone() for p in target.parameters()]
    method.after_optimizer_step(100, 100)  # momentum 1: the target no longer moves
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), frozen))


def test_per_sample_masks_and_metrics():
    method = _method(masker=TimeColumnMasker(50, per_sample=True, seed=3))
    loss, metrics = method.training_step_loss({"signal": _ecg_batch(4)}, 0, 10)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(metrics) >= {"loss", "mask_ratio", "target_std", "target_erank", "ema_momentum"}
    assert 0.15 < metrics["mask_ratio"] < 0.9
    collapse = method.collapse_metrics({"signal": _ecg_batch(4)})
    assert collapse["rep_std"] > 0 and 1.0 <= collapse["rep_erank"] <= 4.0


def test_resume_state_continues_the_mask_sequence():
    a = _method()
    a.masker()
    state = a.state_for_resume()
    expected = [a.masker() for _ in range(3)]
    b = _method()
    b.load_state_for_resume(state)
    assert all(torch.equal(b.masker(), e) for e in expected)


def test_param_groups_skip_norms_biases_and_tokens():
    method = _method()
    decay, no_decay = method.param_groups(0.05)
    names = {id(p): n for n, p in method.named_parameters()}
    assert all(names[id(p)].endswith("weight") and p.ndim == 2 for p in decay["params"])
    assert any(names[id(p)] == "predictor.mask_token" for p in no_decay["params"])
    assert not any("target_encoder" in names[id(p)] for g in (decay, no_decay)
                   for p in g["params"])


def test_loss_falls_in_a_short_training_run():
    method = _method()
    method.train()
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=2e-3)
    batch = {"signal": _ecg_batch(8, seed=1)}
    losses = []
    for step in range(30):
        loss, _ = method.training_step_loss(batch, step, 30)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_optimizer_step(step, 30)
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_build_from_recipes():
    cpu = yaml.safe_load((CONFIGS / "jepa_cpu.yaml").read_text())
    method = build_jepa(cpu["method"], cpu["encoder"])
    assert method.encoder.lead_names == LEADS_8 and method.masker.mask_type == "block"
    assert method.predictor.predictor_embed.out_features == 32
    paper = yaml.safe_load((CONFIGS / "jepa_vitb_paper.yaml").read_text())
    with torch.device("meta"):
        big = build_jepa(paper["method"], paper["encoder"])
    assert big.encoder.embed_dim == 768 and len(big.encoder.encoder_blocks.blocks) == 12
    assert len(big.predictor.predictor_blocks.blocks) == 6
    assert big.ema == (0.996, 1.0) and paper["train"]["lr"] == pytest.approx(5.5e-5)
    with pytest.raises(ValueError, match="unknown jepa options"):
        build_jepa({"name": "jepa", "predictor_width": 3}, {"name": "vit_tiny"})
    with pytest.raises(ValueError, match="unknown mask options"):
        build_jepa({"name": "jepa", "mask": {"kind": "block"}}, {"name": "vit_tiny"})


def test_scaled_cpu_recipe_matches_the_benchmarked_setting():
    """jepa_cpu_scaled.yaml = jepa_cpu.yaml + the w128 d4 ViT, predictor 64 x 2 and input_scale
    20 that pretrain_cpu_scale_jepa_fix benchmarked; the other recipes keep input_scale 1."""
    from ecgssl.train.recipes import load_recipe

    cpu = load_recipe(CONFIGS / "jepa_cpu.yaml")
    scaled = load_recipe(CONFIGS / "jepa_cpu_scaled.yaml")
    method = build_jepa(scaled["method"], scaled["encoder"])
    assert method.encoder.input_scale == 20.0 and method.target_encoder.input_scale == 20.0
    assert method.encoder.spec["width"] == 128 and method.encoder.spec["depth"] == 4
    assert build_jepa(cpu["method"], cpu["encoder"]).encoder.input_scale == 1.0
    for key in ("lr", "batch_size", "weight_decay", "seed"):
        assert scaled["train"][key] == cpu["train"][key]
    assert scaled["method"]["mask"] == cpu["method"]["mask"]


def test_masked_loss_counts_recorded_leads_only():
    from ecgssl.methods.jepa import masked_smooth_l1

    torch.manual_seed(0)
    n_leads, n_cols, dim = 3, 4, 5
    pred, target = torch.randn(2, n_leads * n_cols, dim), torch.randn(2, n_leads * n_cols, dim)
    plain = torch.nn.functional.smooth_l1_loss(pred, target)
    everything = torch.ones(2, n_leads, dtype=torch.bool)
    assert torch.allclose(masked_smooth_l1(pred, target, 1.0, everything, n_cols), plain)
    assert masked_smooth_l1(pred, target, 1.0, None, n_cols) == plain
    # Sample 0 has lead 1 only, sample 1 leads 0 and 2: the loss is the mean over those tokens.
    lead_mask = torch.tensor([[False, True, False], [True, False, True]])
    keep = torch.cat([pred.new_tensor(m).repeat_interleave(n_cols) for m in
                      lead_mask.float().tolist()]).bool()
    flat_p, flat_t = pred.reshape(-1, dim)[keep], target.reshape(-1, dim)[keep]
    expected = torch.nn.functional.smooth_l1_loss(flat_p, flat_t)
    assert torch.allclose(masked_smooth_l1(pred, target, 1.0, lead_mask, n_cols), expected)
    # A target of a missing lead can be anything: the loss does not see it.
    target2 = target.clone()
    target2[0, :n_cols] += 100.0
    assert torch.allclose(masked_smooth_l1(pred, target2, 1.0, lead_mask, n_cols), expected)


def test_lead_mask_follows_the_lead_selection():
    method = _method()
    x = _ecg_batch(2)
    store_mask = torch.zeros(2, 12, dtype=torch.bool)
    store_mask[:, [LEADS_12.index("II"), LEADS_12.index("V5")]] = True  # MIT-BIH-like record
    picked = method.select_lead_mask({"signal": x, "lead_mask": store_mask})
    assert picked.shape == (2, len(LEADS_8))
    assert [n for n, m in zip(LEADS_8, picked[0].tolist()) if m] == ["II", "V5"]
    assert method.select_lead_mask({"signal": x}) is None
    loss, _ = method.training_step_loss({"signal": x, "lead_mask": store_mask}, 0, 10)
    assert torch.isfinite(loss)
