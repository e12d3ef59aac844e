"""Did a pretraining run collapse? A rule on the statistics its callbacks logged.

``training_summary(run_dir)`` reads ``metrics.csv`` (``CollapseMonitor``'s generic
``collapse/*`` columns, the loss) and the method's own spread metrics: the names the method
declares in ``SSLMethod.spread_metrics``, recorded by the engine in ``run.json`` (so a new method
needs no entry here). ``collapsed(summary)`` applies the rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Fraction of the logged values averaged for "start" and "end" (first / last 10 %).
EDGE_FRACTION = 10


def _series(df, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.array([])
    return df[col].dropna().to_numpy(dtype=float)


def spread_metric_names(run_dir: str | Path) -> list[str]:
    """``train/<name>`` columns of the method's declared ``spread_metrics`` (from ``run.json``;
    empty for runs written before the engine recorded them)."""
    info = Path(run_dir) / "run.json"
    if not info.is_file():
        return []
    names = json.loads(info.read_text()).get("training", {}).get("spread_metrics") or []
    return [f"train/{n}" for n in names]


def training_summary(run_dir: str | Path, spread_metrics: list[str] | None = None) -> dict:
    """Loss and spread statistics of a run, start vs end.

    Args:
        run_dir: a run directory with ``metrics.csv`` (``ecgssl.train.run``).
        spread_metrics: ``metrics.csv`` columns of the method's spread statistics (default:
            ``spread_metric_names(run_dir)``); every ``collapse/*`` column is added.
    Returns:
        ``{"loss_start", "loss_end"`` (mean of the first / last 10 % of logged steps),
        ``"loss_first_step", "loss_min", "n_logged", "collapse": {column: {"start", "end",
        "min"}}}``; columns never logged are left out.
    """
    import pandas as pd

    run_dir = Path(run_dir)
    df = pd.read_csv(run_dir / "metrics.csv")
    loss = _series(df, "train/loss")
    k = max(1, len(loss) // EDGE_FRACTION)
    out = {"loss_start": float(loss[:k].mean()) if len(loss) else None,
           "loss_end": float(loss[-k:].mean()) if len(loss) else None,
           "loss_first_step": float(loss[0]) if len(loss) else None,
           "loss_min": float(loss.min()) if len(loss) else None, "n_logged": int(len(loss))}
    spread = spread_metric_names(run_dir) if spread_metrics is None else list(spread_metrics)
    cols = spread + [c for c in df.columns if c.startswith("collapse/")]
    collapse = {}
    for col in cols:
        s = _series(df, col)
        if len(s):
            kk = max(1, len(s) // EDGE_FRACTION)
            collapse[col] = {"start": float(s[:kk].mean()), "end": float(s[-kk:].mean()),
                             "min": float(s.min())}
    out["collapse"] = collapse
    return out


def collapsed(summary: dict) -> tuple[bool, str]:
    """Whether a run collapsed, and why (``""`` if not), from ``training_summary``.

    A run collapsed if its pooled features lost their spread (generic ``collapse/*`` stats of
    ``CollapseMonitor``): the across-batch std of the normalised features fell below 10 % of its
    start (complete collapse), or the effective rank fell to below 1.5 from a start of 2 or more
    (dimensional collapse onto one direction). Not an absolute rank threshold: a randomly
    initialised ViT's mean-pooled features already have an effective rank of only ~1.3 (one
    dominant direction), while a random ResNet's are near-isotropic noise (rank ~14 in a batch of
    32) that any training shrinks. Runs without ``collapse/*`` columns are never called
    collapsed.
    """
    c = summary["collapse"]
    reasons = []
    erank, std = c.get("collapse/eff_rank"), c.get("collapse/feat_std")
    if erank is not None and erank["start"] >= 2.0 and erank["end"] < 1.5:
        reasons.append(f"effective rank {erank['start']:.2f} -> {erank['end']:.2f}")
    if std is not None and std["start"] > 0 and std["end"] < 0.1 * std["start"]:
        reasons.append(f"feature std {std['start']:.3g} -> {std['end']:.3g}")
    return bool(reasons), "; ".join(reasons)
