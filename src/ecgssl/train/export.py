"""Encoder export: ``<name>.safetensors`` (weights) + ``<name>.json`` (what the weights expect).

The JSON (``format: "ecgssl-encoder"``) holds:

- ``encoder``: ``{"name", "overrides", "embed_dim", "stride"}`` so that
  ``create_encoder(name, **overrides)`` rebuilds the architecture;
- ``preprocessing``: ``{"fs", "leads", "n_samples", "units", "filters", "normalisation",
  "store_hash", "config"}`` from the store the encoder was trained on;
- ``training``: a summary of the data and run (method, steps, samples, sources);
- ``ecgssl_version``;
- ``weights``: ``{"file", "sha256", "bytes"}`` of the safetensors file, verified on load
  (``ecgssl.safety.artefacts``; exports without it load with a warning).

Preprocessing is part of the model: ``ecgssl.data.inference.prepare_input`` runs a recording
through the stored ``config`` with the same functions ``prepare`` uses (``Encoder.embed`` does
this), or refuses with a ``SpecMismatchError`` that says what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import ecgssl
from ecgssl.errors import SpecMismatchError
from ecgssl.safety.artefacts import (
    check_state_fits,
    load_model_file,
    read_json_file,
    save_model_file,
)

FORMAT = "ecgssl-encoder"
FORMAT_VERSION = 1
LIMB_DERIVED = ("III", "aVR", "aVL", "aVF")


def encoder_spec(encoder: nn.Module) -> dict[str, Any]:
    """``{"name", "overrides", "embed_dim", "stride"}`` from an encoder's ``spec`` attribute.

    The encoder's ``spec`` gives its registry ``name`` (or ``registry_name``); its constructor
    arguments are ``spec["overrides"]`` when present, else every other key of ``spec`` (except
    ``class``). A ViT whose spec name is not a registry key (``"vit"``) is rebuilt from the
    ``vit_base`` entry with every architecture field overridden from its spec.
    """
    from ecgssl.models import list_encoders

    spec = getattr(encoder, "spec", None)
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{type(encoder).__name__} has no spec dict with a 'name': it cannot be "
                         "exported in a rebuildable form")
    name = spec.get("registry_name", spec["name"])
    if "overrides" in spec:
        overrides = dict(spec["overrides"])
    else:
        overrides = {k: v for k, v in spec.items() if k not in ("name", "class", "registry_name")}
    if name not in list_encoders():
        if spec.get("class") == "VisionTransformerECG":
            name = "vit_base"  # the spec lists every architecture field: nothing of base remains
        else:
            raise ValueError(f"encoder spec name {name!r} is not a registered encoder "
                             f"({list_encoders()}): it could not be rebuilt")
    out = {"name": name, "overrides": _jsonable(overrides)}
    for attr in ("embed_dim", "stride", "pooled_dim"):
        if hasattr(encoder, attr):
            out[attr] = int(getattr(encoder, attr))
    return out


def preprocessing_spec(store_config: dict[str, Any], leads: list[str] | None = None
                       ) -> dict[str, Any]:
    """The preprocessing part of an export from a store's ``config.json`` contents.

    ``leads``: the store leads the encoder was trained on, in its input order (a recipe's
    ``data.leads``); default all of the store's leads.
    """
    for key in ("fs", "leads", "n_samples"):
        if key not in store_config:
            raise ValueError(f"store config has no {key!r}: cannot describe the encoder's input")
    pre = store_config.get("preprocess") or {}
    normalisation = pre.get("normalisation", pre.get("normalization", pre.get("normalize")))
    filters = pre.get("filters")
    if filters is None:  # the store's PreprocessConfig keeps its filters as separate fields
        filters = {k: pre[k] for k in ("bandpass_hz", "highpass_hz", "filter_order") if k in pre}
    return {
        "fs": float(store_config["fs"]),
        "leads": [str(x) for x in (leads if leads is not None else store_config["leads"])],
        "n_samples": int(store_config["n_samples"]),
        # Windows are stored in mV unless the store normalised them.
        "units": "mV" if normalisation in (None, False, "none") else "normalised",
        "filters": _jsonable(filters),
        "normalisation": _jsonable(normalisation),
        "store_hash": store_config.get("hash"),
        "config": _jsonable(pre),
    }


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON (tuples -> lists, numpy scalars -> numbers) or fail clearly."""
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except TypeError as err:
        raise ValueError(f"not JSON-serialisable: {value!r}: {err}") from err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(type(obj).__name__)


def _stem(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


def export_encoder(encoder: nn.Module, path: str | Path, store_config: dict[str, Any],
                   training: dict[str, Any] | None = None, leads: list[str] | None = None
                   ) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns both paths.

    Args:
        encoder: the trained encoder (``SSLMethod.encoder``); its ``spec`` must rebuild it.
        path: file stem (a ``.safetensors`` / ``.json`` suffix is dropped).
        store_config: the training store's ``config.json`` contents.
        training: free-form JSON-able summary (method, steps, data sources ...).
        leads: the leads the encoder reads, in order (default: the ViT's ``lead_names`` if it
            has them, else all of the store's leads).
    """
    if leads is None and hasattr(encoder, "lead_names"):
        leads = list(encoder.lead_names)
    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ecgssl_version": ecgssl.__version__,
        "encoder": encoder_spec(encoder),
        "preprocessing": preprocessing_spec(store_config, leads),
        "training": _jsonable(training or {}),
    }
    # Weights first, then the JSON with their sha256 (ecgssl.safety.artefacts).
    return save_model_file(encoder.state_dict(), stem, meta)


def read_spec(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of an export (path to either file, or the stem)."""
    json_path = _stem(path).with_suffix(".json")
    spec = read_json_file(json_path, "encoder metadata", "export the encoder again")
    if spec.get("format") != FORMAT:
        raise SpecMismatchError(f"{json_path} is not an {FORMAT} file "
                                f"(format={spec.get('format')})")
    if spec.get("format_version", 0) > FORMAT_VERSION:
        raise SpecMismatchError(f"{json_path} has format version {spec['format_version']}; this "
                                f"ecgssl ({ecgssl.__version__}) reads up to {FORMAT_VERSION}")
    return spec


def load_encoder(path: str | Path, map_location: str | torch.device = "cpu"
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild an exported encoder and load its weights (strictly); returns (encoder, spec).

    The encoder is returned in eval mode. ``spec["preprocessing"]`` says what input it expects;
    pass recordings through ``ecgssl.data.inference.prepare_input(spec, ...)`` first.
    """
    from ecgssl.models import create_encoder

    spec = read_spec(path)
    stem = _stem(path)
    weights_path = stem.with_suffix(".safetensors")
    state = load_model_file(stem, spec, device=str(map_location),
                            fix="export the encoder again or copy it again")
    try:
        encoder = create_encoder(spec["encoder"]["name"], **spec["encoder"]["overrides"])
    except (KeyError, TypeError, ValueError) as err:
        raise SpecMismatchError(f"{stem.with_suffix('.json')}: cannot build the encoder it "
                                f"describes ({type(err).__name__}: {err})") from None
    check_state_fits(encoder, state, weights_path, stem.with_suffix(".json"),
                     f"encoder {spec['encoder']['name']}")
    encoder.load_state_dict(state)
    return encoder.to(map_location).eval(), spec


def export_target_encoder(run_dir: str | Path, target: str = "target_encoder",
                          out_dir: str | Path | None = None) -> Path:
    """Export a momentum method's EMA target encoder from a finished run directory.

    The engine exports the online (student) encoder (``<run_dir>/encoder.*``); I-JEPA-style
    methods also have an EMA copy (``MomentumMethod.add_momentum_copy``), often the better
    representation. Its weights are ``method.<target>.*`` of ``checkpoints/last.ckpt``; they are
    loaded strictly into the student's architecture (any mismatch fails) and written (with their
    sha256, ``save_model_file``) beside a copy of the student's JSON (same architecture and
    preprocessing) whose ``training`` says which weights these are. ``metrics.csv`` is copied
    too (the suite's training curves).

    Returns:
        The output directory (default ``<run_dir>/target``) holding ``encoder.safetensors``,
        ``encoder.json`` and ``metrics.csv``.
    Raises:
        FileNotFoundError: no export or no last checkpoint; KeyError: the checkpoint has no
        ``method.<target>.*`` weights (not a momentum method).
    """
    import shutil

    run_dir = Path(run_dir)
    student, spec = load_encoder(run_dir / "encoder")
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoints/last.ckpt to read the target from")
    # weights_only=False: our own checkpoints carry RNG states; only load runs you trust.
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    prefix = f"method.{target}."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise KeyError(f"{ckpt_path} has no {prefix}* weights: not a momentum method's run")
    student.load_state_dict(state, strict=True)  # fails loudly on any mismatch
    out = Path(out_dir) if out_dir is not None else run_dir / "target"
    meta = {k: v for k, v in spec.items() if k != "weights"}
    meta["training"] = {**meta.get("training", {}),
                        "exported_weights": f"EMA target encoder (method.{target})"}
    save_model_file(state, out / "encoder", meta)
    if (run_dir / "metrics.csv").is_file():
        shutil.copy2(run_dir / "metrics.csv", out / "metrics.csv")
    return out
