"""Beat-SSL: rhythm- and heartbeat-level contrastive learning with soft targets.

Rizqyawan, Macfarlane, Hadjidemetriou, Deligianni, "Beat-SSL" (arXiv 2601.16147, ISBI 2026);
what is published and our choices where it is silent: docs/methods.md section 2.

One training step, for a batch of B windows with R-peaks and features precomputed at ``prepare``:

1. two 3KG views of every window (``ecgssl.data.views``), made in the DataLoader workers by the
   collate of ``make_collate``; timing is preserved so the R-peaks hold in both views;
2. the encoder's time feature map ``e`` (2B, D, T') of both views in one pass;
3. rhythm: mean over time -> projector ``g_r`` -> contrastive loss over the 2B views with hard
   targets (NT-Xent) or soft targets from the rhythm-feature similarity ** gamma;
4. beats: RoI-align of ``e`` over [R - 0.25 s, R + 0.45 s] (beats leaving the window dropped) ->
   projector ``g_b`` -> contrastive loss over the 2K beat views: the same beat in the other view is
   always positive; hard targets = same beat class, soft = beat-feature similarity ** gamma;
5. loss = rhythm + beat_weight * beat.

SimCLR with 3KG views is the configuration ``rhythm_loss="hard", beat_loss="none"``.

Loss names: ``"hard"`` (targets 0/1; rhythm = NT-Xent, beats = class-equality targets in the
``beat_hard_form`` form, default ``soft_2`` = row-normalised, i.e. SupCon-like), ``"soft_1"`` and
``"soft_2"`` (``ecgssl.methods.losses``), and for beats ``"none"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgssl.data.leads import LEADS_12
from ecgssl.data.views import ThreeKGAugment
from ecgssl.methods.base import SSLMethod
from ecgssl.methods.diagnostics import batch_std, effective_rank
from ecgssl.methods.losses import (
    beat_targets,
    nt_xent_loss,
    partner_accuracy,
    similarity_targets,
    soft_contrastive_loss,
)
from ecgssl.methods.registry import register_method
from ecgssl.models.roi_align import pool_beats

RHYTHM_LOSSES = ("hard", "soft_1", "soft_2")
BEAT_LOSSES = ("none", "hard", "soft_1", "soft_2")


class MLPProjector(nn.Sequential):
    """Linear -> LayerNorm -> ReLU -> Linear (the SimCLR head with a batch-free norm)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        if min(in_dim, hidden_dim, out_dim) < 1:
            raise ValueError("projector dimensions must be >= 1")
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU(),
                         nn.Linear(hidden_dim, out_dim))


class BeatSSLCollate:
    """Picklable collate: stacks store samples and makes the two 3KG views (in the worker).

    Input samples are dicts from the store: ``signal`` (L, T) float32, ``index``, and optionally
    ``rpeaks`` (n,) int (window samples), ``features`` (F,), ``beat_features`` (n, Fb),
    ``beat_classes`` (n,), ``labels``, ``lead_mask``.

    Returns a dict: ``signal``, ``view1``, ``view2`` (B, L, T) float32 tensors, ``index`` (B,)
    long, ``features`` (B, F) float32 (when present), ``rpeaks`` / ``beat_features`` /
    ``beat_classes`` as lists of B tensors (when present), ``labels`` / ``lead_mask`` stacked.
    """

    def __init__(self, augment: ThreeKGAugment):
        self.augment = augment

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        if not samples:
            raise ValueError("empty batch")
        x = np.stack([np.asarray(s["signal"], dtype=np.float32) for s in samples])
        out: dict[str, Any] = {
            "signal": torch.from_numpy(x),
            "view1": torch.from_numpy(self.augment(x)),
            "view2": torch.from_numpy(self.augment(x)),
            "index": torch.as_tensor([int(s.get("index", i)) for i, s in enumerate(samples)]),
        }
        first = samples[0]
        if "features" in first:
            out["features"] = torch.from_numpy(
                np.stack([np.asarray(s["features"], dtype=np.float32) for s in samples]))
        for key, dtype in (("rpeaks", np.int64), ("beat_features", np.float32),
                           ("beat_classes", np.int64)):
            if key in first:
                out[key] = [torch.from_numpy(np.asarray(s[key], dtype=dtype)) for s in samples]
        for key in ("labels", "lead_mask"):
            if key in first:
                out[key] = torch.from_numpy(np.stack([np.asarray(s[key]) for s in samples]))
        return out


class BeatSSL(SSLMethod):
    """Beat-SSL around any encoder with ``forward_features -> (B, D, T')`` and ``stride``.

    Args:
        encoder: a registered encoder (CNN by default; a ViT plugs in through its time map).
        leads: lead names of the batches (3KG needs I, II, V1-V6 among them).
        fs: sampling rate of the store (Hz); R-peaks are in samples at this rate.
        rhythm_loss: "hard" | "soft_1" | "soft_2"; rhythm_gamma: exponent of the soft targets.
        rhythm_similarity: "cosine01" | "gaussian" (``losses.similarity_targets``).
        beat_loss: "none" | "hard" | "soft_1" | "soft_2"; beat_gamma; beat_weight (lambda).
        beat_hard_form: loss form used with hard (class) beat targets, "soft_1" or "soft_2".
        temperature / beat_temperature: tau of the two losses (beat default = temperature).
        proj_hidden, proj_dim: projector sizes (both projectors).
        beat_before_s, beat_after_s: beat window around R; roi_output_size: RoI-align bins.
        max_beats: at most this many beats per step (random subset) to bound the (2K)^2 matrix.
        views: keyword arguments of ``ThreeKGAugment`` (max_angle_deg, scale_range,
            mask_fraction, mode, seed).
    """

    name = "beat_ssl"
    spread_metrics = ("rhythm_z_std", "rhythm_partner_acc", "loss_rhythm", "loss_beat")

    def __init__(self, encoder: nn.Module, *, leads: Sequence[str] = tuple(LEADS_12),
                 fs: float = 250.0, rhythm_loss: str = "soft_1", rhythm_gamma: float = 50.0,
                 rhythm_similarity: str = "cosine01", beat_loss: str = "hard",
                 beat_gamma: float = 50.0, beat_similarity: str = "cosine01",
                 beat_weight: float = 1.0, beat_hard_form: str = "soft_2",
                 temperature: float = 0.1, beat_temperature: float | None = None,
                 proj_hidden: int = 512, proj_dim: int = 128, beat_before_s: float = 0.25,
                 beat_after_s: float = 0.45, roi_output_size: int = 4, max_beats: int = 2048,
                 views: dict | None = None):
        super().__init__(encoder)
        if rhythm_loss not in RHYTHM_LOSSES:
            raise ValueError(f"rhythm_loss must be one of {RHYTHM_LOSSES}, got {rhythm_loss!r}")
        if beat_loss not in BEAT_LOSSES:
            raise ValueError(f"beat_loss must be one of {BEAT_LOSSES}, got {beat_loss!r}")
        if beat_hard_form not in ("soft_1", "soft_2"):
            raise ValueError(f"beat_hard_form must be soft_1 or soft_2, got {beat_hard_form!r}")
        for name, value in (("rhythm_gamma", rhythm_gamma), ("beat_gamma", beat_gamma),
                            ("temperature", temperature), ("fs", fs)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if beat_weight < 0:
            raise ValueError(f"beat_weight must be >= 0, got {beat_weight}")
        if max_beats < 2:
            raise ValueError(f"max_beats must be >= 2, got {max_beats}")
        for attr in ("embed_dim", "stride", "forward_features"):
            if not hasattr(encoder, attr):
                raise ValueError(f"encoder lacks {attr!r} (see docs/architecture.md)")
        self.leads = list(leads)
        self.fs = float(fs)
        self.rhythm_loss, self.rhythm_gamma = rhythm_loss, float(rhythm_gamma)
        self.rhythm_similarity = rhythm_similarity
        self.beat_loss, self.beat_gamma = beat_loss, float(beat_gamma)
        self.beat_similarity = beat_similarity
        self.beat_weight, self.beat_hard_form = float(beat_weight), beat_hard_form
        self.temperature = float(temperature)
        self.beat_temperature = float(beat_temperature or temperature)
        self.beat_before_s, self.beat_after_s = float(beat_before_s), float(beat_after_s)
        self.roi_output_size, self.max_beats = int(roi_output_size), int(max_beats)
        self.view_kwargs = dict(views or {})
        self._augment = ThreeKGAugment(self.leads, **self.view_kwargs)  # validates the options
        d = int(encoder.embed_dim)
        self.rhythm_projector = MLPProjector(d, proj_hidden, proj_dim)
        self.beat_projector = MLPProjector(d, proj_hidden, proj_dim) if beat_loss != "none" \
            else None
        self._beat_rng = torch.Generator().manual_seed(int(self.view_kwargs.get("seed", 0)))

    # -- data ---------------------------------------------------------------------------------
    def make_collate(self) -> BeatSSLCollate:
        return BeatSSLCollate(ThreeKGAugment(self.leads, **self.view_kwargs))

    def _views(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if "view1" in batch and "view2" in batch:
            return batch["view1"], batch["view2"]
        # Without the method's collate: make the views here (same transform, main process).
        x = batch["signal"]
        return self._augment(x), self._augment(x)

    # -- losses -------------------------------------------------------------------------------
    def _rhythm_loss(self, z1, z2, batch) -> torch.Tensor:
        if self.rhythm_loss == "hard":
            return nt_xent_loss(z1, z2, self.temperature)
        if "features" not in batch:
            raise ValueError("soft rhythm targets need batch['features'] (prepare the store with "
                             "the beats extra)")
        w = similarity_targets(batch["features"].to(z1.device), self.rhythm_gamma,
                               self.rhythm_similarity)
        return soft_contrastive_loss(z1, z2, w, self.temperature, self.rhythm_loss)

    def _beat_loss(self, e1, e2, batch, n_samples: int):
        if "rpeaks" not in batch:
            raise ValueError("the beat loss needs batch['rpeaks'] (store beats extra)")
        stride = int(self.encoder.stride)
        kw = dict(n_samples=n_samples, fs=self.fs, stride=stride, before_s=self.beat_before_s,
                  after_s=self.beat_after_s, output_size=self.roi_output_size)
        rpeaks = [torch.as_tensor(r).long().cpu() for r in batch["rpeaks"]]
        b1, _, kept = pool_beats(e1, rpeaks, **kw)
        b2, _, _ = pool_beats(e2, rpeaks, **kw)
        k = b1.shape[0]
        if k < 2:
            return e1.sum() * 0.0, 0
        sel = torch.arange(k)
        if k > self.max_beats:
            sel = torch.randperm(k, generator=self._beat_rng)[: self.max_beats].sort().values
        z1 = self.beat_projector(b1[sel.to(b1.device)])
        z2 = self.beat_projector(b2[sel.to(b2.device)])
        if self.beat_loss == "hard":
            if "beat_classes" not in batch:
                raise ValueError("hard beat targets need batch['beat_classes']")
            classes = torch.cat([torch.as_tensor(c).long().cpu() for c in batch["beat_classes"]])
            w = beat_targets(len(sel), classes=classes[kept][sel].to(z1.device))
            form = self.beat_hard_form
        else:
            if "beat_features" not in batch:
                raise ValueError("soft beat targets need batch['beat_features']")
            feats = torch.cat([torch.as_tensor(f).float().reshape(len(r), -1).cpu()
                               for f, r in zip(batch["beat_features"], rpeaks)])
            w = beat_targets(len(sel), features=feats[kept][sel].to(z1.device),
                             gamma=self.beat_gamma, kind=self.beat_similarity)
            form = self.beat_loss
        return soft_contrastive_loss(z1, z2, w, self.beat_temperature, form), len(sel)

    def training_step_loss(self, batch: dict[str, Any], step: int, max_steps: int):
        """Loss for one batch (see the module docstring) and scalar metrics."""
        v1, v2 = self._views(batch)
        dev = next(self.parameters()).device
        v1, v2 = v1.to(dev, torch.float32), v2.to(dev, torch.float32)
        n, n_samples = v1.shape[0], v1.shape[-1]
        e = self.encoder.forward_features(torch.cat([v1, v2]), leads=self.leads)
        e1, e2 = e[:n], e[n:]
        z1 = self.rhythm_projector(e1.mean(-1))
        z2 = self.rhythm_projector(e2.mean(-1))
        loss_r = self._rhythm_loss(z1, z2, batch)
        metrics = {"loss_rhythm": float(loss_r.detach()),
                   "rhythm_partner_acc": partner_accuracy(z1, z2),
                   "rhythm_z_std": batch_std(z1, normalise=True)}
        loss = loss_r
        if self.beat_loss != "none" and self.beat_weight > 0:
            loss_b, n_beats = self._beat_loss(e1, e2, batch, n_samples)
            loss = loss + self.beat_weight * loss_b
            metrics.update({"loss_beat": float(loss_b.detach()), "n_beats": float(n_beats)})
        metrics["loss"] = float(loss.detach())
        return loss, metrics

    @torch.no_grad()
    def collapse_metrics(self, batch: dict[str, Any]) -> dict[str, float]:
        """Std of the L2-normalised representations across the batch and their effective rank."""
        x = batch["signal"].to(next(self.parameters()).device, torch.float32)
        h = self.encoder(x, leads=self.leads).float()
        return representation_stats(h)

    def state_for_resume(self) -> dict[str, Any]:
        return {"beat_rng": self._beat_rng.get_state()}

    def load_state_for_resume(self, state: dict[str, Any]) -> None:
        if "beat_rng" in state:
            self._beat_rng.set_state(state["beat_rng"])


def representation_stats(h: torch.Tensor) -> dict[str, float]:
    """Collapse diagnostics of (N, D) representations.

    ``repr_std``: mean over dimensions of the std across samples of the L2-normalised vectors
    (about 1/sqrt(D) when spread, 0 when collapsed). ``repr_eff_rank``: exp of the entropy of the
    normalised singular values of the centred matrix (Roy & Vetterli 2007), 1 = collapsed.
    """
    if h.ndim != 2 or h.shape[0] < 2:
        return {}
    return {"repr_std": batch_std(h, normalise=True), "repr_eff_rank": effective_rank(h)}


_METHOD_KEYS = {
    "rhythm_loss", "rhythm_gamma", "rhythm_similarity", "beat_loss", "beat_gamma",
    "beat_similarity", "beat_weight", "beat_hard_form", "temperature", "beat_temperature",
    "proj_hidden", "proj_dim", "beat_before_s", "beat_after_s", "roi_output_size", "max_beats",
    "views",
}


@register_method("beat_ssl")
def build_beat_ssl(method_cfg: dict, encoder_cfg: dict, data_cfg: dict | None = None) -> BeatSSL:
    """Beat-SSL from recipe sections (``configs/beatssl_*.yaml``).

    Args:
        method_cfg: ``{name: beat_ssl, rhythm_loss, rhythm_gamma, beat_loss, beat_gamma,
            beat_weight, temperature, ...}`` (keys of ``BeatSSL``; unknown keys are an error).
        encoder_cfg: ``{name: resnet1d_small, **overrides}`` for ``create_encoder``.
        data_cfg: ``{leads, fs, ...}``; defaults: 12 standard leads, 250 Hz.
    """
    from ecgssl.models.registry import create_encoder

    cfg = dict(method_cfg)
    name = cfg.pop("name", "beat_ssl")
    if name != "beat_ssl":
        raise ValueError(f"method name must be 'beat_ssl', got {name!r}")
    unknown = set(cfg) - _METHOD_KEYS
    if unknown:
        raise ValueError(f"unknown beat_ssl options {sorted(unknown)}; "
                         f"known {sorted(_METHOD_KEYS)}")
    data_cfg = dict(data_cfg or {})
    leads = list(data_cfg.get("leads", LEADS_12))
    enc = dict(encoder_cfg)
    enc_name = enc.pop("name", "resnet1d_small")
    enc.setdefault("n_leads", len(leads))
    encoder = create_encoder(enc_name, **enc)
    return BeatSSL(encoder, leads=leads, fs=float(data_cfg.get("fs", 250)), **cfg)
