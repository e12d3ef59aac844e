"""CMSC, Contrastive Multi-Segment Coding (CLOCS: Kiyasseh, Zhu & Clifton, ICML 2021).

Written from the paper's description. CLOCS treats temporally adjacent, non-overlapping segments
of one recording as views of the same patient state, and every segment of the same *patient* in
the batch as a positive ("patient-specific" contrast).

One training step, for a batch ``signal`` (B, L, T) mV with ``patient_code`` (B,):

1. each window is cut into ``n_segments`` consecutive, non-overlapping segments of
   ``seg = (T // n_segments)`` samples rounded down to a whole number of encoder strides (ViT
   patches); the remaining ``T - n_segments * seg`` samples at the end of the window are not used
   (reported as the ``unused_samples`` metric);
2. each segment is encoded (``forward_features``, mean over time) and mapped by a linear layer to
   the contrast space (CLOCS's final linear embedding layer; kept in the method so the exported
   encoder is the backbone);
3. for every ordered pair of segment positions (A, B), with ``s_ik = cos(v_i^A, v_k^B) / tau``:
   ``L_AB = -mean over pairs (i, k) of the same patient of log softmax_k(s_ik)`` (the softmax runs
   over the B segments of the other view), and the loss is ``L_AB + L_BA`` averaged over the
   unordered pairs (A, B) (CLOCS sums over view pairs; with the default two segments there is
   one pair). ``patient_specific=False`` makes only the segments of the same window positives.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgssl.data.leads import LEADS_12
from ecgssl.methods.base import SSLMethod
from ecgssl.methods.registry import register_method


def cmsc_pair_loss(v_a: torch.Tensor, v_b: torch.Tensor, positives: torch.Tensor,
                   temperature: float = 0.1) -> torch.Tensor:
    """``L_AB + L_BA`` for embeddings (B, E) of two segment positions.

    Args:
        v_a, v_b: (B, E) embeddings of segment A and B of each window.
        positives: (B, B) bool, True where window i and k share a patient (diagonal True).
        temperature: tau.
    """
    if v_a.shape != v_b.shape or v_a.ndim != 2:
        raise ValueError(f"v_a and v_b must both be (B, E), got {tuple(v_a.shape)}, "
                         f"{tuple(v_b.shape)}")
    if positives.shape != (v_a.shape[0], v_a.shape[0]):
        raise ValueError(f"positives must be (B, B), got {tuple(positives.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    sim = F.normalize(v_a, dim=1) @ F.normalize(v_b, dim=1).T / temperature  # (B, B)
    weight = positives.to(sim.dtype)
    n_pos = weight.sum()
    loss_ab = -(F.log_softmax(sim, dim=1) * weight).sum() / n_pos
    loss_ba = -(F.log_softmax(sim.T, dim=1) * weight.T).sum() / n_pos
    return loss_ab + loss_ba


class CMSC(SSLMethod):
    """CLOCS's CMSC around any encoder with ``forward_features`` and ``stride``.

    Args:
        encoder: a registered encoder (a ViT needs segments of whole patches: handled).
        leads: names of the rows of ``batch["signal"]``.
        n_segments: consecutive segments per window (CLOCS: 2).
        temperature: tau (CLOCS: 0.1).
        proj_dim: size E of the linear embedding the loss compares (CLOCS: 128).
        patient_specific: positives = same patient (CLOCS) or only the same window.
    """

    name = "cmsc"
    needs_ids = True

    def __init__(self, encoder: nn.Module, *, leads: Sequence[str] = tuple(LEADS_12),
                 n_segments: int = 2, temperature: float = 0.1, proj_dim: int = 128,
                 patient_specific: bool = True):
        super().__init__(encoder)
        for attr in ("embed_dim", "stride", "forward_features"):
            if not hasattr(encoder, attr):
                raise ValueError(f"encoder lacks {attr!r} (see docs/architecture.md)")
        if int(n_segments) != n_segments or n_segments < 2:
            raise ValueError(f"n_segments must be an integer >= 2, got {n_segments}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if proj_dim < 1:
            raise ValueError(f"proj_dim must be >= 1, got {proj_dim}")
        self.leads = list(leads)
        self.n_segments = int(n_segments)
        self.temperature = float(temperature)
        self.patient_specific = bool(patient_specific)
        self.projector = nn.Linear(int(encoder.embed_dim), int(proj_dim))

    def segment_length(self, n_samples: int) -> int:
        """Samples per segment: T // n_segments, down to a multiple of the encoder stride."""
        stride = int(self.encoder.stride)
        seg = (n_samples // self.n_segments) // stride * stride
        if seg < stride:
            raise ValueError(f"windows of {n_samples} samples cannot be cut into "
                             f"{self.n_segments} segments of at least one {stride}-sample step")
        return seg

    def positives(self, batch: dict[str, Any], n: int, device) -> torch.Tensor:
        """(B, B) bool positive pairs: same patient (patient_specific) or the diagonal."""
        if not self.patient_specific:
            return torch.eye(n, dtype=torch.bool, device=device)
        if "patient_code" not in batch:
            raise ValueError("CMSC's patient-specific contrast needs batch['patient_code'] "
                             "(StoreDataset(..., ids=True); `ecgssl pretrain` adds it), or set "
                             "patient_specific: false")
        code = torch.as_tensor(batch["patient_code"]).long().to(device).reshape(-1)
        if code.shape[0] != n:
            raise ValueError(f"{code.shape[0]} patient codes for {n} windows")
        return code[:, None] == code[None, :]

    def embed_segments(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, L, T) -> one (B, E) embedding per segment position (one encoder pass)."""
        n, seg = x.shape[0], self.segment_length(x.shape[-1])
        parts = [x[..., k * seg:(k + 1) * seg] for k in range(self.n_segments)]
        h = self.encoder.forward_features(torch.cat(parts), leads=self.leads).mean(-1)
        return list(self.projector(h).split(n))

    def training_step_loss(self, batch: dict[str, Any], step: int, max_steps: int):
        x = batch["signal"]
        if x.ndim != 3:
            raise ValueError(f"batch['signal'] must be (B, L, T), got {tuple(x.shape)}")
        x = x.to(next(self.parameters()).device, torch.float32)
        pos = self.positives(batch, x.shape[0], x.device)
        v = self.embed_segments(x)
        pairs = list(itertools.combinations(range(self.n_segments), 2))
        loss = sum(cmsc_pair_loss(v[a], v[b], pos, self.temperature) for a, b in pairs)
        loss = loss / len(pairs)
        seg = self.segment_length(x.shape[-1])
        return loss, {"loss": float(loss.detach()),
                      "positives_per_window": float(pos.sum(1).float().mean()),
                      "unused_samples": float(x.shape[-1] - self.n_segments * seg)}

    @torch.no_grad()
    def collapse_metrics(self, batch: dict[str, Any]) -> dict[str, float]:
        from ecgssl.methods.beat_ssl import representation_stats

        x = batch["signal"].to(next(self.parameters()).device, torch.float32)
        return representation_stats(self.encoder(x, leads=self.leads).float())


_KEYS = {"n_segments", "temperature", "proj_dim", "patient_specific"}


@register_method("cmsc")
def build_cmsc(method_cfg: dict[str, Any], encoder_cfg: dict[str, Any],
               data_info: dict[str, Any]) -> CMSC:
    """CMSC from recipe sections (``configs/cmsc_cpu.yaml``); encoder default
    ``resnet1d_small``; leads from ``data_info`` (default the 12 standard leads)."""
    from ecgssl.methods.ts2vec import build_encoder_for

    cfg = dict(method_cfg)
    if cfg.pop("name", "cmsc") != "cmsc":
        raise ValueError("build_cmsc got another method's section")
    unknown = set(cfg) - _KEYS
    if unknown:
        raise ValueError(f"unknown cmsc options {sorted(unknown)}; known {sorted(_KEYS)}")
    leads = list((data_info or {}).get("leads") or LEADS_12)
    encoder = build_encoder_for(encoder_cfg, leads, "resnet1d_small")
    return CMSC(encoder, leads=leads, **cfg)
