"""Vision Transformer over (lead x time-patch) ECG tokens, with Cross-Pattern Attention.

The ECG-JEPA encoder (Kim 2024): every lead is cut into patches of ``patch_size`` samples, one
``Linear(patch_size, width)`` (``W_P``) shared by all leads embeds them, tokens are ordered
lead-major (token ``lead * P + patch``), a fixed 2-D sin-cos (lead, time) embedding is added
(before every block, as the original and its released weights do, or once), pre-LN transformer
blocks with CroPA / dense-mask CroPA / full attention, a final LayerNorm ``norm``, and the
representation is the mean of all output tokens.

Parameter names follow the original checkpoints (``W_P.*``, ``pos_embed``,
``encoder_blocks.blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``norm.*``) so
a released state dict loads with a plain ``load_state_dict`` (see ``ecgssl.compat.ecg_jepa``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ecgssl.data.leads import LEADS_8, LEADS_12, canonical_lead
from ecgssl.models.cropa import (
    ATTENTION_MODES,
    cropa_attention,
    cropa_mask,
    dense_cropa_attention,
)
from ecgssl.models.pooling import check_pool, pool_features, pooled_dim
from ecgssl.models.pos_embed import sincos_2d
from ecgssl.models.registry import register_encoder


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (names as in the original checkpoints)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class GridAttention(nn.Module):
    """Multi-head self-attention over a lead-major (L x P) token grid.

    ``mode``: ``"cropa"`` (structured Cross-Pattern Attention), ``"dense"`` (the same function
    through an explicit N x N -inf mask, as the original computes it), ``"full"`` (no pattern).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, mode: str = "cropa"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        if mode not in ATTENTION_MODES:
            raise ValueError(f"unknown attention mode {mode!r}; known: {ATTENTION_MODES}")
        self.num_heads = num_heads
        self.mode = mode
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, n_leads: int = 1) -> torch.Tensor:
        """x: (B, N, C) with N = n_leads * P lead-major -> (B, N, C)."""
        batch, n_tokens, width = x.shape
        qkv = self.qkv(x).reshape(batch, n_tokens, 3, self.num_heads, width // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, d)
        if self.mode == "cropa":
            out = cropa_attention(q, k, v, n_leads)
        elif self.mode == "dense":
            allowed = cropa_mask(n_leads, n_tokens // n_leads, device=x.device)
            if q.is_cuda:  # fused kernel with a boolean mask: same numerics, less memory
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            else:
                out = dense_cropa_attention(q, k, v, n_leads, allowed)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, n_tokens, width))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(norm1(x)); x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 drop_path: float = 0.0, attention: str = "cropa"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GridAttention(dim, num_heads, qkv_bias=qkv_bias, mode=attention)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, n_leads: int = 1) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), n_leads))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BlockStack(nn.Module):
    """``blocks`` ModuleList (the original's ``encoder_blocks`` / ``predictor_blocks``)."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = False, drop_path: float = 0.0, attention: str = "cropa"):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        # Stochastic depth rises linearly from 0 at the first block to drop_path at the last.
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, qkv_bias, rate, attention) for rate in rates
        )

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None,
                n_leads: int = 1) -> torch.Tensor:
        """If ``pos`` is given it is added before every block (the original's scheme)."""
        for block in self.blocks:
            x = block(x if pos is None else x + pos, n_leads)
        return x


def init_transformer_weights(module: nn.Module, stacks: Sequence[BlockStack],
                             std: float = 0.02) -> None:
    """Original init: truncated normal (+-2, absolute) std 0.02 for Linear weights, zero biases,
    unit LayerNorms; block l (from 1) gets ``attn.proj.weight`` and ``mlp.fc2.weight`` divided
    by sqrt(2 l) so the residual stream does not grow with depth."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std, a=-2.0, b=2.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        for stack in stacks:
            for layer_id, block in enumerate(stack.blocks, start=1):
                block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))


def default_lead_names(n_leads: int) -> list[str]:
    """I, II, V1-V6 for 8 leads (ECG-JEPA's order), the standard 12 for 12, else lead0.."""
    if n_leads == 8:
        return list(LEADS_8)
    if n_leads == 12:
        return list(LEADS_12)
    return [f"lead{k}" for k in range(n_leads)]


class VisionTransformerECG(nn.Module):
    """ViT encoder over (lead x time-patch) tokens with Cross-Pattern Attention.

    Args:
        lead_names: the leads the lead positional embedding rows stand for, in row order (the
            released model: I, II, V1-V6). Any subset may be given at inference.
        n_patches: time patches in the full input (50 = 10 s at 250 Hz with 50-sample patches).
        patch_size: samples per patch (the feature-map stride).
        width, depth, num_heads, mlp_ratio, qkv_bias: transformer size.
        attention: "cropa" (structured), "dense" (explicit -inf mask; the original's numerics),
            or "full" (no CroPA, ablation).
        pos_every_block: re-add the positional embedding before every block (original / released
            weights) or add it once at the input.
        drop_path: stochastic-depth rate of the last block (linear from 0).
        init_std: std of the truncated-normal init.
        input_scale: fixed factor applied to the mV input before ``W_P`` (1.0: the original).
            Why: the sin-cos position embedding has RMS ~0.7 per entry while ``W_P`` (init std
            0.02, 50 samples) maps a high-passed ECG patch (RMS ~0.2 mV) to RMS ~0.03, so at
            small training budgets the tokens (and the pooled features) are nearly the same for
            every ECG. Scaling the input rather than ``W_P``'s init also scales how fast Adam's
            updates of ``W_P`` move the tokens (an update of size lr changes tokens by
            ~lr x input size), as standardising the input would. Stored in ``spec`` so exports
            and checkpoints rebuild it; the released weights expect 1.0.
        pool: how ``forward`` pools the output tokens (``ecgssl.models.pooling``): "mean" (the
            original) or "meanmax" (mean and max over tokens, 2 D values).
    Input ``x`` is (B, L, T) float32 in mV with ``T = P * patch_size`` for some ``P <= n_patches``
    (shorter inputs use the first P time rows of the embedding).
    """

    # Capability (docs/architecture.md): ``forward*(x, leads=[...])`` reads any subset of its
    # leads by name (the lead positional embedding rows).
    takes_lead_names = True

    def __init__(self, lead_names: Sequence[str] = tuple(LEADS_8), n_patches: int = 50,
                 patch_size: int = 50, width: int = 768, depth: int = 12, num_heads: int = 16,
                 mlp_ratio: float = 4.0, qkv_bias: bool = False, attention: str = "cropa",
                 pos_every_block: bool = True, drop_path: float = 0.0, init_std: float = 0.02,
                 input_scale: float = 1.0, pool: str = "mean"):
        super().__init__()
        self.pool = check_pool(pool)
        lead_names = [canonical_lead(name) for name in lead_names]
        if not lead_names or len(set(lead_names)) != len(lead_names):
            raise ValueError(f"lead_names must be non-empty and unique, got {lead_names}")
        for name, value in (("n_patches", n_patches), ("patch_size", patch_size),
                            ("width", width), ("depth", depth), ("num_heads", num_heads)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if width % 4:
            raise ValueError(f"width must be divisible by 4 (2-D sin-cos), got {width}")
        if attention not in ATTENTION_MODES:
            raise ValueError(f"unknown attention {attention!r}; known: {ATTENTION_MODES}")
        if not (math.isfinite(input_scale) and input_scale > 0):
            raise ValueError(f"input_scale must be a positive finite number, got {input_scale!r}")
        self.lead_names = lead_names
        self.n_leads = len(lead_names)
        self.n_patches = int(n_patches)
        self.patch_size = int(patch_size)
        self.embed_dim = int(width)
        self.stride = int(patch_size)
        self.pos_every_block = bool(pos_every_block)
        self.input_scale = float(input_scale)
        self.spec = {
            "name": "vit", "class": "VisionTransformerECG", "lead_names": list(lead_names),
            "n_patches": int(n_patches), "patch_size": int(patch_size), "width": int(width),
            "depth": int(depth), "num_heads": int(num_heads), "mlp_ratio": float(mlp_ratio),
            "qkv_bias": bool(qkv_bias), "attention": attention,
            "pos_every_block": bool(pos_every_block), "drop_path": float(drop_path),
            "input_scale": float(input_scale), "pool": self.pool,
        }
        self.W_P = nn.Linear(self.patch_size, self.embed_dim)
        # Fixed, not learned: a buffer, but saved so that released checkpoints' key loads.
        self.register_buffer("pos_embed", sincos_2d(self.embed_dim, self.n_leads, self.n_patches))
        self.encoder_blocks = BlockStack(width, depth, num_heads, mlp_ratio, qkv_bias, drop_path,
                                         attention)
        self.norm = nn.LayerNorm(width)
        init_transformer_weights(self, [self.encoder_blocks], std=init_std)

    # -- configuration -------------------------------------------------------------------------
    @property
    def attention(self) -> str:
        return self.spec["attention"]

    def set_attention(self, mode: str) -> None:
        """Switch every block between "cropa", "dense" and "full" (same weights)."""
        if mode not in ATTENTION_MODES:
            raise ValueError(f"unknown attention {mode!r}; known: {ATTENTION_MODES}")
        for block in self.encoder_blocks.blocks:
            block.attn.mode = mode
        self.spec["attention"] = mode

    def lead_indices(self, leads: Sequence[str] | None, n_rows: int) -> list[int]:
        """Rows of ``pos_embed``'s lead axis for the leads of ``x`` (checked against x)."""
        if leads is None:
            if n_rows != self.n_leads:
                raise ValueError(
                    f"input has {n_rows} leads but the encoder was built for {self.n_leads} "
                    f"({self.lead_names}); pass leads=[...] to name the leads present")
            return list(range(self.n_leads))
        names = [canonical_lead(name) for name in leads]
        if len(names) != n_rows:
            raise ValueError(f"leads names {len(names)} leads {names} but input has {n_rows}")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate leads in {names}")
        unknown = [name for name in names if name not in self.lead_names]
        if unknown:
            raise ValueError(f"leads {unknown} unknown to this encoder (knows {self.lead_names})")
        return [self.lead_names.index(name) for name in names]

    # -- forward -------------------------------------------------------------------------------
    def patch_tokens(self, x: torch.Tensor, leads: Sequence[str] | None = None
                     ) -> tuple[torch.Tensor, list[int]]:
        """(B, L, T) mV -> (patch embeddings (B, L, P, D) before positions, encoder lead index
        of each row); checks the shape (T a whole number of patches, P <= n_patches)."""
        if x.ndim != 3:
            raise ValueError(f"expected x of shape (B, L, T), got {tuple(x.shape)}")
        batch, n_rows, n_samples = x.shape
        lead_idx = self.lead_indices(leads, n_rows)
        if n_samples % self.patch_size or n_samples // self.patch_size > self.n_patches:
            raise ValueError(
                f"input of {n_samples} samples is not a whole number of {self.patch_size}-sample "
                f"patches up to {self.n_patches} patches")
        n_patch = n_samples // self.patch_size
        if self.input_scale != 1.0:  # skipped at 1.0: bit-identical to the original
            x = x * self.input_scale
        return self.W_P(x.reshape(batch, n_rows, n_patch, self.patch_size)), lead_idx

    def forward_tokens(self, x: torch.Tensor, leads: Sequence[str] | None = None,
                       visible_cols: torch.Tensor | None = None) -> torch.Tensor:
        """Token outputs after the final LayerNorm.

        Args:
            x: (B, L, T) mV, T = P * patch_size.
            leads: names of x's rows (None: all of the encoder's leads in order).
            visible_cols: time columns the encoder sees (the JEPA context): None (all), a (P,)
                bool mask, a (P_vis,) index tensor (shared by the batch) or a (B, P_vis) index
                tensor (per sample). Indices should be ascending (the original's order).
        Returns:
            (B, L * P_vis, D), lead-major.
        """
        tokens, lead_idx = self.patch_tokens(x, leads)  # (B, L, P, D)
        batch, n_rows, n_patch = tokens.shape[:3]
        pos = self.pos_embed.view(self.n_leads, self.n_patches, -1)
        if lead_idx != list(range(self.n_leads)):
            pos = pos[lead_idx]
        pos = pos[:, :n_patch].unsqueeze(0)  # (1, L, P, D)

        if visible_cols is not None:
            cols = torch.as_tensor(visible_cols, device=x.device)
            if cols.dtype == torch.bool:
                if cols.shape != (n_patch,):
                    raise ValueError(f"bool visible_cols must be ({n_patch},), got {cols.shape}")
                cols = cols.nonzero(as_tuple=True)[0]
            if cols.ndim == 1:
                tokens, pos = tokens[:, :, cols], pos[:, :, cols]
            elif cols.ndim == 2 and cols.shape[0] == batch:
                index = cols[:, None, :, None].expand(-1, n_rows, -1, self.embed_dim)
                tokens = tokens.gather(2, index)
                pos = pos.expand(batch, -1, -1, -1).gather(2, index)
            else:
                raise ValueError(f"visible_cols must be (P,), (P_vis,) or (B, P_vis); "
                                 f"got {tuple(cols.shape)}")
            n_patch = tokens.shape[2]
            if n_patch == 0:
                raise ValueError("visible_cols selects no time column")
        tokens = tokens.reshape(batch, n_rows * n_patch, self.embed_dim)
        pos = pos.reshape(pos.shape[0], n_rows * n_patch, self.embed_dim)
        if self.pos_every_block:
            tokens = self.encoder_blocks(tokens, pos, n_leads=n_rows)
        else:
            tokens = self.encoder_blocks(tokens + pos, None, n_leads=n_rows)
        return self.norm(tokens)

    def forward_features(self, x: torch.Tensor, leads: Sequence[str] | None = None):
        """(B, D, P) time feature map: output tokens averaged over leads per time patch."""
        tokens = self.forward_tokens(x, leads)
        batch, n_rows = x.shape[:2]
        grid = tokens.view(batch, n_rows, -1, self.embed_dim)
        return grid.mean(dim=1).transpose(1, 2)

    def feature_pyramid(self, x: torch.Tensor, leads: Sequence[str] | None = None):
        """[forward_features(x)]: a ViT has one resolution."""
        return [self.forward_features(x, leads)]

    @property
    def pooled_dim(self) -> int:
        """Length of ``forward``'s output: D ("mean") or 2 D ("meanmax")."""
        return pooled_dim(self.embed_dim, self.pool)

    def forward(self, x: torch.Tensor, leads: Sequence[str] | None = None) -> torch.Tensor:
        """(B, pooled_dim) representation: the output tokens pooled (``pool``); "mean" is the
        original's ``representation``."""
        return pool_features(self.forward_tokens(x, leads), self.pool, dim=1)


# -- named configurations --------------------------------------------------------------------
VIT_CONFIGS: dict[str, dict] = {
    # CPU tests and smoke runs.
    "vit_tiny": {"width": 64, "depth": 2, "num_heads": 4},
    "vit_small": {"width": 384, "depth": 8, "num_heads": 6},
    # The paper's ViT-B (85 M parameters with 8 x 50 tokens).
    "vit_base": {"width": 768, "depth": 12, "num_heads": 16},
}


def create_vit(name: str, n_leads: int | None = None, lead_names: Sequence[str] | None = None,
               leads: Sequence[str] | None = None, **overrides) -> VisionTransformerECG:
    """Build a named ViT config. ``lead_names`` (alias ``leads``) or ``n_leads`` (8: I, II,
    V1-V6; 12: standard order) set the lead axis; other overrides are constructor arguments
    (``n_patches``, ``patch_size``, ``attention``, ``pos_every_block``, ``drop_path`` ...)."""
    if name not in VIT_CONFIGS:
        raise ValueError(f"unknown ViT config {name!r}; known: {sorted(VIT_CONFIGS)}")
    if lead_names is not None and leads is not None:
        raise ValueError("give lead_names or leads, not both")
    names = lead_names if lead_names is not None else leads
    if names is None:
        names = default_lead_names(8 if n_leads is None else int(n_leads))
    elif n_leads is not None and len(names) != n_leads:
        raise ValueError(f"n_leads={n_leads} but {len(names)} lead names {list(names)}")
    cfg = {**VIT_CONFIGS[name], **overrides}
    model = VisionTransformerECG(lead_names=names, **cfg)
    model.spec["name"] = name  # the registry key, so exports rebuild through it
    return model


def _register(name: str) -> None:
    register_encoder(name)(lambda **overrides: create_vit(name, **overrides))


for _name in VIT_CONFIGS:
    _register(_name)
