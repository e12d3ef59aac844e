"""MERL (Liu et al., ICML 2024, "Zero-shot ECG classification with multimodal learning and
test-time clinical knowledge enhancement"): the ECG encoder of the released ResNet-18 checkpoint.

Architecture (the paper's description and the authors' ``resnet1d.py``, written here): a 1-D
ResNet-18 without a stem max-pool. Stem: Conv(k 7, stride 2, pad 3, no bias) -> BatchNorm ->
ReLU; four stages of basic blocks (two k-3 convs with BatchNorm, ReLU; a 1x1 conv + BatchNorm
shortcut when the shape changes), widths 64, 128, 256, 512, stride 2 in the first block of stages
2-4 (total stride 16: 313 steps for 5000 samples). The representation used for the paper's linear
probing is the time mean of the last stage (512 values), what ``forward`` returns. BatchNorm runs
on its stored statistics (eval mode). Only the basic-block ResNets (18, 34) are implemented, not
the bottleneck ResNet-50/101.

MERL's ViT encoders (``vit1d.py``; ViT-tiny 192 wide, 12 blocks, 3 heads of 64): a patch
convolution (12 leads -> width, kernel = stride = 50, no bias), a learned positional embedding
per patch (so the input must be exactly ``seq_len`` samples), the same pre-norm transformer
blocks as ST-MEM's, and the representation LayerNorm(mean of the tokens) (``forward``);
``forward_features`` is the per-patch LayerNorm of the tokens, (B, width, seq_len / 50).

Input pipeline (the authors' ``finetune/finetune_dataset.py``): 500 Hz, the first 5000 samples,
12 leads in WFDB order (I, II, III, aVR, aVL, aVF, V1-V6); min-max scaling of the whole (leads,
samples) array to [0, 1] with eps 1e-8. No filter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgssl.data.leads import LEADS_12
from ecgssl.models.foundation.base import FoundationEncoder, ModelCard, take_n_leads
from ecgssl.models.registry import register_encoder

STEPS = ({"op": "minmax", "axis": "record", "eps": 1e-8},)

CARD = ModelCard(
    key="merl", title="MERL ECG encoder (Liu et al., ICML 2024)",
    code="https://github.com/cheliu-computation/MERL-ICML2024",
    weights="Google Drive folder in the authors' README (ResNet-18 / ViT-tiny encoder .pth, "
            "bare state dicts)",
    licence="MIT (code repository; the weights are not separately licensed); MIMIC-IV-ECG, "
            "the pretraining data, is under the PhysioNet Credentialed Health Data licence",
    commercial_use=None,
    pretraining_data=({"database": "MIMIC-IV-ECG",
                       "note": "about 800 k ECG-report pairs (paper)"},),
    fs=500.0, n_samples=5000, leads=tuple(LEADS_12), steps=STEPS)

RELEASED = {"widths": [64, 128, 256, 512], "depths": [2, 2, 2, 2]}


class MERLBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN + shortcut, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.skip = None
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False),
                                      nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


class MERLResNetEncoder(FoundationEncoder):
    """MERL's ResNet as an ecgssl encoder: (B, 12, T) mV -> (B, widths[-1], ~T / 16)."""

    def __init__(self, name: str = "merl_resnet18", leads: Sequence[str] = tuple(LEADS_12),
                 widths: Sequence[int] = (64, 128, 256, 512), depths: Sequence[int] = (2, 2, 2, 2),
                 stem_width: int | None = None, pool: str = "mean", authors_steps: bool = True):
        super().__init__(CARD.fs, CARD.steps if authors_steps else None, pool)
        self.card, self.lead_order = CARD, list(leads)
        stem_width = stem_width or widths[0]
        self.stem = nn.Conv1d(len(self.lead_order), stem_width, 7, stride=2, padding=3, bias=False)
        self.stem_bn = nn.BatchNorm1d(stem_width)
        self.stages = nn.ModuleList()
        c_in = stem_width
        for i, (c_out, depth) in enumerate(zip(widths, depths)):
            first = 1 if i == 0 else 2
            self.stages.append(nn.Sequential(*[MERLBlock(c_in if j == 0 else c_out, c_out,
                                                         first if j == 0 else 1)
                                               for j in range(depth)]))
            c_in = c_out
        self.embed_dim, self.stride = int(c_in), 2 ** len(widths)
        self.spec = {"name": name, "class": "MERLResNetEncoder", "overrides": {
            "leads": list(self.lead_order), "widths": list(widths), "depths": list(depths),
            "stem_width": stem_width, "pool": pool, "authors_steps": authors_steps}}

    def encode_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.stem_bn(self.stem(x)))
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_pyramid(x)[-1]


@register_encoder("merl_resnet18")
def merl_resnet18(**kwargs) -> MERLResNetEncoder:
    """MERL's released ResNet-18 ECG encoder (about 3.9 M parameters)."""
    take_n_leads(kwargs, kwargs.get("leads", LEADS_12), "merl_resnet18")
    return MERLResNetEncoder(name="merl_resnet18", **{**RELEASED, **kwargs})


class MERLViTEncoder(FoundationEncoder):
    """MERL's ViT as an ecgssl encoder: (B, 12, seq_len) mV -> (B, width, seq_len / patch)."""

    def __init__(self, name: str = "merl_vit_tiny", leads: Sequence[str] = tuple(LEADS_12),
                 seq_len: int = 5000, patch_size: int = 50, width: int = 192, depth: int = 12,
                 mlp_dim: int = 768, heads: int = 3, dim_head: int = 64, qkv_bias: bool = True,
                 pool: str = "mean", authors_steps: bool = True):
        from ecgssl.models.foundation.stmem import Block

        super().__init__(CARD.fs, CARD.steps if authors_steps else None, pool)
        if seq_len % patch_size:
            raise ValueError(f"seq_len {seq_len} is not a multiple of patch_size {patch_size}")
        self.card, self.lead_order = CARD, list(leads)
        self.seq_len = seq_len
        self.patch = nn.Conv1d(len(self.lead_order), width, patch_size, stride=patch_size,
                               bias=False)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(seq_len // patch_size, width))
        self.blocks = nn.ModuleList(Block(width, mlp_dim, heads, dim_head, qkv_bias)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.embed_dim, self.stride = int(width), int(patch_size)
        self.spec = {"name": name, "class": "MERLViTEncoder", "overrides": {
            "leads": list(self.lead_order), "seq_len": seq_len, "patch_size": patch_size,
            "width": width, "depth": depth, "mlp_dim": mlp_dim, "heads": heads,
            "dim_head": dim_head, "qkv_bias": qkv_bias, "pool": pool,
            "authors_steps": authors_steps}}

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.seq_len:
            raise ValueError(f"MERL's ViT has one positional embedding per patch of a "
                             f"{self.seq_len}-sample input; got {x.shape[-1]} samples")
        x = self.patch(x).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x  # (B, n, width)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tokens(x)).transpose(1, 2)

    def forward(self, x: torch.Tensor, leads: Sequence[str] | None = None) -> torch.Tensor:
        """The authors' representation for ``pool="mean"``: LayerNorm(mean of the tokens)."""
        from ecgssl.models.pooling import pool_features

        if self.pool != "mean":
            return pool_features(self.forward_features(x, leads), self.pool, dim=-1)
        self._check(x, leads)
        return self.norm(self.tokens(self.prepare_input(x)).mean(dim=1))


@register_encoder("merl_vit_tiny")
def merl_vit_tiny(**kwargs) -> MERLViTEncoder:
    """MERL's ViT-tiny ECG encoder (192 wide, 12 blocks, 3 heads; about 5.6 M parameters)."""
    take_n_leads(kwargs, kwargs.get("leads", LEADS_12), "merl_vit_tiny")
    return MERLViTEncoder(name="merl_vit_tiny", **kwargs)


# ------------------------------------------------------------------------------ checkpoint



def looks_like(state: Mapping[str, Any]) -> bool:
    keys = {k.removeprefix("module.").removeprefix("ecg_encoder.") for k in state}
    resnet = "conv1.weight" in keys and "layer1.0.conv1.weight" in keys
    vit = "to_patch_embedding.weight" in keys and "block0.attn.fn.to_qkv.weight" in keys
    return resnet or vit


def _ecg_encoder_part(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """(the ECG encoder's tensors with ``module.`` / ``ecg_encoder.`` prefixes removed, the
    number of other tensors dropped: the full CLIP model's text model and projections)."""
    state = {k.removeprefix("module."): torch.as_tensor(v) for k, v in state.items()}
    if not any(k.startswith("ecg_encoder.") for k in state):
        return state, 0
    ecg = {k[len("ecg_encoder."):]: v for k, v in state.items() if k.startswith("ecg_encoder.")}
    return ecg, len(state) - len(ecg)


def map_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                               dict[str, int]]:
    """Authors' ResNet keys (bare, or ``ecg_encoder.``-prefixed in the full CLIP model) -> ours.

    Returns (mapped, dropped counts): the classifier ``linear.*`` and, in a full model, the text
    encoder and projection heads are not the ECG encoder.
    """
    state, n_other = _ecg_encoder_part(state)
    dropped = {"linear head": 0, "not the ECG encoder (text model, projections)": n_other}
    out, unknown = {}, []
    for key, value in state.items():
        if key.startswith("linear."):
            dropped["linear head"] += 1
        elif key == "conv1.weight":
            out["stem.weight"] = value
        elif m := re.match(r"^bn1\.(.+)$", key):
            out[f"stem_bn.{m.group(1)}"] = value
        elif m := re.match(r"^layer(\d)\.(\d+)\.(conv[12]|bn[12])\.(.+)$", key):
            out[f"stages.{int(m.group(1)) - 1}.{m.group(2)}.{m.group(3)}.{m.group(4)}"] = value
        elif m := re.match(r"^layer(\d)\.(\d+)\.shortcut\.([01])\.(.+)$", key):
            out[f"stages.{int(m.group(1)) - 1}.{m.group(2)}.skip.{m.group(3)}.{m.group(4)}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"MERL checkpoint has keys this loader does not know: {unknown[:8]}")
    return out, dropped


def vit_from_state_dict(state: Mapping[str, torch.Tensor], heads: int | None = None,
                        **overrides) -> tuple[MERLViTEncoder, dict[str, Any]]:
    """A ``MERLViTEncoder`` from the authors' ViT keys (ST-MEM's block names; the head count is
    the qkv width over the authors' fixed head width 64 unless given)."""
    from ecgssl.compat.ecg_jepa import load_checked
    from ecgssl.models.foundation.stmem import _KEYMAP as BLOCK_KEYS

    state, n_other = _ecg_encoder_part(state)
    dropped = {"head": 0, "not the ECG encoder (text model, projections)": n_other}
    out, unknown = {}, []
    for key, value in state.items():
        if key == "to_patch_embedding.weight":
            out["patch.weight"] = value
        elif key == "pos_embedding":
            out["pos_embed"] = value.reshape(value.shape[-2], value.shape[-1])
        elif key.startswith("head."):
            dropped["head"] += 1
        else:
            for pattern, repl in BLOCK_KEYS:
                if pattern.startswith(("^block", "^norm")) and re.match(pattern, key):
                    out[re.sub(pattern, repl, key)] = value
                    break
            else:
                unknown.append(key)
    if unknown:
        raise ValueError(f"MERL ViT checkpoint has keys this loader does not know: {unknown[:8]}")
    width, n_leads, patch = (int(d) for d in out["patch.weight"].shape)
    inner = int(out["blocks.0.qkv.weight"].shape[0]) // 3
    if heads is None:
        if inner % 64:
            raise ValueError(f"qkv width {inner} is not a multiple of 64: pass heads=")
        heads = inner // 64
    if n_leads != 12:
        raise ValueError(f"MERL ViT has 12 input leads; this one {n_leads}")
    cfg = {"seq_len": patch * out["pos_embed"].shape[0], "patch_size": patch, "width": width,
           "depth": 1 + max(int(k.split(".")[1]) for k in out if k.startswith("blocks.")),
           "mlp_dim": int(out["blocks.0.fc1.weight"].shape[0]), "heads": heads,
           "dim_head": inner // heads, "qkv_bias": "blocks.0.qkv.bias" in out}
    encoder = MERLViTEncoder(**{**cfg, **overrides})
    load_checked(encoder, out, "MERL ViT")
    return encoder.eval(), {"loaded_tensors": len(out), "dropped_tensors": dropped}


def from_state_dict(state: Mapping[str, torch.Tensor], **overrides
                    ) -> tuple[MERLResNetEncoder | MERLViTEncoder, dict[str, Any]]:
    """A MERL encoder (ResNet or ViT, by its keys) holding an authors' state dict; returns
    (encoder, load report)."""
    from ecgssl.compat.ecg_jepa import load_checked

    if any(k.removeprefix("module.").removeprefix("ecg_encoder.") == "to_patch_embedding.weight"
           for k in state):
        return vit_from_state_dict(state, **overrides)
    if any(k.endswith("conv3.weight") for k in state):
        raise ValueError("bottleneck ResNets (MERL ResNet-50/101) are not implemented")
    mapped, dropped = map_state_dict(state)
    n_stages = 1 + max(int(k.split(".")[1]) for k in mapped if k.startswith("stages."))
    widths, depths = [], []
    for i in range(n_stages):
        depths.append(len({k.split(".")[2] for k in mapped if k.startswith(f"stages.{i}.")}))
        widths.append(int(mapped[f"stages.{i}.0.conv1.weight"].shape[0]))
    if mapped["stem.weight"].shape[1] != 12:
        raise ValueError(f"MERL ResNet has 12 input leads; this one "
                         f"{mapped['stem.weight'].shape[1]}")
    encoder = MERLResNetEncoder(name="merl_resnet18", widths=widths, depths=depths,
                                stem_width=int(mapped["stem.weight"].shape[0]), **overrides)
    load_checked(encoder, mapped, "MERL ResNet")
    return encoder.eval(), {"loaded_tensors": len(mapped), "dropped_tensors": dropped}


CHECKPOINT_KEY = "state_dict"  # released files wrap the weights as {'state_dict': ...}
