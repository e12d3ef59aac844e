"""Feature prediction: heart rate, QRS duration, PR and QT intervals.

Targets on LUDB come from the expert wave annotations (``ludb_interval_targets``). Predictions come
from frozen features (ridge regression, alpha chosen on validation MAE; fine-tuning for regression
is ``ecgssl.eval.finetune.finetune(task="regression")``). Rows whose target is NaN (not
measurable: PR in atrial fibrillation) are excluded from that target's fit and evaluation and
counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

from ecgssl.data.intervals import (
    INTERVAL_TARGETS,
    INTERVAL_UNITS,
    interval_target_matrix,
    ludb_interval_targets,
)
from ecgssl.eval.probe import Standardizer
from ecgssl.eval.regression_metrics import RegressionResult, evaluate_regression
from ecgssl.eval.splits import Split

__all__ = [
    "INTERVAL_TARGETS",
    "INTERVAL_UNITS",
    "ludb_interval_targets",
    "interval_target_matrix",
    "ridge_probe",
    "ridge_probe_cv",
]

DEFAULT_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def _names_units(k: int, target_names, units) -> tuple[list[str], list[str]]:
    names = list(target_names) if target_names is not None else (
        list(INTERVAL_TARGETS) if k == 4 else [f"t{i}" for i in range(k)])
    if len(names) != k:
        raise ValueError(f"{len(names)} target names for {k} target columns")
    units = units or {}
    return names, [units.get(n, INTERVAL_UNITS.get(n, "")) for n in names]


def _fit_ridge_target(x_tr, y_tr, x_val, y_val, alphas) -> tuple[Ridge, float, dict]:
    best, best_alpha, val_mae = None, None, {}
    for a in sorted(alphas):
        model = Ridge(alpha=a).fit(x_tr, y_tr)
        val_mae[a] = float(np.mean(np.abs(model.predict(x_val) - y_val)))
        if best is None or val_mae[a] < val_mae[best_alpha]:
            best, best_alpha = model, a
    return best, best_alpha, val_mae


def _ridge_predict(features, targets, split, alphas):
    """Per target: (test predictions (n_test,) with NaN where excluded, alpha, val MAE by alpha)."""
    scaler = Standardizer.fit(features[split.train])
    x_tr, x_val, x_te = (scaler(features[i]) for i in (split.train, split.val, split.test))
    out = []
    for k in range(targets.shape[1]):
        y_tr, y_val = targets[split.train, k], targets[split.val, k]
        m_tr, m_val = np.isfinite(y_tr), np.isfinite(y_val)
        if m_tr.sum() < 2 or m_val.sum() < 1:
            out.append((np.full(len(split.test), np.nan), None, {}))
            continue
        model, alpha, val_mae = _fit_ridge_target(x_tr[m_tr], y_tr[m_tr], x_val[m_val],
                                                  y_val[m_val], alphas)
        out.append((model.predict(x_te), alpha, val_mae))
    return out


def ridge_probe(
    features: np.ndarray,
    targets: np.ndarray,
    split: Split,
    *,
    target_names: Sequence[str] | None = None,
    units: Mapping[str, str] | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, RegressionResult]:
    """Ridge regression on standardised frozen features; alpha per target by validation MAE.

    Args:
        features: (N, D); targets: (N, M) with NaN where not measurable.
    Returns:
        {target name: RegressionResult on the test rows} (``extra`` has alpha and val MAE).
    """
    features, targets = _check(features, targets)
    names, unit_list = _names_units(targets.shape[1], target_names, units)
    results = {}
    for k, (pred, alpha, val_mae) in enumerate(_ridge_predict(features, targets, split, alphas)):
        y_te = targets[split.test, k]
        if alpha is None or not np.isfinite(y_te).any():
            continue  # not enough measurable rows: reported as missing by the caller
        results[names[k]] = evaluate_regression(
            y_te, np.where(np.isfinite(y_te), pred, 0.0), names[k], unit_list[k], n_boot=n_boot,
            seed=seed, extra={"protocol": "ridge_probe", "alpha": alpha,
                              "val_mae_by_alpha": {str(a): v for a, v in val_mae.items()}})
    return results


def _check(features, targets):
    features = np.asarray(features)
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim == 1:
        targets = targets[:, None]
    if features.ndim != 2 or len(features) != len(targets):
        raise ValueError(f"features (N, D) and targets (N, M) expected, got {features.shape}, "
                         f"{targets.shape}")
    return features, targets


def ridge_probe_cv(
    features: np.ndarray,
    targets: np.ndarray,
    splits: Sequence[Split],
    *,
    target_names: Sequence[str] | None = None,
    units: Mapping[str, str] | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Cross-validated ridge (e.g. LUDB k-fold): every record is predicted by the fold model
    that did not see it; the pooled out-of-fold predictions are evaluated once with bootstrap
    CIs, and the per-fold MAE is summarised as mean +- std.

    Returns:
        {"results": {name: RegressionResult (pooled)}, "fold_mae": {name: [mae per fold]},
        "predictions": (N, M) out-of-fold predictions (NaN where never tested)}.
    """
    features, targets = _check(features, targets)
    names, unit_list = _names_units(targets.shape[1], target_names, units)
    pred = np.full(targets.shape, np.nan)
    fold_mae = {n: [] for n in names}
    alphas_used = {n: [] for n in names}
    for split in splits:
        for k, (p, alpha, _) in enumerate(_ridge_predict(features, targets, split, alphas)):
            if alpha is None:
                continue
            pred[split.test, k] = p
            alphas_used[names[k]].append(alpha)
            y = targets[split.test, k]
            m = np.isfinite(y)
            if m.any():
                fold_mae[names[k]].append(float(np.mean(np.abs(p[m] - y[m]))))
    results = {}
    for k, name in enumerate(names):
        ok = np.isfinite(targets[:, k]) & np.isfinite(pred[:, k])
        if not ok.any():
            continue
        y = np.where(np.isfinite(pred[:, k]), targets[:, k], np.nan)
        results[name] = evaluate_regression(
            y, np.where(ok, pred[:, k], 0.0), name, unit_list[k], n_boot=n_boot, seed=seed,
            extra={"protocol": "ridge_probe_cv", "n_folds": len(splits),
                   "alphas": alphas_used[name],
                   "fold_mae_mean": float(np.mean(fold_mae[name])),
                   "fold_mae_std": float(np.std(fold_mae[name], ddof=1))
                   if len(fold_mae[name]) > 1 else 0.0})
    return {"results": results, "fold_mae": fold_mae, "predictions": pred}
