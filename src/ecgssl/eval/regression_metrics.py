"""Regression metrics (MAE, RMSE, R^2) with bootstrap confidence intervals over records.

Targets may contain NaN (not measurable, e.g. the PR interval in atrial fibrillation): those rows
are excluded from that target's evaluation and counted in ``RegressionResult.n_excluded``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ecgssl.eval.classification_metrics import _percentile_ci, bootstrap_weights, jsonable

__all__ = ["RegressionResult", "regression_metrics", "evaluate_regression"]


def _weighted_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """MAE, RMSE and R^2 for (B, N) record weights; each value (B,)."""
    err = p - y
    sw = w.sum(axis=1)
    mae = (w @ np.abs(err)) / sw
    mse = (w @ (err**2)) / sw
    mean_y = (w @ y) / sw
    ss_tot = (w * (y[None, :] - mean_y[:, None]) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # R^2 is undefined when the (resampled) targets are constant.
        r2 = np.where(ss_tot > 0, 1 - (mse * sw) / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)
    return {"mae": mae, "rmse": np.sqrt(mse), "r2": r2}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Point MAE, RMSE, R^2 of 1-D arrays (rows with NaN target dropped)."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and y_pred {p.shape} differ in shape")
    keep = np.isfinite(y)
    if not np.isfinite(p[keep]).all():
        raise ValueError("predictions contain NaN or infinite values where targets are finite")
    if not keep.any():
        raise ValueError("no finite targets to evaluate")
    m = _weighted_metrics(y[keep], p[keep], np.ones((1, int(keep.sum()))))
    return {k: float(v[0]) for k, v in m.items()}


@dataclass
class RegressionResult:
    """Test-set regression metrics of one target, with bootstrap intervals (low, high)."""

    target: str
    unit: str
    mae: float
    mae_ci: tuple[float, float]
    rmse: float
    rmse_ci: tuple[float, float]
    r2: float
    r2_ci: tuple[float, float]
    n_records: int
    n_excluded: int
    n_bootstrap: int
    confidence: float = 0.95
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def evaluate_regression(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    target: str = "target",
    unit: str = "",
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    extra: dict | None = None,
) -> RegressionResult:
    """Metrics of one target with percentile bootstrap CIs over records (seeded).

    Args:
        y_true: (N,) targets, NaN where not measurable (excluded and counted).
        y_pred: (N,) predictions (must be finite where the target is).
    """
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    point = regression_metrics(y, p)
    keep = np.isfinite(y)
    y, p = y[keep], p[keep]
    n = len(y)
    cis = {k: (float("nan"), float("nan")) for k in point}
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        chunk = max(1, min(n_boot, 4_000_000 // n))
        boots = {k: [] for k in point}
        for start in range(0, n_boot, chunk):
            w = bootstrap_weights(n, min(chunk, n_boot - start), rng)
            for k, v in _weighted_metrics(y, p, w).items():
                boots[k].append(v)
        cis = {k: _percentile_ci(np.concatenate(v), confidence) for k, v in boots.items()}
    return RegressionResult(
        target=target,
        unit=unit,
        mae=point["mae"],
        mae_ci=cis["mae"],
        rmse=point["rmse"],
        rmse_ci=cis["rmse"],
        r2=point["r2"],
        r2_ci=cis["r2"],
        n_records=n,
        n_excluded=int((~keep).sum()),
        n_bootstrap=n_boot,
        confidence=confidence,
        seed=seed,
        extra=dict(extra or {}),
    )
