"""Linear probe on frozen features: one-vs-rest L2 logistic regression, C chosen on validation.

Protocol (docs/evaluation.md): features are standardised with the *training* mean and SD; for each
C of a small grid, K independent logistic regressions are fit on the training records (full-batch
L-BFGS in torch, all classes at once: the loss is a sum of independent per-class terms); the C
with the best validation macro AUROC is kept; per-class F1 thresholds are chosen on validation;
the test records are scored once with that model. Test labels are only read by the final
``evaluate_classification`` call.

Regularisation follows scikit-learn's ``LogisticRegression(C=...)``: per class, minimise
``0.5 * ||w||^2 + C * sum_i logloss_i`` (the bias is not penalised); here divided by ``C * n`` so
the optimiser sees a per-sample mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ecgssl.eval.classification_metrics import (
    ClassificationResult,
    choose_thresholds,
    evaluate_classification,
    macro_auroc,
)
from ecgssl.eval.splits import Split, low_label_subsets

__all__ = [
    "DEFAULT_C_GRID",
    "Standardizer",
    "fit_logistic",
    "ProbeResult",
    "linear_probe",
    "low_label_probe",
    "linear_probe_cv",
]

DEFAULT_C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass
class Standardizer:
    """Per-feature affine map fitted on training features: (x - mean) / sd (sd 0 -> 1)."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        x = np.asarray(x, dtype=np.float64)
        sd = x.std(axis=0)
        return cls(mean=x.mean(axis=0), sd=np.where(sd > 1e-12, sd, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.sd).astype(np.float32)


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    c: float,
    *,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    max_iter: int = 500,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest L2 logistic regression by full-batch L-BFGS.

    Args:
        x: (n, D) float32 standardised features; y: (n, K) binary labels.
        c: inverse regularisation strength (> 0), scikit-learn convention.
        init: optional warm start (W (D, K), b (K,)).
    Returns:
        (W (D, K), b (K,)) float32.
    """
    if c <= 0:
        raise ValueError(f"C must be > 0, got {c}")
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
    if xt.ndim != 2 or yt.ndim != 2 or xt.shape[0] != yt.shape[0]:
        raise ValueError(
            f"x (n, D) and y (n, K) expected, got {tuple(xt.shape)}, {tuple(yt.shape)}")
    n, d = xt.shape
    k = yt.shape[1]
    if init is None:
        w = torch.zeros(d, k)
        # Start the bias at the prevalence log-odds: fewer iterations for rare classes.
        p = yt.mean(0).clamp(1e-4, 1 - 1e-4)
        b = torch.log(p / (1 - p))
    else:
        w = torch.as_tensor(np.array(init[0], dtype=np.float32))
        b = torch.as_tensor(np.array(init[1], dtype=np.float32))
    w.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=tol,
                            tolerance_change=1e-10, history_size=20,
                            line_search_fn="strong_wolfe")
    penalty = 1.0 / (2.0 * c * n)

    def closure():
        opt.zero_grad()
        logits = xt @ w + b
        loss = F.binary_cross_entropy_with_logits(logits, yt, reduction="sum") / n
        loss = loss + penalty * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach().numpy().copy(), b.detach().numpy().copy()


def _scores(x: np.ndarray, wb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return x @ wb[0] + wb[1]


@dataclass
class ProbeResult:
    """Outcome of one linear probe: test metrics, the chosen C and the selection curve."""

    result: ClassificationResult
    best_c: float
    val_auroc_by_c: dict[float, float]
    val_macro_auroc: float
    n_train: int
    test_scores: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = self.result.to_dict()
        d["extra"] = {**d.get("extra", {}), "best_c": self.best_c,
                      "val_macro_auroc": self.val_macro_auroc, "n_train": self.n_train,
                      "val_auroc_by_c": {str(c): v for c, v in self.val_auroc_by_c.items()},
                      **self.extra}
        return d


def linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    split: Split,
    *,
    class_names=None,
    c_grid=DEFAULT_C_GRID,
    train_idx: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    max_iter: int = 500,
    keep_test_scores: bool = True,
) -> ProbeResult:
    """Linear probe with C and thresholds chosen on validation, test evaluated once.

    Args:
        features: (N, D) frozen features of the whole store.
        labels: (N, K) multi-hot labels of the whole store.
        split: train/val/test row indices.
        train_idx: optional override of ``split.train`` (low-label subsets).
        c_grid: candidate C values (ties in validation AUROC go to the smaller C).
        n_boot, seed: test bootstrap.
    """
    if len(c_grid) == 0:
        raise ValueError("empty C grid")
    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 2 or labels.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features (N, D) and labels (N, K) expected, got {features.shape}, "
                         f"{labels.shape}")
    tr = np.asarray(split.train if train_idx is None else train_idx, dtype=np.int64)
    if len(tr) == 0 or len(split.val) == 0 or len(split.test) == 0:
        raise ValueError(f"empty part in split {split.sizes()}")
    scaler = Standardizer.fit(features[tr])
    x_tr, x_val = scaler(features[tr]), scaler(features[split.val])
    y_tr, y_val = labels[tr], labels[split.val]

    val_auc: dict[float, float] = {}
    models = {}
    init = None
    # Strongest regularisation first; each fit warm-starts the next (smooth path in C).
    for c in sorted(float(c) for c in c_grid):
        wb = fit_logistic(x_tr, y_tr, c, init=init, max_iter=max_iter)
        init = wb
        models[c] = wb
        val_auc[c], _ = macro_auroc(y_val, _scores(x_val, wb), class_names)
    finite = {c: v for c, v in val_auc.items() if np.isfinite(v)}
    if not finite:
        raise ValueError("no class has positives and negatives in the validation set")
    best_c = max(finite, key=lambda c: (finite[c], -c))
    best = models[best_c]
    thresholds = choose_thresholds(y_val, _scores(x_val, best))
    test_scores = _scores(scaler(features[split.test]), best)
    result = evaluate_classification(
        labels[split.test], test_scores, thresholds, class_names, n_boot=n_boot, seed=seed,
        extra={"protocol": "linear_probe", "best_c": best_c, "n_train": int(len(tr))},
    )
    return ProbeResult(result=result, best_c=best_c, val_auroc_by_c=val_auc,
                       val_macro_auroc=val_auc[best_c], n_train=int(len(tr)),
                       test_scores=test_scores if keep_test_scores else None)


def _mean_std(values) -> dict[str, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size)}


def low_label_probe(
    features: np.ndarray,
    labels: np.ndarray,
    split: Split,
    *,
    fractions=(0.01, 0.1, 1.0),
    n_subsets: int = 3,
    seed: int = 0,
    **probe_kwargs,
) -> dict[float, dict[str, Any]]:
    """Linear probe on seeded subsets of the training labels (validation and test unchanged).

    Identical subsets (e.g. all seeds at 100 %) are run once.

    Returns:
        {fraction: {"macro_auroc": {"mean", "std", "n"}, "macro_f1": {...}, "n_train": int,
        "runs": [ProbeResult, ...]}}.
    """
    subsets = low_label_subsets(split.train, labels, fractions, n_subsets, seed)
    out = {}
    for frac, idx_list in subsets.items():
        runs, seen = [], set()
        for idx in idx_list:
            key = idx.tobytes()
            if key in seen:
                continue
            seen.add(key)
            runs.append(linear_probe(features, labels, split, train_idx=idx, seed=seed,
                                     **probe_kwargs))
        out[frac] = {
            "macro_auroc": _mean_std([r.result.macro_auroc for r in runs]),
            "macro_f1": _mean_std([r.result.macro_f1 for r in runs]),
            "n_train": int(len(idx_list[0])),
            "runs": runs,
        }
    return out


def linear_probe_cv(
    features: np.ndarray, labels: np.ndarray, splits: list[Split], **probe_kwargs
) -> dict[str, Any]:
    """Linear probe on each fold of a cross-validation (e.g. LUDB by record).

    Returns:
        {"macro_auroc": {"mean", "std", "n"}, "macro_f1": {...}, "folds": [ProbeResult, ...]}.
    """
    if not splits:
        raise ValueError("no folds")
    folds = [linear_probe(features, labels, s, **probe_kwargs) for s in splits]
    return {"macro_auroc": _mean_std([f.result.macro_auroc for f in folds]),
            "macro_f1": _mean_std([f.result.macro_f1 for f in folds]),
            "folds": folds}
