"""VisionTransformerECG: interface, lead subsets, visible columns, positional embeddings, init."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgssl.data.leads import LEADS_8, LEADS_12
from ecgssl.models.pos_embed import sincos_1d, sincos_2d, time_sincos
from ecgssl.models.vit import VIT_CONFIGS, VisionTransformerECG, create_vit


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_vit("vit_tiny", n_patches=10).eval()


def _x(batch=2, leads=8, patches=10, seed=0):
    return torch.randn(batch, leads, patches * 50, generator=torch.Generator().manual_seed(seed))


def test_registry_builds_named_configs():
    from ecgssl.models.registry import create_encoder, list_encoders

    assert {"vit_tiny", "vit_small", "vit_base"} <= set(list_encoders())
    enc = create_encoder("vit_tiny", n_leads=12, n_patches=4, attention="dense")
    assert enc.lead_names == LEADS_12 and enc.attention == "dense"
    assert VIT_CONFIGS["vit_base"] == {"width": 768, "depth": 12, "num_heads": 16}


def test_interface_shapes(model):
    x = _x()
    assert model.embed_dim == 64 and model.stride == 50
    assert model.forward_features(x).shape == (2, 64, 10)
    assert model(x).shape == (2, 64)
    (fmap,) = model.feature_pyramid(x)
    assert fmap.shape == (2, 64, 10)
    tokens = model.forward_tokens(x)
    assert tokens.shape == (2, 80, 64)
    # forward = mean of tokens = mean over time of the lead-averaged feature map
    torch.testing.assert_close(model(x), fmap.mean(-1), rtol=1e-5, atol=1e-6)
    # spec rebuilds the same architecture
    spec = {k: v for k, v in model.spec.items() if k not in ("name", "class")}
    twin = VisionTransformerECG(**spec)
    twin.load_state_dict(model.state_dict())
    torch.testing.assert_close(twin.eval()(x), model(x))


def test_lead_subsets_use_their_pos_rows(model):
    x = _x()
    sub = model(x[:, [2, 1]], leads=["V1", "II"])
    # the same function as a 2-lead encoder holding the rows of V1 and II
    twin = VisionTransformerECG(lead_names=["V1", "II"], n_patches=10, width=64, depth=2,
                                num_heads=4).eval()
    state = dict(model.state_dict())
    state["pos_embed"] = model.pos_embed.view(8, 10, 64)[[2, 1]].reshape(20, 64)
    twin.load_state_dict(state)
    torch.testing.assert_close(twin(x[:, [2, 1]]), sub, rtol=1e-5, atol=1e-6)
    assert model(x[:, [1]], leads=["ii"]).shape == (2, 64)  # lead II alone, any spelling
    with pytest.raises(ValueError, match="unknown"):
        model(x[:, :2], leads=["I", "aVR"])
    with pytest.raises(ValueError, match="pass leads"):
        model(x[:, :2])
    with pytest.raises(ValueError, match="input has 3"):
        model(x[:, :3], leads=["I", "II"])


def test_visible_columns_shared_and_per_sample(model):
    x = _x(batch=3)
    cols = torch.tensor([[0, 2, 5, 9], [1, 2, 3, 4], [0, 6, 7, 8]])
    per_sample = model.forward_tokens(x, visible_cols=cols)
    assert per_sample.shape == (3, 8 * 4, 64)
    for b in range(3):
        one = model.forward_tokens(x[b : b + 1], visible_cols=cols[b])
        torch.testing.assert_close(per_sample[b : b + 1], one, rtol=1e-5, atol=1e-5)
    bool_cols = torch.zeros(10, dtype=torch.bool)
    bool_cols[[0, 2, 5, 9]] = True
    torch.testing.assert_close(model.forward_tokens(x, visible_cols=bool_cols)[0],
                               per_sample[0], rtol=1e-5, atol=1e-5)


def test_attention_modes(model):
    x = _x()
    outs = {}
    for mode in ("cropa", "dense", "full"):
        model.set_attention(mode)
        outs[mode] = model(x)
    model.set_attention("cropa")
    torch.testing.assert_close(outs["cropa"], outs["dense"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(outs["cropa"], outs["full"], atol=1e-4)


def test_backward_and_pos_once():
    torch.manual_seed(1)
    enc = create_vit("vit_tiny", n_patches=4, pos_every_block=False, drop_path=0.1)
    x = _x(patches=4)
    enc.train()
    a, b = enc(x), enc(x)
    assert not torch.allclose(a, b)  # drop-path is active in training
    a.sum().backward()
    assert enc.W_P.weight.grad is not None and torch.isfinite(enc.W_P.weight.grad).all()
    enc.eval()
    torch.testing.assert_close(enc(x), enc(x))


def test_shorter_input_and_bad_input(model):
    assert model(_x(patches=6)).shape == (2, 64)
    with pytest.raises(ValueError, match="patches"):
        model(torch.zeros(1, 8, 530))
    with pytest.raises(ValueError, match="patches"):
        model(torch.zeros(1, 8, 50 * 11))
    with pytest.raises(ValueError, match="divisible"):
        VisionTransformerECG(width=66, num_heads=3)
    with pytest.raises(ValueError, match="unique"):
        VisionTransformerECG(lead_names=["I", "I"])
    with pytest.raises(ValueError, match="attention"):
        create_vit("vit_tiny", attention="sparse")


def test_init_scales_residual_projections():
    torch.manual_seed(0)
    enc = create_vit("vit_small", n_patches=2)
    for layer_id, block in enumerate(enc.encoder_blocks.blocks, start=1):
        expect = 0.02 / np.sqrt(2 * layer_id)
        # bounds are +-2 absolute as in the original, i.e. 100 std: effectively untruncated
        assert abs(block.mlp.fc2.weight.std().item() / expect - 1.0) < 0.05
        assert abs(block.attn.proj.weight.std().item() / expect - 1.0) < 0.05
    assert enc.W_P.bias.abs().sum() == 0
    assert enc.encoder_blocks.blocks[0].attn.qkv.bias is None


def test_pos_embed_equals_original_tables(fixtures_dir):
    data = np.load(fixtures_dir / "ecg_jepa_reference.npz")
    enc_table = torch.from_numpy(data["state_dict/encoder.pos_embed"])
    pred_table = torch.from_numpy(data["state_dict/predictor.pos_embed"])
    assert torch.equal(sincos_2d(64, 8, 50), enc_table)  # bit-identical
    assert torch.equal(time_sincos(32, 50), pred_table)
    assert torch.equal(create_vit("vit_tiny").pos_embed, enc_table)
    # first half codes time, second half the lead; row = lead * 50 + patch
    assert torch.equal(enc_table[3 * 50 + 7, :32], sincos_1d(32, torch.tensor([7.0]))[0].float())
    assert torch.equal(enc_table[3 * 50 + 7, 32:], sincos_1d(32, torch.tensor([3.0]))[0].float())
    with pytest.raises(ValueError):
        sincos_2d(30, 8, 50)


def test_parameter_count_of_vit_base():
    with torch.device("meta"):
        enc = create_vit("vit_base", lead_names=LEADS_8)
    n_params = sum(p.numel() for p in enc.parameters())
    assert 84e6 < n_params < 86e6  # the paper's 85 M


# -- input_scale: opt-in fix for mV inputs drowned by the position embedding --------------------
def _ecg_like(batch=16, patches=10, seed=0):
    """(B, 8, T) zero-mean signals with the RMS of a high-passed ECG in mV (~0.25)."""
    return 0.25 * _x(batch=batch, patches=patches, seed=seed)


def test_input_scale_default_and_equivalence():
    torch.manual_seed(0)
    plain = create_vit("vit_tiny", n_patches=10).eval()
    assert plain.spec["input_scale"] == 1.0 and plain.input_scale == 1.0
    torch.manual_seed(0)
    scaled = create_vit("vit_tiny", n_patches=10, input_scale=20.0).eval()
    assert scaled.spec["input_scale"] == 20.0
    x = _ecg_like(batch=2)
    with torch.no_grad():  # same weights (same seed): scaling inside == scaling the input
        torch.testing.assert_close(scaled(x), plain(20.0 * x), rtol=1e-5, atol=1e-5)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="input_scale"):
            create_vit("vit_tiny", n_patches=10, input_scale=bad)


def test_input_scale_spreads_features_at_init():
    """With mV-scale input the sin-cos embedding dominates every token at scale 1; scale 20 makes
    the pooled features (and the output tokens) depend on the ECG far more."""
    from ecgssl.train.callbacks import feature_collapse_stats

    x = _ecg_like(batch=16)
    spread = {}
    for scale in (1.0, 20.0):
        torch.manual_seed(0)
        enc = create_vit("vit_tiny", n_patches=10, input_scale=scale).eval()
        with torch.no_grad():
            tokens = enc.forward_tokens(x)
        ratio = feature_collapse_stats(tokens.mean(dim=1))["feat_std_ratio"]
        spread[scale] = (ratio, (tokens.var(dim=0).mean() / tokens.pow(2).mean()).item())
    assert spread[20.0][0] > 5 * spread[1.0][0]
    assert spread[20.0][1] > 10 * spread[1.0][1]


def test_input_scale_survives_export(tmp_path):
    from ecgssl.train.export import export_encoder, load_encoder

    store_config = {"fs": 250, "leads": LEADS_8, "n_samples": 2500, "hash": "abc",
                    "preprocess": {"filters": None, "normalisation": None, "fs": 250}}
    torch.manual_seed(0)
    enc = create_vit("vit_tiny", n_leads=8, input_scale=20.0).eval()
    export_encoder(enc, tmp_path / "enc", store_config)
    loaded, spec = load_encoder(tmp_path / "enc.json")
    assert spec["encoder"]["overrides"]["input_scale"] == 20.0 and loaded.input_scale == 20.0
    x = _ecg_like(batch=2, patches=50)
    with torch.no_grad():
        assert torch.equal(enc(x), loaded(x))
