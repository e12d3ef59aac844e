"""Train and evaluate wave segmentation (none / P / QRS / T per sample and lead) on a store.

Protocol (docs/evaluation.md):

* k-fold cross-validation by patient (``ecgssl.eval.splits.patient_kfold``): each fold tests on
  one part; a validation part (``val_fraction`` of the other records) is carved from the training
  folds. Every record is tested exactly once.
* Loss: cross-entropy over the samples inside each lead's annotated span only (outside the span
  the expert said nothing, so "none" there is not a label).
* Model selection: after every epoch the validation windows are post-processed and scored
  (``SegmentationScorer``); the epoch with the best validation score (``selection="dice"``: mean
  pooled Dice of P, QRS, T; ``"f1"``: mean onset/offset F1) is kept in memory and its weights are
  restored before the test fold is predicted, once.
* Results per fold and pooled over all test folds (the pooled scorer holds every record once).

The training loop is a ``lightning.LightningModule`` (``SegmentationModule``) run by
``lightning.Trainer`` (``accelerator="auto"``).

The store can be an ``ecgssl.data.store.ECGStore`` or any object with ``signals`` (N, L, T),
``masks`` (N, L, T) int8, ``spans`` (N, L, 2), ``manifest`` (pandas with ``record_id``,
``patient_id``) and ``config["fs"]``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ecgssl.data.record import WAVE_NAMES
from ecgssl.eval.postprocess import mask_to_waves
from ecgssl.eval.segmentation_metrics import (
    POINT_KINDS,
    WAVE_CLASSES,
    SegmentationScorer,
)
from ecgssl.eval.splits import patient_kfold
from ecgssl.models.seg_heads import FrozenFeatureCache, SegmentationModel, build_seg_model
from ecgssl.safety.workers import worker_init

SELECTIONS = ("dice", "f1")


# --------------------------------------------------------------------------- data


def span_mask(spans: np.ndarray, n_samples: int) -> np.ndarray:
    """(..., 2) spans [start, end) -> bool (..., n_samples), True inside the span."""
    spans = np.asarray(spans)
    t = np.arange(n_samples)
    return (t >= spans[..., :1]) & (t < spans[..., 1:2])


class SegmentationDataset(Dataset):
    """Windows of a store with wave masks: items ``signal`` float32 (L, T) mV, ``mask`` int64
    (L, T) codes 0..3, ``spans`` int64 (L, 2), ``index`` (store row)."""

    def __init__(self, store, indices: Sequence[int]):
        self.store = store
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        row = int(self.indices[i])
        return {
            "signal": torch.from_numpy(np.array(self.store.signals[row], dtype=np.float32)),
            "mask": torch.from_numpy(np.array(self.store.masks[row], dtype=np.int64)),
            "spans": torch.from_numpy(np.array(self.store.spans[row], dtype=np.int64)),
            "index": row,
        }


def _record_ids(store) -> list[str]:
    """Record id of every window (``parent_id`` when the store has it, else ``record_id``)."""
    man = store.manifest
    col = "parent_id" if "parent_id" in man.columns else "record_id"
    return [str(x) for x in man[col].tolist()]


# --------------------------------------------------------------------------- lightning module


def _selection_score(summary: dict, selection: str) -> float:
    if selection == "dice":
        vals = [summary[WAVE_NAMES[c]]["dice"] for c in WAVE_CLASSES]
    else:
        vals = [summary[WAVE_NAMES[c]][k]["f1"] for c in WAVE_CLASSES for k in POINT_KINDS]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else 0.0


class SegmentationModule(L.LightningModule):
    """Lightning wrapper: span-masked cross-entropy training, validation scoring, best weights.

    Args:
        model: a ``SegmentationModel`` (x (B, L, T) -> logits (B, L, 4, T)).
        fs: sampling rate (Hz) of the store (for post-processing and the metrics).
        lr, weight_decay: AdamW settings (only parameters that require grad are optimised).
        selection: "dice" or "f1" (see module docstring).
        leads: lead names passed to the encoder (ViT lead embeddings), or None.
        tolerance_ms: fiducial matching tolerance of the validation score.
        postprocess: kwargs of ``mask_to_waves`` (``min_duration_ms``, ``max_gap_ms``).
        record_ids: record id per store row (validation per-record grouping).
        cache_mb: with a frozen encoder, keep its output per window (``FrozenFeatureCache``,
            up to this many MB) so every epoch after the first trains the head only; 0 = off.
    """

    def __init__(self, model: SegmentationModel, fs: float, lr: float = 1e-3,
                 weight_decay: float = 1e-4, selection: str = "dice",
                 leads: Sequence[str] | None = None, tolerance_ms: float = 150.0,
                 postprocess: dict | None = None, record_ids: Sequence[str] | None = None,
                 cache_mb: float = 1024.0):
        super().__init__()
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        self.model = model
        self.fs, self.lr, self.weight_decay = float(fs), float(lr), float(weight_decay)
        self.selection = selection
        self.leads = list(leads) if leads is not None else None
        self.tolerance_ms = float(tolerance_ms)
        self.postprocess = dict(postprocess or {})
        self.record_ids = list(record_ids) if record_ids is not None else None
        self.history: list[dict] = []
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_state: dict | None = None
        self._val_scorer: SegmentationScorer | None = None
        self._train_losses: list[float] = []
        self._val_losses: list[float] = []
        self.feature_cache = (FrozenFeatureCache(model, self.leads, int(cache_mb * 2 ** 20))
                              if model.freeze_encoder and cache_mb > 0 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.leads)

    def _logits(self, batch: dict) -> torch.Tensor:
        """(B, L, C, T) logits of a batch; a frozen encoder's output comes from the cache."""
        x = batch["signal"]
        if self.feature_cache is None:
            return self(x)
        return self.model(x, self.leads, feats=self.feature_cache.features(x, batch["index"]))

    def _loss(self, batch: dict) -> torch.Tensor:
        logits = self._logits(batch)  # (B, L, C, T)
        valid = torch.from_numpy(span_mask(batch["spans"].cpu().numpy(), logits.shape[-1]))
        valid = valid.to(logits.device)
        if not valid.any():
            # No annotated sample in this batch: a zero loss that keeps the graph connected.
            return logits.sum() * 0.0
        return F.cross_entropy(logits.movedim(2, -1)[valid], batch["mask"][valid])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self._train_losses.append(float(loss.detach()))
        self.log("train_loss", loss, prog_bar=False, batch_size=batch["signal"].shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_scorer = SegmentationScorer(self.fs, tolerance_ms=self.tolerance_ms)
        self._val_losses = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self._logits(batch)
        valid = torch.from_numpy(span_mask(batch["spans"].cpu().numpy(), logits.shape[-1]))
        if valid.any():
            loss = F.cross_entropy(logits.movedim(2, -1)[valid.to(logits.device)],
                                   batch["mask"][valid.to(logits.device)])
            self._val_losses.append(float(loss))
        pred = logits.argmax(dim=2).cpu().numpy()
        true = batch["mask"].cpu().numpy()
        spans = batch["spans"].cpu().numpy()
        for b, row in enumerate(batch["index"].tolist()):
            rid = self.record_ids[row] if self.record_ids is not None else str(row)
            self._val_scorer.add_masks(pred[b], true[b], spans[b], record_id=rid,
                                       postprocess=self.postprocess)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        summary = self._val_scorer.summary()
        score = _selection_score(summary, self.selection)
        entry = {"epoch": int(self.current_epoch), "val_score": score,
                 "val_loss": float(np.mean(self._val_losses)) if self._val_losses else math.nan,
                 "train_loss": float(np.mean(self._train_losses)) if self._train_losses
                 else math.nan}
        for c in WAVE_CLASSES:
            name = WAVE_NAMES[c]
            entry[f"val_dice_{name}"] = summary[name]["dice"]
            f1s = [summary[name][k]["f1"] for k in POINT_KINDS]
            f1s = [v for v in f1s if not math.isnan(v)]
            entry[f"val_f1_{name}"] = float(np.mean(f1s)) if f1s else math.nan
        self.history.append(entry)
        self._train_losses = []
        self.log("val_score", score, prog_bar=False)
        if score > self.best_score:
            self.best_score, self.best_epoch = score, int(self.current_epoch)
            # Kept in memory (CPU copy): no checkpoint files for a per-fold selection.
            self.best_state = {k: v.detach().cpu().clone()
                               for k, v in self.model.state_dict().items()}

    def restore_best(self) -> None:
        """Load the weights of the best validation epoch (no-op if never validated)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)


# --------------------------------------------------------------------------- prediction


@torch.no_grad()
def predict_classes(model: nn.Module, signals, leads: Sequence[str] | None = None,
                    batch_size: int = 16, device: str | torch.device | None = None) -> np.ndarray:
    """Per-sample classes of every lead: (N, L, T) or (L, T) float mV -> int8 of the same shape.

    ``model`` is a ``SegmentationModel`` (or anything mapping (B, L, T) to (B, L, C, T) logits
    with a ``leads`` argument). It is run in eval mode and put back in its previous mode.
    """
    x = np.asarray(signals, dtype=np.float32)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"signals must be (L, T) or (N, L, T), got shape {x.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros(x.shape, dtype=np.int8)
    try:
        for s in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[s:s + batch_size]).to(device)
            out[s:s + batch_size] = model(xb, leads).argmax(dim=2).cpu().numpy()
    finally:
        model.train(was_training)
    return out[0] if single else out


def predict_waves(model: nn.Module, signal, fs: float, leads: Sequence[str] | None = None,
                  postprocess: dict | None = None, batch_size: int = 16):
    """Delineate ECGs with a segmentation model.

    Args:
        signal: (L, T) or (N, L, T) float mV, at the rate and leads the model was trained on.
        fs: sampling rate (Hz), for the post-processing durations.
        postprocess: kwargs of ``mask_to_waves`` (defaults: 10 ms gaps merged, fragments under
            P 30 / QRS 30 / T 50 ms dropped).
    Returns:
        (classes, waves): classes int8 like ``signal``; waves a list over leads of (n, 3) arrays
        ``(code, onset, offset)`` (offset inclusive) for (L, T) input, or a list over windows of
        such lists for (N, L, T) input.
    """
    classes = predict_classes(model, signal, leads, batch_size)
    pp = postprocess or {}
    if classes.ndim == 2:
        return classes, [mask_to_waves(row, fs, **pp) for row in classes]
    return classes, [[mask_to_waves(row, fs, **pp) for row in win] for win in classes]


def evaluate_segmentation(model: nn.Module, store, indices: Sequence[int],
                          leads: Sequence[str] | None = None, batch_size: int = 16,
                          tolerance_ms: float = 150.0, postprocess: dict | None = None,
                          scorer: SegmentationScorer | None = None) -> SegmentationScorer:
    """Predict the given store windows and score them against the store's masks and spans."""
    fs = float(store.config["fs"])
    scorer = scorer or SegmentationScorer(fs, tolerance_ms=tolerance_ms)
    rids = _record_ids(store)
    indices = np.asarray(indices, dtype=np.int64)
    for s in range(0, len(indices), batch_size):
        rows = indices[s:s + batch_size]
        pred = predict_classes(model, np.stack([store.signals[r] for r in rows]), leads,
                               batch_size)
        for k, r in enumerate(rows):
            scorer.add_masks(pred[k], np.asarray(store.masks[r]), np.asarray(store.spans[r]),
                             record_id=rids[r], postprocess=postprocess)
    return scorer


# --------------------------------------------------------------------------- cross-validation


@dataclass
class SegmentationConfig:
    """Options of ``cross_validate_segmentation``.

    n_folds: k of the k-fold CV by patient; val_fraction: share of the training folds' records
    used for validation; epochs, batch_size, lr, weight_decay: training; freeze_encoder: train
    the head only; max_records: use only the first N records (store order) for quick runs;
    selection: "dice" | "f1"; leads: lead names for the encoder (None = the store's order as
    built); postprocess: ``mask_to_waves`` kwargs; accelerator: Lightning accelerator;
    folds: run only these fold indices (quick runs; the pooled result then covers only them);
    keep_models: keep each fold's trained model (best-on-validation weights) in the result;
    head_kwargs: passed to the segmentation head; verbose: Lightning progress bar and INFO logs;
    cache_mb: with ``freeze_encoder``, the frozen encoder's output per window is kept (up to
    this many MB per fold, ``FrozenFeatureCache``) and reused every epoch: the same numbers,
    the encoder run once per window instead of once per window and epoch; 0 = off.
    """

    n_folds: int = 5
    val_fraction: float = 0.125
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    freeze_encoder: bool = False
    max_records: int | None = None
    seed: int = 0
    selection: str = "dice"
    tolerance_ms: float = 150.0
    leads: list[str] | None = None
    postprocess: dict = field(default_factory=dict)
    accelerator: str = "auto"
    num_workers: int = 0
    folds: list[int] | None = None
    keep_models: bool = False
    head_kwargs: dict = field(default_factory=dict)
    verbose: bool = False
    cache_mb: float = 1024.0

    def __post_init__(self):
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {self.n_folds}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_records is not None and self.max_records < self.n_folds:
            raise ValueError(f"max_records ({self.max_records}) must be >= n_folds "
                             f"({self.n_folds})")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.folds is not None and any(not 0 <= f < self.n_folds for f in self.folds):
            raise ValueError(f"folds {self.folds} out of range for n_folds={self.n_folds}")


@dataclass
class SegmentationCVResult:
    """Per-fold results and the scorer pooled over all test folds."""

    folds: list[dict]
    pooled: SegmentationScorer
    config: dict
    models: list = field(default_factory=list)  # per-fold trained models when keep_models

    def summary(self) -> dict:
        """{"config", "folds": [...], "pooled": scorer summary, "fold_mean_std": {...}}."""
        keys = [(WAVE_NAMES[c], "dice") for c in WAVE_CLASSES] + [
            (WAVE_NAMES[c], f"{k}_f1") for c in WAVE_CLASSES for k in POINT_KINDS]
        spread = {}
        for wave, key in keys:
            vals = []
            for f in self.folds:
                t = f["test"][wave]
                vals.append(t["dice"] if key == "dice" else t[key.split("_")[0]]["f1"])
            arr = np.asarray(vals, dtype=np.float64)
            spread[f"{wave}_{key}"] = {"mean": float(np.nanmean(arr)) if arr.size else math.nan,
                                       "std": float(np.nanstd(arr)) if arr.size else math.nan}
        return {"config": self.config, "folds": self.folds, "pooled": self.pooled.summary(),
                "fold_mean_std": spread}

    def to_markdown(self, title: str = "segmentation, pooled test folds") -> str:
        return self.pooled.to_markdown(title)


def _select_rows(store, max_records: int | None) -> np.ndarray:
    """Rows with at least one annotated lead, limited to the first ``max_records`` records."""
    spans = np.asarray(store.spans)
    has_span = (spans[..., 1] > spans[..., 0]).any(axis=1)
    rows = np.flatnonzero(has_span)
    if max_records is not None:
        rids = np.asarray(_record_ids(store), dtype=object)
        keep_ids = list(dict.fromkeys(rids[rows].tolist()))[:max_records]
        rows = rows[np.isin(rids[rows], keep_ids)]
    return rows


@contextlib.contextmanager
def _quiet_lightning(verbose: bool):
    """Silence Lightning's per-fit INFO lines (GPU available, tips) unless ``verbose``."""
    if verbose:
        yield
        return
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # Small CPU runs: Lightning's hints about workers and batch sizes are noise here.
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*number of training batches.*")
            # A frozen encoder is in eval mode on purpose.
            warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
            yield
    finally:
        logger.setLevel(level)


def _loader(store, rows, batch_size, shuffle, num_workers, seed) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(SegmentationDataset(store, rows), batch_size=batch_size, shuffle=shuffle,
                      num_workers=num_workers, generator=gen if shuffle else None,
                      worker_init_fn=worker_init)


def cross_validate_segmentation(store, encoder: nn.Module | Callable[[], nn.Module],
                                config: SegmentationConfig | None = None,
                                **overrides) -> SegmentationCVResult:
    """k-fold segmentation training and testing on a store with masks (LUDB).

    Args:
        store: ``ECGStore`` or an object with the same attributes (module docstring).
        encoder: an encoder (deep-copied for every fold, so every fold starts from the same
            weights) or a zero-argument factory returning a fresh one.
        config: ``SegmentationConfig``; keyword ``overrides`` replace its fields.
    Returns:
        ``SegmentationCVResult`` with per-fold validation history, best epoch, test metrics and
        the pooled test scorer.
    """
    cfg = config or SegmentationConfig()
    if overrides:
        cfg = SegmentationConfig(**{**asdict(cfg), **overrides})
    for attr in ("signals", "masks", "spans", "manifest", "config"):
        if not hasattr(store, attr):
            raise ValueError(f"store has no {attr!r}: segmentation needs a store with wave "
                             "masks (prepare it with the waves extra, e.g. from LUDB)")
    fs = float(store.config["fs"])
    n_leads = int(np.asarray(store.signals[0]).shape[0])
    make = (lambda: copy.deepcopy(encoder)) if isinstance(encoder, nn.Module) else encoder
    rows = _select_rows(store, cfg.max_records)
    if len(rows) == 0:
        raise ValueError("store has no window with an annotated span (spans all empty)")
    man = store.manifest
    pids = man["patient_id"].iloc[rows].tolist() if "patient_id" in man.columns else None
    splits = patient_kfold(cfg.n_folds, patient_ids=pids, n_records=len(rows),
                           val_fraction=cfg.val_fraction, seed=cfg.seed)
    rids = _record_ids(store)
    pooled = SegmentationScorer(fs, tolerance_ms=cfg.tolerance_ms)
    folds, models = [], []
    fold_ids = range(cfg.n_folds) if cfg.folds is None else cfg.folds
    for i in fold_ids:
        split = splits[i]
        train_rows, val_rows, test_rows = rows[split.train], rows[split.val], rows[split.test]
        L.seed_everything(cfg.seed + i, workers=True, verbose=False)
        model = build_seg_model(make(), n_leads, freeze_encoder=cfg.freeze_encoder,
                                **cfg.head_kwargs)
        module = SegmentationModule(model, fs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    selection=cfg.selection, leads=cfg.leads,
                                    tolerance_ms=cfg.tolerance_ms, postprocess=cfg.postprocess,
                                    record_ids=rids, cache_mb=cfg.cache_mb)
        with _quiet_lightning(cfg.verbose):
            trainer = L.Trainer(max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=1,
                                logger=False, enable_checkpointing=False,
                                enable_progress_bar=cfg.verbose, enable_model_summary=False,
                                num_sanity_val_steps=0, log_every_n_steps=1)
            trainer.fit(module, _loader(store, train_rows, cfg.batch_size, True,
                                        cfg.num_workers, cfg.seed + i),
                        _loader(store, val_rows, cfg.batch_size, False, cfg.num_workers, 0))
        module.restore_best()
        # The test fold is touched once, with the weights chosen on validation.
        test_scorer = evaluate_segmentation(model, store, test_rows, cfg.leads, cfg.batch_size,
                                            cfg.tolerance_ms, cfg.postprocess)
        pooled.merge(copy.deepcopy(test_scorer))
        folds.append({"fold": int(i), "n_train": len(train_rows), "n_val": len(val_rows),
                      "n_test": len(test_rows), "best_epoch": module.best_epoch,
                      "best_val_score": module.best_score, "history": module.history,
                      "test": test_scorer.summary(),
                      "test_records": sorted({rids[r] for r in test_rows})})
        if cfg.keep_models:
            models.append(model.eval())
    return SegmentationCVResult(folds, pooled, asdict(cfg), models)
