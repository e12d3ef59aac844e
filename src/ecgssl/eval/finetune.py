"""Fine-tuning an encoder + linear head (Lightning), supervised-from-scratch baseline.

Protocol (docs/evaluation.md): train on the training records; after every epoch score the
validation records; keep (in memory) the weights of the epoch with the best validation metric
(multi-label: macro AUROC; regression: mean standardised MAE); after training restore those
weights, choose F1 thresholds on validation and score the test records exactly once.

- ``freeze_encoder=True`` trains only the head by SGD/AdamW on frozen features (a linear probe
  trained by gradient descent; the encoder stays in eval mode).
- ``supervised_from_scratch`` runs the same recipe on a freshly initialised encoder of the same
  architecture, with the same budget (epochs, lr, batch size): the "no pretraining" baseline.
- ``task="regression"``: masked MSE on targets standardised with training mean/SD; NaN targets
  are ignored in the loss and in the metrics.
"""

from __future__ import annotations

import copy
import csv
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ecgssl.eval.classification_metrics import (
    ClassificationResult,
    choose_thresholds,
    evaluate_classification,
    macro_auroc,
)
from ecgssl.eval.splits import Split
from ecgssl.models.pooling import output_dim
from ecgssl.safety.workers import worker_init

__all__ = [
    "WindowDataset",
    "FineTuneModule",
    "FineTuneOutput",
    "finetune",
    "supervised_from_scratch",
    "reinitialized_copy",
]

TASKS = ("multilabel", "regression")


class WindowDataset(Dataset):
    """(signal (L, T) float32, target (K,) float32) pairs for the given store rows.

    ``signals`` may be a memmap: each item reads only its own window.
    """

    def __init__(self, signals: np.ndarray, targets: np.ndarray, indices: np.ndarray):
        if signals.ndim != 3:
            raise ValueError(f"signals must be (N, L, T), got shape {signals.shape}")
        if len(targets) != len(signals):
            raise ValueError(f"{len(targets)} target rows for {len(signals)} windows")
        self.signals = signals
        self.targets = np.asarray(targets, dtype=np.float32)
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = self.indices[i]
        x = np.array(self.signals[j], dtype=np.float32)  # copy: memmap rows are read-only
        return torch.from_numpy(x), torch.from_numpy(self.targets[j].copy())


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class FineTuneModule(L.LightningModule):
    """Encoder + linear head with epoch selection on the validation metric.

    Args:
        encoder: ``forward(x[, leads]) -> (B, D)`` with an ``embed_dim`` attribute (or give
            ``embed_dim``).
        n_outputs: K classes or targets.
        task: "multilabel" (BCE with logits) or "regression" (masked MSE, standardised targets).
        lr, weight_decay: AdamW.
        freeze_encoder: train the head only.
        leads: lead names forwarded to the encoder, or None.
    """

    def __init__(self, encoder: nn.Module, n_outputs: int, *, task: str = "multilabel",
                 lr: float = 1e-3, weight_decay: float = 1e-2, freeze_encoder: bool = False,
                 leads: Sequence[str] | None = None, embed_dim: int | None = None,
                 class_names: Sequence[str] | None = None):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
        if lr <= 0 or weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got {lr}, {weight_decay}")
        dim = embed_dim if embed_dim is not None else output_dim(encoder)
        if not isinstance(dim, int):
            raise ValueError("encoder has no integer embed_dim; pass embed_dim=")
        self.encoder = encoder
        self.head = nn.Linear(dim, n_outputs)
        self.task, self.lr, self.weight_decay = task, lr, weight_decay
        self.freeze_encoder = freeze_encoder
        self.leads = list(leads) if leads is not None else None
        self.class_names = list(class_names) if class_names is not None else None
        if freeze_encoder:
            self.encoder.requires_grad_(False)
        # Filled during fit.
        self.history: list[dict[str, float]] = []
        self.best_metric = -np.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self._val_out: list[torch.Tensor] = []
        self._val_tgt: list[torch.Tensor] = []
        self._train_losses: list[float] = []

    # -- model ---------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze_encoder:
            self.encoder.eval()  # dropout off / BN frozen even while Lightning trains the head
            with torch.no_grad():
                return self._enc(x)
        return self._enc(x)

    def _enc(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x) if self.leads is None else self.encoder(x, leads=self.leads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x))

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "multilabel":
            return F.binary_cross_entropy_with_logits(out, y)
        mask = torch.isfinite(y)
        if not mask.any():
            return out.sum() * 0.0
        return F.mse_loss(out[mask], y[mask])

    # -- Lightning hooks -----------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self._train_losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._val_out.append(self(x).detach().float().cpu())
        self._val_tgt.append(y.detach().cpu())

    def validation_metric(self, out: np.ndarray, y: np.ndarray) -> float:
        """Higher is better: macro AUROC, or minus the mean standardised MAE."""
        if self.task == "multilabel":
            value, _ = macro_auroc(y, out, self.class_names)
            return value
        err = np.abs(out - y)
        per = [np.nanmean(err[:, k]) for k in range(y.shape[1]) if np.isfinite(y[:, k]).any()]
        return -float(np.mean(per)) if per else float("nan")

    def on_validation_epoch_end(self):
        if not self._val_out:
            return
        out = torch.cat(self._val_out).numpy()
        y = torch.cat(self._val_tgt).numpy()
        self._val_out, self._val_tgt = [], []
        metric = self.validation_metric(out, y)
        train_loss = float(np.mean(self._train_losses)) if self._train_losses else float("nan")
        self._train_losses = []
        epoch = int(self.current_epoch)
        self.history.append({"epoch": epoch, "train_loss": train_loss, "val_metric": metric})
        self.log("val_metric", metric if np.isfinite(metric) else -1e9, prog_bar=True)
        if np.isfinite(metric) and metric > self.best_metric:
            self.best_metric, self.best_epoch = metric, epoch
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    @torch.no_grad()
    def predict_array(self, loader: DataLoader) -> np.ndarray:
        """(n, K) outputs over a loader, in eval mode, on the module's device."""
        was = self.training
        self.eval()
        outs = [self(x.to(self.device)).float().cpu() for x, _ in loader]
        self.train(was)
        return torch.cat(outs).numpy()


@dataclass
class FineTuneOutput:
    """Result of one fine-tuning run.

    ``result``: test ClassificationResult (multilabel) or None (regression: see ``test_pred``).
    ``test_pred``/``val_pred``: (n, K) outputs in target units (regression) or logits.
    """

    result: ClassificationResult | None
    best_epoch: int
    best_val_metric: float
    history: list[dict[str, float]]
    test_pred: np.ndarray
    val_pred: np.ndarray
    module: FineTuneModule
    extra: dict[str, Any] = field(default_factory=dict)


def _loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int):
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g,
                      num_workers=num_workers, drop_last=False, worker_init_fn=worker_init)


def finetune(
    encoder: nn.Module,
    signals: np.ndarray,
    targets: np.ndarray,
    split: Split,
    *,
    task: str = "multilabel",
    class_names: Sequence[str] | None = None,
    train_idx: np.ndarray | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    batch_size: int = 64,
    freeze_encoder: bool = False,
    leads: Sequence[str] | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    num_workers: int = 0,
    accelerator: str = "auto",
    progress: bool = False,
    history_csv: str | os.PathLike | None = None,
    protocol: str = "finetune",
) -> FineTuneOutput:
    """Fine-tune ``encoder`` (in place) + a linear head; select the epoch on validation.

    Args:
        signals: (N, L, T) windows (memmap fine); targets: (N, K) multi-hot or real targets.
        split: train/val/test rows (``train_idx`` overrides the training rows, e.g. low-label).
        history_csv: optional path: per-epoch ``epoch, train_loss, val_metric`` (for plots).
    Returns:
        FineTuneOutput; the module holds the best-epoch weights.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    targets = np.asarray(targets, dtype=np.float32)
    if targets.ndim != 2:
        raise ValueError(f"targets must be (N, K), got shape {targets.shape}")
    tr = np.asarray(split.train if train_idx is None else train_idx, dtype=np.int64)
    if len(tr) == 0 or len(split.val) == 0 or len(split.test) == 0:
        raise ValueError(f"empty part in split {split.sizes()}")
    mean = np.zeros(targets.shape[1], np.float32)
    sd = np.ones(targets.shape[1], np.float32)
    if task == "regression":
        with np.errstate(all="ignore"):
            mean = np.nan_to_num(np.nanmean(targets[tr], axis=0)).astype(np.float32)
            sd = np.nan_to_num(np.nanstd(targets[tr], axis=0), nan=1.0).astype(np.float32)
        sd[sd < 1e-8] = 1.0
        fit_targets = (targets - mean) / sd
    else:
        fit_targets = targets
    torch.manual_seed(seed)
    module = FineTuneModule(encoder, targets.shape[1], task=task, lr=lr,
                            weight_decay=weight_decay, freeze_encoder=freeze_encoder,
                            leads=leads, class_names=class_names)
    train_dl = _loader(WindowDataset(signals, fit_targets, tr), batch_size, True, seed,
                       num_workers)
    val_dl = _loader(WindowDataset(signals, fit_targets, split.val), batch_size, False, seed,
                     num_workers)
    trainer = L.Trainer(accelerator=accelerator, devices=1, max_epochs=epochs, logger=False,
                        enable_checkpointing=False, enable_progress_bar=progress,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        log_every_n_steps=1)
    pl_logger = logging.getLogger("lightning.pytorch")
    level = pl_logger.level
    pl_logger.setLevel(logging.WARNING)  # no "GPU available: False" banners in reports
    try:
        trainer.fit(module, train_dl, val_dl)
    finally:
        pl_logger.setLevel(level)
    if module.best_state is None:
        raise ValueError("validation metric was never defined (no class with positives and "
                         "negatives in validation?)")
    module.load_state_dict(module.best_state)
    # Lightning hands the module back on the CPU; score on the GPU when training used one.
    use_cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    module.to("cuda" if use_cuda else "cpu")
    val_pred = module.predict_array(val_dl)
    test_dl = _loader(WindowDataset(signals, fit_targets, split.test), batch_size, False, seed,
                      num_workers)
    test_pred = module.predict_array(test_dl)
    extra = {"protocol": protocol, "best_epoch": module.best_epoch, "epochs": epochs, "lr": lr,
             "batch_size": batch_size, "freeze_encoder": freeze_encoder,
             "n_train": int(len(tr)), "n_params": _num_params(module)}
    result = None
    if task == "multilabel":
        thresholds = choose_thresholds(targets[split.val], val_pred)
        result = evaluate_classification(targets[split.test], test_pred, thresholds, class_names,
                                         n_boot=n_boot, seed=seed, extra=extra)
    else:
        val_pred = val_pred * sd + mean
        test_pred = test_pred * sd + mean
    if history_csv is not None:
        Path(history_csv).parent.mkdir(parents=True, exist_ok=True)
        with open(history_csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["epoch", "train_loss", "val_metric"])
            w.writeheader()
            w.writerows(module.history)
    module.to("cpu")
    return FineTuneOutput(result=result, best_epoch=module.best_epoch,
                          best_val_metric=float(module.best_metric), history=module.history,
                          test_pred=test_pred, val_pred=val_pred, module=module, extra=extra)


def reinitialized_copy(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy with every submodule's ``reset_parameters()`` called (seeded).

    Prefer building a fresh encoder from its spec (``create_encoder``) when the architecture has
    parameters outside standard layers (positional embeddings, tokens): those are not reset here.
    """
    torch.manual_seed(seed)
    fresh = copy.deepcopy(encoder)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
            m.reset_parameters()
    return fresh


def supervised_from_scratch(
    encoder_factory: Callable[[], nn.Module],
    signals: np.ndarray,
    targets: np.ndarray,
    split: Split,
    *,
    seed: int = 0,
    **kwargs,
) -> FineTuneOutput:
    """The no-pretraining baseline: same recipe as ``finetune`` on a new random encoder.

    Args:
        encoder_factory: builds a randomly initialised encoder of the same architecture
            (e.g. ``lambda: create_encoder(name, **spec)``); called after seeding.
    """
    if kwargs.get("freeze_encoder"):
        raise ValueError("supervised from scratch trains the encoder: freeze_encoder must be False")
    torch.manual_seed(seed)
    encoder = encoder_factory()
    return finetune(encoder, signals, targets, split, seed=seed, protocol="supervised_scratch",
                    **kwargs)
