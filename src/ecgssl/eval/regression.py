"""Feature prediction: heart rate, QRS duration, PR and QT intervals.

Targets on LUDB come from the expert wave annotations (``ludb_interval_targets``). Predictions come
from frozen features (ridge regression, alpha chosen on validation MAE) or from fine-tuning
(``finetune_regression``). Rows whose target is NaN (not measurable: PR in atrial fibrillation)
are excluded from that target's fit and evaluation and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

from ecgssl.data.leads import canonical_lead
from ecgssl.data.record import WAVE_P, WAVE_QRS, WAVE_T
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
    "finetune_regression",
]

INTERVAL_TARGETS = ("hr_bpm", "qrs_ms", "pr_ms", "qt_ms")
INTERVAL_UNITS = {"hr_bpm": "bpm", "qrs_ms": "ms", "pr_ms": "ms", "qt_ms": "ms"}
DEFAULT_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def _lead_measures(waves: np.ndarray, fs: float) -> dict[str, float]:
    """Median HR / QRS / PR / QT of one lead's annotation (n, 4) = (code, onset, peak, offset).

    Beats are formed from the annotation order: the P wave immediately before a QRS complex is
    that beat's P; the T wave immediately after it is its T. Unknown points (-1) drop that beat
    from the measures that need them.
    """
    w = np.asarray(waves, dtype=np.int64).reshape(-1, 4)
    nan = float("nan")
    if len(w) == 0:
        return dict.fromkeys(INTERVAL_TARGETS, nan)
    # Order by peak where known, else onset, else offset.
    key = np.where(w[:, 2] >= 0, w[:, 2], np.where(w[:, 1] >= 0, w[:, 1], w[:, 3]))
    w = w[np.argsort(key, kind="stable")]
    codes = w[:, 0]
    qrs_idx = np.flatnonzero(codes == WAVE_QRS)
    qrs, pr, qt = [], [], []
    for i in qrs_idx:
        _, on, _, off = w[i]
        if on >= 0 and off > on:
            qrs.append(off - on)
        if i > 0 and codes[i - 1] == WAVE_P and w[i - 1, 1] >= 0 and on > w[i - 1, 1]:
            pr.append(on - w[i - 1, 1])
        if i + 1 < len(w) and codes[i + 1] == WAVE_T and on >= 0 and w[i + 1, 3] > on:
            qt.append(w[i + 1, 3] - on)
    peaks = w[qrs_idx, 2]
    peaks = peaks[peaks >= 0]
    rr = np.diff(peaks)
    rr = rr[rr > 0]
    ms = 1000.0 / fs
    return {
        "hr_bpm": 60.0 * fs / float(np.median(rr)) if rr.size else nan,
        "qrs_ms": float(np.median(qrs)) * ms if qrs else nan,
        "pr_ms": float(np.median(pr)) * ms if pr else nan,
        "qt_ms": float(np.median(qt)) * ms if qt else nan,
    }


def ludb_interval_targets(
    waves_by_lead: Mapping[str, np.ndarray], fs: float, lead: str | None = "II"
) -> dict[str, float]:
    """Per-record HR (bpm), QRS duration, PR and QT intervals (ms) from expert annotations.

    Definitions (per beat, then the median over the beats of the lead):
        HR = 60 / RR with RR the interval between consecutive QRS peaks (median RR);
        QRS = QRS offset - QRS onset; PR = QRS onset - P onset; QT = T offset - QRS onset.

    Args:
        waves_by_lead: lead name -> int array (n, 4) of (code 1 P / 2 QRS / 3 T, onset, peak,
            offset) in samples (``Record.annotations["waves"]``); names in any case.
        fs: sampling rate in Hz.
        lead: measure on this lead only (default lead II, the clinical rhythm lead). With
            ``None`` each lead is measured and the median over the leads that give a value is
            taken (more robust to one badly annotated lead, but mixes lead-specific durations).
    Returns:
        {"hr_bpm", "qrs_ms", "pr_ms", "qt_ms"}: NaN where not measurable (no P waves in atrial
        fibrillation -> PR NaN; lead absent; fewer than two QRS peaks -> HR NaN).
    """
    if fs <= 0:
        raise ValueError(f"fs must be > 0, got {fs}")
    by_lead = {canonical_lead(k): v for k, v in waves_by_lead.items()}
    if lead is not None:
        name = canonical_lead(lead)
        if name not in by_lead:
            return dict.fromkeys(INTERVAL_TARGETS, float("nan"))
        return _lead_measures(by_lead[name], fs)
    per = [_lead_measures(v, fs) for v in by_lead.values()]
    out = {}
    for t in INTERVAL_TARGETS:
        vals = np.array([p[t] for p in per], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[t] = float(np.median(vals)) if vals.size else float("nan")
    return out


def interval_target_matrix(
    waves_per_record: Sequence[Mapping[str, np.ndarray]], fs: float, lead: str | None = "II"
) -> np.ndarray:
    """(N, 4) float32 targets in ``INTERVAL_TARGETS`` order, one row per record."""
    rows = [ludb_interval_targets(w, fs, lead) for w in waves_per_record]
    return np.array([[r[t] for t in INTERVAL_TARGETS] for r in rows], dtype=np.float32)


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


def finetune_regression(
    encoder,
    signals: np.ndarray,
    targets: np.ndarray,
    split: Split,
    *,
    target_names: Sequence[str] | None = None,
    units: Mapping[str, str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    **finetune_kwargs,
) -> dict[str, RegressionResult]:
    """Fine-tune encoder + linear head on all targets jointly (masked MSE on standardised
    targets, epoch by validation MAE; see ``ecgssl.eval.finetune.finetune``)."""
    from ecgssl.eval.finetune import finetune

    targets = np.asarray(targets, dtype=np.float32)
    if targets.ndim == 1:
        targets = targets[:, None]
    names, unit_list = _names_units(targets.shape[1], target_names, units)
    out = finetune(encoder, signals, targets, split, task="regression", seed=seed, n_boot=0,
                   **finetune_kwargs)
    results = {}
    for k, name in enumerate(names):
        y = targets[split.test, k]
        if not np.isfinite(y).any():
            continue
        results[name] = evaluate_regression(
            y, np.where(np.isfinite(y), out.test_pred[:, k], 0.0), name, unit_list[k],
            n_boot=n_boot, seed=seed, extra={**out.extra, "best_epoch": out.best_epoch})
    return results
