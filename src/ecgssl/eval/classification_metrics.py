"""Multi-label classification metrics: AUROC, F1 with validation thresholds, bootstrap CIs.

Everything works on plain numpy arrays:

- ``labels``: (N, K) binary (0/1, any integer or bool dtype), one column per class.
- ``scores``: (N, K) float, higher means "more likely positive" (logits or probabilities).

Conventions (see docs/evaluation.md):

- A class is *evaluable* on a set of records when it has at least one positive and one negative
  there. Macro AUROC and macro F1 average over the evaluable classes only; the others are
  skipped and reported by name (``ClassificationResult.skipped_classes``), never silently dropped.
- Thresholds are chosen per class on the validation set to maximise F1 and then applied
  unchanged to the test set.
- Bootstrap confidence intervals resample test *records* with replacement (seeded). A resample
  in which a class is not evaluable contributes nothing to that class; its macro value averages
  over the classes evaluable in that resample (restricted to the classes evaluable on the full
  test set). The number of such resamples is reported per class.

The bootstrap uses multinomial record weights instead of materialising resampled arrays, so
AUROC for all resamples of one class is computed from a single sort (O(N) per resample).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ClassificationResult",
    "auroc",
    "per_class_auroc",
    "macro_auroc",
    "evaluable_classes",
    "choose_thresholds",
    "f1_per_class",
    "macro_f1",
    "evaluate_classification",
    "bootstrap_weights",
]


def _check_pair(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim == 1:
        labels = labels[:, None]
    if scores.ndim == 1:
        scores = scores[:, None]
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    if labels.ndim != 2:
        raise ValueError(f"labels must be (N, K), got shape {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be binary (0/1)")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    return labels.astype(bool), scores


def _class_names(names, k: int) -> list[str]:
    if names is None:
        return [str(i) for i in range(k)]
    names = [str(n) for n in names]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} label columns")
    return names


def _weighted_auroc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of one class under record weights.

    Args:
        y: (N,) bool labels; s: (N,) scores; weights: (B, N) non-negative record weights
            (ones for the plain AUROC, multinomial counts for bootstrap resamples).
    Returns:
        (B,) AUROC (probability that a positive outscores a negative, ties count 1/2); NaN where
        the weighted positives or negatives are zero.
    """
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    w = weights[:, order]
    # Group equal scores: ties between a positive and a negative count one half.
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    w_pos = np.add.reduceat(w * y_sorted, starts, axis=1)
    w_neg = np.add.reduceat(w * ~y_sorted, starts, axis=1)
    neg_below = np.cumsum(w_neg, axis=1) - w_neg
    num = (w_pos * (neg_below + 0.5 * w_neg)).sum(axis=1)
    den = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of one binary problem (Mann-Whitney, ties count 1/2).

    Returns NaN when ``y_true`` has no positives or no negatives.
    """
    y, s = _check_pair(np.asarray(y_true).reshape(-1), np.asarray(score).reshape(-1))
    return float(_weighted_auroc(y[:, 0], s[:, 0], np.ones((1, len(y))))[0])


def per_class_auroc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(K,) AUROC per class; NaN for classes without positives or without negatives."""
    y, s = _check_pair(labels, scores)
    ones = np.ones((1, y.shape[0]))
    return np.array([_weighted_auroc(y[:, k], s[:, k], ones)[0] for k in range(y.shape[1])])


def evaluable_classes(labels: np.ndarray) -> np.ndarray:
    """(K,) bool: classes with at least one positive and one negative in ``labels``."""
    y = np.asarray(labels).astype(bool)
    if y.ndim == 1:
        y = y[:, None]
    n_pos = y.sum(axis=0)
    return (n_pos > 0) & (n_pos < y.shape[0])


def macro_auroc(
    labels: np.ndarray, scores: np.ndarray, class_names=None
) -> tuple[float, list[str]]:
    """Macro AUROC over evaluable classes.

    Returns:
        (macro AUROC, names of the skipped classes). NaN when no class is evaluable.
    """
    y, s = _check_pair(labels, scores)
    names = _class_names(class_names, y.shape[1])
    per = per_class_auroc(y, s)
    ok = evaluable_classes(y)
    skipped = [n for n, keep in zip(names, ok) if not keep]
    return (float(per[ok].mean()) if ok.any() else float("nan")), skipped


def choose_thresholds(val_labels: np.ndarray, val_scores: np.ndarray) -> np.ndarray:
    """Per-class decision thresholds that maximise F1 on the validation set.

    A record is predicted positive when ``score >= threshold``. For each class every distinct
    validation score is a candidate cut; the chosen threshold is the midpoint between the best
    cut score and the next lower distinct score (so a test score slightly below the lowest
    accepted validation score is not flipped by a hair). Ties in F1 go to the higher threshold.
    Classes without positives in validation get ``+inf`` (never predicted positive: no evidence).

    Returns:
        (K,) float64 thresholds.
    """
    y, s = _check_pair(val_labels, val_scores)
    thresholds = np.full(y.shape[1], np.inf)
    for k in range(y.shape[1]):
        yk, sk = y[:, k], s[:, k]
        n_pos = int(yk.sum())
        if n_pos == 0:
            continue
        order = np.argsort(-sk, kind="mergesort")
        s_desc, y_desc = sk[order], yk[order]
        tp = np.cumsum(y_desc)
        fp = np.cumsum(~y_desc)
        # Only cut after the last record of a group of equal scores.
        last_of_group = np.r_[s_desc[1:] != s_desc[:-1], True]
        tp, fp, cut_scores = tp[last_of_group], fp[last_of_group], s_desc[last_of_group]
        f1 = 2 * tp / (2 * tp + fp + (n_pos - tp))
        best = int(np.argmax(f1))  # first max = highest threshold among ties
        lower = cut_scores[best + 1] if best + 1 < len(cut_scores) else None
        thresholds[k] = (
            0.5 * (cut_scores[best] + lower) if lower is not None else cut_scores[best]
        )
    return thresholds


def _weighted_f1(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, K) F1 per class under (B, N) record weights; NaN where there is no weighted positive
    and no predicted positive (0/0)."""
    yf = y.astype(np.float64)
    pf = pred.astype(np.float64)
    tp = weights @ (yf * pf)
    fp = weights @ ((1 - yf) * pf)
    fn = weights @ (yf * (1 - pf))
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1.0), np.nan)


def f1_per_class(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """(K,) F1 per class of binary predictions; NaN where F1 is 0/0 (no positive, none
    predicted)."""
    y, p = _check_pair(labels, np.asarray(predictions, dtype=np.float64))
    return _weighted_f1(y, p > 0.5, np.ones((1, y.shape[0])))[0]


def macro_f1(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> float:
    """Macro F1 over evaluable classes of ``scores >= thresholds``."""
    y, s = _check_pair(labels, scores)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (y.shape[1],):
        raise ValueError(f"need {y.shape[1]} thresholds, got shape {thresholds.shape}")
    per = f1_per_class(y, (s >= thresholds).astype(np.float64))
    ok = evaluable_classes(y)
    return float(np.nanmean(per[ok])) if ok.any() else float("nan")


@dataclass
class ClassificationResult:
    """Test-set classification metrics with bootstrap 95 % intervals.

    ``*_ci`` are (low, high) percentile intervals; per-class dicts are keyed by class name and
    hold NaN for classes that were skipped. ``extra`` carries protocol details (chosen C, epoch,
    low-label fraction, ...).
    """

    macro_auroc: float
    macro_auroc_ci: tuple[float, float]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    per_class_auroc: dict[str, float]
    per_class_auroc_ci: dict[str, tuple[float, float]]
    per_class_f1: dict[str, float]
    thresholds: dict[str, float]
    class_names: list[str]
    skipped_classes: list[str]
    n_records: int
    n_bootstrap: int
    bootstrap_undefined: dict[str, int] = field(default_factory=dict)
    confidence: float = 0.95
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_evaluated_classes(self) -> int:
        return len(self.class_names) - len(self.skipped_classes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN/inf become None)."""
        return jsonable(asdict(self) | {"n_evaluated_classes": self.n_evaluated_classes})


def jsonable(obj):
    """A JSON-ready copy: numpy arrays / scalars -> lists / numbers, NaN and inf -> None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


_jsonable = jsonable  # the former private name (other modules / branches import it)


def _percentile_ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(v, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def bootstrap_weights(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, n) multinomial counts: how often each of n records appears in each resample.

    Equivalent to drawing n record indices with replacement per resample.
    """
    return rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)


def evaluate_classification(
    labels: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    class_names=None,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    extra: dict | None = None,
) -> ClassificationResult:
    """All test-set metrics at once, with bootstrap CIs over records.

    Args:
        labels: (N, K) binary test labels.
        scores: (N, K) test scores.
        thresholds: (K,) thresholds chosen on validation (``choose_thresholds``).
        class_names: K names (default "0".."K-1").
        n_boot: bootstrap resamples (0 disables the CIs: they become NaN).
        confidence: interval mass (0.95 -> 2.5 / 97.5 percentiles).
        seed: seeds the resampling (same seed, same intervals).
    """
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y, s = _check_pair(labels, scores)
    n, k = y.shape
    if n == 0:
        raise ValueError("no test records")
    names = _class_names(class_names, k)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (k,):
        raise ValueError(f"need {k} thresholds, got shape {thresholds.shape}")
    pred = s >= thresholds
    ok = evaluable_classes(y)
    skipped = [nm for nm, keep in zip(names, ok) if not keep]

    ones = np.ones((1, n))
    auc_point = np.array([_weighted_auroc(y[:, j], s[:, j], ones)[0] for j in range(k)])
    f1_point = _weighted_f1(y, pred, ones)[0]
    macro_auc = float(auc_point[ok].mean()) if ok.any() else float("nan")
    macro_f1_v = float(np.nanmean(f1_point[ok])) if ok.any() else float("nan")

    nan_ci = (float("nan"), float("nan"))
    auc_ci = {nm: nan_ci for nm in names}
    undefined = {}
    macro_auc_ci = macro_f1_ci = nan_ci
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boot_auc = np.full((n_boot, k), np.nan)
        boot_f1 = np.full((n_boot, k), np.nan)
        # Chunks bound memory to about chunk * N floats whatever the test-set size.
        chunk = max(1, min(n_boot, 4_000_000 // max(n, 1)))
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            w = bootstrap_weights(n, stop - start, rng)
            for j in np.flatnonzero(ok):
                boot_auc[start:stop, j] = _weighted_auroc(y[:, j], s[:, j], w)
            f1 = _weighted_f1(y, pred, w)
            # F1 of a resample counts only where the class has positives and negatives there.
            w_pos = w @ y.astype(np.float64)
            defined = (w_pos > 0) & (w_pos < n)
            boot_f1[start:stop] = np.where(defined, f1, np.nan)
        boot_auc[:, ~ok] = np.nan
        boot_f1[:, ~ok] = np.nan
        for j, nm in enumerate(names):
            if ok[j]:
                auc_ci[nm] = _percentile_ci(boot_auc[:, j], confidence)
                n_undef = int(np.isnan(boot_auc[:, j]).sum())
                if n_undef:
                    undefined[nm] = n_undef
        with np.errstate(invalid="ignore"), _quiet_nanmean():
            macro_auc_ci = _percentile_ci(np.nanmean(boot_auc[:, ok], axis=1), confidence)
            macro_f1_ci = _percentile_ci(np.nanmean(boot_f1[:, ok], axis=1), confidence)

    return ClassificationResult(
        macro_auroc=macro_auc,
        macro_auroc_ci=macro_auc_ci,
        macro_f1=macro_f1_v,
        macro_f1_ci=macro_f1_ci,
        per_class_auroc={nm: float(v) for nm, v in zip(names, auc_point)},
        per_class_auroc_ci=auc_ci,
        per_class_f1={nm: float(v) for nm, v in zip(names, f1_point)},
        thresholds={nm: float(t) for nm, t in zip(names, thresholds)},
        class_names=names,
        skipped_classes=skipped,
        n_records=n,
        n_bootstrap=n_boot,
        bootstrap_undefined=undefined,
        confidence=confidence,
        seed=seed,
        extra=dict(extra or {}),
    )


class _quiet_nanmean:
    """Silence numpy's 'Mean of empty slice' warning (all-NaN rows stay NaN, which we want)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
