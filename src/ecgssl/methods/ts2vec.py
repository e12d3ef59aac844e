"""TS2Vec (Yue et al., "TS2Vec: Towards Universal Representation of Time Series", AAAI 2022).

Written from the paper's description. One training step, for a batch ``signal`` (B, L, T) mV:

1. **Contextual views.** Two overlapping crops of the window, ``[a1, b1)`` and ``[a2, b2)`` with
   ``a1 <= a2 < b1 <= b2``, drawn per batch in whole feature steps of the encoder (``stride``
   input samples) so the overlap ``[a2, b1)`` falls on the same feature steps in both views. With
   ``max_length`` the two crops lie in a random section of that many samples (the paper trains
   on sections of at most 3000 steps; we bound the quadratic temporal loss on CPU this way).
2. **Timestamp masking.** Each time step of each view is masked with probability ``mask_prob``
   (paper 0.5). On the published dilated encoder (``ts2vec_dilated``) the *latent* vectors after
   the input projection are zeroed, as published; other encoders have no such point, so the
   *input* samples of masked feature steps are zeroed instead (our generalisation, stated).
3. Both crops are encoded (``forward_features`` (B, D, T')); the overlap's representations
   ``r`` (view 1) and ``r'`` (view 2), (B, T_o, D), are contrasted.
4. **Hierarchical contrast** (the paper's Algorithm 1): at each scale the loss is
   ``alpha * instance + (1 - alpha) * temporal``, then both are max-pooled over time by 2
   (an odd last step is dropped by the pooling), until one step is left (instance loss only);
   the sum is divided by the number of scales. The temporal term is skipped below
   ``temporal_unit`` scales (paper option, default 0).

   - instance: at each time step t, sample i's positive is its other view; the negatives are the
     other samples' two views at t (2B - 2 of them);
   - temporal: for each sample and time step t, the positive is the other view at t; negatives
     are both views at the other time steps of the overlap.

   Similarities are plain dot products (no normalisation, no temperature), as published.

No projection head: the loss reads the encoder's feature map, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ecgssl.data.leads import LEADS_12
from ecgssl.methods.base import SSLMethod
from ecgssl.methods.registry import register_method


def instance_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """TS2Vec's instance-wise loss of (B, T, D) overlap representations; 0 when B == 1."""
    batch = z1.shape[0]
    if batch < 2:
        return z1.sum() * 0.0
    z = torch.cat([z1, z2], dim=0).transpose(0, 1)  # (T, 2B, D)
    sim = z @ z.transpose(1, 2)  # (T, 2B, 2B)
    eye = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
    logp = F.log_softmax(sim.masked_fill(eye, float("-inf")), dim=-1)
    i = torch.arange(batch, device=z.device)
    return -(logp[:, i, i + batch].mean() + logp[:, i + batch, i].mean()) / 2


def temporal_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """TS2Vec's temporal loss of (B, T, D) overlap representations; 0 when T == 1."""
    steps = z1.shape[1]
    if steps < 2:
        return z1.sum() * 0.0
    z = torch.cat([z1, z2], dim=1)  # (B, 2T, D)
    sim = z @ z.transpose(1, 2)  # (B, 2T, 2T)
    eye = torch.eye(2 * steps, dtype=torch.bool, device=z.device)
    logp = F.log_softmax(sim.masked_fill(eye, float("-inf")), dim=-1)
    t = torch.arange(steps, device=z.device)
    return -(logp[:, t, t + steps].mean() + logp[:, t + steps, t].mean()) / 2


def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5,
                                  temporal_unit: int = 0) -> torch.Tensor:
    """The paper's Algorithm 1 over (B, T, D) representations of the same time steps."""
    if z1.shape != z2.shape or z1.ndim != 3:
        raise ValueError(f"z1 and z2 must be the same (B, T, D), got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    loss = z1.sum() * 0.0
    scales = 0
    while z1.shape[1] > 1:
        if alpha > 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2)
        if scales >= temporal_unit and alpha < 1:
            loss = loss + (1 - alpha) * temporal_contrastive_loss(z1, z2)
        scales += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if z1.shape[1] == 1:
        if alpha > 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2)
        scales += 1
    return loss / scales


class TS2Vec(SSLMethod):
    """TS2Vec around any encoder with ``forward_features -> (B, D, T')`` and ``stride``.

    Args:
        encoder: ``ts2vec_dilated`` (published) or any registered encoder.
        leads: names of the rows of ``batch["signal"]`` (passed to the encoder).
        alpha: weight of the instance loss (paper 0.5); temporal_unit: see module doc.
        mask_prob: timestamp-masking probability (paper 0.5).
        max_length: crops are drawn inside a random section of at most this many input samples
            (None: the whole window).
        min_overlap: the overlap has at least this many input samples (rounded up to whole
            feature steps; at least 2 steps so the temporal loss has negatives).
        max_patches: an upper bound on a crop's feature steps (a ViT's ``n_patches``); set from
            the encoder when it has one.
        seed: seed of the crop and mask generator.
    """

    name = "ts2vec"

    def __init__(self, encoder: torch.nn.Module, *, leads: Sequence[str] = tuple(LEADS_12),
                 alpha: float = 0.5, temporal_unit: int = 0, mask_prob: float = 0.5,
                 max_length: int | None = None, min_overlap: int = 2, seed: int = 0):
        super().__init__(encoder)
        for attr in ("embed_dim", "stride", "forward_features"):
            if not hasattr(encoder, attr):
                raise ValueError(f"encoder lacks {attr!r} (see docs/architecture.md)")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not 0.0 <= mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in [0, 1), got {mask_prob}")
        if temporal_unit < 0:
            raise ValueError(f"temporal_unit must be >= 0, got {temporal_unit}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 sample, got {max_length}")
        self.leads = list(leads)
        self.alpha, self.temporal_unit = float(alpha), int(temporal_unit)
        self.mask_prob = float(mask_prob)
        self.max_length = None if max_length is None else int(max_length)
        self.unit = int(encoder.stride)
        self.min_overlap_steps = max(2, -(-int(min_overlap) // self.unit))
        self.max_steps_encoder = getattr(encoder, "n_patches", None)
        self.latent_mask = bool(getattr(encoder, "supports_timestamp_mask", False))
        self.seed = int(seed)
        self._rng = torch.Generator().manual_seed(self.seed)

    # -- views --------------------------------------------------------------------------------
    def _randint(self, low: int, high: int) -> int:
        """Uniform integer in [low, high] (inclusive)."""
        return int(torch.randint(low, high + 1, (1,), generator=self._rng))

    def draw_crops(self, n_samples: int) -> tuple[int, int, int, int]:
        """(a1, b1, a2, b2) in input samples, multiples of the encoder stride, with
        a1 <= a2 < b1 <= b2 and an overlap of at least ``min_overlap_steps`` steps."""
        steps = n_samples // self.unit
        if self.max_length is not None:
            steps = min(steps, max(self.max_length // self.unit, 1))
        if self.max_steps_encoder is not None:
            steps = min(steps, int(self.max_steps_encoder))
        if steps < self.min_overlap_steps:
            raise ValueError(f"windows of {n_samples} samples hold {n_samples // self.unit} "
                             f"feature steps of {self.unit} samples (section {steps}); TS2Vec "
                             f"needs an overlap of >= {self.min_overlap_steps}: lower "
                             f"min_overlap or raise max_length")
        section = self._randint(0, n_samples // self.unit - steps)
        overlap = self._randint(self.min_overlap_steps, steps)
        a2 = self._randint(0, steps - overlap)
        b1 = a2 + overlap
        a1 = self._randint(0, a2)
        b2 = self._randint(b1, steps)
        return tuple((section + v) * self.unit for v in (a1, b1, a2, b2))

    def _mask(self, batch: int, n_samples: int) -> torch.Tensor:
        """(B, steps) bool, True = masked time step (feature steps of the encoder)."""
        return torch.rand(batch, n_samples // self.unit, generator=self._rng) < self.mask_prob

    def _encode(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(B, L, T) -> (B, T', D) with timestamp masking (see module doc)."""
        if mask is None:
            h = self.encoder.forward_features(x, leads=self.leads)
        elif self.latent_mask:
            h = self.encoder.forward_features(x, leads=self.leads,
                                              timestamp_mask=mask.to(x.device))
        else:
            keep = (~mask).to(x.device, x.dtype).repeat_interleave(self.unit, dim=1)
            h = self.encoder.forward_features(x * keep[:, None, :], leads=self.leads)
        return h.transpose(1, 2)

    def overlap_representations(self, x: torch.Tensor, crops: tuple[int, int, int, int],
                                masked: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(r, r') (B, T_o, D) of the overlap in both crops of x (B, L, T)."""
        a1, b1, a2, b2 = crops
        v1, v2 = x[..., a1:b1], x[..., a2:b2]
        m1 = self._mask(x.shape[0], b1 - a1) if masked and self.mask_prob > 0 else None
        m2 = self._mask(x.shape[0], b2 - a2) if masked and self.mask_prob > 0 else None
        h1, h2 = self._encode(v1, m1), self._encode(v2, m2)
        n = (b1 - a2) // self.unit
        start = (a2 - a1) // self.unit
        return h1[:, start:start + n], h2[:, :n]

    def training_step_loss(self, batch: dict[str, Any], step: int, max_steps: int):
        x = batch["signal"]
        if x.ndim != 3:
            raise ValueError(f"batch['signal'] must be (B, L, T), got {tuple(x.shape)}")
        x = x.to(next(self.parameters()).device, torch.float32)
        crops = self.draw_crops(x.shape[-1])
        r1, r2 = self.overlap_representations(x, crops)
        loss = hierarchical_contrastive_loss(r1, r2, self.alpha, self.temporal_unit)
        a1, b1, a2, b2 = crops
        return loss, {"loss": float(loss.detach()), "overlap_samples": float(b1 - a2),
                      "crop1_samples": float(b1 - a1), "crop2_samples": float(b2 - a2)}

    @torch.no_grad()
    def collapse_metrics(self, batch: dict[str, Any]) -> dict[str, float]:
        from ecgssl.methods.beat_ssl import representation_stats

        x = batch["signal"].to(next(self.parameters()).device, torch.float32)
        return representation_stats(self.encoder(x, leads=self.leads).float())

    def state_for_resume(self) -> dict[str, Any]:
        return {"rng": self._rng.get_state()}

    def load_state_for_resume(self, state: dict[str, Any]) -> None:
        if "rng" in state:
            self._rng.set_state(state["rng"])


def build_encoder_for(encoder_cfg: dict[str, Any], leads: Sequence[str], default: str):
    """Any registered encoder for ``leads``: ViTs get the lead names, others ``n_leads``."""
    from ecgssl.models.registry import create_encoder
    from ecgssl.models.vit import VIT_CONFIGS

    enc = dict(encoder_cfg)
    name = enc.pop("name", default)
    if name in VIT_CONFIGS or name.startswith("stmem_vit"):
        if not {"lead_names", "leads", "n_leads"} & set(enc):
            enc["lead_names"] = list(leads)
    else:
        enc.setdefault("n_leads", len(leads))
    return create_encoder(name, **enc)


_KEYS = {"alpha", "temporal_unit", "mask_prob", "max_length", "min_overlap", "seed"}


@register_method("ts2vec")
def build_ts2vec(method_cfg: dict[str, Any], encoder_cfg: dict[str, Any],
                 data_info: dict[str, Any]) -> TS2Vec:
    """TS2Vec from recipe sections (``configs/ts2vec_cpu.yaml``); encoder default
    ``ts2vec_dilated``; leads from ``data_info`` (default the 12 standard leads)."""
    cfg = dict(method_cfg)
    if cfg.pop("name", "ts2vec") != "ts2vec":
        raise ValueError("build_ts2vec got another method's section")
    unknown = set(cfg) - _KEYS
    if unknown:
        raise ValueError(f"unknown ts2vec options {sorted(unknown)}; known {sorted(_KEYS)}")
    leads = list((data_info or {}).get("leads") or LEADS_12)
    encoder = build_encoder_for(encoder_cfg, leads, "ts2vec_dilated")
    return TS2Vec(encoder, leads=leads, **cfg)
