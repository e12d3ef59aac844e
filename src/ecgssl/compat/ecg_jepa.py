"""Load checkpoints of the original ECG-JEPA release (sehunfromdaegu/ECG_JEPA) into our modules.

Formats:
* released encoders: ``torch.save({'encoder': <student encoder state_dict>, 'epoch': n})``, keys
  ``W_P.*``, ``pos_embed``, ``encoder_blocks.blocks.N.*``, ``norm.*`` - identical to
  ``VisionTransformerECG``'s names, so loading is a checked ``load_state_dict``;
* a full model state dict with ``encoder.``, ``target_encoder.`` and ``predictor.`` prefixes
  (the reference fixture) - loaded into an ``ECGJEPA``.

The released model: ViT-B (768 wide, 12 blocks, 16 heads), 8 leads I, II, V1-V6, 50 patches of
50 samples (10 s at 250 Hz), no qkv bias, positional embedding re-added before every block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ecgssl.data.leads import LEADS_8
from ecgssl.models.vit import VisionTransformerECG

# Heads cannot be read from a state dict; these are the original's sizes by width.
KNOWN_HEADS = {768: 16, 384: 6, 192: 3, 64: 4}
KNOWN_PREDICTOR_HEADS = {384: 12, 192: 6, 32: 4}


class CheckpointFormatError(ValueError):
    """A checkpoint is not in the expected ECG-JEPA format (message lists what is wrong)."""


def _as_tensors(state: Mapping) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) for k, v in state.items()}


def strip_prefix(state: Mapping, prefix: str) -> dict[str, torch.Tensor]:
    """Entries whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in _as_tensors(state).items() if k.startswith(prefix)}


def load_checked(module: nn.Module, state: Mapping, what: str = "module") -> None:
    """``load_state_dict(strict=True)`` with one clear error listing missing keys, unexpected
    keys and shape mismatches (instead of torch's first-error message)."""
    state = _as_tensors(state)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:10]}"
                         f"{' ...' if len(unexpected) > 10 else ''}")
        if shapes:
            parts.append("shape mismatches " + "; ".join(shapes[:10]))
        raise CheckpointFormatError(f"cannot load {what}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def encoder_config_from_state_dict(state: Mapping, n_leads: int = 8,
                                   num_heads: int | None = None) -> dict:
    """Infer ``VisionTransformerECG`` arguments from an original encoder state dict."""
    state = _as_tensors(state)
    for key in ("W_P.weight", "pos_embed", "norm.weight"):
        if key not in state:
            raise CheckpointFormatError(
                f"not an ECG-JEPA encoder state dict: no {key!r} (keys: {sorted(state)[:8]} ...)")
    width, patch_size = state["W_P.weight"].shape
    blocks = {int(m.group(1)) for k in state
              if (m := re.match(r"encoder_blocks\.blocks\.(\d+)\.", k))}
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise CheckpointFormatError(f"encoder blocks are missing or not numbered 0..N: {blocks}")
    n_tokens = state["pos_embed"].shape[0]
    if n_tokens % n_leads:
        raise CheckpointFormatError(f"pos_embed has {n_tokens} rows, not a multiple of "
                                    f"{n_leads} leads")
    if num_heads is None:
        if width not in KNOWN_HEADS:
            raise CheckpointFormatError(f"cannot infer the head count of width {width}; "
                                        "pass num_heads")
        num_heads = KNOWN_HEADS[width]
    hidden = state["encoder_blocks.blocks.0.mlp.fc1.weight"].shape[0]
    return {"width": int(width), "patch_size": int(patch_size), "depth": len(blocks),
            "num_heads": int(num_heads), "n_patches": n_tokens // n_leads,
            "mlp_ratio": hidden / width,
            "qkv_bias": "encoder_blocks.blocks.0.attn.qkv.bias" in state}


def encoder_from_state_dict(state: Mapping, lead_names: Sequence[str] = tuple(LEADS_8),
                            num_heads: int | None = None, attention: str = "cropa",
                            **overrides) -> VisionTransformerECG:
    """A ``VisionTransformerECG`` holding an original encoder state dict."""
    cfg = encoder_config_from_state_dict(state, len(lead_names), num_heads)
    cfg.update(overrides)
    encoder = VisionTransformerECG(lead_names=lead_names, attention=attention,
                                   pos_every_block=True, **cfg)
    load_checked(encoder, state, "ECG-JEPA encoder")
    return encoder


def load_original_checkpoint(path: str | Path, lead_names: Sequence[str] = tuple(LEADS_8),
                             num_heads: int | None = None, attention: str = "cropa",
                             key: str = "encoder") -> VisionTransformerECG:
    """Load a released ``{'encoder': state_dict, 'epoch': n}`` file (or a bare state dict, or a
    full model state dict with ``encoder.`` prefixes) as an encoder in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ECG-JEPA checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, Mapping):
        raise CheckpointFormatError(f"{path}: expected a dict, got {type(ckpt).__name__}")
    if key in ckpt and isinstance(ckpt[key], Mapping):
        state = ckpt[key]
    elif any(k.startswith(f"{key}.") for k in ckpt):
        state = strip_prefix(ckpt, f"{key}.")
    elif "W_P.weight" in ckpt:
        state = ckpt
    else:
        raise CheckpointFormatError(f"{path}: no {key!r} entry and no encoder keys; top-level "
                                    f"keys {sorted(ckpt)[:8]}")
    return encoder_from_state_dict(state, lead_names, num_heads, attention).eval()


def jepa_from_state_dict(state: Mapping, lead_names: Sequence[str] = tuple(LEADS_8),
                         num_heads: int | None = None, predictor_num_heads: int | None = None,
                         attention: str = "cropa", **method_kwargs):
    """An ``ECGJEPA`` holding a full original model state dict (``encoder.``,
    ``target_encoder.``, ``predictor.`` prefixes)."""
    from ecgssl.methods.jepa import ECGJEPA

    state = _as_tensors(state)
    parts = {p: strip_prefix(state, f"{p}.") for p in ("encoder", "target_encoder", "predictor")}
    empty = [p for p, d in parts.items() if not d]
    if empty:
        raise CheckpointFormatError(f"full ECG-JEPA state dict lacks {empty} entries")
    other = [k for k in state if k.split(".")[0] not in parts]
    if other:
        raise CheckpointFormatError(f"unexpected keys {other[:10]}")
    encoder = encoder_from_state_dict(parts["encoder"], lead_names, num_heads, attention)
    p_width = parts["predictor"]["predictor_embed.weight"].shape[0]
    p_depth = len({k.split(".")[2] for k in parts["predictor"]
                   if k.startswith("predictor_blocks.blocks.")})
    if predictor_num_heads is None:
        if p_width not in KNOWN_PREDICTOR_HEADS:
            raise CheckpointFormatError(f"cannot infer predictor heads of width {p_width}; "
                                        "pass predictor_num_heads")
        predictor_num_heads = KNOWN_PREDICTOR_HEADS[p_width]
    method = ECGJEPA(encoder, predictor_embed_dim=p_width, predictor_depth=p_depth,
                     predictor_num_heads=predictor_num_heads, **method_kwargs)
    load_checked(method.target_encoder, parts["target_encoder"], "ECG-JEPA target encoder")
    load_checked(method.predictor, parts["predictor"], "ECG-JEPA predictor")
    return method


def save_original_format(encoder: VisionTransformerECG, path: str | Path, epoch: int = 0) -> None:
    """Write an encoder the way the original release does (for tools that expect that format)."""
    torch.save({"encoder": encoder.state_dict(), "epoch": int(epoch)}, Path(path))
