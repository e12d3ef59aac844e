"""Training recipes: YAML files with defaults, dotted command-line overrides and strict validation.

A recipe has these sections::

    name: jepa_vits_ptbxl          # optional run name
    description: ...               # optional free text
    method:  {name: jepa, ...}     # passed to the method's builder (it validates its own keys)
    encoder: {name: vit_small, ...}  # name + overrides for ecgssl.models.create_encoder
    data:    {...}                 # DATA_SCHEMA
    train:   {...}                 # TRAIN_SCHEMA
    probe:   {...}                 # PROBE_SCHEMA (optional online linear probe)

``data``, ``train`` and ``probe`` are checked here: unknown keys and wrong types are errors that
name the key, list the valid ones and suggest the closest. ``method`` and ``encoder`` keys other
than ``name`` belong to their builders, which must reject unknown keys themselves.

Overrides are ``section.key=value`` strings; values are parsed as YAML (``1e-4`` is a float,
``[0.9, 0.95]`` a list, ``null`` is None), e.g. ``train.lr=1e-4 encoder.name=vit_small``.

Training length: exactly one of ``train.max_epochs`` and ``train.max_steps``.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

_NUM = (int, float)

# key: (default, allowed types; None in the tuple means the value may be null)
TRAIN_SCHEMA: dict[str, tuple[Any, tuple]] = {
    "seed": (0, (int,)),
    "batch_size": (64, (int,)),
    "max_epochs": (None, (int, None)),
    "max_steps": (None, (int, None)),
    "lr": (1e-4, _NUM),
    "min_lr": (1e-6, _NUM),
    "weight_decay": (0.05, _NUM),
    "betas": ([0.9, 0.999], (list,)),
    "eps": (1e-8, _NUM),
    "warmup_epochs": (0.0, _NUM),
    "warmup_steps": (None, (int, None)),
    "accumulate_grad_batches": (1, (int,)),
    "gradient_clip_val": (None, (*_NUM, None)),
    "precision": ("auto", (str,)),
    "accelerator": ("auto", (str,)),
    "devices": ("auto", (int, str, list)),
    "num_nodes": (1, (int,)),
    "strategy": ("auto", (str,)),
    "compile": (False, (bool,)),
    "checkpoint_every_n_steps": (0, (int,)),
    "checkpoint_every_n_epochs": (1, (int,)),
    "log_every_n_steps": (10, (int,)),
    "collapse_every_n_steps": (0, (int,)),
    "progress_bar": (True, (bool,)),
    "tensorboard": (True, (bool,)),
    "deterministic": (False, (bool,)),
    "matmul_precision": ("highest", (str,)),
}

DATA_SCHEMA: dict[str, tuple[Any, tuple]] = {
    # What the recipe needs of the store (checked by ``pretrain``; null: take the store's).
    # ``leads`` also selects and orders the rows fed to the method.
    "leads": (None, (list, None)),
    "fs": (None, (*_NUM, None)),
    "n_samples": (None, (int, None)),
    "extras": (None, (list, None)),
    # Preprocessing settings the store must have (keys of its config.json "preprocess").
    "preprocess": (None, (dict, None)),
    # Loading.
    "num_workers": (0, (int,)),
    "persistent_workers": (True, (bool,)),
    "pin_memory": ("auto", (bool, str)),
    "prefetch_factor": (2, (int,)),
    "shuffle": (True, (bool,)),
    "drop_last": (True, (bool,)),
    "max_samples": (None, (int, None)),
}

PROBE_SCHEMA: dict[str, tuple[Any, tuple]] = {
    "store": (None, (str, None)),
    "every_n_epochs": (0, (int,)),
    "val_fraction": (0.3, _NUM),
    "max_samples": (2000, (int,)),
    "batch_size": (128, (int,)),
    "seed": (0, (int,)),
}

SCHEMAS = {"train": TRAIN_SCHEMA, "data": DATA_SCHEMA, "probe": PROBE_SCHEMA}
FREE_SECTIONS = ("method", "encoder")
TOP_LEVEL = ("name", "description")


class RecipeError(ValueError):
    """A recipe or an override is invalid; the message says where and what is allowed."""


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_ok(value: Any, types: tuple) -> bool:
    if value is None:
        return None in types
    if isinstance(value, bool):  # bool is an int: only accept it where bool is declared
        return bool in types
    return isinstance(value, tuple(t for t in types if t is not None))


def _type_names(types: tuple) -> str:
    return " or ".join("null" if t is None else t.__name__ for t in types)


def defaults() -> dict[str, Any]:
    """A recipe with every checked key at its default (method/encoder empty)."""
    out: dict[str, Any] = {"name": None, "description": "", "method": {}, "encoder": {}}
    for section, schema in SCHEMAS.items():
        out[section] = {key: copy.deepcopy(default) for key, (default, _) in schema.items()}
    return out


def validate(recipe: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and check a recipe; returns a new, complete dict.

    Raises:
        RecipeError: unknown section or key, wrong type, missing ``method.name`` /
            ``encoder.name``, or inconsistent values (both or neither of epochs / max_steps ...).
    """
    if not isinstance(recipe, dict):
        raise RecipeError(f"a recipe must be a mapping, got {type(recipe).__name__}")
    known = set(SCHEMAS) | set(FREE_SECTIONS) | set(TOP_LEVEL)
    for key in recipe:
        if key not in known:
            raise RecipeError(f"unknown recipe section {key!r}{_suggest(key, known)}; "
                              f"valid sections: {sorted(known)}")
    out = defaults()
    for key in TOP_LEVEL:
        if key in recipe:
            out[key] = recipe[key]
    for section in FREE_SECTIONS:
        given = recipe.get(section) or {}
        if not isinstance(given, dict):
            raise RecipeError(f"section {section!r} must be a mapping, got {given!r}")
        if not isinstance(given.get("name"), str) or not given["name"]:
            raise RecipeError(f"{section}.name is required (a string), got {given.get('name')!r}")
        out[section] = copy.deepcopy(given)
    for section, schema in SCHEMAS.items():
        given = recipe.get(section) or {}
        if not isinstance(given, dict):
            raise RecipeError(f"section {section!r} must be a mapping, got {given!r}")
        for key, value in given.items():
            if key not in schema:
                raise RecipeError(f"unknown key {section}.{key}{_suggest(key, schema)}; valid "
                                  f"keys of {section!r}: {sorted(schema)}")
            types = schema[key][1]
            if not _type_ok(value, types):
                raise RecipeError(f"{section}.{key} must be {_type_names(types)}, got {value!r}")
            out[section][key] = copy.deepcopy(value)
    _check_values(out)
    return out


def _check_values(r: dict[str, Any]) -> None:
    t, d = r["train"], r["data"]
    if (t["max_epochs"] is None) == (t["max_steps"] is None):
        raise RecipeError("give exactly one of train.max_epochs and train.max_steps "
                          f"(got max_epochs={t['max_epochs']}, max_steps={t['max_steps']})")
    for section, key, low in [("train", "max_epochs", 1), ("train", "max_steps", 1),
                              ("train", "accumulate_grad_batches", 1), ("train", "num_nodes", 1),
                              ("train", "log_every_n_steps", 1), ("train", "batch_size", 1),
                              ("data", "num_workers", 0), ("data", "prefetch_factor", 1),
                              ("data", "n_samples", 1),
                              ("train", "checkpoint_every_n_steps", 0),
                              ("train", "checkpoint_every_n_epochs", 0),
                              ("train", "collapse_every_n_steps", 0),
                              ("probe", "every_n_epochs", 0), ("probe", "max_samples", 2)]:
        value = r[section][key]
        if value is not None and value < low:
            raise RecipeError(f"{section}.{key} must be >= {low}, got {value}")
    if not 0 < t["lr"] or not 0 <= t["min_lr"] <= t["lr"]:
        raise RecipeError(f"need train.lr > 0 and 0 <= train.min_lr <= lr, got lr={t['lr']}, "
                          f"min_lr={t['min_lr']}")
    if len(t["betas"]) != 2:
        raise RecipeError(f"train.betas must have two values, got {t['betas']}")
    if t["precision"] not in ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true"):
        raise RecipeError(f"train.precision must be auto, 32-true, bf16-mixed or 16-mixed, got "
                          f"{t['precision']!r}")
    if t["matmul_precision"] not in ("highest", "high", "medium"):
        raise RecipeError("train.matmul_precision must be highest, high or medium")
    if d["pin_memory"] not in (True, False, "auto"):
        raise RecipeError(f"data.pin_memory must be true, false or auto, got {d['pin_memory']!r}")
    if not 0 < r["probe"]["val_fraction"] < 1:
        raise RecipeError("probe.val_fraction must be in (0, 1)")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` -> (``["train", "lr"]``, ``1e-4``)."""
    if "=" not in text:
        raise RecipeError(f"override {text!r} must look like section.key=value")
    path, raw = text.split("=", 1)
    keys = [k.strip() for k in path.strip().split(".")]
    if len(keys) < 2 and keys[0] not in TOP_LEVEL or any(not k for k in keys):
        raise RecipeError(f"override {text!r}: the key must be dotted, e.g. train.lr=1e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise RecipeError(f"override {text!r}: cannot parse value: {err}") from err
    # YAML 1.1 reads 1e-4 as a string (it wants 1.0e-4); accept what people type.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else value
        except ValueError:
            pass
    return keys, value


def apply_overrides(recipe: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """A copy of ``recipe`` with dotted overrides set (nested dicts are created as needed)."""
    out = copy.deepcopy(recipe)
    for text in overrides or []:
        keys, value = parse_override(text)
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {text!r}: {key!r} is not a section")
        node[keys[-1]] = value
    return out


def _fix_yaml_floats(node: Any) -> Any:
    """YAML 1.1 leaves ``5e-5`` as a string; convert such strings to floats."""
    if isinstance(node, dict):
        return {k: _fix_yaml_floats(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_yaml_floats(v) for v in node]
    if isinstance(node, str):
        try:
            return float(node) if "e" in node.lower() and node.strip()[0] in "0123456789.+-" \
                else node
        except ValueError:
            return node
    return node


def load_recipe(source: str | Path | dict[str, Any], overrides: list[str] | None = None
                ) -> dict[str, Any]:
    """Read a recipe (YAML path or dict), apply overrides, validate; returns the resolved dict."""
    if isinstance(source, dict):
        raw = source
    else:
        path = Path(source)
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise RecipeError(f"{path}: invalid YAML: {err}") from err
        if raw is None:
            raw = {}
    raw = _fix_yaml_floats(raw)
    return validate(apply_overrides(raw, overrides))


def save_recipe(recipe: dict[str, Any], path: str | Path) -> Path:
    """Write a resolved recipe as YAML (readable back with ``load_recipe``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False, default_flow_style=False))
    return path
