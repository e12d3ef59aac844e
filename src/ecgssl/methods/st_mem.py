"""ST-MEM, Spatio-Temporal Masked Electrocardiogram Modeling (Na et al., ICLR 2024).

Written from the paper's description; the encoder is ``ecgssl.models.vit_stmem.STMEMViT`` (our
ViT with ST-MEM's lead embeddings and separator tokens, full attention: see that module for why
not CroPA). One training step, for a batch ``signal`` (B, L, T) mV:

1. **Random patch masking per lead**: every lead of every window keeps its own random subset of
   ``K = floor(P * (1 - mask_ratio))`` of its P patches (paper: ratio 0.75); the same K for all
   leads keeps the token tensor rectangular.
2. The encoder sees only the kept patches: per lead [SEP, K patches, SEP] with temporal and lead
   embeddings, all leads in one sequence (``STMEMViT.forward_visible``).
3. **Lead-wise shared decoder** (MAE-style, lighter than the encoder): the encoder outputs are
   mapped to the decoder width, every masked patch gets a shared ``mask_token``, the decoder's own
   temporal and lead embeddings are added, and each lead's [SEP, P slots, SEP] sequence is decoded
   *separately* by the same transformer (the "lead-wise shared decoder"), then a linear layer
   predicts the ``patch_size`` samples of every patch.
4. **Loss**: mean squared error over the masked patches only (in mV, or per-patch standardised
   targets with ``norm_target``, MAE's option; off by default), averaged over recorded leads
   (``batch["lead_mask"]``; a lead a source lacks is a zero row and is not a target).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ecgssl.data.leads import LEADS_12
from ecgssl.methods.base import SSLMethod
from ecgssl.methods.registry import register_method
from ecgssl.models.pos_embed import sincos_1d
from ecgssl.models.vit import BlockStack, init_transformer_weights
from ecgssl.models.vit_stmem import STMEMViT


class PerLeadPatchMasker:
    """Random patch masks drawn independently for every (window, lead), own generator.

    ``__call__(B, L) -> (keep (B, L, K), masked (B, L, P - K))`` ascending patch indices.
    """

    def __init__(self, n_patches: int, mask_ratio: float = 0.75, seed: int = 0):
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.n_patches, self.mask_ratio = int(n_patches), float(mask_ratio)
        self.n_keep = int(self.n_patches * (1.0 - self.mask_ratio))
        if not 1 <= self.n_keep < self.n_patches:
            raise ValueError(f"mask_ratio {mask_ratio} on {n_patches} patches keeps "
                             f"{self.n_keep}: need 1 .. {self.n_patches - 1}")
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, batch: int, n_leads: int, n_patches: int | None = None):
        p = self.n_patches if n_patches is None else int(n_patches)
        k = min(self.n_keep, p - 1) if p > 1 else 0
        if k < 1:
            raise ValueError(f"{p} patches per lead: nothing to mask and keep")
        order = torch.rand(batch, n_leads, p, generator=self.generator).argsort(dim=-1)
        return order[..., :k].sort(-1).values, order[..., k:].sort(-1).values

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class STMEMDecoder(nn.Module):
    """The lead-wise shared decoder (module doc, step 3).

    Args:
        embed_dim: encoder width D; decoder_dim, depth, num_heads: decoder size (paper: a light
            transformer; our CPU recipe: width 32-64, 1-2 blocks).
        n_leads: rows of the decoder's lead embedding (the encoder's leads).
        n_patches, patch_size: the encoder's grid.
    """

    def __init__(self, embed_dim: int, decoder_dim: int = 256, depth: int = 4,
                 num_heads: int = 4, n_leads: int = 12, n_patches: int = 50,
                 patch_size: int = 50, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 init_std: float = 0.02):
        super().__init__()
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, decoder_dim))
        self.lead_token = nn.Parameter(torch.zeros(n_leads, decoder_dim))
        self.register_buffer("pos_embed", sincos_1d(decoder_dim, torch.arange(n_patches + 2))
                             .float())
        self.decoder_blocks = BlockStack(decoder_dim, depth, num_heads, mlp_ratio, qkv_bias,
                                         0.0, attention="full")
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, patch_size)
        init_transformer_weights(self, [self.decoder_blocks], std=init_std)
        nn.init.trunc_normal_(self.mask_token, std=init_std, a=-2.0, b=2.0)
        nn.init.trunc_normal_(self.lead_token, std=init_std, a=-2.0, b=2.0)

    def forward(self, h: torch.Tensor, keep: torch.Tensor, n_patch: int,
                lead_idx: Sequence[int]) -> torch.Tensor:
        """h (B, L, K + 2, D) encoder outputs, keep (B, L, K) -> (B, L, P, patch_size)."""
        batch, n_leads = h.shape[:2]
        y = self.decoder_embed(h)
        width = y.shape[-1]
        slots = self.mask_token.expand(batch, n_leads, n_patch, width).clone()
        index = keep.to(h.device)[..., None].expand(-1, -1, -1, width)
        slots = slots.scatter(2, index, y[:, :, 1:-1])
        seq = torch.cat([y[:, :, :1], slots, y[:, :, -1:]], dim=2)
        seq = seq + self.pos_embed[: n_patch + 2] + self.lead_token[list(lead_idx)][None, :, None]
        seq = seq.reshape(batch * n_leads, n_patch + 2, width)  # each lead decoded on its own
        out = self.decoder_pred(self.decoder_norm(self.decoder_blocks(seq)))
        return out[:, 1:-1].reshape(batch, n_leads, n_patch, -1)


def masked_patch_mse(prediction: torch.Tensor, target: torch.Tensor, masked: torch.Tensor,
                     lead_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE over the masked patches of recorded leads.

    Args:
        prediction, target: (B, L, P, S) patches.
        masked: (B, L, P) bool, True = masked (scored).
        lead_mask: (B, L) bool, True = recorded (None: all).
    Returns:
        () the mean over scored patches of the per-patch mean squared error; 0 (with a gradient
        path) when nothing is scored.
    """
    per_patch = (prediction - target).pow(2).mean(-1)  # (B, L, P)
    weight = masked.to(per_patch.dtype)
    if lead_mask is not None:
        weight = weight * lead_mask.to(per_patch.device, per_patch.dtype)[..., None]
    return (per_patch * weight).sum() / weight.sum().clamp_min(1.0)


class STMEM(SSLMethod):
    """ST-MEM pretraining (module doc).

    Args:
        encoder: an ``STMEMViT`` (``vit_*_stmem``).
        leads: names of the rows of ``batch["signal"]`` (the encoder must know them).
        mask_ratio: fraction of each lead's patches masked (paper 0.75).
        decoder_dim, decoder_depth, decoder_num_heads: decoder size.
        norm_target: standardise each target patch (MAE's ``norm_pix_loss``); off by default.
        seed: seed of the mask generator.
    """

    name = "st_mem"

    def __init__(self, encoder: STMEMViT, *, leads: Sequence[str] = tuple(LEADS_12),
                 mask_ratio: float = 0.75, decoder_dim: int = 256, decoder_depth: int = 4,
                 decoder_num_heads: int = 4, norm_target: bool = False, seed: int = 0):
        super().__init__(encoder)
        if not isinstance(encoder, STMEMViT):
            raise ValueError(f"ST-MEM needs an STMEMViT encoder (vit_*_stmem), got "
                             f"{type(encoder).__name__}")
        self.leads = list(leads)
        self.lead_idx = encoder.lead_indices(self.leads, len(self.leads))
        self.masker = PerLeadPatchMasker(encoder.n_patches, mask_ratio, seed)
        self.norm_target = bool(norm_target)
        self.decoder = STMEMDecoder(encoder.embed_dim, decoder_dim, decoder_depth,
                                    decoder_num_heads, n_leads=encoder.n_leads,
                                    n_patches=encoder.n_patches,
                                    patch_size=encoder.patch_size,
                                    mlp_ratio=encoder.spec["mlp_ratio"],
                                    qkv_bias=encoder.spec["qkv_bias"])

    def target_patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, T) -> (B, L, P, patch_size) targets (standardised per patch if asked)."""
        batch, n_leads, n_samples = x.shape
        size = self.encoder.patch_size
        patches = x.reshape(batch, n_leads, n_samples // size, size)
        if self.norm_target:
            mean = patches.mean(-1, keepdim=True)
            var = patches.var(-1, keepdim=True, unbiased=False)
            patches = (patches - mean) / (var + 1e-6).sqrt()
        return patches

    def forward_parts(self, x: torch.Tensor, keep: torch.Tensor, masked: torch.Tensor,
                      lead_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``prediction`` / ``target`` (B, L, P, S), ``mask`` (B, L, P) bool, ``loss`` ()."""
        batch, n_leads, n_samples = x.shape
        n_patch = n_samples // self.encoder.patch_size
        h = self.encoder.forward_visible(x, self.leads, keep=keep)
        prediction = self.decoder(h, keep, n_patch, self.lead_idx)
        mask = torch.zeros(batch, n_leads, n_patch, dtype=torch.bool, device=x.device)
        mask.scatter_(2, masked.to(x.device), True)
        target = self.target_patches(x)
        loss = masked_patch_mse(prediction, target, mask, lead_mask)
        return {"prediction": prediction, "target": target, "mask": mask, "loss": loss}

    def training_step_loss(self, batch: dict[str, Any], step: int, max_steps: int):
        x = batch["signal"]
        if x.ndim != 3 or x.shape[1] != len(self.leads):
            raise ValueError(f"batch['signal'] must be (B, {len(self.leads)} leads, T), got "
                             f"{tuple(x.shape)}")
        x = x.to(next(self.parameters()).device, torch.float32)
        keep, masked = self.masker(x.shape[0], x.shape[1], x.shape[-1] // self.encoder.patch_size)
        lead_mask = batch.get("lead_mask")
        if lead_mask is not None:
            lead_mask = torch.as_tensor(lead_mask, dtype=torch.bool)
        parts = self.forward_parts(x, keep, masked, lead_mask)
        return parts["loss"], {"loss": float(parts["loss"].detach()),
                               "mask_ratio": float(parts["mask"].float().mean())}

    @torch.no_grad()
    def collapse_metrics(self, batch: dict[str, Any]) -> dict[str, float]:
        from ecgssl.methods.beat_ssl import representation_stats

        x = batch["signal"].to(next(self.parameters()).device, torch.float32)
        return representation_stats(self.encoder(x, leads=self.leads).float())

    def state_for_resume(self) -> dict[str, Any]:
        return {"masker": self.masker.state_dict()}

    def load_state_for_resume(self, state: dict[str, Any]) -> None:
        if "masker" in state:
            self.masker.load_state_dict(state["masker"])


_KEYS = {"mask_ratio", "decoder_dim", "decoder_depth", "decoder_num_heads", "norm_target",
         "seed"}


@register_method("st_mem")
def build_st_mem(method_cfg: dict[str, Any], encoder_cfg: dict[str, Any],
                 data_info: dict[str, Any]) -> STMEM:
    """ST-MEM from recipe sections (``configs/st_mem_cpu.yaml``); encoder default
    ``vit_small_stmem``; leads from ``data_info`` (default the 12 standard leads)."""
    from ecgssl.methods.ts2vec import build_encoder_for

    cfg = dict(method_cfg)
    if cfg.pop("name", "st_mem") != "st_mem":
        raise ValueError("build_st_mem got another method's section")
    unknown = set(cfg) - _KEYS
    if unknown:
        raise ValueError(f"unknown st_mem options {sorted(unknown)}; known {sorted(_KEYS)}")
    leads = list((data_info or {}).get("leads") or LEADS_12)
    encoder = build_encoder_for(encoder_cfg, leads, "vit_small_stmem")
    return STMEM(encoder, leads=leads, **cfg)
