"""The paper recipes resolve to exactly the original code's settings (sehunfromdaegu/ECG_JEPA).

Each value below is where the original sets it (file:line at d937ad2, as in the recipe's
comments); the test fails on any drift of the recipe, of its resolution, or of what it builds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ecgssl.methods.jepa import build_jepa
from ecgssl.train.recipes import load_recipe
from ecgssl.train.run import SpecMismatchError, check_store, resolve_precision

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "ecgssl" / "configs"

COMMON = {
    ("train", "max_epochs"): 100, ("train", "min_lr"): 1e-6, ("train", "warmup_epochs"): 5,
    ("train", "weight_decay"): 0.05, ("train", "precision"): "16-mixed",
    ("train", "betas"): [0.9, 0.999], ("train", "gradient_clip_val"): None,
    ("method", "predictor_drop_path"): 0.1, ("method", "predictor_depth"): 6,
    ("method", "predictor_embed_dim"): 384, ("method", "predictor_num_heads"): 12,
    ("method", "ema"): [0.996, 1.0], ("method", "loss_beta"): 1.0,
    ("encoder", "name"): "vit_base", ("encoder", "drop_path"): 0.1,
    ("encoder", "n_patches"): 50, ("encoder", "patch_size"): 50,
    ("data", "fs"): 250, ("data", "n_samples"): 2500,
    ("data", "leads"): ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"],
    ("data", "preprocess"): {"resample_method": "fft", "short_records": "drop", "crop": "start",
                             "normalize": None, "bandpass_hz": None},
}
EXPECTED = {
    "jepa_vitb_paper.yaml": {
        **COMMON, ("train", "batch_size"): 64, ("train", "lr"): 5.5e-5,
        ("method", "mask"): {"type": "block", "block_scale": [0.175, 0.225], "n_blocks": 4,
                             "per_sample": False, "seed": 0}},
    "jepa_vitb_paper_random.yaml": {
        **COMMON, ("train", "batch_size"): 128, ("train", "lr"): 2.5e-5,
        ("method", "mask"): {"type": "random", "ratio": [0.6, 0.7], "per_sample": False,
                             "seed": 0}},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_resolves_to_the_original_settings(name):
    recipe = load_recipe(CONFIGS / name)
    for (section, key), value in EXPECTED[name].items():
        got = recipe[section][key]
        assert got == (pytest.approx(value) if isinstance(value, float) else value), \
            (section, key, got)
    with torch.device("meta"):
        method = build_jepa(recipe["method"], recipe["encoder"])
    # The predictor's drop-path is a linear ramp 0 -> 0.1 over its 6 blocks (ecg_jepa.py:397).
    rates = [b.drop_path.p for b in method.predictor.predictor_blocks.blocks]
    assert rates == pytest.approx([0.1 * i / 5 for i in range(6)])
    enc_rates = [b.drop_path.p for b in method.encoder.encoder_blocks.blocks]
    assert enc_rates == pytest.approx([0.1 * i / 11 for i in range(12)])
    masker = method.masker
    if recipe["method"]["mask"]["type"] == "random":
        assert masker.mask_type == "random" and masker.ratio == (0.6, 0.7)
        assert 30 <= int(masker().sum()) <= 35
    else:
        assert masker.mask_type == "block" and masker.block_scale == (0.175, 0.225)
    assert not masker.per_sample


def test_fp16_with_a_scaler_is_accepted_on_gpu_and_refused_on_cpu(monkeypatch):
    # Lightning's 16-mixed precision plugin adds the GradScaler (tests/train cannot run it here).
    with pytest.raises(ValueError, match="CPU"):
        resolve_precision("16-mixed", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_precision("16-mixed", "gpu") == "16-mixed"


def test_the_store_must_be_prepared_as_the_recipe_says(tmp_path):
    recipe = load_recipe(CONFIGS / "jepa_vitb_paper.yaml")
    leads = recipe["data"]["leads"]
    store = {"fs": 250, "n_samples": 2500, "leads": leads,
             "preprocess": {"resample_method": "fft", "short_records": "drop", "crop": "start",
                            "normalize": None, "bandpass_hz": None}}
    check_store(recipe["data"], store, tmp_path)
    with pytest.raises(SpecMismatchError, match="resample_method 'poly'"):
        check_store(recipe["data"], {**store, "preprocess": {**store["preprocess"],
                                                             "resample_method": "poly"}}, tmp_path)
    older = {k: v for k, v in store["preprocess"].items() if k != "short_records"}
    with pytest.raises(SpecMismatchError, match="short_records"):
        check_store(recipe["data"], {**store, "preprocess": older}, tmp_path)
