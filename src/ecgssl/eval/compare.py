"""Paired comparisons of two rows scored on the same test records (e.g. pretrained vs random init).

Two rows of the suite are evaluated on the same folds and the same records, so their *difference*
can be estimated much more precisely than by setting two means +- fold std side by side: how hard
a record or a fold is cancels out. Both functions here use a record-level **paired bootstrap**:
every resample draws the test records with replacement (within each fold for the probe; whole
groups, e.g. all windows of one patient, when groups are given), applies the *same* draw to both
rows, recomputes the statistic of each and keeps the difference A - B.

Reported: the observed difference, its percentile confidence interval, and the fraction of
resamples in which A is not better (a one-sided bootstrap p-value; small means A is reliably
better). The interval says nothing about other random initialisations or pretraining seeds:
rerun with other seeds for that.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ecgssl.eval.classification_metrics import (
    _check_pair,
    _percentile_ci,
    _weighted_auroc,
    bootstrap_weights,
)
from ecgssl.eval.segmentation_metrics import WAVE_CLASSES, WAVE_NAMES

__all__ = ["format_ci", "paired_probe_difference", "paired_segmentation_difference",
           "probe_difference_table", "segmentation_difference_table"]


def _fold_aurocs(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, K) per-class AUROC of one fold under (B, n) record weights; NaN where undefined."""
    return np.stack([_weighted_auroc(y[:, k], s[:, k], weights) for k in range(y.shape[1])],
                    axis=1)


def paired_probe_difference(
    labels: np.ndarray,
    test_sets: Sequence[np.ndarray],
    scores_a: Sequence[np.ndarray],
    scores_b: Sequence[np.ndarray],
    *,
    class_names: Sequence[str] | None = None,
    groups: Sequence | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Difference in cross-validated macro AUROC between rows A and B, with a paired bootstrap.

    The statistic is the one the suite reports: per fold, the macro AUROC over the classes with
    positives and negatives in that fold's test records; then the mean over folds.

    Args:
        labels: (N, K) binary labels of the whole store.
        test_sets: per fold, the (n_f,) store rows of its test records.
        scores_a, scores_b: per fold, (n_f, K) test scores of row A and row B (same order).
        class_names: K names for the per-class differences.
        groups: optional (N,) group of every store row (patient or record id): a resample
            draws whole groups, so windows of one patient are never treated as independent.
        n_boot: resamples (records, or groups, drawn with replacement within each fold, the
            same draw for A and B).
    Returns:
        ``{"delta", "a", "b", "ci": [lo, hi], "p_not_better", "per_fold": [...],
        "per_class": {name: delta}, "classes_better", "n_classes", "n_boot", "confidence"}``;
        delta = A - B in AUROC units.
    """
    if not (len(test_sets) == len(scores_a) == len(scores_b)) or not test_sets:
        raise ValueError(f"need the same number (>= 1) of folds, got {len(test_sets)} test sets, "
                         f"{len(scores_a)} and {len(scores_b)} score arrays")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    labels = np.asarray(labels)
    k = labels.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    groups = None if groups is None else np.asarray(groups)
    if groups is not None and len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups for {len(labels)} rows")
    rng = np.random.default_rng(seed)
    macro_a, macro_b, per_class_a, per_class_b = [], [], [], []
    for rows, sa, sb in zip(test_sets, scores_a, scores_b):
        rows = np.asarray(rows)
        y, sa = _check_pair(labels[rows], sa)
        _, sb = _check_pair(y.astype(np.int64), sb)
        if groups is None:
            draw = bootstrap_weights(len(y), n_boot, rng)
        else:  # draw groups, then give each window its group's count
            _, member = np.unique(groups[rows], return_inverse=True)
            draw = bootstrap_weights(int(member.max()) + 1, n_boot, rng)[:, member]
        # Row 0: every record once (the observed statistic); then the paired resamples.
        w = np.vstack([np.ones((1, len(y))), draw])
        auc_a, auc_b = _fold_aurocs(y, sa, w), _fold_aurocs(y, sb, w)
        # A class is scored in a resample only where both rows have it defined (same records).
        with np.errstate(invalid="ignore"), _quiet_nanmean():
            macro_a.append(np.nanmean(auc_a, axis=1))
            macro_b.append(np.nanmean(auc_b, axis=1))
        per_class_a.append(auc_a[0])
        per_class_b.append(auc_b[0])
    with _quiet_nanmean():
        ma, mb = np.nanmean(np.stack(macro_a), 0), np.nanmean(np.stack(macro_b), 0)
        pa, pb = np.nanmean(np.stack(per_class_a), 0), np.nanmean(np.stack(per_class_b), 0)
    diffs = ma[1:] - mb[1:]
    per_class = {n: float(d) for n, d in zip(names, pa - pb) if np.isfinite(d)}
    return {
        "delta": float(ma[0] - mb[0]), "a": float(ma[0]), "b": float(mb[0]),
        "ci": list(_percentile_ci(diffs, confidence)),
        "p_not_better": _p_not_better(diffs),
        "per_fold": [float(a[0] - b[0]) for a, b in zip(macro_a, macro_b)],
        "per_class": per_class,
        "classes_better": int(sum(d > 0 for d in per_class.values())),
        "n_classes": len(per_class), "n_boot": int(n_boot), "confidence": confidence,
    }


@contextlib.contextmanager
def _quiet_nanmean():
    """Silence numpy's "Mean of empty slice" (an all-NaN row is a NaN result, as intended)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def _p_not_better(diffs: np.ndarray) -> float:
    """Fraction of finite resampled differences <= 0 (NaN if there is none)."""
    finite = diffs[np.isfinite(diffs)]
    return float(np.mean(finite <= 0)) if finite.size else float("nan")


def _f1(counts: np.ndarray) -> np.ndarray:
    """F1 from (..., 3) [tp, fp, fn] counts; NaN where the *expert* has no point (tp + fn = 0).

    Whether a wave counts depends on the expert annotations only, never on the predictions, so
    two rows scored on the same records always average over the same waves. (The pooled
    summary scores a wave the expert lacks as F1 0 when a row predicts it; on LUDB every pooled
    wave has expert points, so the two agree there.)
    """
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fn > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)


def _dice(dice: np.ndarray) -> np.ndarray:
    """Dice from (..., 3) [intersection, predicted, true] counts; NaN where the expert has no
    sample of the wave (decided by the expert only, like ``_f1``)."""
    inter, pred, true = dice[..., 0], dice[..., 1], dice[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(true > 0, 2 * inter / np.where(pred + true > 0, pred + true, 1), np.nan)


def _mean_f1(counts: np.ndarray) -> np.ndarray:
    """(..., 3 waves, 2 kinds, 3) summed counts -> (...,) mean over waves of the mean of onset
    and offset F1 (the suite's "mean F1 (QRS, T, P)")."""
    with _quiet_nanmean():
        return np.nanmean(_f1(counts), axis=(-1, -2))


def paired_segmentation_difference(scorer_a, scorer_b, *, n_boot: int = 1000,
                                   confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Difference in pooled delineation scores between two ``SegmentationScorer`` of the same
    records, with a paired bootstrap over records.

    Statistics: mean F1 (mean over QRS, T, P of the onset and offset F1 within the scorer's
    tolerance) and mean Dice (mean over the three waves of the pooled Dice).

    Returns:
        ``{"delta_f1", "a_f1", "b_f1", "ci_f1", "p_not_better_f1", "delta_dice", "a_dice",
        "b_dice", "ci_dice", "per_wave_f1": {wave: delta}, "n_records", "n_boot", ...}``.
    Raises:
        ValueError: the two scorers do not hold the same records.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    keys_a, keys_b = list(scorer_a.records), list(scorer_b.records)
    if sorted(keys_a) != sorted(keys_b):
        only = sorted(set(keys_a) ^ set(keys_b))[:5]
        raise ValueError(f"the two scorers hold different records (e.g. {only}): a paired "
                         "comparison needs the same test records")
    if not keys_a:
        raise ValueError("no records to compare")
    dice_a, counts_a, _ = scorer_a._stack()
    order = {key: i for i, key in enumerate(keys_b)}
    idx = np.array([order[key] for key in keys_a])
    dice_b, counts_b, _ = scorer_b._stack()
    dice_b, counts_b = dice_b[idx], counts_b[idx]
    n = len(keys_a)
    rng = np.random.default_rng(seed)
    w = np.vstack([np.ones((1, n)), bootstrap_weights(n, n_boot, rng)])

    def stats(dice, counts):
        """(B+1,) mean F1, (B+1,) mean Dice, (3,) observed F1 per wave."""
        c = np.einsum("br,rkjc->bkjc", w, counts)
        d = np.einsum("br,rkc->bkc", w, dice)
        with _quiet_nanmean():
            mean_dice = np.nanmean(_dice(d), axis=1)
        return _mean_f1(c), mean_dice, _f1(c[0]).mean(axis=-1)

    f1_a, dc_a, wave_a = stats(dice_a, counts_a)
    f1_b, dc_b, wave_b = stats(dice_b, counts_b)
    df, dd = f1_a[1:] - f1_b[1:], dc_a[1:] - dc_b[1:]
    return {
        "delta_f1": float(f1_a[0] - f1_b[0]), "a_f1": float(f1_a[0]), "b_f1": float(f1_b[0]),
        "ci_f1": list(_percentile_ci(df, confidence)),
        "p_not_better_f1": _p_not_better(df),
        "delta_dice": float(dc_a[0] - dc_b[0]), "a_dice": float(dc_a[0]),
        "b_dice": float(dc_b[0]), "ci_dice": list(_percentile_ci(dd, confidence)),
        "p_not_better_dice": _p_not_better(dd),
        "per_wave_f1": {WAVE_NAMES[c]: float(wave_a[k] - wave_b[k])
                        for k, c in enumerate(WAVE_CLASSES)},
        "n_records": n, "n_boot": int(n_boot), "confidence": confidence,
    }


# ------------------------------------------------------------------------------- tables
def format_ci(ci) -> str:
    """'[-0.012, +0.034]' (or '-' when undefined)."""
    if not ci or any(c is None or not np.isfinite(c) for c in ci):
        return "-"
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def probe_difference_table(paired: dict[str, dict]) -> list[str]:
    """Markdown lines: one row per ``paired_probe_difference`` result (with its ``"vs"``), then
    the per-label differences of every row."""
    if not paired:
        return []
    lines = ["Each row minus its twin (random init of the same architecture; for fine-tuned "
             "rows, supervised from scratch) on the same test records: macro AUROC (mean over "
             "folds), 95 % CI from a paired bootstrap (records resampled within folds, the same "
             "draw for both rows), P(not better) = fraction of resamples where the row does not "
             "beat its twin.", "",
             "| row | vs | macro AUROC difference | 95 % CI | P(not better) | per fold | labels "
             "better |", "|---|---|---|---|---|---|---|"]
    for name, r in paired.items():
        folds = " ".join(f"{d:+.3f}" for d in r["per_fold"])
        lines.append(f"| {name} | {r['vs']} | {r['delta']:+.3f} | {format_ci(r['ci'])} | "
                     f"{r['p_not_better']:.3f} | {folds} | {r['classes_better']}/"
                     f"{r['n_classes']} |")
    names = list(paired)
    labels = list(dict.fromkeys(k for r in paired.values() for k in r["per_class"]))
    lines += ["", "Per label: AUROC difference to the twin (mean over folds).", "",
              "| label | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for lab in labels:
        lines.append(f"| {lab} | " + " | ".join(
            f"{paired[n]['per_class'].get(lab, float('nan')):+.3f}" for n in names) + " |")
    return lines


def segmentation_difference_table(paired: dict[str, dict]) -> list[str]:
    """Markdown lines: one row per ``paired_segmentation_difference`` result."""
    if not paired:
        return []
    lines = ["Each row minus its twin on the same test records: mean F1 (QRS, T, P; onset and "
             "offset) and mean Dice; 95 % CI from a paired bootstrap over records.", "",
             "| row | vs | mean F1 difference | 95 % CI | P(not better) | Dice difference | "
             "95 % CI | P / QRS / T F1 difference |", "|---|---|---|---|---|---|---|---|"]
    for name, r in paired.items():
        waves = " / ".join(f"{r['per_wave_f1'][w]:+.3f}" for w in ("P", "QRS", "T"))
        lines.append(f"| {name} | {r['vs']} | {r['delta_f1']:+.3f} | {format_ci(r['ci_f1'])} | "
                     f"{r['p_not_better_f1']:.3f} | {r['delta_dice']:+.3f} | "
                     f"{format_ci(r['ci_dice'])} | {waves} |")
    return lines


def seed_spread_table(spread: dict | None) -> list[str]:
    """Markdown lines (no heading) of a probe ``seed_spread`` (``ecgssl.eval.tasks.probe``):
    the random-init macro AUROC per seed, every pretrained row's paired difference to each
    seed, and (when computed) the same per label family."""
    if not spread:
        return []
    n = spread["n_seeds"]
    first = next((r["vs_seeds"][0]["seed"] for r in spread["rows"].values() if r["vs_seeds"]), 0)
    lines = [f"The suite's twin is seed {first}. Every pretrained row is paired with each random "
             "initialisation of its architecture (same folds and records; 95 % paired bootstrap "
             "CI).", "",
             "| architecture | random-init macro AUROC per seed | mean ± sd |", "|---|---|---|"]
    for arch, aucs in spread["random"].items():
        lines.append(f"| {arch} | " + " ".join(f"{a:.3f}" for a in aucs)
                     + f" | {np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f} |")
    lines += ["", "| pretrained row | macro AUROC | beats seeds (CI above 0) | difference per seed "
              "[95 % CI] |", "|---|---|---|---|"]
    for title, r in spread["rows"].items():
        wins = sum(v["ci"][0] > 0 for v in r["vs_seeds"])
        cells = "; ".join(f"s{v['seed']} {v['delta']:+.3f} {format_ci(v['ci'])}"
                          for v in r["vs_seeds"])
        lines.append(f"| {title} | {r['auroc']:.3f} | {wins}/{len(r['vs_seeds'])} | {cells} |")
    fams = spread.get("families")
    if fams and all("families" in v for r in spread["rows"].values() for v in r["vs_seeds"]):
        lines += ["", "By label family: the same paired difference on each family's labels only "
                  "(a post-hoc breakdown of the macro AUROC, not a pre-registered test). Cell: "
                  f"difference to the suite's twin (seed {first}) [95 % CI]; then in how many of "
                  f"the {n} seeds the CI is above 0 / below 0.", "",
                  "| pretrained row | " + " | ".join(f"{f} ({len(v)})" for f, v in fams.items())
                  + " |", "|---|" + "---|" * len(fams)]
        for title, r in spread["rows"].items():
            cells = []
            for f in fams:
                v0 = r["vs_seeds"][0]["families"][f]
                up = sum(v["families"][f]["ci"][0] > 0 for v in r["vs_seeds"])
                down = sum(v["families"][f]["ci"][1] < 0 for v in r["vs_seeds"])
                cells.append(f"{v0['delta']:+.3f} {format_ci(v0['ci'])}; {up}/{down}")
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines + [""]


def seg_f1(pooled: dict, wave: str) -> float | None:
    """Mean of onset and offset F1 of ``wave`` in a pooled segmentation summary (None: absent)."""
    w = (pooled or {}).get(wave)
    if not w:
        return None
    return (w["onset"]["f1"] + w["offset"]["f1"]) / 2


def seg_dice(pooled: dict, wave: str) -> float | None:
    """Dice of ``wave`` in a pooled segmentation summary (None: absent)."""
    w = (pooled or {}).get(wave) or {}
    d = w.get("dice")
    return d.get("value", d.get("mean")) if isinstance(d, dict) else d


def _verdict(ci, baseline: str = "random init") -> str:
    """What a 95 % CI of a difference (row - baseline) says."""
    if ci[0] > 0:
        return f"beats {baseline}"
    if ci[1] < 0:
        return f"WORSE than {baseline}"
    return f"NOT shown to beat {baseline} (the CI includes 0)"


def _finetuned_line(title: str, metric: str, a: float, b: float, delta: float, ci) -> str:
    """Fine-tuned pretrained row against the same training from random init."""
    return (f"{title} fine-tuned {metric} {a:.3f} vs supervised from scratch {b:.3f} "
            f"({delta:+.3f}, 95 % paired CI {format_ci(ci)}: "
            + _verdict(ci, "the same training from random init") + ").")


def verdicts(suite: dict, chosen: dict[str, str]) -> list[str]:
    """Plain statements read off ``run_suite``'s results: each pretrained row (title -> its
    ``arch_label``) against the random-init twin and supervised-from-scratch row of its
    architecture, and every segmentation row against neurokit2. A difference is called real
    only when its 95 % paired CI excludes 0 (without paired results: when it exceeds the larger
    fold-to-fold std)."""
    out = []
    # A task the suite skipped (--probe-only) is stored as None.
    probe, seg, reg = (suite.get(k) or {} for k in ("probe", "segmentation", "regression"))
    paired_probe = suite.get("paired_probe") or {}
    paired_seg = suite.get("paired_segmentation") or {}
    for title, arch in chosen.items():
        rnd, sup = f"random-init {arch}", f"supervised from scratch {arch}"
        if title in probe and rnd in probe:
            a, b = probe[title]["macro_auroc"]["mean"], probe[rnd]["macro_auroc"]["mean"]
            sa, sb = probe[title]["macro_auroc"]["std"], probe[rnd]["macro_auroc"]["std"]
            s = probe.get(sup, {}).get("macro_auroc", {}).get("mean")
            # Folds are not paired in the stored results: call a gap real only when it exceeds
            # the larger of the two fold-to-fold stds.
            spread = max(sa, sb)
            verdict = ("beyond" if abs(a - b) > spread else "within") + \
                f" the fold-to-fold spread (± {spread:.3f})"
            sup_text = "" if s is None else f"; supervised from scratch {s:.3f}"
            pp = paired_probe.get(title)
            if pp:  # paired bootstrap over the same test records: the verdict's basis
                verdict = (f"95 % paired CI {format_ci(pp['ci'])}, P(not better) "
                           f"{pp['p_not_better']:.3f}: "
                           + _verdict(pp["ci"])
                           + f"; better on {pp['classes_better']}/{pp['n_classes']} labels")
            out.append(f"{title} LUDB probe macro AUROC {a:.3f} ± {sa:.3f} vs random-init "
                       f"{b:.3f} ± {sb:.3f}: {'higher' if a > b else 'NOT higher'} than random "
                       f"init ({a - b:+.3f}, {verdict}){sup_text}.")
        ft = paired_probe.get(f"{title} fine-tuned")
        if ft:
            out.append(_finetuned_line(title, "LUDB classification macro AUROC", ft["a"],
                                       ft["b"], ft["delta"], ft["ci"]))
        key = f"{title} (frozen encoder + decoder)"
        rkey = f"{rnd} (frozen encoder + decoder)"
        nk = next((k for k in seg if k.startswith("neurokit2")), None)
        if key in seg and rkey in seg:
            p, q = seg[key]["pooled"], seg[rkey]["pooled"]
            fa = np.mean([seg_f1(p, w) for w in ("QRS", "T", "P")])
            fb = np.mean([seg_f1(q, w) for w in ("QRS", "T", "P")])
            line = (f"{title} segmentation mean F1 (QRS, T, P) {fa:.3f} vs random-init "
                    f"{fb:.3f}: {'beats' if fa > fb else 'does NOT beat'} random init")
            ps = paired_seg.get(key)
            if ps:
                line += (f" ({ps['delta_f1']:+.3f}, 95 % paired CI {format_ci(ps['ci_f1'])}: "
                         + _verdict(ps["ci_f1"]) + ")")
            if nk:
                fn = np.mean([seg_f1(seg[nk]["pooled"], w) for w in ("QRS", "T", "P")])
                line += f"; neurokit2 prominence {fn:.3f} ({'beaten' if fa > fn else 'NOT beaten'})"
            out.append(line + ".")
        ps = paired_seg.get(f"{title} fine-tuned")
        if ps:
            out.append(_finetuned_line(title, "segmentation mean F1", ps["a_f1"], ps["b_f1"],
                                       ps["delta_f1"], ps["ci_f1"]))
        if title in reg and rnd in reg:
            wins = [t for t in reg[title] if reg[title][t].get("mae") is not None
                    and reg[rnd].get(t, {}).get("mae") is not None
                    and reg[title][t]["mae"] < reg[rnd][t]["mae"]]
            out.append(f"{title} feature prediction: lower MAE than random init on "
                       f"{len(wins)}/{len(reg[title])} targets ({', '.join(wins) or 'none'}).")
    nk = next((k for k in seg if k.startswith("neurokit2")), None)
    if nk:
        ref = seg[nk]["pooled"]
        for k in seg:
            if k == nk:
                continue
            p = seg[k]["pooled"]
            f1 = [w for w in ("QRS", "T", "P") if seg_f1(p, w) > seg_f1(ref, w)]
            dice = [w for w in ("QRS", "T", "P")
                    if (seg_dice(p, w) or 0) > (seg_dice(ref, w) or 0)]
            out.append(f"{k} vs neurokit2 prominence: higher F1 on {', '.join(f1) or 'no wave'}"
                       f"; higher Dice on {', '.join(dice) or 'no wave'}.")
    return out
