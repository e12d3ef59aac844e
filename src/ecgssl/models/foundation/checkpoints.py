"""Recognise a released foundation-model checkpoint by its contents and load it with its spec.

``load_foundation(path)`` reads a ``.pt`` / ``.pth`` file (tensors only: ``weights_only=True``,
no code from the file runs), asks each model module whether the state dict looks like its own
(``looks_like``), maps it to our encoder (``from_state_dict``, strict: every tensor is either
loaded or counted as dropped with a reason) and returns the encoder with an ecgssl spec:

- ``encoder``: registry name + overrides (so a random-init twin and exports rebuild it);
- ``preprocessing``: the model card's rate, length, leads, units, ``filters`` (none: raw input)
  and ``encoder_applies`` (the authors' filters and normalisation, applied by the encoder);
- ``training``: ``source``, ``pretraining_data`` (for ``ecgssl.eval.overlap``), ``licence``,
  ``commercial_use``, the load report;
- ``foundation``: the whole model card.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecgssl.errors import SpecMismatchError

# key -> module name under ecgssl.models.foundation (each has looks_like / unwrap /
# from_state_dict; the encoder carries its model card). HuBERT-ECG comes as a Hugging Face
# folder (config.json + model.safetensors), handled in load_foundation.
MODELS = {"founder": "ecgfounder", "stmem": "stmem", "merl": "merl", "ecgfm": "ecgfm"}


def _module(name: str):
    import importlib

    return importlib.import_module(f"ecgssl.models.foundation.{name}")


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickled Python objects (optimizer, argparse Namespace) or corrupt
        raise SpecMismatchError(
            f"{path}: cannot read it as tensors only ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}); ecgssl does not unpickle code from checkpoint "
            "files. Re-save just the weights: torch.save(ckpt['state_dict'], 'weights.pth') "
            "(or ckpt['model'])") from err


def unwrap(ckpt: Any, key: str | None) -> Any:
    """The state dict inside a released file: ``ckpt[key]`` when the model's files wrap it
    (``CHECKPOINT_KEY`` of its module: ``"state_dict"``, fairseq's ``"model"``), else ``ckpt``."""
    if key and isinstance(ckpt, Mapping) and isinstance(ckpt.get(key), Mapping):
        return ckpt[key]
    return ckpt


def detect(ckpt: Any) -> str | None:
    """The ``MODELS`` key whose tensor layout ``ckpt`` (a loaded file) has, or None."""
    if not isinstance(ckpt, Mapping):
        return None
    for key, mod_name in MODELS.items():
        mod = _module(mod_name)
        state = unwrap(ckpt, mod.CHECKPOINT_KEY)
        if isinstance(state, Mapping) and mod.looks_like(state):
            return key
    return None


def spec_for(module: nn.Module, report: Mapping[str, Any], path: Path | None = None
             ) -> dict[str, Any]:
    """The ecgssl spec of a foundation encoder (see the module docstring)."""
    card = module.card
    return {
        "encoder": {"name": module.spec["name"], "overrides": dict(module.spec["overrides"]),
                    "embed_dim": int(module.embed_dim), "stride": int(module.stride),
                    "pooled_dim": int(module.pooled_dim)},
        "preprocessing": card.preprocessing(module.lead_order),
        "training": {"source": card.title, "checkpoint": str(path) if path else None,
                     "pretraining_data": [dict(d) for d in card.pretraining_data],
                     "licence": card.licence, "commercial_use": card.commercial_use,
                     "load_report": dict(report)},
        "foundation": card.as_dict(),
    }


def load_foundation(path: str | Path, device: str = "cpu", **overrides
                    ) -> tuple[nn.Module, dict[str, Any]] | None:
    """(encoder in eval mode, spec) for a released foundation checkpoint: a ``.pt`` / ``.pth``
    file of one of ``MODELS``, or a Hugging Face HuBERT-ECG folder (``config.json`` +
    ``model.safetensors``); None for anything else (e.g. an original ECG-JEPA release)."""
    path = Path(path)
    if path.is_dir():
        from ecgssl.models.foundation import hubert_ecg

        if not hubert_ecg.is_hf_dir(path):
            return None
        module, report = hubert_ecg.load_hf_dir(path, **overrides)
        return module.to(device).eval(), spec_for(module, report, path)
    if path.suffix not in (".pt", ".pth"):
        return None
    ckpt = _read(path)
    key = detect(ckpt)
    if key is None:
        return None
    mod = _module(MODELS[key])
    if key == "ecgfm" and "config" not in overrides:
        overrides = {**overrides, "config": _fairseq_yaml(path)}
    try:
        module, report = mod.from_state_dict(unwrap(ckpt, mod.CHECKPOINT_KEY),
                                             **overrides)
    except ValueError as err:
        raise SpecMismatchError(f"{path}: looks like a {key} checkpoint but {err}") from err
    return module.to(device).eval(), spec_for(module, report, path)


def _fairseq_yaml(path: Path) -> dict[str, Any] | None:
    """The ``model`` section of the authors' YAML beside a fairseq checkpoint (same stem, as
    ECG-FM's Hugging Face release has it), read with ``yaml.safe_load``; None when absent."""
    import yaml

    for candidate in (path.with_suffix(".yaml"), path.with_suffix(".yml")):
        if candidate.is_file():
            cfg = yaml.safe_load(candidate.read_text()) or {}
            return dict(cfg.get("model", cfg))
    return None
