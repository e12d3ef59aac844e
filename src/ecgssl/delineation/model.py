"""The single-channel delineator: network, input normalisation and file format.

Network: ``unet1d`` contracting path (``ecgssl.models.cnn``) on ONE input channel plus the U-Net
decoder of ``ecgssl.models.seg_heads``: (B, 1, T) -> logits (B, 1, 4, T) (none, P, QRS, T). Every
lead is delineated on its own, so any lead or lead subset of any recorder can be fed.

Input normalisation (``normalise_window``), the same in training and inference: subtract the
window's median and divide by the 99th percentile of |x - median| (floored at 0.05 mV so that a
flat line is not blown up to noise). This makes the model independent of the recorder's gain
and of LUDB's peculiar per-lead amplitudes; the augmentation then teaches it the rest.

File format: ``<stem>.safetensors`` (weights, no pickle) + ``<stem>.json``::

    {"format": "ecgssl-delineator", "version": 1, "network": {encoder name, overrides, head},
     "input": {"fs", "window", "overlap", "normalisation"}, "postprocess": {...},
     "weights_sha256": "...", "training": {...}, "validation": {...}, "licence": {...}}

The sha256 of the weights file is checked at load; a mismatch is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgssl.errors import SpecMismatchError

FORMAT = "ecgssl-delineator"
VERSION = 1
#: The bundled default model (trained on all of LUDB by ``python -m ecgssl.delineation.train``).
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "resources" / "delineator_ludb"
#: Floor of the normalisation scale (mV): below it a window is treated as (nearly) flat.
SCALE_FLOOR_MV = 0.05

#: Default network: unet1d widths 8-16-32-64-96, kernel 9 (about 0.2 M parameters, < 1 MB).
DEFAULT_NETWORK = {"encoder": "unet1d", "overrides": {"widths": [8, 16, 32, 64, 96], "kernel": 9},
                   "head": {}}
DEFAULT_INPUT = {"fs": 250.0, "window": 2048, "overlap": 512,
                 "normalisation": "median / p99 |x - median|, floor 0.05 mV"}


def normalise_window(x: np.ndarray) -> np.ndarray:
    """(..., T) mV -> (..., T) float32 unit-scale signal (module docstring), per row."""
    x = np.asarray(x, dtype=np.float32)
    med = np.median(x, axis=-1, keepdims=True)
    centred = x - med
    scale = np.percentile(np.abs(centred), 99, axis=-1, keepdims=True)
    return (centred / np.maximum(scale, SCALE_FLOOR_MV)).astype(np.float32)


def build_network(network: dict[str, Any] | None = None) -> nn.Module:
    """A fresh (random) single-channel segmentation model from a ``network`` spec."""
    from ecgssl.models import create_encoder
    from ecgssl.models.seg_heads import build_seg_model

    net = dict(DEFAULT_NETWORK if network is None else network)
    encoder = create_encoder(net["encoder"], n_leads=1, **net.get("overrides", {}))
    return build_seg_model(encoder, 1, **net.get("head", {}))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stem(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


def save_delineator(model: nn.Module, path: str | Path, spec: dict[str, Any]) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` (spec + weights sha256); returns the JSON
    path. ``spec`` needs ``network`` and ``input``; other keys (training, validation, licence,
    postprocess) are stored as given."""
    from safetensors.torch import save_file

    for key in ("network", "input"):
        if key not in spec:
            raise ValueError(f"delineator spec needs {key!r}")
    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = stem.with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    meta = {"format": FORMAT, "version": VERSION, **spec,
            "weights_file": weights.name, "weights_sha256": sha256_file(weights)}
    out = stem.with_suffix(".json")
    out.write_text(json.dumps(meta, indent=1, default=float) + "\n")
    return out


def is_delineator(path: str | Path) -> bool:
    """True when ``path`` (stem, .json or .safetensors) names a delineator of this format."""
    meta = _stem(path).with_suffix(".json")
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def load_delineator(path: str | Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, spec) of a saved delineator; ``None`` loads the bundled default.

    Raises:
        FileNotFoundError: no ``<stem>.json`` / ``.safetensors``.
        SpecMismatchError: not this format, a newer version, or a sha256 mismatch.
    """
    from safetensors.torch import load_file

    stem = _stem(DEFAULT_MODEL if path is None else path)
    meta_path, weights = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    for p in (meta_path, weights):
        if not p.is_file():
            hint = (" (the bundled model is rebuilt by `python -m ecgssl.delineation.train`)"
                    if path is None else "")
            raise FileNotFoundError(f"delineator file {p} does not exist{hint}")
    spec = json.loads(meta_path.read_text())
    if spec.get("format") != FORMAT:
        raise SpecMismatchError(f"{meta_path} is not an ecgssl delineator (format "
                                f"{spec.get('format')!r})")
    if int(spec.get("version", 0)) > VERSION:
        raise SpecMismatchError(f"{meta_path} has version {spec['version']}; this ecgssl reads "
                                f"up to {VERSION}: upgrade ecgssl")
    digest = sha256_file(weights)
    if digest != spec.get("weights_sha256"):
        raise SpecMismatchError(f"{weights}: sha256 {digest[:12]}... does not match the "
                                f"{str(spec.get('weights_sha256'))[:12]}... recorded in "
                                f"{meta_path.name} (corrupt or replaced file): re-download or "
                                "rebuild it")
    model = build_network(spec["network"])
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), spec


def describe_delineator(path: str | Path) -> str:
    """Human-readable summary of a delineator's JSON (``ecgssl info``)."""
    meta_path = _stem(path).with_suffix(".json")
    spec = json.loads(meta_path.read_text())
    inp, train = spec["input"], spec.get("training", {})
    lines = [f"delineator {meta_path}",
             f"  network: {spec['network']['encoder']} {json.dumps(spec['network'])} "
             f"({spec.get('n_parameters', '?')} parameters), single-channel: any lead",
             f"  input: any rate >= 100 Hz -> {inp['fs']:g} Hz, windows of {inp['window']} "
             f"samples overlapping by {inp['overlap']}; normalisation {inp['normalisation']}",
             f"  post-processing: {json.dumps(spec.get('postprocess', {}))}",
             f"  weights sha256: {spec.get('weights_sha256')}"]
    if train:
        lines.append(f"  training: {train.get('n_records')} records, {train.get('steps')} steps, "
                     f"{train.get('seconds')} s; {train.get('command', '')}")
    val = spec.get("validation")
    if val:
        lines.append(f"  validation ({len(val.get('records', []))} records): chose "
                     f"{val.get('chosen_name')}, mean F1 {val.get('score', float('nan')):.3f}")
    if "licence" in spec:
        lines.append(f"  data: {spec['licence'].get('training_data')} "
                     f"({spec['licence'].get('data_licence')})")
    return "\n".join(lines)


def n_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """(B, T) normalised windows -> (B, 1, T) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[:, None, :]
