"""Recipes: defaults, YAML, dotted overrides, and clear errors for unknown keys / bad values."""

import pytest

from ecgssl.train.recipes import (
    RecipeError,
    apply_overrides,
    load_recipe,
    parse_override,
    save_recipe,
)
from ecgssl.train.run import build_method, resolve_precision, resolve_strategy

BASE = {"method": {"name": "jepa", "mask": {"type": "block"}}, "encoder": {"name": "vit_tiny"},
        "train": {"max_epochs": 2}}


def test_defaults_filled_and_free_sections_kept():
    r = load_recipe(BASE)
    assert r["train"]["lr"] == 1e-4 and r["train"]["batch_size"] == 64
    assert r["train"]["precision"] == "auto"
    assert r["method"] == {"name": "jepa", "mask": {"type": "block"}}


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("method: {name: jepa}\nencoder: {name: vit_tiny}\n"
                    "train:\n  max_epochs: 3\n  lr: 5e-5\n  betas: [0.9, 0.95]\n")
    r = load_recipe(path, ["train.lr=1e-4", "encoder.name=vit_small", "train.batch_size=32",
                           "method.mask.ratio=[0.6, 0.7]", "train.gradient_clip_val=null",
                           "encoder.attention=dense"])
    assert r["train"]["lr"] == 1e-4 and isinstance(r["train"]["lr"], float)
    assert r["train"]["betas"] == [0.9, 0.95]
    assert r["encoder"] == {"name": "vit_small", "attention": "dense"}
    assert r["train"]["batch_size"] == 32
    assert r["method"]["mask"] == {"ratio": [0.6, 0.7]}
    # 5e-5 in YAML (a string to YAML 1.1) is read as a float.
    assert load_recipe(path)["train"]["lr"] == 5e-5


def test_saved_config_loads_back_identically(tmp_path):
    r = load_recipe(BASE, ["train.lr=3e-4"])
    again = load_recipe(save_recipe(r, tmp_path / "config.yaml"))
    assert again == r


def test_parse_override_types():
    assert parse_override("train.seed=3") == (["train", "seed"], 3)
    assert parse_override("train.compile=true") == (["train", "compile"], True)
    assert parse_override("train.precision=bf16-mixed") == (["train", "precision"], "bf16-mixed")
    with pytest.raises(RecipeError, match="section.key=value"):
        parse_override("train.lr")
    with pytest.raises(RecipeError, match="dotted"):
        parse_override("lr=1")


def test_unknown_key_is_named_with_suggestion():
    with pytest.raises(RecipeError, match=r"train\.lrr.*did you mean 'lr'"):
        load_recipe(BASE, ["train.lrr=1e-3"])
    with pytest.raises(RecipeError, match="unknown recipe section 'trian'"):
        load_recipe({**BASE, "trian": {}})


@pytest.mark.parametrize("override, message", [
    ("train.max_epochs=two", "train.max_epochs must be int or null"),
    ("train.compile=1", "train.compile must be bool"),
    ("train.max_steps=10", "exactly one of train.max_epochs and train.max_steps"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("train.min_lr=1.0", "min_lr"),
    ("train.precision=fp8", "train.precision"),
])
def test_bad_values(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(BASE, [override])


def test_method_and_encoder_names_required():
    with pytest.raises(RecipeError, match="method.name is required"):
        load_recipe({"encoder": {"name": "x"}, "train": {"max_epochs": 1}})
    with pytest.raises(RecipeError, match="not a section"):
        apply_overrides({"train": {"lr": 1.0}}, ["train.lr.x=1"])


def test_unknown_method_name():
    with pytest.raises(RecipeError, match="unknown method 'simclr'"):
        build_method(load_recipe({**BASE, "method": {"name": "simclr"}}))


def test_precision_and_strategy_resolution():
    assert resolve_precision("auto", "cpu") == "32-true"
    with pytest.raises(RecipeError, match="on CPU"):
        resolve_precision("bf16-mixed", "cpu")
    assert resolve_strategy("auto", 2, 1) == "ddp"
    assert resolve_strategy("auto", 1, 1) == "auto"
    assert resolve_strategy("ddp_spawn", 2, 1) == "ddp_spawn"
