"""ST-MEM (Na et al., ICLR 2024, "Guiding masked representation learning to capture
spatio-temporal relationship of electrocardiogram"): a ViT over per-lead patches.

Architecture (paper and the authors' ``st_mem_vit.py``, written here): each lead is cut into
patches of ``patch_size`` samples; a patch goes through LayerNorm -> Linear(patch, width) ->
LayerNorm. Every lead's patch sequence gets the shared positional embedding (rows 1..n), is framed
by a [SEP] token on each side (the SEP embedding plus positional row 0 on the left, the last row
on the right) and gets its lead's embedding on all n + 2 tokens. The lead-major token sequence
(lead 0's n + 2 tokens, then lead 1's, ...) goes through pre-norm transformer blocks (attention
with ``heads`` x ``dim_head`` and a qkv bias; GELU MLP). The representation is the mean over all
leads' patch tokens (SEP tokens removed), *then* a final LayerNorm.

Lead embeddings are selected by *position* in the authors' code (channel i gets embedding i), so
the encoder reads exactly its 12 leads in order; a lead subset would silently take the wrong
embeddings, and is refused.

ecgssl interface: ``forward_features`` is (B, width, n_patches): the per-patch token averaged over
leads, through the final LayerNorm; ``forward`` with ``pool="mean"`` is exactly the authors'
representation (LayerNorm of the mean, not mean of the normed map; the two differ).

Input pipeline (authors' ``configs/downstream/st_mem.yaml`` eval transforms, ``util/transforms``):
250 Hz, 2250 samples (9 s; their evaluation averages 3 crops of a longer record, here the first
crop is used), 12 leads I, II, III, aVR, aVL, aVF, V1-V6; 5th-order Butterworth high-pass
0.67 Hz and low-pass 40 Hz (second-order sections, ``sosfiltfilt``); z-score over the whole
(leads, samples) crop (zeros where the deviation is 0).
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
from ecgssl.models.pooling import pool_features
from ecgssl.models.registry import register_encoder

STEPS = ({"op": "butter", "btype": "highpass", "hz": 0.67, "order": 5, "form": "sos"},
         {"op": "butter", "btype": "lowpass", "hz": 40.0, "order": 5, "form": "sos"},
         {"op": "zscore", "axis": "record", "eps": 0.0})

CARD = ModelCard(
    key="stmem", title="ST-MEM ViT-B/75 (Na et al., ICLR 2024)",
    code="https://github.com/bakqui/ST-MEM",
    weights="Google Drive link in the authors' README (encoder.pth, {'model': state_dict})",
    licence="CC BY-NC 4.0 (repository LICENSE; README: (c) VUNO Inc., use only as the licence "
            "permits)",
    commercial_use=False,
    pretraining_data=({"database": "Chapman", "note": "Chapman-Shaoxing (Zheng 2020)"},
                      {"database": "Ningbo", "note": "Ningbo First Hospital (Zheng 2020)"},
                      {"database": "CODE-15", "note": "CODE-15% (Ribeiro 2021)"}),
    fs=250.0, n_samples=2250, leads=tuple(LEADS_12), steps=STEPS,
    notes="lead order taken as the standard WFDB order (the authors' lead slices put the six "
          "limb leads first)")

RELEASED = {"seq_len": 2250, "patch_size": 75, "width": 768, "depth": 12, "mlp_dim": 3072,
            "heads": 12, "dim_head": 64, "qkv_bias": True}


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, width: int, mlp_dim: int, heads: int, dim_head: int, qkv_bias: bool):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * inner, bias=qkv_bias)
        # The authors skip the output projection for one head as wide as the model.
        self.proj = nn.Identity() if (heads == 1 and dim_head == width) else nn.Linear(inner,
                                                                                       width)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, self.dim_head).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, N, d)
        attn = torch.softmax(q @ k.transpose(-1, -2) * self.dim_head ** -0.5, dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class STMEMEncoder(FoundationEncoder):
    """ST-MEM's ViT as an ecgssl encoder: (B, 12, T) mV -> (B, width, T // patch_size).

    Args: the authors' constructor arguments (``RELEASED``); ``leads`` the input leads in order;
    ``authors_steps`` apply their filters + z-score to the input (default True).
    """

    def __init__(self, name: str = "stmem_vit_base", leads: Sequence[str] = tuple(LEADS_12),
                 seq_len: int = 2250, patch_size: int = 75, width: int = 768, depth: int = 12,
                 mlp_dim: int = 3072, heads: int = 12, dim_head: int = 64, qkv_bias: bool = True,
                 pool: str = "mean", authors_steps: bool = True):
        super().__init__(CARD.fs, CARD.steps if authors_steps else None, pool)
        if seq_len % patch_size:
            raise ValueError(f"seq_len {seq_len} is not a multiple of patch_size {patch_size}")
        self.card, self.lead_order = CARD, list(leads)
        self.patch_size, self.n_patches = patch_size, seq_len // patch_size
        self.patch_norm1 = nn.LayerNorm(patch_size)
        self.patch_proj = nn.Linear(patch_size, width)
        self.patch_norm2 = nn.LayerNorm(width)
        # Fresh (random-init twin) embeddings: N(0, 0.02), as the authors initialise SEP and
        # lead embeddings (their positional table is sin-cos; a checkpoint replaces all three).
        self.pos_embed = nn.Parameter(0.02 * torch.randn(self.n_patches + 2, width))
        self.sep_embed = nn.Parameter(0.02 * torch.randn(width))
        self.lead_embed = nn.Parameter(0.02 * torch.randn(len(self.lead_order), width))
        self.blocks = nn.ModuleList(Block(width, mlp_dim, heads, dim_head, qkv_bias)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.embed_dim, self.stride = int(width), int(patch_size)
        self.spec = {"name": name, "class": "STMEMEncoder", "overrides": {
            "leads": list(self.lead_order), "seq_len": seq_len, "patch_size": patch_size,
            "width": width, "depth": depth, "mlp_dim": mlp_dim, "heads": heads,
            "dim_head": dim_head, "qkv_bias": qkv_bias, "pool": pool,
            "authors_steps": authors_steps}}

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, T) prepared input -> (B, L, n, width) patch tokens after the blocks."""
        b, n_leads, t = x.shape
        n = t // self.patch_size
        if n < 1 or n > self.n_patches:
            raise ValueError(f"input of {t} samples gives {n} patches; this model has 1.."
                             f"{self.n_patches} positions")
        x = x[..., : n * self.patch_size].reshape(b, n_leads, n, self.patch_size)
        x = self.patch_norm2(self.patch_proj(self.patch_norm1(x))) + self.pos_embed[1:n + 1]
        sep_l = (self.sep_embed + self.pos_embed[0]).expand(b, n_leads, 1, -1)
        sep_r = (self.sep_embed + self.pos_embed[-1]).expand(b, n_leads, 1, -1)
        x = torch.cat([sep_l, x, sep_r], dim=2) + self.lead_embed[None, :, None, :]
        x = x.reshape(b, n_leads * (n + 2), -1)
        for block in self.blocks:
            x = block(x)
        return x.view(b, n_leads, n + 2, -1)[:, :, 1:-1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tokens(x).mean(dim=1)).transpose(1, 2)

    def forward(self, x: torch.Tensor, leads: Sequence[str] | None = None) -> torch.Tensor:
        """The authors' representation for ``pool="mean"``: LayerNorm(mean of all tokens)."""
        if self.pool != "mean":
            return pool_features(self.forward_features(x, leads), self.pool, dim=-1)
        self._check(x, leads)
        return self.norm(self.tokens(self.prepare_input(x)).mean(dim=(1, 2)))


@register_encoder("stmem_vit_base")
def stmem_vit_base(**kwargs) -> STMEMEncoder:
    """The released ST-MEM encoder, ViT-B/75 (about 86 M parameters)."""
    take_n_leads(kwargs, kwargs.get("leads", LEADS_12), "stmem_vit_base")
    return STMEMEncoder(name="stmem_vit_base", **{**RELEASED, **kwargs})


# ------------------------------------------------------------------------------ checkpoint

_KEYMAP = [
    (r"^to_patch_embedding\.1\.(weight|bias)$", r"patch_norm1.\1"),
    (r"^to_patch_embedding\.2\.(weight|bias)$", r"patch_proj.\1"),
    (r"^to_patch_embedding\.3\.(weight|bias)$", r"patch_norm2.\1"),
    (r"^sep_embedding$", "sep_embed"),
    (r"^block(\d+)\.attn\.norm\.(weight|bias)$", r"blocks.\1.norm1.\2"),
    (r"^block(\d+)\.attn\.fn\.to_qkv\.(weight|bias)$", r"blocks.\1.qkv.\2"),
    (r"^block(\d+)\.attn\.fn\.to_out\.0\.(weight|bias)$", r"blocks.\1.proj.\2"),
    (r"^block(\d+)\.ff\.norm\.(weight|bias)$", r"blocks.\1.norm2.\2"),
    (r"^block(\d+)\.ff\.fn\.net\.0\.(weight|bias)$", r"blocks.\1.fc1.\2"),
    (r"^block(\d+)\.ff\.fn\.net\.3\.(weight|bias)$", r"blocks.\1.fc2.\2"),
    (r"^norm\.(weight|bias)$", r"norm.\1"),
]


def looks_like(state: Mapping[str, Any]) -> bool:
    return any(k.removeprefix("encoder.") == "sep_embedding" for k in state)


def map_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                               dict[str, int]]:
    """Authors' ST_MEM_ViT keys (bare, or ``encoder.``-prefixed in the full MAE model) -> ours.

    ``lead_embeddings.i`` (one parameter per lead) are stacked into ``lead_embed`` (L, width);
    ``pos_embedding`` (1, n + 2, width) loses its batch axis. Returns (mapped, dropped counts).
    """
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    dropped = {"head": 0, "decoder / MAE parts (not the encoder)": 0}
    if any(k.startswith("encoder.") for k in state):
        n_other = sum(not k.startswith("encoder.") for k in state)
        dropped["decoder / MAE parts (not the encoder)"] = n_other
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    out, leads, unknown = {}, {}, []
    for key, value in state.items():
        if key == "pos_embedding":
            out["pos_embed"] = value.reshape(value.shape[-2], value.shape[-1])
        elif m := re.match(r"^lead_embeddings\.(\d+)$", key):
            leads[int(m.group(1))] = value
        elif key.startswith("head."):
            dropped["head"] += 1
        else:
            for pattern, repl in _KEYMAP:
                if re.match(pattern, key):
                    out[re.sub(pattern, repl, key)] = value
                    break
            else:
                unknown.append(key)
    if unknown:
        raise ValueError(f"ST-MEM checkpoint has keys this loader does not know: {unknown[:8]}")
    if sorted(leads) != list(range(len(leads))) or not leads:
        raise ValueError(f"ST-MEM lead embeddings missing or not numbered 0..L-1: {sorted(leads)}")
    out["lead_embed"] = torch.stack([leads[i] for i in range(len(leads))])
    return out, dropped


def config_from_state_dict(state: Mapping[str, torch.Tensor], heads: int | None = None
                           ) -> dict[str, Any]:
    """Constructor arguments from mapped keys. The head count cannot be read from the tensors;
    by default it is the qkv width over 64, the authors' fixed ``dim_head`` (12 heads for
    ViT-B, 6 for ViT-S)."""
    width = int(state["patch_proj.weight"].shape[0])
    patch = int(state["patch_proj.weight"].shape[1])
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    inner = int(state["blocks.0.qkv.weight"].shape[0]) // 3
    if heads is None:
        if inner % 64:
            raise ValueError(f"qkv width {inner} is not a multiple of the authors' head width "
                             "64: pass heads=")
        heads = inner // 64
    if inner % heads:
        raise ValueError(f"qkv width {inner} is not a multiple of {heads} heads")
    return {"seq_len": patch * (state["pos_embed"].shape[0] - 2), "patch_size": patch,
            "width": width, "depth": depth, "mlp_dim": int(state["blocks.0.fc1.weight"].shape[0]),
            "heads": heads, "dim_head": inner // heads,
            "qkv_bias": "blocks.0.qkv.bias" in state}


def from_state_dict(state: Mapping[str, torch.Tensor], heads: int | None = None, **overrides
                    ) -> tuple[STMEMEncoder, dict[str, Any]]:
    """An ``STMEMEncoder`` holding an authors' state dict; returns (encoder, load report)."""
    from ecgssl.compat.ecg_jepa import load_checked

    mapped, dropped = map_state_dict(state)
    cfg = config_from_state_dict(mapped, heads)
    n_leads = mapped["lead_embed"].shape[0]
    if n_leads != 12 and "leads" not in overrides:
        raise ValueError(f"this ST-MEM checkpoint has {n_leads} lead embeddings; pass leads= "
                         "(names in the order it was trained on)")
    encoder = STMEMEncoder(name="stmem_vit_base", **{**cfg, **overrides})
    load_checked(encoder, mapped, "ST-MEM encoder")
    return encoder.eval(), {"loaded_tensors": len(mapped), "dropped_tensors": dropped}


CHECKPOINT_KEY = "model"  # released files wrap the weights as {'model': ...}
