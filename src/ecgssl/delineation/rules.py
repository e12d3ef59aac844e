"""Physiological post-processing of one lead's waves, and its choice on validation data.

After ``ecgssl.eval.postprocess.mask_to_waves`` (gap merging, fragment removal) the wave list
can still break the order of a heartbeat. ``apply_rules`` enforces, in this order:

0. **R-peak anchoring** (``rpeak_anchor``: a detector name of ``ecgssl.delineation.rpeaks``):
   a QRS complex with no R-peak of that detector inside it (widened by 50 ms on each side) is
   dropped; the ensemble of the network with a classical detector.
1. **Refractory QRS** (``qrs_refractory_ms``): two QRS complexes whose onsets are closer than
   this cannot both be beats (the ventricles are refractory for about 200 ms); the one with the
   smaller probability mass (sum over its samples of the network's QRS probability) is dropped.
2. **One P per beat** (``one_p``): between two consecutive QRS complexes (and before the first)
   only the P wave with the largest probability mass is kept; with ``max_pr_ms`` a P wave whose
   offset is more than that before the next QRS onset is dropped too (P belongs before its QRS).
   A P after the last QRS with no QRS following it inside the lead is kept (the lead may end).
3. **One T per beat** (``one_t``): between two consecutive QRS complexes (and after the last) only
   the T wave with the largest mass is kept; a T before the first QRS is kept only if it is the
   only one there (its QRS lies before the lead).

Every candidate dropped is counted in the returned ``counts``. ``CANDIDATES`` are the settings
``select_postprocess`` compares on validation records (``ecgssl.delineation.train --stage
select``); the winner is stored in the model's JSON and used by ``delineate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecgssl.data.record import WAVE_P, WAVE_QRS, WAVE_T
from ecgssl.eval.postprocess import EMPTY_WAVES

CANDIDATES: dict[str, dict] = {
    "plain": {},
    "refractory": {"qrs_refractory_ms": 200.0},
    "beat": {"qrs_refractory_ms": 200.0, "one_p": True, "one_t": True},
    "beat_pr": {"qrs_refractory_ms": 200.0, "one_p": True, "one_t": True, "max_pr_ms": 250.0},
    "beat_anchor": {"qrs_refractory_ms": 200.0, "one_p": True, "one_t": True,
                    "rpeak_anchor": "nk_neurokit"},
    "beat_anchor_ours": {"qrs_refractory_ms": 200.0, "one_p": True, "one_t": True,
                         "rpeak_anchor": "ecgssl"},
    "beat_min": {"qrs_refractory_ms": 200.0, "one_p": True, "one_t": True,
                 "min_duration_ms": {1: 40.0, 2: 40.0, 3: 80.0}},
}
#: Keys of a post-processing setting that ``apply_rules`` reads (the rest go to mask_to_waves).
RULE_KEYS = ("qrs_refractory_ms", "one_p", "one_t", "max_pr_ms", "rpeak_anchor")
#: Widening (ms) of each QRS when looking for its anchoring R-peak.
ANCHOR_MS = 50.0


def _mass(wave, probs: np.ndarray | None) -> float:
    code, on, off = (int(v) for v in wave)
    if probs is None:
        return float(off - on + 1)
    return float(probs[code, on:off + 1].sum())


def _best(cands: list, probs) -> list:
    return [max(cands, key=lambda w: _mass(w, probs))] if cands else []


def apply_rules(waves: np.ndarray, fs: float, probs: np.ndarray | None = None,
                qrs_refractory_ms: float | None = None, one_p: bool = False,
                one_t: bool = False, max_pr_ms: float | None = None,
                rpeak_anchor: str | None = None, rpeaks: np.ndarray | None = None,
                counts: dict | None = None) -> np.ndarray:
    """Enforce the beat order on one lead (module docstring).

    Args:
        waves: (n, 3) int64 ``(code, onset, offset)``, offset inclusive, sorted by onset.
        fs: sampling rate of the waves (Hz).
        probs: optional (4, T) class probabilities (ranks competing waves; else by duration).
        rpeaks: R-peaks (samples at ``fs``) of the ``rpeak_anchor`` detector; anchoring is
            skipped (and counted as ``anchor_skipped``) when they are missing.
        counts: dict updated with the number of waves each rule dropped.
    Returns:
        (m, 3) int64 wave array, m <= n, sorted by onset.
    """
    counts = counts if counts is not None else {}
    w = np.asarray(waves, dtype=np.int64).reshape(-1, 3)
    if len(w) == 0:
        return EMPTY_WAVES.copy()
    qrs = [row for row in w if row[0] == WAVE_QRS]
    if rpeak_anchor:
        if rpeaks is None:
            counts["anchor_skipped"] = counts.get("anchor_skipped", 0) + 1
        else:
            pad = ANCHOR_MS * fs / 1000.0
            r = np.asarray(rpeaks, dtype=np.int64)
            kept = [q for q in qrs if ((r >= q[1] - pad) & (r <= q[2] + pad)).any()]
            counts["qrs_unanchored"] = counts.get("qrs_unanchored", 0) + len(qrs) - len(kept)
            qrs = kept
    if qrs_refractory_ms:
        gap = qrs_refractory_ms * fs / 1000.0
        kept: list = []
        for row in qrs:
            if kept and row[1] - kept[-1][1] < gap:
                counts["qrs_refractory"] = counts.get("qrs_refractory", 0) + 1
                if _mass(row, probs) > _mass(kept[-1], probs):
                    kept[-1] = row
            else:
                kept.append(row)
        qrs = kept
    out = list(qrs)
    # Interval k lies between QRS k-1 and QRS k: (its offset, the next onset); k = 0 is before
    # the first QRS and the last one after the last QRS.
    lefts = [-1] + [int(q[2]) for q in qrs]
    rights = [int(q[1]) for q in qrs] + [np.iinfo(np.int64).max]
    for code, rule, tag in ((WAVE_P, one_p, "extra_p"), (WAVE_T, one_t, "extra_t")):
        rows = [row for row in w if row[0] == code]
        if not rule:
            out += rows
            continue
        for lo, hi in zip(lefts, rights):
            inside = [r for r in rows if lo < r[1] < hi]
            if code == WAVE_P and max_pr_ms is not None and hi != rights[-1]:
                near = [r for r in inside if hi - r[2] <= max_pr_ms * fs / 1000.0]
                counts["p_far_from_qrs"] = counts.get("p_far_from_qrs", 0) + len(inside) - len(near)
                inside = near
            best = _best(inside, probs)
            counts[tag] = counts.get(tag, 0) + len(inside) - len(best)
            out += best
    if not out:
        return EMPTY_WAVES.copy()
    arr = np.asarray(out, dtype=np.int64)
    return arr[np.argsort(arr[:, 1], kind="stable")]


def split_setting(setting: dict) -> tuple[dict, dict]:
    """A post-processing setting -> (mask_to_waves kwargs, apply_rules kwargs)."""
    pp = {k: v for k, v in setting.items() if k not in RULE_KEYS}
    if "min_duration_ms" in pp:  # JSON turns the int wave codes into strings
        pp["min_duration_ms"] = {int(k): float(v) for k, v in pp["min_duration_ms"].items()}
    return pp, {k: v for k, v in setting.items() if k in RULE_KEYS}


def _score(summary: dict) -> float:
    vals = [summary[w][k]["f1"] for w in ("P", "QRS", "T") for k in ("onset", "offset")]
    vals = [v for v in vals if v == v]
    return float(np.mean(vals)) if vals else 0.0


def select_postprocess(model_path: str | Path, ludb_root: str | Path,
                       records: Sequence[str], candidates: dict | None = None) -> dict:
    """Score every candidate setting on all leads of the given (validation) LUDB records.

    Returns:
        {"chosen": setting, "chosen_name", "score" (mean onset/offset F1 of P, QRS, T),
        "candidates": {name: {"setting", "score", "summary"}}, "records", "n_leads"}.
    """
    from ecgssl.delineation.infer import Delineator
    from ecgssl.eval.delineation_baselines import ludb_annotated_leads
    from ecgssl.eval.segmentation_metrics import SegmentationScorer

    cands = CANDIDATES if candidates is None else candidates
    dl = Delineator.load(model_path)
    items = list(ludb_annotated_leads(ludb_root, list(records), leads=("all",)))
    scorers = {name: SegmentationScorer(items[0].fs) for name in cands}
    for item in items:
        probs = dl.probabilities(item.signal[None], item.fs)[0]
        for name, setting in cands.items():
            pred = dl.waves_from_probs(probs, item.fs, item.signal.size, setting, item.signal)
            scorers[name].add_lead(pred, item.waves, item.span, record_id=item.record_id,
                                   n_samples=item.signal.size)
    table = {name: {"setting": cands[name], "score": _score(s.summary()),
                    "summary": s.summary()} for name, s in scorers.items()}
    best = max(table, key=lambda n: table[n]["score"])
    return {"chosen_name": best, "chosen": cands[best], "score": table[best]["score"],
            "criterion": "mean onset/offset F1 of P, QRS, T on validation leads",
            "records": list(records), "n_leads": len(items), "candidates": table}
