"""ST-MEM: per-lead masks, the masked MSE against a slow reference, the decoder's slots, a short
pretraining."""

import pytest
import torch

from ecgssl.methods.registry import create_method
from ecgssl.methods.st_mem import STMEM, PerLeadPatchMasker, masked_patch_mse
from ecgssl.models.registry import create_encoder
from tests.methods.pretrain_helpers import mean, pretrain_losses, tiny_store


def _method(**kw):
    enc = create_encoder("vit_tiny_stmem", depth=1, n_patches=10, patch_size=5)
    return STMEM(enc, decoder_dim=16, decoder_depth=1, decoder_num_heads=2, **kw)


def test_masks_are_drawn_per_lead_and_cover_every_patch_once():
    masker = PerLeadPatchMasker(20, mask_ratio=0.75, seed=0)
    keep, masked = masker(3, 12)
    assert keep.shape == (3, 12, 5) and masked.shape == (3, 12, 15)
    both = torch.cat([keep, masked], -1).sort(-1).values
    assert torch.equal(both, torch.arange(20).expand(3, 12, 20))
    assert len({tuple(k.tolist()) for k in keep.reshape(-1, 5)}) > 1  # leads differ
    with pytest.raises(ValueError, match="mask_ratio"):
        PerLeadPatchMasker(4, mask_ratio=0.9)


def test_masked_mse_matches_the_reference():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    masked = torch.rand(2, 3, 4, generator=g) > 0.5
    lead_mask = torch.tensor([[True, False, True], [True, True, True]])
    errors = [float(((pred[b, lead, p] - target[b, lead, p]) ** 2).mean())
              for b in range(2) for lead in range(3) for p in range(4)
              if masked[b, lead, p] and lead_mask[b, lead]]
    got = float(masked_patch_mse(pred, target, masked, lead_mask))
    assert got == pytest.approx(sum(errors) / len(errors), rel=1e-6)


def test_the_loss_scores_only_masked_patches():
    m = _method().eval()
    x = torch.randn(2, 12, 50)
    keep, masked = m.masker(2, 12)
    parts = m.forward_parts(x, keep, masked)
    mask = parts["mask"]
    assert mask.sum() == masked.numel() and not mask.gather(2, keep).any()
    # Moving a kept patch's target changes nothing; moving a masked one changes the loss.
    y = x.clone().view(2, 12, 10, 5)
    b, lead, p = 0, 3, int(keep[0, 3, 0])
    target = parts["target"].clone()
    target[b, lead, p] += 10.0
    assert float(masked_patch_mse(parts["prediction"], target, mask)) == \
        pytest.approx(float(parts["loss"]))
    # A masked patch: the encoder does not see it (prediction unchanged), the target moves.
    q = int(masked[0, 3, 0])
    y[b, lead, q] += 10.0
    moved = parts["target"].clone()
    moved[b, lead, q] += 10.0
    again = m.forward_parts(y.view(2, 12, 50), keep, masked)
    assert torch.allclose(again["prediction"], parts["prediction"], atol=1e-6)
    assert float(again["loss"]) == pytest.approx(
        float(masked_patch_mse(parts["prediction"], moved, mask)), rel=1e-5)
    assert float(again["loss"]) > float(parts["loss"]) + 0.3


def test_the_decoder_puts_visible_tokens_in_their_slots():
    m = _method()
    dec = m.decoder
    h = torch.randn(1, 12, 3 + 2, 64)
    keep = torch.tensor([1, 4, 7]).expand(1, 12, 3)
    with torch.no_grad():
        dec.decoder_blocks.blocks[0].attn.proj.weight.zero_()  # no mixing between slots
        dec.decoder_blocks.blocks[0].mlp.fc2.weight.zero_()
        dec.decoder_blocks.blocks[0].attn.proj.bias.zero_()
        dec.decoder_blocks.blocks[0].mlp.fc2.bias.zero_()
        out = dec(h, keep, 10, list(range(12)))
        h2 = h.clone()
        h2[0, 0, 2] += 1.0  # the second kept patch of lead 0 -> slot 4
        out2 = dec(h2, keep, 10, list(range(12)))
    changed = (out2 - out).abs().sum(-1)[0]
    assert changed[0].nonzero().flatten().tolist() == [4] and not changed[1:].any()


def test_only_an_stmem_encoder_and_known_options():
    with pytest.raises(ValueError, match="STMEMViT"):
        create_method("st_mem", {}, {"name": "vit_tiny"}, {})
    with pytest.raises(ValueError, match="unknown st_mem options"):
        create_method("st_mem", {"ratio": 0.5}, {"name": "vit_tiny_stmem"}, {})


def test_a_short_pretraining_lowers_the_loss(tmp_path):
    store = tiny_store(tmp_path / "store")
    recipe = {"method": {"name": "st_mem", "decoder_dim": 32, "decoder_depth": 1,
                         "decoder_num_heads": 4},
              "encoder": {"name": "vit_tiny_stmem", "depth": 1},
              "data": {"fs": 250, "n_samples": 2500}}
    losses = pretrain_losses(recipe, store, tmp_path / "run", steps=30)
    assert mean(losses[-6:]) < 0.8 * mean(losses[:6])
