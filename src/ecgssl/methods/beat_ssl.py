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

Under DDP (``gather_distributed``, on by default) both losses run on the global batch: the
projections of every rank are gathered with a gradient path (``ecgssl.methods.distributed``) and
the soft and hard target matrices are built from the gathered features, classes and beats, so the
loss and its gradient are those of one process on the whole batch.

What is left out, and counted in the step's metrics (logged as ``train/<name>``):

- windows without all of I, II, V1-V6 recorded (``lead_mask``): 3KG would mix the zero rows of
  missing leads into the recorded ones and fabricate leads, so they are not used
  (``windows_dropped_leads``); leads a window lacks outside those eight stay zero in the views;
- padding (``valid_span``): the rhythm vector is the mean over feature steps that cover real
  signal only; beats whose window touches padding are dropped (``beats_dropped_padding``), as
  are beats leaving the window (``beats_dropped_edge``); windows with no real signal at all are
  dropped (``windows_dropped_padding``).

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

from ecgssl.data.leads import LEADS_8, LEADS_12
from ecgssl.data.views import ThreeKGAugment
from ecgssl.methods.base import SSLMethod
from ecgssl.methods.diagnostics import batch_std, effective_rank
from ecgssl.methods.distributed import gather, should_gather
from ecgssl.methods.losses import (
    beat_targets,
    nt_xent_loss,
    partner_accuracy,
    similarity_targets,
    soft_contrastive_loss,
)
from ecgssl.methods.registry import register_method
from ecgssl.methods.validity import batch_spans, steps_with_signal
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Our own frame: torch.compile does not capture nn.Sequential.forward itself (torch
        # internals are skipped as top-level frames), so ``train.compile`` would miss it.
        for layer in self:
            x = layer(x)
        return x


class BeatSSLCollate:
    """Picklable collate: stacks store samples and makes the two 3KG views (in the worker).

    Input samples are dicts from the store: ``signal`` (L, T) float32, ``index``, and optionally
    ``rpeaks`` (n,) int (window samples), ``features`` (F,), ``beat_features`` (n, Fb),
    ``beat_classes`` (n,), ``labels``, ``lead_mask``.

    Returns a dict: ``signal``, ``view1``, ``view2`` (B, L, T) float32 tensors, ``index`` (B,)
    long, ``features`` (B, F) float32 (when present), ``rpeaks`` / ``beat_features`` /
    ``beat_classes`` as lists of B tensors (when present), ``labels`` / ``lead_mask`` /
    ``valid_span`` stacked. Leads a window did not record (``lead_mask`` False) are zero in both
    views (3KG would otherwise write a mixture of the recorded leads into them).
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
        for key in ("labels", "lead_mask", "valid_span"):
            if key in first:
                out[key] = torch.from_numpy(np.stack([np.asarray(s[key]) for s in samples]))
        if "lead_mask" in out:
            missing = ~out["lead_mask"].bool()
            for view in ("view1", "view2"):
                out[view][missing] = 0.0
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
        gather_distributed: under DDP, contrast against (and build targets over) the global
            batch (module docstring); False = each rank's slice only.
    """

    name = "beat_ssl"
    spread_metrics = ("rhythm_z_std", "rhythm_partner_acc", "loss_rhythm", "loss_beat")
    training_entry_points = {"encoder": ("forward_features",),
                             "rhythm_projector": ("forward",), "beat_projector": ("forward",)}

    def __init__(self, encoder: nn.Module, *, leads: Sequence[str] = tuple(LEADS_12),
                 fs: float = 250.0, rhythm_loss: str = "soft_1", rhythm_gamma: float = 50.0,
                 rhythm_similarity: str = "cosine01", beat_loss: str = "hard",
                 beat_gamma: float = 50.0, beat_similarity: str = "cosine01",
                 beat_weight: float = 1.0, beat_hard_form: str = "soft_2",
                 temperature: float = 0.1, beat_temperature: float | None = None,
                 proj_hidden: int = 512, proj_dim: int = 128, beat_before_s: float = 0.25,
                 beat_after_s: float = 0.45, roi_output_size: int = 4, max_beats: int = 2048,
                 views: dict | None = None, gather_distributed: bool = True):
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
        self.gather_distributed = bool(gather_distributed)
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
        v1, v2 = self._augment(x), self._augment(x)
        if batch.get("lead_mask") is not None:  # unrecorded leads stay zero (as the collate)
            missing = ~torch.as_tensor(batch["lead_mask"]).bool().to(v1.device)[..., None]
            v1, v2 = v1.masked_fill(missing, 0.0), v2.masked_fill(missing, 0.0)
        return v1, v2

    # -- losses -------------------------------------------------------------------------------
    def _gather(self, x: torch.Tensor, grad: bool = True) -> torch.Tensor:
        return gather(x, grad) if should_gather(self.gather_distributed) else x

    def _rhythm_loss(self, z1, z2, batch) -> torch.Tensor:
        """z1, z2: (N, d) global projections (gathered); ``batch`` this rank's kept windows."""
        if self.rhythm_loss == "hard":
            return nt_xent_loss(z1, z2, self.temperature)
        if "features" not in batch:
            raise ValueError("soft rhythm targets need batch['features'] (prepare the store with "
                             "the beats extra)")
        features = self._gather(batch["features"].to(z1.device).float(), grad=False)
        w = similarity_targets(features, self.rhythm_gamma, self.rhythm_similarity)
        return soft_contrastive_loss(z1, z2, w, self.temperature, self.rhythm_loss)

    def _beats_in_signal(self, batch, spans: torch.Tensor):
        """Per window, the beats whose window [R - before, R + after) lies in real signal.

        Returns (rpeaks, classes, features) as lists of per-window tensors (classes / features
        None when the batch lacks them) and the number of beats dropped for touching padding.
        """
        before = int(round(self.beat_before_s * self.fs))
        after = int(round(self.beat_after_s * self.fs))
        rpeaks, classes, feats, dropped = [], [], [], 0
        for i, r in enumerate(batch["rpeaks"]):
            r = torch.as_tensor(r).long().cpu().reshape(-1)
            start, end = int(spans[i, 0]), int(spans[i, 1])
            inside = ((r - before) >= 0) & ((r + after) <= int(batch["_n_samples"]))
            ok = ((r - before) >= start) & ((r + after) <= end)
            dropped += int((inside & ~ok).sum())  # beats leaving the window are counted apart
            keep = ok | ~inside
            rpeaks.append(r[keep])
            if "beat_classes" in batch:
                classes.append(torch.as_tensor(batch["beat_classes"][i]).long().cpu()
                               .reshape(-1)[keep])
            if "beat_features" in batch:
                f = torch.as_tensor(batch["beat_features"][i]).float().cpu()
                feats.append(f.reshape(len(r), -1)[keep] if f.ndim < 2 else f[keep])
        return (rpeaks, classes or None, feats or None), dropped

    def _beat_loss(self, e1, e2, batch, n_samples: int, spans: torch.Tensor):
        """Beat loss over the global set of beats; returns (loss, beats used, metrics)."""
        if "rpeaks" not in batch:
            raise ValueError("the beat loss needs batch['rpeaks'] (store beats extra)")
        stride = int(self.encoder.stride)
        kw = dict(n_samples=n_samples, fs=self.fs, stride=stride, before_s=self.beat_before_s,
                  after_s=self.beat_after_s, output_size=self.roi_output_size)
        (rpeaks, classes, feats), n_pad = self._beats_in_signal(
            {**batch, "_n_samples": n_samples}, spans)
        b1, _, kept = pool_beats(e1, rpeaks, **kw)
        b2, _, _ = pool_beats(e2, rpeaks, **kw)
        counts = {"beats_dropped_padding": float(n_pad),
                  "beats_dropped_edge": float((~kept).sum())}
        z1 = self._gather(self.beat_projector(b1))
        z2 = self._gather(self.beat_projector(b2))
        if self.beat_loss == "hard":
            if classes is None:
                raise ValueError("hard beat targets need batch['beat_classes']")
            local = torch.cat(classes)[kept].to(z1.device)
        else:
            if feats is None:
                raise ValueError("soft beat targets need batch['beat_features']")
            local = torch.cat(feats)[kept].to(z1.device)
        targets_in = self._gather(local, grad=False)
        k = z1.shape[0]
        if k < 2:
            return z1.sum() * 0.0 + e1.sum() * 0.0, 0, counts
        sel = torch.arange(k)
        if k > self.max_beats:  # the same subset on every rank: the generators are in step
            sel = torch.randperm(k, generator=self._beat_rng)[: self.max_beats].sort().values
        sel = sel.to(z1.device)
        z1, z2, targets_in = z1[sel], z2[sel], targets_in[sel]
        if self.beat_loss == "hard":
            w = beat_targets(len(sel), classes=targets_in)
            form = self.beat_hard_form
        else:
            w = beat_targets(len(sel), features=targets_in, gamma=self.beat_gamma,
                             kind=self.beat_similarity)
            form = self.beat_loss
        return soft_contrastive_loss(z1, z2, w, self.beat_temperature, form), len(sel), counts

    def _usable_windows(self, batch: dict[str, Any], spans: torch.Tensor):
        """(B,) bool: windows with I, II, V1-V6 recorded and some real signal; the counts."""
        n = spans.shape[0]
        has_signal = spans[:, 1] > spans[:, 0]
        leads_ok = torch.ones(n, dtype=torch.bool)
        if batch.get("lead_mask") is not None:
            mask = torch.as_tensor(batch["lead_mask"]).bool().cpu()
            if mask.shape != (n, len(self.leads)):
                raise ValueError(f"batch['lead_mask'] must be ({n}, {len(self.leads)}) for leads "
                                 f"{self.leads}, got {tuple(mask.shape)}")
            leads_ok = mask[:, [self.leads.index(name) for name in LEADS_8]].all(1)
        keep = leads_ok & has_signal.cpu()
        return keep, {"windows_dropped_leads": float((~leads_ok).sum()),
                      "windows_dropped_padding": float((leads_ok & ~has_signal.cpu()).sum())}

    @staticmethod
    def _subset(batch: dict[str, Any], keep: torch.Tensor, n: int) -> dict[str, Any]:
        """The batch restricted to the windows ``keep`` (B,) bool (lists and tensors alike)."""
        idx = torch.nonzero(keep).reshape(-1)
        out = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == n:
                out[key] = value[idx.to(value.device)]
            elif isinstance(value, list) and len(value) == n:
                out[key] = [value[int(i)] for i in idx]
            else:
                out[key] = value
        return out

    def training_step_loss(self, batch: dict[str, Any], step: int, max_steps: int):
        """Loss for one batch (see the module docstring) and scalar metrics."""
        v1, v2 = self._views(batch)
        param = next(self.parameters())
        dev = param.device
        n, n_samples = v1.shape[0], v1.shape[-1]
        spans = batch_spans(batch, n, n_samples)
        keep, counts = self._usable_windows(batch, spans)
        if not bool(keep.all()):
            batch = self._subset({**batch, "view1": v1, "view2": v2, "valid_span": spans},
                                 keep, n)
            v1, v2, spans = batch["view1"], batch["view2"], batch["valid_span"]
            n = v1.shape[0]
        # The parameters' dtype: float32 in training (autocast does the rest), float64 in tests.
        v1, v2 = v1.to(dev, param.dtype), v2.to(dev, param.dtype)
        e = self.encoder.forward_features(torch.cat([v1, v2]), leads=self.leads)
        e1, e2 = e[:n], e[n:]
        # Rhythm vector: mean over the feature steps that cover real signal.
        w = steps_with_signal(spans.to(dev), e.shape[-1], int(self.encoder.stride))
        w = w.to(e.dtype)[:, None, :]
        denom = w.sum(-1).clamp_min(1.0)
        z1 = self._gather(self.rhythm_projector((e1 * w).sum(-1) / denom))
        z2 = self._gather(self.rhythm_projector((e2 * w).sum(-1) / denom))
        loss_r = self._rhythm_loss(z1, z2, batch)
        metrics = {"loss_rhythm": float(loss_r.detach()),
                   "rhythm_partner_acc": partner_accuracy(z1, z2),
                   "rhythm_z_std": batch_std(z1, normalise=True),
                   **counts}
        loss = loss_r
        if self.beat_loss != "none" and self.beat_weight > 0:
            loss_b, n_beats, beat_counts = self._beat_loss(e1, e2, batch, n_samples, spans)
            loss = loss + self.beat_weight * loss_b
            metrics.update({"loss_beat": float(loss_b.detach()), "n_beats": float(n_beats),
                            **beat_counts})
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
    "views", "gather_distributed",
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
