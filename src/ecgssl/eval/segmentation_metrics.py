"""Delineation metrics: Dice/IoU per wave class and one-to-one fiducial-point matching.

Pure numpy (plus ``scipy.optimize.linear_sum_assignment`` for the optimal matching). All functions
work on one lead; ``SegmentationScorer`` accumulates leads and records and produces the table.

Protocol (see ``docs/evaluation.md``), with the choices made here:

* **Span.** Only the expert-annotated span ``[start, end)`` of each lead counts (LUDB leaves the
  first and last beats unannotated). Dice counts only samples inside the span. Expert fiducial
  points outside the span are ignored (none exist when the span comes from the annotations).
  A predicted point may match an expert point if it lies inside the span widened by the tolerance
  on both sides (so a correct onset a few samples before the span start of the first annotated
  wave still counts), but an *unmatched* predicted point is a false positive only if it lies
  inside the span proper. A lead with an empty span (start >= end) is not scored.
* **Fiducial points.** For each wave class (P, QRS, T), onsets and offsets are matched separately,
  one-to-one, to the expert's within +-``tolerance_ms`` (default 150 ms, inclusive). Default
  matching is ``"hungarian"``: the largest number of pairs, and among those the smallest total
  absolute error (``scipy.optimize.linear_sum_assignment``). ``"greedy"`` pairs the closest
  remaining (predicted, expert) pair first. Sensitivity = TP / (TP + FN), PPV = TP / (TP + FP),
  F1 = 2 TP / (2 TP + FP + FN); the error of a matched pair is predicted - expert, in ms,
  reported as mean and sample SD (ddof=1) over all matched pairs.
* **Absent classes.** Atrial fibrillation/flutter records have no P annotations by design: on a
  lead whose expert annotation has no wave of a class listed in ``skip_absent`` (default: P only),
  that class is not scored at all (neither Dice nor fiducials; predicted P waves there are *not*
  false positives). Such leads are counted in ``n_leads_skipped``. Pass ``skip_absent=()`` to score
  them (predicted P waves in AF leads then count as false positives).
* **Aggregation.** Everything is pooled over all scored leads of all records: pooled Dice =
  2 sum(intersection) / (sum(pred) + sum(expert)) over all samples of all leads, and TP/FP/FN and
  errors summed over leads. This pooled Dice is the reported ``dice``; ``dice_record_mean`` is the
  mean over records of each record's Dice pooled over its leads (records where neither the expert
  nor the prediction has the class are left out of that mean). Bootstrap 95 % intervals resample
  records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ecgssl.data.record import WAVE_NAMES, WAVE_P, WAVE_QRS, WAVE_T
from ecgssl.eval.postprocess import as_waves, mask_to_waves, waves_to_mask

WAVE_CLASSES = (WAVE_P, WAVE_QRS, WAVE_T)
POINT_KINDS = ("onset", "offset")
MATCHING_METHODS = ("hungarian", "greedy")


# --------------------------------------------------------------------------- matching


def match_points(pred, true, tolerance: float, method: str = "hungarian"):
    """One-to-one matching of predicted to expert points within ``tolerance`` samples.

    Args:
        pred: 1-D array of predicted point positions (samples).
        true: 1-D array of expert point positions (samples).
        tolerance: largest allowed |pred - true| (inclusive), in samples.
        method: ``"hungarian"`` (most pairs, then least total |error|) or ``"greedy"``
            (closest pair first; ties broken by expert then predicted index).
    Returns:
        (pred_index, true_index): int arrays of equal length, the matched pairs, sorted by
        expert index.
    """
    if method not in MATCHING_METHODS:
        raise ValueError(f"matching method must be one of {MATCHING_METHODS}, got {method!r}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    true = np.asarray(true, dtype=np.float64).reshape(-1)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    if pred.size == 0 or true.size == 0:
        return empty
    dist = np.abs(pred[:, None] - true[None, :])
    valid = dist <= tolerance
    if not valid.any():
        return empty
    if method == "greedy":
        pi, ti = np.nonzero(valid)
        order = np.lexsort((pi, ti, dist[pi, ti]))
        used_p, used_t, pairs = set(), set(), []
        for k in order:
            if pi[k] in used_p or ti[k] in used_t:
                continue
            used_p.add(pi[k])
            used_t.add(ti[k])
            pairs.append((pi[k], ti[k]))
        pairs.sort(key=lambda pair: pair[1])
        arr = np.asarray(pairs, dtype=np.int64)
        return arr[:, 0], arr[:, 1]
    # A valid pair costs |d| - big, an invalid one 0: since big exceeds any possible sum of
    # distances, the optimum has the most valid pairs, then the smallest total distance.
    big = tolerance * min(pred.size, true.size) + 1.0
    cost = np.where(valid, dist - big, 0.0)
    rows, cols = linear_sum_assignment(cost)
    keep = valid[rows, cols]
    rows, cols = rows[keep], cols[keep]
    order = np.argsort(cols)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


@dataclass
class PointScore:
    """Matching result for one kind of point (e.g. QRS onsets) on one lead."""

    tp: int
    fp: int
    fn: int
    errors: np.ndarray  # predicted - expert, in samples, one per matched pair


def score_points(pred, true, span, tolerance: float, method: str = "hungarian") -> PointScore:
    """Match predicted to expert points inside an annotated span and count TP/FP/FN.

    Args:
        pred, true: 1-D arrays of point positions (samples); negative values (unknown) ignored.
        span: (start, end) annotated span, end exclusive.
        tolerance: matching tolerance in samples.
    Returns:
        ``PointScore``. Expert points outside the span are ignored; predicted points within
        ``tolerance`` outside the span may match but are never false positives (module docstring).
    """
    start, end = int(span[0]), int(span[1])
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    true = np.asarray(true, dtype=np.int64).reshape(-1)
    true = true[(true >= 0) & (true >= start) & (true < end)]
    pred = pred[(pred >= 0) & (pred >= start - tolerance) & (pred < end + tolerance)]
    pi, ti = match_points(pred, true, tolerance, method)
    matched = np.zeros(pred.size, dtype=bool)
    matched[pi] = True
    inside = (pred >= start) & (pred < end)
    fp = int((~matched & inside).sum())
    return PointScore(tp=int(pi.size), fp=fp, fn=int(true.size - pi.size),
                      errors=(pred[pi] - true[ti]).astype(np.int64))


# --------------------------------------------------------------------------- Dice


def dice_counts(pred_mask, true_mask, span=None) -> np.ndarray:
    """Per-class overlap counts inside a span.

    Args:
        pred_mask, true_mask: int arrays (T,) of wave codes 0..3.
        span: (start, end), end exclusive; None = the whole lead.
    Returns:
        int64 (3, 3): rows P, QRS, T; columns (intersection, predicted samples, expert samples).
    """
    pred_mask, true_mask = np.asarray(pred_mask), np.asarray(true_mask)
    if pred_mask.shape != true_mask.shape or pred_mask.ndim != 1:
        raise ValueError(f"masks must be 1-D of equal shape, got {pred_mask.shape} and "
                         f"{true_mask.shape}")
    if span is not None:
        start, end = max(int(span[0]), 0), min(int(span[1]), pred_mask.size)
        pred_mask, true_mask = pred_mask[start:end], true_mask[start:end]
    out = np.zeros((len(WAVE_CLASSES), 3), dtype=np.int64)
    for k, code in enumerate(WAVE_CLASSES):
        p, t = pred_mask == code, true_mask == code
        out[k] = ((p & t).sum(), p.sum(), t.sum())
    return out


def dice_from_counts(counts) -> np.ndarray:
    """Dice per class from (..., 3) counts (intersection, pred, true); NaN where both empty."""
    counts = np.asarray(counts, dtype=np.float64)
    denom = counts[..., 1] + counts[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * counts[..., 0] / np.where(denom > 0, denom, 1), np.nan)


def dice_score(pred_mask, true_mask, span=None) -> dict[str, float]:
    """Dice per wave class of one lead inside ``span``: {"P": .., "QRS": .., "T": ..} (NaN if
    neither mask has the class)."""
    d = dice_from_counts(dice_counts(pred_mask, true_mask, span))
    return {WAVE_NAMES[c]: float(v) for c, v in zip(WAVE_CLASSES, d)}


# --------------------------------------------------------------------------- accumulator


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


@dataclass
class _RecordTally:
    # (class, [inter, pred, true])
    dice: np.ndarray = field(default_factory=lambda: np.zeros((3, 3), dtype=np.int64))
    # (class, kind, [tp, fp, fn])
    counts: np.ndarray = field(default_factory=lambda: np.zeros((3, 2, 3), dtype=np.int64))
    # (class, kind, [n, sum, sum of squares]) of errors in samples
    moments: np.ndarray = field(default_factory=lambda: np.zeros((3, 2, 3), dtype=np.float64))
    # (class,) number of leads where the class was scored / skipped
    scored: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    skipped: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    errors: list = field(default_factory=lambda: [[[], []] for _ in range(3)])


class SegmentationScorer:
    """Accumulate delineation results over leads and records; produce the metric table.

    Args:
        fs: sampling rate in Hz of the masks/waves given to ``add_lead``.
        tolerance_ms: fiducial matching tolerance (default 150 ms).
        skip_absent: wave codes not scored on a lead whose expert has none of them (default P).
        matching: ``"hungarian"`` or ``"greedy"`` (see ``match_points``).

    Usage::

        scorer = SegmentationScorer(fs=500)
        scorer.add_lead(pred_waves, true_waves, span, record_id="ludb/1")
        scorer.summary()   # nested dict, fractions and ms
        scorer.table()     # pandas DataFrame, one row per wave class
    """

    def __init__(self, fs: float, tolerance_ms: float = 150.0,
                 skip_absent: tuple[int, ...] = (WAVE_P,), matching: str = "hungarian"):
        if fs <= 0:
            raise ValueError(f"fs must be > 0, got {fs}")
        if tolerance_ms < 0:
            raise ValueError(f"tolerance_ms must be >= 0, got {tolerance_ms}")
        if matching not in MATCHING_METHODS:
            raise ValueError(f"matching must be one of {MATCHING_METHODS}, got {matching!r}")
        bad = [c for c in skip_absent if c not in WAVE_CLASSES]
        if bad:
            raise ValueError(f"skip_absent must hold wave codes {WAVE_CLASSES}, got {bad}")
        self.fs = float(fs)
        self.tolerance_ms = float(tolerance_ms)
        self.tolerance = self.tolerance_ms * self.fs / 1000.0
        self.skip_absent = tuple(int(c) for c in skip_absent)
        self.matching = matching
        self.records: dict[str, _RecordTally] = {}
        self.n_leads = 0
        self.n_leads_no_span = 0
        self._auto_id = 0

    # ----------------------------------------------------------------- adding
    def add_lead(self, pred_waves, true_waves, span, pred_mask=None, true_mask=None,
                 record_id: str | None = None, n_samples: int | None = None) -> None:
        """Score one lead.

        Args:
            pred_waves, true_waves: (n, 3) wave arrays ``(code, onset, offset)`` (offset inclusive).
            span: (start, end) expert-annotated span, end exclusive.
            pred_mask, true_mask: optional (T,) per-sample classes for Dice; drawn from the waves
                with ``waves_to_mask`` when not given (then ``n_samples`` or the span end is T).
            record_id: leads with the same id form one record (per-record Dice, bootstrap);
                None makes this lead its own record.
        """
        pred_waves, true_waves = as_waves(pred_waves), as_waves(true_waves)
        start, end = int(span[0]), int(span[1])
        if record_id is None:
            record_id = f"#lead{self._auto_id}"
            self._auto_id += 1
        tally = self.records.setdefault(str(record_id), _RecordTally())
        self.n_leads += 1
        if end <= start:
            self.n_leads_no_span += 1
            return
        if pred_mask is None or true_mask is None:
            length = n_samples
            if length is None:
                length = len(true_mask) if true_mask is not None else (
                    len(pred_mask) if pred_mask is not None else end)
            if pred_mask is None:
                pred_mask = waves_to_mask(pred_waves, length)
            if true_mask is None:
                true_mask = waves_to_mask(true_waves, length)
        dcounts = dice_counts(pred_mask, true_mask, (start, end))
        for k, code in enumerate(WAVE_CLASSES):
            true_c = true_waves[true_waves[:, 0] == code]
            in_span = ((true_c[:, 1:] >= start) & (true_c[:, 1:] < end)).any(axis=1)
            if code in self.skip_absent and not in_span.any() and dcounts[k, 2] == 0:
                tally.skipped[k] += 1
                continue
            tally.scored[k] += 1
            tally.dice[k] += dcounts[k]
            pred_c = pred_waves[pred_waves[:, 0] == code]
            for j in range(2):
                score = score_points(pred_c[:, 1 + j], true_c[:, 1 + j], (start, end),
                                     self.tolerance, self.matching)
                tally.counts[k, j] += (score.tp, score.fp, score.fn)
                e = score.errors.astype(np.float64)
                tally.moments[k, j] += (e.size, e.sum(), (e ** 2).sum())
                tally.errors[k][j].extend(score.errors.tolist())

    def add_record(self, pred_waves: list, true_waves: list, spans, pred_masks=None,
                   true_masks=None, record_id: str | None = None,
                   n_samples: int | None = None) -> None:
        """Score all leads of one record: lists of per-lead wave arrays, spans (L, 2), optional
        (L, T) masks."""
        spans = np.asarray(spans)
        if len(pred_waves) != len(true_waves) or len(pred_waves) != len(spans):
            raise ValueError(f"record {record_id!r}: {len(pred_waves)} predicted, "
                             f"{len(true_waves)} expert wave lists and {len(spans)} spans")
        if record_id is None:
            record_id = f"#record{self._auto_id}"
            self._auto_id += 1
        for i in range(len(spans)):
            self.add_lead(pred_waves[i], true_waves[i], spans[i],
                          None if pred_masks is None else pred_masks[i],
                          None if true_masks is None else true_masks[i],
                          record_id=record_id, n_samples=n_samples)

    def add_masks(self, pred_classes, true_classes, spans, record_id: str | None = None,
                  postprocess: dict | None = None) -> None:
        """Score a record from (L, T) per-sample classes only.

        Predicted waves come from ``mask_to_waves`` with ``postprocess`` kwargs (defaults:
        merge 10 ms gaps, drop short fragments); expert waves are the runs of the expert mask
        as they are (no merging, no minimum duration).
        """
        pred_classes, true_classes = np.asarray(pred_classes), np.asarray(true_classes)
        if pred_classes.shape != true_classes.shape or pred_classes.ndim != 2:
            raise ValueError(f"record {record_id!r}: class arrays must be (L, T) of equal shape, "
                             f"got {pred_classes.shape} and {true_classes.shape}")
        pp = postprocess or {}
        pred_w = [mask_to_waves(row, self.fs, **pp) for row in pred_classes]
        true_w = [mask_to_waves(row, self.fs, min_duration_ms={}, max_gap_ms=0)
                  for row in true_classes]
        self.add_record(pred_w, true_w, spans, pred_classes, true_classes, record_id)

    def merge(self, other: SegmentationScorer) -> SegmentationScorer:
        """Add another scorer's records into this one (e.g. pool cross-validation folds)."""
        same = (other.fs, other.tolerance_ms, other.skip_absent, other.matching) == (
            self.fs, self.tolerance_ms, self.skip_absent, self.matching)
        if not same:
            raise ValueError("cannot merge scorers with different fs/tolerance/skip/matching")
        for rid, tally in other.records.items():
            key = rid
            while key in self.records:  # keep records distinct even if ids repeat
                key = key + "'"
            self.records[key] = tally
        self.n_leads += other.n_leads
        self.n_leads_no_span += other.n_leads_no_span
        return self

    # ----------------------------------------------------------------- results
    def _stack(self):
        tallies = list(self.records.values())
        if not tallies:
            return (np.zeros((0, 3, 3)), np.zeros((0, 3, 2, 3)), np.zeros((0, 3, 2, 3)))
        return (np.stack([t.dice for t in tallies]), np.stack([t.counts for t in tallies]),
                np.stack([t.moments for t in tallies]))

    @staticmethod
    def _metrics(dice, counts, moments, ms_per_sample: float) -> dict:
        """Metrics from summed arrays: dice (3, 3), counts (3, 2, 3), moments (3, 2, 3)."""
        out = {}
        for k, code in enumerate(WAVE_CLASSES):
            inter, p, t = dice[k]
            entry = {"dice": _ratio(2 * inter, p + t), "iou": _ratio(inter, p + t - inter)}
            for j, kind in enumerate(POINT_KINDS):
                tp, fp, fn = counts[k, j]
                n, s, ss = moments[k, j]
                mean = s / n if n > 0 else float("nan")
                var = (ss - n * mean ** 2) / (n - 1) if n > 1 else float("nan")
                entry[kind] = {
                    "se": _ratio(tp, tp + fn), "ppv": _ratio(tp, tp + fp),
                    "f1": _ratio(2 * tp, 2 * tp + fp + fn),
                    "error_mean_ms": float(mean * ms_per_sample),
                    "error_sd_ms": float(np.sqrt(max(var, 0.0)) * ms_per_sample)
                    if n > 1 else float("nan"),
                    "tp": int(tp), "fp": int(fp), "fn": int(fn),
                }
            out[WAVE_NAMES[code]] = entry
        return out

    def summary(self) -> dict:
        """Pooled metrics: {"P"|"QRS"|"T": {dice, iou, dice_record_mean, n_leads_scored,
        n_leads_skipped, onset: {se, ppv, f1, error_mean_ms, error_sd_ms, tp, fp, fn},
        offset: {...}}, "n_records", "n_leads", "n_leads_no_span", "tolerance_ms", ...}.
        Fractions are in [0, 1]; NaN where undefined."""
        dice, counts, moments = self._stack()
        ms = 1000.0 / self.fs
        out = self._metrics(dice.sum(0), counts.sum(0), moments.sum(0), ms)
        per_record = dice_from_counts(dice) if len(dice) else np.zeros((0, 3))
        for k, code in enumerate(WAVE_CLASSES):
            name = WAVE_NAMES[code]
            vals = per_record[:, k]
            vals = vals[~np.isnan(vals)]
            out[name]["dice_record_mean"] = float(vals.mean()) if vals.size else float("nan")
            out[name]["n_leads_scored"] = int(sum(t.scored[k] for t in self.records.values()))
            out[name]["n_leads_skipped"] = int(sum(t.skipped[k] for t in self.records.values()))
        out.update({"n_records": len(self.records), "n_leads": self.n_leads,
                    "n_leads_no_span": self.n_leads_no_span, "fs": self.fs,
                    "tolerance_ms": self.tolerance_ms, "matching": self.matching,
                    "skip_absent": [WAVE_NAMES[c] for c in self.skip_absent]})
        return out

    def errors_ms(self, wave: str, kind: str) -> np.ndarray:
        """All matched errors (predicted - expert, ms) of one wave ("P"...) and kind ("onset")."""
        k = [WAVE_NAMES[c] for c in WAVE_CLASSES].index(wave)
        j = POINT_KINDS.index(kind)
        errs = [e for t in self.records.values() for e in t.errors[k][j]]
        return np.asarray(errs, dtype=np.float64) * 1000.0 / self.fs

    def bootstrap(self, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
        """Percentile bootstrap intervals over records of Dice, F1 and error SD.

        Returns:
            {"P": {"dice": (lo, hi), "onset_f1": (lo, hi), "onset_error_sd_ms": (lo, hi), ...}}.
        """
        if n_boot < 1:
            raise ValueError(f"n_boot must be >= 1, got {n_boot}")
        dice, counts, moments = self._stack()
        n = len(dice)
        if n == 0:
            return {}
        rng = np.random.default_rng(seed)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
        d = np.einsum("br,rkc->bkc", weights, dice)
        c = np.einsum("br,rkjc->bkjc", weights, counts)
        m = np.einsum("br,rkjc->bkjc", weights, moments)
        ms = 1000.0 / self.fs
        out = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            dice_b = 2 * d[..., 0] / (d[..., 1] + d[..., 2])
            f1_b = 2 * c[..., 0] / (2 * c[..., 0] + c[..., 1] + c[..., 2])
            nn, s, ss = m[..., 0], m[..., 1], m[..., 2]
            sd_b = np.sqrt(np.maximum((ss - s ** 2 / nn) / (nn - 1), 0)) * ms
        q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
        for k, code in enumerate(WAVE_CLASSES):
            entry = {"dice": tuple(np.nanpercentile(dice_b[:, k], q).tolist())}
            for j, kind in enumerate(POINT_KINDS):
                entry[f"{kind}_f1"] = tuple(np.nanpercentile(f1_b[:, k, j], q).tolist())
                entry[f"{kind}_error_sd_ms"] = tuple(np.nanpercentile(sd_b[:, k, j], q).tolist())
            out[WAVE_NAMES[code]] = entry
        return out

    def table(self) -> pd.DataFrame:
        """One row per wave class: Dice, IoU, and onset/offset Se, PPV, F1, error mean and SD."""
        s = self.summary()
        rows = []
        for code in WAVE_CLASSES:
            name = WAVE_NAMES[code]
            e = s[name]
            row = {"wave": name, "dice": e["dice"], "iou": e["iou"],
                   "dice_record_mean": e["dice_record_mean"], "leads": e["n_leads_scored"],
                   "leads_skipped": e["n_leads_skipped"]}
            for kind in POINT_KINDS:
                for key in ("se", "ppv", "f1", "error_mean_ms", "error_sd_ms"):
                    row[f"{kind}_{key}"] = e[kind][key]
            rows.append(row)
        return pd.DataFrame(rows).set_index("wave")

    def to_markdown(self, title: str | None = None) -> str:
        """A Markdown table (percentages, ms) of ``table()``."""
        df = self.table()
        lines = [f"**{title}**", ""] if title else []
        lines.append("| wave | Dice % | on Se % | on PPV % | on F1 % | on err ms | "
                     "off Se % | off PPV % | off F1 % | off err ms | leads (skipped) |")
        lines.append("|---|" + "---|" * 10)

        def pct(v):
            return "n/a" if np.isnan(v) else f"{100 * v:.1f}"

        def err(m, sd):
            return "n/a" if np.isnan(m) else f"{m:+.1f} +- {sd:.1f}"

        for name, r in df.iterrows():
            lines.append(
                f"| {name} | {pct(r.dice)} | {pct(r.onset_se)} | {pct(r.onset_ppv)} | "
                f"{pct(r.onset_f1)} | {err(r.onset_error_mean_ms, r.onset_error_sd_ms)} | "
                f"{pct(r.offset_se)} | {pct(r.offset_ppv)} | {pct(r.offset_f1)} | "
                f"{err(r.offset_error_mean_ms, r.offset_error_sd_ms)} | "
                f"{int(r.leads)} ({int(r.leads_skipped)}) |")
        return "\n".join(lines)
