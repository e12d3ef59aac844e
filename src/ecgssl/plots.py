"""Figures: ECG on paper grid (with segmentation overlays), ROC curves, training curves,
embedding maps, error histograms.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no global state, no
display: the Agg canvas renders them), so this module is safe in workers and on servers. Every
function returns the figure and writes a PNG when ``path`` is given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = [
    "save_figure",
    "waves_to_spans",
    "mask_to_spans",
    "plot_ecg",
    "plot_roc_curves",
    "plot_training_curves",
    "plot_embedding_map",
    "plot_error_histogram",
]

MM_PER_INCH = 25.4
PAPER_SPEED_MM_S = 25.0  # mm per second
PAPER_GAIN_MM_MV = 10.0  # mm per millivolt
GRID_MINOR = "#f7cfcf"
GRID_MAJOR = "#e88a8a"
WAVE_COLOURS = {1: "#1f77b4", 2: "#d62728", 3: "#2ca02c"}  # P, QRS, T
WAVE_LABELS = {1: "P", 2: "QRS", 3: "T"}
LAYOUT_3X4 = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]]


def _new_figure(width_in: float, height_in: float, dpi: int = 100) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike | None, dpi: int | None = None) -> Figure:
    """Write ``fig`` as PNG at ``path`` (parent folders created); no-op for None."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi or fig.dpi, bbox_inches="tight")
    return fig


def waves_to_spans(waves: np.ndarray) -> list[tuple[int, int, int]]:
    """(code, start, end) spans from an annotation (n, 4) = (code, onset, peak, offset);
    rows with unknown onset or offset (-1) are skipped."""
    w = np.asarray(waves, dtype=np.int64).reshape(-1, 4)
    return [(int(c), int(on), int(off)) for c, on, _, off in w if on >= 0 and off > on]


def mask_to_spans(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """(code, start, end) runs of non-zero codes in a per-sample mask (T,); end exclusive."""
    m = np.asarray(mask).reshape(-1)
    if m.size == 0:
        return []
    change = np.flatnonzero(np.diff(m)) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, m.size]
    return [(int(m[s]), int(s), int(e)) for s, e in zip(starts, ends) if m[s] != 0]


def _spans_for(overlay, lead: str, row: int) -> list[tuple[int, int, int]]:
    """Spans of one lead from a dict lead -> (n, 4) annotation or an (L, T) per-sample mask."""
    if overlay is None:
        return []
    if isinstance(overlay, Mapping):
        lower = {str(k).lower(): v for k, v in overlay.items()}
        w = lower.get(lead.lower())
        return [] if w is None else waves_to_spans(w)
    arr = np.asarray(overlay)
    if arr.ndim != 2:
        raise ValueError(f"segmentation overlay must be a dict or (L, T) mask, got {arr.shape}")
    return mask_to_spans(arr[row])


def _draw_grid(ax, x0: float, x1: float, y0: float, y1: float) -> None:
    """ECG paper: 1 mm minor (0.04 s, 0.1 mV) and 5 mm major (0.2 s, 0.5 mV) lines."""
    minor_t = 1.0 / PAPER_SPEED_MM_S
    minor_v = 1.0 / PAPER_GAIN_MM_MV
    xs = np.arange(np.floor(x0 / minor_t), np.ceil(x1 / minor_t) + 1) * minor_t
    ys = np.arange(np.floor(y0 / minor_v), np.ceil(y1 / minor_v) + 1) * minor_v
    for i, x in enumerate(np.round(xs / minor_t).astype(int)):
        major = x % 5 == 0
        ax.axvline(xs[i], color=GRID_MAJOR if major else GRID_MINOR,
                   lw=0.6 if major else 0.3, zorder=0)
    for i, y in enumerate(np.round(ys / minor_v).astype(int)):
        major = y % 5 == 0
        ax.axhline(ys[i], color=GRID_MAJOR if major else GRID_MINOR,
                   lw=0.6 if major else 0.3, zorder=0)


def _shade(ax, spans, fs, t_lo, t_hi, x_off, y_lo, y_hi, alpha, hatch=None) -> None:
    for code, s, e in spans:
        a, b = max(s / fs, t_lo), min(e / fs, t_hi)
        if b <= a:
            continue
        colour = WAVE_COLOURS.get(code, "grey")
        # The hatch takes the edge colour; lw 0 keeps the outline itself invisible.
        ax.add_patch(Rectangle((x_off + a - t_lo, y_lo), b - a, y_hi - y_lo,
                               facecolor=colour, alpha=alpha, edgecolor=colour, lw=0,
                               hatch=hatch, zorder=1))


def plot_ecg(
    signal: np.ndarray,
    fs: float,
    leads: Sequence[str],
    *,
    layout: str = "3x4",
    rhythm_lead: str | None = "II",
    waves=None,
    predicted_waves=None,
    title: str | None = None,
    row_height_mv: float = 3.0,
    path: str | os.PathLike | None = None,
    dpi: int = 100,
) -> Figure:
    """An ECG on standard paper: 25 mm/s, 10 mm/mV, pink 1 mm / 5 mm grid, true scale at ``dpi``.

    Args:
        signal: (L, T) in mV; leads: L names (any case).
        layout: "3x4" (standard 12-lead: 4 columns of 2.5 s, plus a full-length rhythm strip
            of ``rhythm_lead``) or "rows" (one lead per row, full length).
        waves: expert segmentation, dict lead -> (n, 4) annotation or (L, T) per-sample mask
            (codes 1 P, 2 QRS, 3 T); shaded in the upper half of the lead's band.
        predicted_waves: predicted segmentation (same forms), shaded hatched in the lower half.
        row_height_mv: vertical space per row (mV).
    """
    sig = np.asarray(signal, dtype=np.float64)
    if sig.ndim != 2 or sig.shape[0] != len(leads):
        raise ValueError(f"signal must be (L, T) with L = {len(leads)} leads, got {sig.shape}")
    if fs <= 0:
        raise ValueError(f"fs must be > 0, got {fs}")
    if layout not in ("3x4", "rows"):
        raise ValueError(f"layout must be '3x4' or 'rows', got {layout!r}")
    names = [str(n) for n in leads]
    lower = [n.lower() for n in names]
    n_t = sig.shape[1]
    dur = n_t / fs
    # Panels: (row, lead row index, t_lo, t_hi, x offset).
    panels = []
    if layout == "3x4" and all(n.lower() in lower for row in LAYOUT_3X4 for n in row):
        seg = dur / 4
        for r, row in enumerate(LAYOUT_3X4):
            for c, name in enumerate(row):
                panels.append((r, lower.index(name.lower()), c * seg, (c + 1) * seg, c * seg))
        n_rows = 3
        if rhythm_lead is not None and rhythm_lead.lower() in lower:
            panels.append((3, lower.index(rhythm_lead.lower()), 0.0, dur, 0.0))
            n_rows = 4
    else:  # "rows", or a record without the 12 standard leads
        panels = [(i, i, 0.0, dur, 0.0) for i in range(len(names))]
        n_rows = len(names)
    width_s = dur
    height_mv = n_rows * row_height_mv
    fig = _new_figure((width_s * PAPER_SPEED_MM_S + 10) / MM_PER_INCH,
                      (height_mv * PAPER_GAIN_MM_MV + 12) / MM_PER_INCH, dpi)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.92 if title else 0.98))
    y_top, y_bot = 0.0, -height_mv
    _draw_grid(ax, 0.0, width_s, y_bot, y_top)
    t_axis = np.arange(n_t) / fs
    half = row_height_mv / 2
    for r, li, t_lo, t_hi, x_off in panels:
        base = y_top - (r + 0.5) * row_height_mv
        sel = (t_axis >= t_lo) & (t_axis < t_hi)
        _shade(ax, _spans_for(waves, names[li], li), fs, t_lo, t_hi, x_off, base,
               base + half * 0.9, 0.25)
        _shade(ax, _spans_for(predicted_waves, names[li], li), fs, t_lo, t_hi, x_off,
               base - half * 0.9, base, 0.25, hatch="//")
        x = sig[li, sel]
        # Centre each trace on its band (median removes baseline offsets such as LUDB 115 v6).
        ax.plot(t_axis[sel] - t_lo + x_off, x - np.median(x) + base if x.size else x,
                color="black", lw=0.7, zorder=2)
        ax.text(x_off + 0.05, base + half * 0.6, names[li], fontsize=8, zorder=3)
        if x_off > 0:  # separator tick between columns, as on printed ECGs
            ax.plot([x_off, x_off], [base - 0.3, base + 0.3], color="black", lw=0.8, zorder=2)
    if waves is not None or predicted_waves is not None:
        handles = [Rectangle((0, 0), 1, 1, facecolor=c, alpha=0.4, label=WAVE_LABELS[k])
                   for k, c in WAVE_COLOURS.items()]
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8,
                  title="expert (top) / predicted (hatched)", title_fontsize=6)
    ax.set_xlim(0, width_s)
    ax.set_ylim(y_bot, y_top)
    ax.set_aspect(PAPER_GAIN_MM_MV / PAPER_SPEED_MM_S)  # 1 mV : 1 s = 10 mm : 25 mm
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "", fontsize=9)
    fig.text(0.01, 0.0, f"{PAPER_SPEED_MM_S:g} mm/s, {PAPER_GAIN_MM_MV:g} mm/mV, fs {fs:g} Hz",
             fontsize=6)
    return save_figure(fig, path)


def plot_roc_curves(
    labels: np.ndarray,
    scores: np.ndarray,
    class_names: Sequence[str] | None = None,
    *,
    max_classes: int = 12,
    title: str = "ROC curves (test)",
    path: str | os.PathLike | None = None,
) -> Figure:
    """One ROC curve per class (the ``max_classes`` most prevalent evaluable ones), AUROC in
    the legend. labels, scores: (N, K)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim == 1:
        y, s = y[:, None], s[:, None]
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ")
    names = list(class_names) if class_names is not None else [str(i) for i in range(y.shape[1])]
    n_pos = y.sum(axis=0)
    ok = np.flatnonzero((n_pos > 0) & (n_pos < len(y)))
    ok = ok[np.argsort(-n_pos[ok], kind="stable")][:max_classes]
    fig = _new_figure(5.5, 5)
    ax = fig.add_subplot(1, 1, 1)
    for k in ok:
        fpr, tpr, _ = roc_curve(y[:, k], s[:, k])
        ax.plot(fpr, tpr, lw=1.2, label=f"{names[k]} ({roc_auc_score(y[:, k], s[:, k]):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    if len(ok):
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def plot_training_curves(
    metrics,
    *,
    x: str | None = None,
    columns: Sequence[str] | None = None,
    title: str = "training",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Metric curves from a CSV path or DataFrame with a ``step`` or ``epoch`` column.

    Each metric gets its own panel; rows where a metric is empty (logged at another cadence)
    are skipped for that metric.
    """
    import pandas as pd

    df = metrics if isinstance(metrics, pd.DataFrame) else pd.read_csv(metrics)
    if x is None:
        x = "step" if "step" in df.columns else "epoch" if "epoch" in df.columns else None
    if x is None or x not in df.columns:
        raise ValueError(f"need a 'step' or 'epoch' column, got {list(df.columns)}")
    cols = list(columns) if columns is not None else [
        c for c in df.columns if c not in ("step", "epoch") and pd.api.types.is_numeric_dtype(df[c])
    ]
    if not cols:
        raise ValueError("no numeric metric columns to plot")
    n = len(cols)
    ncol = min(3, n)
    nrow = (n + ncol - 1) // ncol
    fig = _new_figure(4 * ncol, 2.8 * nrow)
    for i, c in enumerate(cols):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        d = df[[x, c]].dropna()
        ax.plot(d[x], d[c], lw=1.2, marker="o" if len(d) < 30 else None, ms=3)
        ax.set_xlabel(x)
        ax.set_title(c, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_embedding_map(
    features: np.ndarray,
    labels,
    *,
    class_names: Sequence[str] | None = None,
    max_points: int = 5000,
    seed: int = 0,
    title: str = "embedding (PCA)",
    path: str | os.PathLike | None = None,
) -> Figure:
    """2-D PCA map of features (N, D) coloured by label.

    ``labels`` is (N,) categorical, or (N, K) multi-hot (coloured by the first positive class
    in ``class_names`` order; "none" when a row has none, "multi" is not used to keep it simple).
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be (N >= 2, D), got {f.shape}")
    lab = np.asarray(labels)
    if lab.ndim == 2:
        names = list(class_names) if class_names is not None else [str(i) for i in
                                                                    range(lab.shape[1])]
        first = np.argmax(lab > 0, axis=1)
        cat = np.where(lab.any(axis=1), np.asarray(names, dtype=object)[first], "none")
    else:
        cat = lab.astype(str)
    if len(cat) != len(f):
        raise ValueError(f"{len(cat)} labels for {len(f)} feature rows")
    if len(f) > max_points:
        keep = np.random.default_rng(seed).choice(len(f), max_points, replace=False)
        f, cat = f[keep], cat[keep]
    centred = f - f.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    var = sv**2 / max((sv**2).sum(), 1e-12)
    fig = _new_figure(6, 5)
    ax = fig.add_subplot(1, 1, 1)
    for c in sorted(set(cat.tolist())):
        m = cat == c
        ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.7, label=f"{c} ({m.sum()})")
    ax.set_xlabel(f"PC1 ({100 * var[0]:.1f} %)")
    ax.set_ylabel(f"PC2 ({100 * var[1]:.1f} %)" if len(var) > 1 else "PC2")
    ax.set_title(title)
    ax.legend(fontsize=7, markerscale=2)
    return save_figure(fig, path)


def plot_error_histogram(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    name: str = "target",
    unit: str = "",
    bins: int = 40,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Histogram of prediction errors (pred - true), NaN targets dropped; mean and SD shown."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and y_pred {p.shape} differ")
    err = (p - y)[np.isfinite(y) & np.isfinite(p)]
    fig = _new_figure(5, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    if err.size:
        ax.hist(err, bins=bins, color="#4c72b0", alpha=0.85)
        ax.axvline(0, color="black", lw=0.8)
        ax.axvline(err.mean(), color="#d62728", lw=1.0, ls="--")
        ax.set_title(f"{name}: error {err.mean():.2f} +- {err.std():.2f} {unit} (n={err.size})",
                     fontsize=9)
    ax.set_xlabel(f"prediction - truth ({unit})" if unit else "prediction - truth")
    ax.set_ylabel("records")
    return save_figure(fig, path)
