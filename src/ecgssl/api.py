"""The small public Python API: load an encoder, embed ECGs, delineate ECGs, read records.

Example::

    import ecgssl
    enc = ecgssl.load_encoder("runs/demo/jepa/encoder.safetensors")  # or an original .pth
    z = enc.embed(signal_mv, fs=500, leads=["I", "II", ..., "V6"])    # (D,) float32
    waves = ecgssl.delineate(signal_mv, fs=500, leads=[...],
                             model="runs/demo/report/segmentation_model.pt")

Inputs are always in millivolts with their own sampling rate and lead names; the checkpoint's
preprocessing spec decides how they are converted (resampled, leads mapped/derived, cropped or
padded), and a mismatch that cannot be converted is refused with a ``SpecMismatchError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgssl.data.leads import LEADS_8
from ecgssl.data.record import WAVE_NAMES, Record
from ecgssl.errors import SpecMismatchError

# What the released ECG-JEPA checkpoints were trained on (Kim 2024): 8 leads, 250 Hz, 10 s, mV.
ORIGINAL_JEPA_PREPROCESSING = {"fs": 250.0, "leads": list(LEADS_8), "n_samples": 2500,
                               "units": "mV", "filters": None, "normalisation": None}


@dataclass
class Encoder:
    """A loaded encoder and the preprocessing spec its inputs must follow.

    Attributes:
        module: the ``nn.Module`` (eval mode); ``module(x) -> (B, D)`` on spec-conform input.
        spec: ``{"encoder": {...}, "preprocessing": {"fs", "leads", "n_samples", "units", ...}}``.
        path: where it was loaded from.
    """

    module: nn.Module
    spec: dict[str, Any]
    path: Path | None = None

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.spec["preprocessing"]

    @property
    def embed_dim(self) -> int:
        return int(self.module.embed_dim)

    @property
    def pooled_dim(self) -> int:
        """Length of one embedding (``embed``'s last axis): 2 embed_dim for "meanmax" pooling."""
        from ecgssl.models.pooling import output_dim

        return int(output_dim(self.module))

    def prepare(self, signal: np.ndarray, fs: float, leads: Sequence[str],
                missing_leads: str = "error") -> tuple[np.ndarray, list[str]]:
        """Convert (L, T) or (N, L, T) mV input to the spec; returns (array, lead names)."""
        from ecgssl.train.export import check_input

        x = np.asarray(signal, dtype=np.float32)
        if x.ndim not in (2, 3):
            raise SpecMismatchError(f"signal must be (leads, samples) or (N, leads, samples), "
                                    f"got shape {x.shape}")
        if x.shape[-2] != len(leads):
            raise SpecMismatchError(f"signal has {x.shape[-2]} leads but {len(leads)} lead names "
                                    f"were given ({list(leads)})")
        if not np.isfinite(x).all():
            raise SpecMismatchError("signal contains NaN or inf samples")
        adapter = check_input(self.spec, fs, list(leads), x.shape[-1],
                              missing_leads=missing_leads)
        return adapter(x), adapter.leads

    @torch.no_grad()
    def embed(self, signal: np.ndarray, fs: float, leads: Sequence[str],
              missing_leads: str = "error", batch_size: int = 64) -> np.ndarray:
        """Pooled representation(s): (D,) for (L, T) input, (N, D) for (N, L, T), float32.

        Args:
            signal: millivolts at ``fs`` Hz with rows named by ``leads``.
            missing_leads: ``"error"``, ``"zero"`` or ``"drop"`` (ViT encoders accept any
                subset of their leads: lead II alone, II + V1, ...).
        """
        x, out_leads = self.prepare(signal, fs, leads, missing_leads)
        single = x.ndim == 2
        x = x[None] if single else x
        from ecgssl.models.registry import takes_lead_names

        kwargs = {"leads": out_leads} if takes_lead_names(self.module) else {}
        if not kwargs and out_leads != list(self.preprocessing["leads"]):
            raise SpecMismatchError(f"this encoder needs exactly the leads "
                                    f"{self.preprocessing['leads']}; got {out_leads}")
        device = next(self.module.parameters()).device
        parts = [self.module(torch.from_numpy(x[i:i + batch_size]).to(device), **kwargs).cpu()
                 for i in range(0, len(x), batch_size)]
        z = torch.cat(parts).numpy().astype(np.float32)
        return z[0] if single else z


def load_encoder(path: str | Path, device: str = "cpu", pool: str | None = None) -> Encoder:
    """Load an encoder: ours (``.safetensors`` + ``.json``, or a run directory) or an original
    ECG-JEPA release (``.pth``/``.pt`` with ``{'encoder': state_dict, 'epoch': n}``).

    ``pool``: replace the pooling of ``embed`` / ``forward`` (``ecgssl.models.pooling``: "mean"
    or "meanmax"); recorded in the returned spec, so a random-init twin built from it pools the
    same way. None keeps the checkpoint's.
    """
    enc = _load_encoder(Path(path), device)
    if pool is not None:
        from ecgssl.models.pooling import check_pool

        check_pool(pool)
        if not hasattr(enc.module, "pool"):
            raise ValueError(f"{path}: this encoder ({enc.spec['encoder']['name']}) has a fixed "
                             "pooling; pool= applies to ecgssl's own encoders")
        enc.module.pool = pool
        if isinstance(getattr(enc.module, "spec", None), dict):
            enc.module.spec["pool"] = pool
        enc.spec["encoder"].setdefault("overrides", {})["pool"] = pool
        enc.spec["encoder"]["pooled_dim"] = int(enc.module.pooled_dim)
    return enc


def _load_encoder(path: Path, device: str) -> Encoder:
    path = Path(path)
    if path.is_dir():
        candidate = path / "encoder.safetensors"
        if not candidate.exists():
            raise FileNotFoundError(f"{path} holds no encoder.safetensors (is it a run dir?)")
        path = candidate
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix in (".pt", ".pth"):
        from ecgssl.compat.ecg_jepa import load_original_checkpoint

        module = load_original_checkpoint(path).to(device)
        spec = {"encoder": {"name": "ecg_jepa_original", "overrides": dict(module.spec)},
                "preprocessing": dict(ORIGINAL_JEPA_PREPROCESSING),
                "training": {"source": "original ECG-JEPA release"}}
        return Encoder(module.eval(), spec, path)
    from ecgssl.train.export import load_encoder as load_exported

    module, spec = load_exported(path, map_location=device)
    return Encoder(module, spec, path)


def embed(encoder: Encoder | str | Path, signal: np.ndarray, fs: float, leads: Sequence[str],
          missing_leads: str = "error") -> np.ndarray:
    """Shortcut for ``load_encoder(path).embed(signal, fs, leads)``."""
    enc = encoder if isinstance(encoder, Encoder) else load_encoder(encoder)
    return enc.embed(signal, fs, leads, missing_leads)


# ------------------------------------------------------------------------------ delineation


def save_segmentation_model(model: nn.Module, path: str | Path, encoder_spec: dict[str, Any],
                            info: dict[str, Any] | None = None) -> Path:
    """Save a trained ``SegmentationModel`` with what is needed to rebuild and feed it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "ecgssl-segmentation", "state_dict": model.state_dict(),
                "encoder_spec": encoder_spec, "freeze_encoder": bool(model.freeze_encoder),
                "info": info or {}}, path)
    return path


def load_segmentation_model(path: str | Path, device: str = "cpu"):
    """(model, encoder spec) from ``save_segmentation_model``."""
    from ecgssl.models import create_encoder
    from ecgssl.models.seg_heads import build_seg_model

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"segmentation model {path} does not exist")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "ecgssl-segmentation":
        raise SpecMismatchError(f"{path} is not an ecgssl segmentation model")
    spec = dict(ckpt["encoder_spec"])
    # Leads the decoder was trained and scored on (others are input only).
    spec["scored_leads"] = ckpt.get("info", {}).get("scored_leads",
                                                    spec["preprocessing"]["leads"])
    encoder = create_encoder(spec["encoder"]["name"], **spec["encoder"]["overrides"])
    model = build_seg_model(encoder, len(spec["preprocessing"]["leads"]),
                            freeze_encoder=ckpt["freeze_encoder"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), spec


def delineate(signal: np.ndarray, fs: float, leads: Sequence[str], model: str | Path,
              missing_leads: str = "error") -> dict[str, list[dict[str, float]]]:
    """P/QRS/T waves of each lead of one ECG.

    Args:
        signal: (L, T) millivolts at ``fs`` Hz, rows named by ``leads``.
        model: a segmentation model saved by ``save_segmentation_model`` (``ecgssl demo``
            writes one).
    Returns:
        lead -> list of ``{"wave": "P"|"QRS"|"T", "onset_s", "offset_s"}`` in seconds of the
        input (after the model's crop: the first ``n_samples`` at its rate), for the leads the
        model was trained to delineate.
    """
    from ecgssl.eval.segmentation import predict_waves

    seg, spec = load_segmentation_model(model)
    enc = Encoder(seg, spec)
    x, out_leads = enc.prepare(signal, fs, leads, missing_leads)
    rate = float(spec["preprocessing"]["fs"])
    _, waves = predict_waves(seg, x, rate, leads=out_leads)
    scored = set(spec["scored_leads"])
    return {lead: [{"wave": WAVE_NAMES[int(code)], "onset_s": float(on) / rate,
                    "offset_s": float(off) / rate} for code, on, off in lead_waves]
            for lead, lead_waves in zip(out_leads, waves) if lead in scored}


# ------------------------------------------------------------------------------ records


def read_records(path: str | Path, kind: str | None = None, **options) -> Iterator[Record]:
    """Every record of a supported source (LUDB, PTB-XL, CinC, WFDB, long records, a folder)."""
    from ecgssl.io import open_source

    yield from open_source(path, kind=kind, **options)


def describe_checkpoint(path: str | Path) -> str:
    """Human-readable summary of an encoder or segmentation checkpoint (``ecgssl info``)."""
    path = Path(path)
    if path.suffix == ".pt" and path.exists():
        try:
            _, spec = load_segmentation_model(path)
            kind = "segmentation model"
        except SpecMismatchError:
            spec, kind = load_encoder(path).spec, "encoder (original ECG-JEPA format)"
    else:
        enc = load_encoder(path)
        spec, kind = enc.spec, "encoder"
    pre = spec["preprocessing"]
    overrides = json.dumps(spec["encoder"].get("overrides", {}))
    lines = [f"{kind} {path}",
             f"  architecture: {spec['encoder']['name']} {overrides}",
             f"  expects: {pre['fs']:g} Hz, {pre['n_samples']} samples, leads "
             f"{', '.join(pre['leads'])}, units {pre.get('units', 'mV')}",
             f"  filters: {pre.get('filters')}  normalisation: {pre.get('normalisation')}"]
    training = spec.get("training")
    if training:
        lines.append(f"  training: {json.dumps(training)[:300]}")
    return "\n".join(lines)
