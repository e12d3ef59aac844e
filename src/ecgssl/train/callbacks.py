"""Training callbacks: representation-collapse diagnostics, online linear probe, throughput.

None of these draws from the global random number generators, so they do not change the
training trajectory (and exact resume holds with or without them).
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from ecgssl.methods.diagnostics import batch_std, effective_rank


@torch.no_grad()
def feature_collapse_stats(z: torch.Tensor) -> dict[str, float]:
    """Collapse diagnostics of a batch of representations ``z`` (B, D).

    Returns:
        ``feat_std``: mean over dimensions of the across-batch std of l2-normalised features
        (0 when collapsed; about ``1/sqrt(D)`` for well spread features);
        ``feat_std_ratio``: ``feat_std * sqrt(D)`` (about 1 when healthy);
        ``eff_rank``: effective rank, exp(entropy) of the normalised singular values of the
        centred batch (1 = rank-one collapse, up to ``min(B, D)``; 0 if every row is the same).
        Both from ``ecgssl.methods.diagnostics``.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"need (B>=2, D) features, got shape {tuple(z.shape)}")
    std = batch_std(z, normalise=True)
    return {"feat_std": std, "feat_std_ratio": std * z.shape[1] ** 0.5,
            "eff_rank": effective_rank(z)}


def log_now(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """Write ``metrics`` to every logger once, on the row of the current optimiser step."""
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)


class CollapseMonitor(pl.Callback):
    """Every ``every_n_steps`` optimiser steps, log collapse metrics on the incoming batch.

    Logs the generic ``collapse/*`` stats of the encoder's pooled features and whatever the
    method's ``collapse_metrics(batch)`` returns, computed in eval mode before the step's update.
    Written straight to the loggers: metrics given to ``LightningModule.log`` from a callback
    stay in Lightning's step results and are repeated on following rows.
    """

    def __init__(self, every_n_steps: int):
        if every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be > 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps or "signal" not in batch:
            return
        method = pl_module.method
        was_training = method.training
        method.eval()
        try:
            with torch.no_grad():
                stats = feature_collapse_stats(method.encoder(batch["signal"]))
                stats.update(method.collapse_metrics(batch))
        finally:
            method.train(was_training)
        log_now(trainer, {f"collapse/{name}": float(value) for name, value in stats.items()})


class ThroughputMeter(pl.Callback):
    """Training throughput: samples/s over all ranks, measured between batch starts.

    The time between consecutive batch starts covers one step's forward, backward and optimiser
    update and the loading of the next batch. The first ``skip`` intervals (start-up,
    compilation) are left out of the summary.

    Attributes after training: ``samples_per_s`` (mean over measured batches), ``steps`` measured.
    """

    def __init__(self, skip: int = 2, log: bool = True):
        self.skip, self.log = int(skip), log
        self._last: float | None = None
        self._seen = 0
        self._time = 0.0
        self._samples = 0
        self._n_prev = 0
        self.samples_per_s = float("nan")
        self.steps = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._last = None  # the first interval of an epoch would include the epoch change

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        last, self._last = self._last, now
        n = int(batch["signal"].shape[0]) * trainer.world_size if "signal" in batch else 0
        if last is None:
            self._n_prev = n
            return
        n, self._n_prev = self._n_prev, n  # the interval measured the previous batch
        self._seen += 1
        if self._seen <= self.skip:
            return
        dt = now - last
        self._time += dt
        self._samples += n
        self.steps += 1
        self.samples_per_s = self._samples / self._time if self._time > 0 else float("nan")
        if self.log and dt > 0:
            log_now(trainer, {"perf/samples_per_s": n / dt})


def _labels_of(item: dict[str, Any]) -> np.ndarray:
    for key in ("labels", "label"):
        if key in item:
            return np.asarray(item[key]).reshape(-1)
    raise KeyError("probe dataset items need a 'labels' (multi-hot) entry")


class OnlineLinearProbe(pl.Callback):
    """Every ``every_n_epochs``, fit a logistic-regression probe on frozen pooled features.

    A monitoring signal during pretraining, not an evaluation: the labelled set is split at random
    (seeded) into fit / held-out parts, and the held-out macro AUROC over labels with both classes
    present is logged as ``probe/auroc``.

    Args:
        dataset: map-style, items with ``"signal"`` (L, T) and ``"labels"`` (K,) multi-hot.
        every_n_epochs: probe period (epochs).
        val_fraction: held-out share of the (sub-sampled) set.
        max_samples: sub-sample the set to at most this many items (seeded) to keep it cheap.
        batch_size: feature-extraction batch size.
    """

    def __init__(self, dataset: Any, every_n_epochs: int = 1, val_fraction: float = 0.3,
                 max_samples: int = 2000, batch_size: int = 128, seed: int = 0):
        if every_n_epochs <= 0:
            raise ValueError(f"every_n_epochs must be > 0, got {every_n_epochs}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.dataset, self.every_n_epochs = dataset, every_n_epochs
        self.val_fraction, self.batch_size = val_fraction, batch_size
        rng = np.random.default_rng(seed)  # own generator: never touches the global RNGs
        n = len(dataset)
        self.indices = np.sort(rng.permutation(n)[: min(n, max_samples)])
        n_val = max(1, int(round(len(self.indices) * val_fraction)))
        perm = rng.permutation(len(self.indices))
        self.val_pos, self.fit_pos = perm[:n_val], perm[n_val:]
        self.history: list[tuple[int, float]] = []

    @torch.no_grad()
    def features(self, encoder: torch.nn.Module, device: torch.device) -> tuple[np.ndarray, ...]:
        feats, labels = [], []
        for start in range(0, len(self.indices), self.batch_size):
            items = [self.dataset[int(i)] for i in self.indices[start:start + self.batch_size]]
            x = torch.as_tensor(np.stack([np.asarray(it["signal"]) for it in items]),
                                dtype=torch.float32, device=device)
            feats.append(encoder(x).float().cpu().numpy())
            labels.append(np.stack([_labels_of(it) for it in items]))
        return np.concatenate(feats), np.concatenate(labels)

    def probe(self, encoder: torch.nn.Module, device: torch.device) -> float:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.preprocessing import StandardScaler

        x, y = self.features(encoder, device)
        scaler = StandardScaler().fit(x[self.fit_pos])
        xf, xv = scaler.transform(x[self.fit_pos]), scaler.transform(x[self.val_pos])
        aucs = []
        for k in range(y.shape[1]):
            yf, yv = y[self.fit_pos, k], y[self.val_pos, k]
            if len(np.unique(yf)) < 2 or len(np.unique(yv)) < 2:
                continue  # label not estimable on this split
            clf = LogisticRegression(max_iter=500, C=1.0).fit(xf, yf)
            aucs.append(roc_auc_score(yv, clf.decision_function(xv)))
        return float(np.mean(aucs)) if aucs else float("nan")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        encoder = pl_module.method.encoder
        was_training = encoder.training
        encoder.eval()
        try:
            auroc = self.probe(encoder, pl_module.device) if trainer.is_global_zero \
                else float("nan")
        finally:
            encoder.train(was_training)
        self.history.append((trainer.current_epoch, auroc))
        pl_module.log("probe/auroc", auroc, rank_zero_only=True, batch_size=1)
