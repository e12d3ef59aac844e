"""ECG-JEPA (Kim 2024): predict the EMA target encoder's representations of masked time columns.

Per batch (``batch["signal"]`` (B, L_store, T) mV at 250 Hz; the method picks its leads by name):

1. a time-column mask (the same columns in every lead, ``TimeColumnMasker``);
2. target: the EMA target encoder on the full input, an extra affine-free LayerNorm, the tokens
   at the masked columns of every lead (no gradient);
3. context: the student encoder on the visible columns only (CroPA among them);
4. predictor: each lead is its own sequence of its visible context tokens (``predictor_embed``)
   followed by one shared ``mask_token`` per masked column, with the 1-D time embedding re-ordered
   to [visible, masked] and added before every block; ``predictor_norm``, ``predictor_proj``;
5. Smooth-L1 (beta 1) between the mask slots and the targets; after each optimiser step the target
   follows the student with momentum rising linearly 0.996 -> 1.0.

Left out of the loss, and counted in the step's metrics: tokens of leads the window did not record
(``lead_mask``; ``loss_tokens_dropped_leads``) and tokens whose patch lies wholly in padding
(``valid_span``, short records padded into the window; ``loss_tokens_dropped_padding``): their
targets depend on position only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgssl.data.leads import LEADS_12, canonical_lead
from ecgssl.methods.base import MomentumMethod
from ecgssl.methods.diagnostics import batch_std, effective_rank
from ecgssl.methods.masking import TimeColumnMasker, split_columns
from ecgssl.methods.registry import register_method
from ecgssl.methods.validity import batch_spans, steps_with_signal
from ecgssl.models.pos_embed import time_sincos
from ecgssl.models.vit import BlockStack, VisionTransformerECG, init_transformer_weights


def _take_columns(x: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """x (B, L, P, D) -> (B, L, len, D) at columns ``cols`` ((n,) shared or (B, n) per sample)."""
    if cols.ndim == 1:
        return x[:, :, cols]
    index = cols[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3])
    return x.gather(2, index)


class JEPAPredictor(nn.Module):
    """Per-lead transformer predictor (names as in the original checkpoints).

    Args:
        embed_dim: encoder width D.
        predictor_embed_dim: predictor width (paper 384).
        depth, num_heads: predictor size (paper 6, 12).
        n_patches: P, time columns of the full input.
    """

    def __init__(self, embed_dim: int, predictor_embed_dim: int = 384, depth: int = 6,
                 num_heads: int = 12, n_patches: int = 50, mlp_ratio: float = 4.0,
                 qkv_bias: bool = False, drop_path: float = 0.0, init_std: float = 0.02):
        super().__init__()
        if predictor_embed_dim % 4:
            raise ValueError(f"predictor width must be divisible by 4, got {predictor_embed_dim}")
        self.embed_dim = embed_dim
        self.n_patches = n_patches
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_embed_dim))
        self.register_buffer("pos_embed", time_sincos(predictor_embed_dim, n_patches))
        # Each lead's sequence is attended in full (no CroPA inside the predictor).
        self.predictor_blocks = BlockStack(predictor_embed_dim, depth, num_heads, mlp_ratio,
                                           qkv_bias, drop_path, attention="full")
        self.predictor_norm = nn.LayerNorm(predictor_embed_dim)
        self.predictor_proj = nn.Linear(predictor_embed_dim, embed_dim)
        nn.init.trunc_normal_(self.mask_token, std=init_std, a=-2.0, b=2.0)
        init_transformer_weights(self, [self.predictor_blocks], std=init_std)

    def forward(self, context: torch.Tensor, n_leads: int, visible: torch.Tensor,
                masked: torch.Tensor) -> torch.Tensor:
        """
        Args:
            context: (B, L * P_vis, D) context-encoder tokens, lead-major.
            n_leads: L.
            visible, masked: ascending column indices, (P_vis,) / (P_mask,) shared or
                (B, P_vis) / (B, P_mask) per sample.
        Returns:
            (B, L * (P_vis + P_mask), D): per lead, P_vis visible slots then P_mask mask slots.
        """
        batch = context.shape[0]
        n_vis, n_mask = visible.shape[-1], masked.shape[-1]
        if context.shape[1] != n_leads * n_vis:
            raise ValueError(f"context has {context.shape[1]} tokens, expected {n_leads} leads x "
                             f"{n_vis} visible columns")
        x = self.predictor_embed(context)
        width = x.shape[-1]
        x = x.reshape(batch * n_leads, n_vis, width)
        x = torch.cat([x, self.mask_token.expand(x.shape[0], n_mask, width)], dim=1)
        order = torch.cat([visible, masked], dim=-1)
        pos = self.pos_embed[order]  # (P, W) or (B, P, W)
        if pos.ndim == 3:
            pos = pos.repeat_interleave(n_leads, dim=0)  # rows follow x's (batch, lead) order
        x = self.predictor_blocks(x, pos, n_leads=1)
        x = self.predictor_proj(self.predictor_norm(x))
        return x.reshape(batch, n_leads * (n_vis + n_mask), self.embed_dim)


def masked_smooth_l1(prediction: torch.Tensor, target: torch.Tensor, beta: float,
                     lead_mask: torch.Tensor | None, n_cols: int,
                     col_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Smooth-L1 averaged over the tokens of recorded leads and real-signal columns only.

    Args:
        prediction, target: (B, L * n_cols, D), lead-major (lead l owns tokens
            ``l * n_cols ... (l + 1) * n_cols - 1``).
        lead_mask: (B, L) bool, True = recorded; None = all recorded (plain mean, identical to
            ``F.smooth_l1_loss``).
        n_cols: masked columns per lead.
        col_mask: (B, n_cols) bool, True = the column's patch holds real signal (not only
            padding); the same for every lead. None = all columns count.
    Returns:
        () loss; 0 (with a gradient path) when no token of the batch counts.
    """
    if lead_mask is None and col_mask is None:
        return F.smooth_l1_loss(prediction, target, beta=beta)
    per_token = F.smooth_l1_loss(prediction, target, beta=beta, reduction="none").mean(-1)
    batch, n_tokens = per_token.shape
    weight = per_token.new_ones(batch, n_tokens)
    if lead_mask is not None:
        lead_w = lead_mask.to(per_token.dtype).repeat_interleave(n_cols, dim=1)  # (B, L * n)
        if lead_w.shape != per_token.shape:
            raise ValueError(f"lead_mask {tuple(lead_mask.shape)} does not fit {n_cols} columns "
                             f"per lead of {tuple(per_token.shape)} tokens")
        weight = weight * lead_w
    if col_mask is not None:
        if col_mask.shape != (batch, n_cols) or n_tokens % n_cols:
            raise ValueError(f"col_mask {tuple(col_mask.shape)} does not fit {n_cols} columns "
                             f"per lead of {tuple(per_token.shape)} tokens")
        weight = weight * col_mask.to(per_token.dtype).repeat(1, n_tokens // n_cols)
    return (per_token * weight).sum() / weight.sum().clamp_min(1.0)


class ECGJEPA(MomentumMethod):
    """ECG-JEPA pretraining.

    Args:
        encoder: the student (context) ``VisionTransformerECG``; exported as ``self.encoder``.
        predictor_embed_dim, predictor_depth, predictor_num_heads, predictor_drop_path: predictor.
        masker: a ``TimeColumnMasker`` (default: multi-block, 4 x 17.5-22.5 %, one per batch).
        loss_beta: Smooth-L1 beta.
        ema: (start, end) momentum, linear over training.
        leads: leads fed to the encoder, by name (default: the encoder's leads, I, II, V1-V6).
        input_leads: names of the rows of ``batch["signal"]`` when the batch does not carry
            ``"leads"`` (default: the store's 12 leads, or ``leads`` when the row count matches).
        target_follows_mode: the target encoder follows ``train()``/``eval()`` like the original
            (drop-path active in it while training); False keeps it in eval mode.
    """

    name = "jepa"
    spread_metrics = ("target_std", "target_erank", "pred_std")
    training_entry_points = {"encoder": ("forward_tokens",),
                             "target_encoder": ("forward_tokens",), "predictor": ("forward",)}

    def __init__(self, encoder: VisionTransformerECG, predictor_embed_dim: int = 384,
                 predictor_depth: int = 6, predictor_num_heads: int = 12,
                 predictor_drop_path: float = 0.0, masker: TimeColumnMasker | None = None,
                 loss_beta: float = 1.0, ema: Sequence[float] = (0.996, 1.0),
                 leads: Sequence[str] | None = None, input_leads: Sequence[str] | None = None,
                 target_follows_mode: bool = True):
        super().__init__(encoder, ema)
        if not isinstance(encoder, VisionTransformerECG):
            raise ValueError(f"ECG-JEPA needs a VisionTransformerECG, got {type(encoder).__name__}")
        if loss_beta <= 0:
            raise ValueError(f"loss_beta must be > 0, got {loss_beta}")
        self.leads = [canonical_lead(n) for n in (leads or encoder.lead_names)]
        encoder.lead_indices(self.leads, len(self.leads))  # fails early on unknown leads
        self.input_leads = None if input_leads is None else [canonical_lead(n) for n in input_leads]
        self.masker = masker or TimeColumnMasker(n_patches=encoder.n_patches)
        if self.masker.n_patches != encoder.n_patches:
            raise ValueError(f"masker has {self.masker.n_patches} columns, encoder "
                             f"{encoder.n_patches}")
        self.loss_beta = float(loss_beta)
        self.target_follows_mode = bool(target_follows_mode)
        self.target_encoder = self.add_momentum_copy("encoder", "target_encoder")
        self.predictor = JEPAPredictor(
            encoder.embed_dim, predictor_embed_dim, predictor_depth, predictor_num_heads,
            n_patches=encoder.n_patches, mlp_ratio=encoder.spec["mlp_ratio"],
            qkv_bias=encoder.spec["qkv_bias"], drop_path=predictor_drop_path)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.target_follows_mode:
            self.target_encoder.eval()
        return self

    # -- inputs --------------------------------------------------------------------------------
    def _lead_rows(self, batch: dict[str, Any]) -> list[int] | None:
        """Rows of ``batch["signal"]`` that hold ``self.leads`` in order (None: all, as is)."""
        x = batch["signal"]
        if x.ndim != 3:
            raise ValueError(f"batch['signal'] must be (B, L, T), got {tuple(x.shape)}")
        names = batch.get("leads") or self.input_leads
        if names is None:
            if x.shape[1] == len(self.leads):
                return None
            if x.shape[1] == len(LEADS_12):
                names = LEADS_12
            else:
                raise ValueError(f"signal has {x.shape[1]} leads; set input_leads to name them")
        names = [canonical_lead(n) for n in names]
        if len(names) != x.shape[1]:
            raise ValueError(f"{len(names)} lead names {names} for {x.shape[1]} signal rows")
        missing = [n for n in self.leads if n not in names]
        if missing:
            raise ValueError(f"leads {missing} needed by ECG-JEPA are not in the batch ({names})")
        idx = [names.index(n) for n in self.leads]
        return None if idx == list(range(x.shape[1])) else idx

    def select_leads(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, L, T) signal restricted to ``self.leads`` in that order."""
        idx = self._lead_rows(batch)
        return batch["signal"] if idx is None else batch["signal"][:, idx]

    def select_lead_mask(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """(B, L) bool: which of ``self.leads`` were recorded (the store's ``lead_mask``, rows as
        in ``select_leads``); None when the batch carries no lead mask (all recorded)."""
        mask = batch.get("lead_mask")
        if mask is None:
            return None
        idx = self._lead_rows(batch)
        mask = torch.as_tensor(mask, dtype=torch.bool)
        return mask if idx is None else mask[:, idx]

    # -- the method ----------------------------------------------------------------------------
    def forward_parts(self, x: torch.Tensor, mask: torch.Tensor,
                      lead_mask: torch.Tensor | None = None,
                      valid_span: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """All intermediate tensors for one input (B, L, T) and a (P,) / (B, P) mask.

        ``lead_mask`` (B, L) bool: leads that were recorded. Leads a source lacks are zero rows
        in the store (2-lead Holter windows in a 12-lead store); their target tokens depend on
        position only, so predicting them is trivial and would dilute the loss: they are left
        out of it (None: every lead counts, the original loss). ``valid_span`` (B, 2) long:
        ``[start, end)`` of real signal per window (``ecgssl.methods.validity``); masked
        columns whose patch is wholly padding are left out of the loss the same way (None: the
        whole window is signal).

        Returns dict with ``target`` (B, L * P_mask, D), ``target_tokens`` (B, L * P, D, before
        the extra LayerNorm), ``context`` (B, L * P_vis, D), ``predictor_out``
        (B, L * P, D: per lead visible then mask slots), ``prediction`` (B, L * P_mask, D),
        ``loss`` (), ``col_mask`` (B, P_mask) bool or None (masked columns with real signal).
        """
        batch, n_leads = x.shape[:2]
        mask = mask.to(x.device)
        visible, masked = split_columns(mask)
        with torch.no_grad():
            h = self.target_encoder.forward_tokens(x, self.leads)
            target = F.layer_norm(h, (h.shape[-1],))  # affine-free, over features
            target = _take_columns(target.view(batch, n_leads, -1, h.shape[-1]), masked)
            target = target.reshape(batch, -1, h.shape[-1])
        context = self.encoder.forward_tokens(x, self.leads, visible_cols=visible)
        out = self.predictor(context, n_leads, visible, masked)
        n_mask = masked.shape[-1]
        prediction = out.view(batch, n_leads, -1, out.shape[-1])[:, :, -n_mask:]
        prediction = prediction.reshape(batch, -1, out.shape[-1])
        col_mask = None
        if valid_span is not None:
            has_signal = steps_with_signal(valid_span.to(x.device), h.shape[1] // n_leads,
                                           self.encoder.patch_size)
            col_mask = has_signal[:, masked] if masked.ndim == 1 else has_signal.gather(1, masked)
        if lead_mask is not None:
            lead_mask = lead_mask.to(x.device)
        loss = masked_smooth_l1(prediction, target, self.loss_beta, lead_mask, n_mask, col_mask)
        return {"target": target, "target_tokens": h, "context": context, "predictor_out": out,
                "prediction": prediction, "loss": loss, "col_mask": col_mask}

    def training_step_loss(self, batch: dict[str, Any], step: int, max_steps: int):
        x = self.select_leads(batch)
        mask = self.masker(x.shape[0])
        lead_mask = self.select_lead_mask(batch)
        span = batch_spans(batch, x.shape[0], x.shape[-1]) if "valid_span" in batch else None
        parts = self.forward_parts(x, mask, lead_mask, span)
        target_rep = parts["target_tokens"].mean(dim=1)
        metrics = {
            **self._dropped_tokens(lead_mask, parts["col_mask"], x.shape[0],
                                   int(mask.sum(-1).reshape(-1)[0])),
            "loss": float(parts["loss"].detach()),
            "mask_ratio": float(mask.float().mean()),
            "ema_momentum": self._momentum,
            "target_std": batch_std(target_rep),
            "target_erank": effective_rank(target_rep),
            "pred_std": batch_std(parts["prediction"].mean(dim=1)),
        }
        return parts["loss"], metrics

    def _dropped_tokens(self, lead_mask, col_mask, batch: int, n_mask: int) -> dict[str, float]:
        """Loss tokens left out for unrecorded leads and for padding (counts per step)."""
        n_leads = len(self.leads)
        leads = torch.ones(batch, n_leads, dtype=torch.bool) if lead_mask is None \
            else lead_mask.bool().cpu()
        cols = torch.ones(batch, n_mask, dtype=torch.bool) if col_mask is None \
            else col_mask.bool().cpu()
        return {"loss_tokens_dropped_leads": float((~leads).sum() * n_mask),
                "loss_tokens_dropped_padding": float((leads.sum(1) * (~cols).sum(1)).sum())}

    @torch.no_grad()
    def collapse_metrics(self, batch: dict[str, Any]) -> dict[str, float]:
        """Std across the batch and effective rank of the student's pooled representation."""
        rep = self.encoder(self.select_leads(batch), self.leads)
        return {"rep_std": batch_std(rep), "rep_erank": effective_rank(rep)}

    def state_for_resume(self) -> dict[str, Any]:
        return {"masker": self.masker.state_dict(), "momentum": self._momentum}

    def load_state_for_resume(self, state: dict[str, Any]) -> None:
        if "masker" in state:
            self.masker.load_state_dict(state["masker"])
        self._momentum = float(state.get("momentum", self._momentum))


_MASK_KEYS = {"type": "mask_type", "mask_type": "mask_type", "ratio": "ratio",
              "block_scale": "block_scale", "n_blocks": "n_blocks", "per_sample": "per_sample",
              "seed": "seed"}


@register_method("jepa")
def build_jepa(method_cfg: dict[str, Any], encoder_cfg: dict[str, Any],
               data_info: dict[str, Any] | None = None) -> ECGJEPA:
    """ECG-JEPA from the recipe's ``method:`` and ``encoder:`` sections.

    ``data_info`` (the store's leads, fs, n_samples) is not needed: the batch names its leads.

    method_cfg: ``name: jepa``, ``leads``, ``input_leads``, ``predictor_embed_dim``,
    ``predictor_depth``, ``predictor_num_heads``, ``predictor_drop_path``, ``loss_beta``,
    ``ema: [start, end]``, ``target_follows_mode``, ``mask: {type: block|random, ratio,
    block_scale, n_blocks, per_sample, seed}``.
    encoder_cfg: ``name`` (a registered ViT) plus constructor overrides; the encoder's lead axis
    defaults to the method's ``leads``.
    """
    method_cfg = dict(method_cfg)
    if method_cfg.pop("name", "jepa") != "jepa":
        raise ValueError(f"build_jepa got method {method_cfg.get('name')!r}")
    encoder_cfg = dict(encoder_cfg)
    name = encoder_cfg.pop("name", "vit_small")
    leads = method_cfg.pop("leads", None)
    if leads is not None and "lead_names" not in encoder_cfg and "leads" not in encoder_cfg \
            and "n_leads" not in encoder_cfg:
        encoder_cfg["lead_names"] = list(leads)
    from ecgssl.models.vit import VIT_CONFIGS, create_vit

    if name in VIT_CONFIGS:
        encoder = create_vit(name, **encoder_cfg)
    else:
        from ecgssl.models.registry import create_encoder

        encoder = create_encoder(name, **encoder_cfg)
    mask_cfg = dict(method_cfg.pop("mask", {}) or {})
    unknown = set(mask_cfg) - set(_MASK_KEYS)
    if unknown:
        raise ValueError(f"unknown mask options {sorted(unknown)}; known: {sorted(_MASK_KEYS)}")
    masker = TimeColumnMasker(n_patches=encoder.n_patches,
                              **{_MASK_KEYS[k]: (tuple(v) if isinstance(v, list) else v)
                                 for k, v in mask_cfg.items()})
    if "ema" in method_cfg:
        method_cfg["ema"] = tuple(method_cfg["ema"])
    allowed = {"predictor_embed_dim", "predictor_depth", "predictor_num_heads",
               "predictor_drop_path", "loss_beta", "ema", "input_leads", "target_follows_mode"}
    unknown = set(method_cfg) - allowed
    if unknown:
        raise ValueError(f"unknown jepa options {sorted(unknown)}; known: {sorted(allowed)}")
    return ECGJEPA(encoder, masker=masker, leads=leads, **method_cfg)
