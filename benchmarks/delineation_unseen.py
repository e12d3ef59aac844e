"""Delineation and R-peaks on data that stands in for unseen databases, beside neurokit2.

Methods on the same leads (``--methods``): ``ecgssl`` (the single-channel delineator,
``ecgssl.delineation``), neurokit2 ``prominence`` and ``dwt`` (``ecgssl.eval.
delineation_baselines``). Every lead is delineated alone, at the rate of the protocol. Scoring:
``SegmentationScorer`` (annotated span only, onsets/offsets matched one-to-one within +-150 ms, P
not scored on leads without expert P).

Parts (``--parts``, default all):

* ``ludb``: 5-fold cross-validation by patient over LUDB (``patient_kfold(5, seed=0)``, the
  split of ``ecgssl.delineation.train``; each record is one patient). Fold K's model
  (``runs/delineation/fold{K}``, the folder of ``--fold-model``) was trained on fold K's
  training records, its post-processing chosen on fold K's validation records, and it is scored
  on fold K's test records only; all folds' leads are pooled into one table (every one of the
  200 records counted once, all 12 leads), with a per-fold table of mean onset/offset F1 per
  wave (ecgssl vs nk_prominence) and mean +- SD over folds. neurokit2 has nothing trained: it
  runs on the same pooled leads. ``--folds`` picks folds (default all five). A fold model is
  refused (before anything is scored) when its files are missing, when its test records are not
  fold K of the split, or when its post-processing was not chosen on its own validation records.
* ``noise``: the fold-0 test records (fold-0 model) plus noise at 24, 12, 6, 0 and -6 dB SNR
  (``--noise-snrs``; noise power over all frequencies relative to the lead's own power). The
  noise is neurokit2's ``signal_distort`` (Laplace noise at 5, 10 and 100 Hz, 50 Hz powerline,
  artefact bursts, linear drift), rescaled to the SNR: a generator written independently of
  ``ecgssl.delineation.augment``. Most of its power is drift below 0.5 Hz, which every method
  filters out, so the report also gives the SNR left inside 0.5-40 Hz (``band_snr``).
* ``rates``: the fold-0 test records (fold-0 model) resampled (polyphase) to 128, 360, 1000 Hz.
* ``lead_groups``: models trained (fold-0 training records) on limb leads only and tested on
  chest leads of the fold-0 test records, and the reverse (``python -m ecgssl.delineation.train
  --stage lead_groups``; they use the fold-0 model's post-processing choice).
* ``qrs_vs_rpeaks``: the bundled model (trained on all of LUDB: MIT-BIH and CPSC are unseen)
  on MIT-BIH 100 (MLII and V5, each alone) and the CPSC 2021 sample (each lead alone): predicted
  QRS onsets matched to the reference beats within [-150, +150] ms of R (F1), onset - R in ms.
* ``rpeaks``: R-peak detectors (``ecgssl.delineation.rpeaks.DETECTORS``: ours, the delineator's,
  neurokit2's seven) on MIT-BIH 100, CPSC 2021 sample, fold-0 LUDB test lead II, clean and at
  6 dB SNR (``RPEAK_SNR_DB``); a detection matches a reference beat within +-75 ms (one-to-one);
  Se, PPV, F1.
* ``speed``: records/s of each delineator (10 s 12-lead LUDB records; MIT-BIH 100's MLII, 30
  min, 5 min with ``--quick``).

Fold models (``--work runs/delineation``), for each K in 0..4::

    nice -n 10 python -m ecgssl.delineation.train --stage fold --fold K
    python -m ecgssl.delineation.train --stage select --fold K --out runs/delineation/final_unused

``--out`` must name a model that does not exist: ``select`` for fold 0 also writes its choice
into an existing ``--out`` model, by default the bundled one, which must keep its own.

``--quick``: 10 fold-0 test records for the fold-0 parts, the first 2 test records of each fold
for the CV, the first 5 min of MIT-BIH 100 and of 6 CPSC records. ``--records N``: the first N
test records (of fold 0, and of each fold for the CV). Writes ``benchmarks/results/
delineation_unseen[_quick].json`` and ``.md`` (``--out``, ``--stem``).

Run::

    nice -n 10 python benchmarks/delineation_unseen.py --quick
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ecgssl.data.preprocess import resample  # noqa: E402
from ecgssl.data.record import WAVE_QRS  # noqa: E402
from ecgssl.delineation.infer import Delineator  # noqa: E402
from ecgssl.delineation.rpeaks import DETECTORS, detect_lead  # noqa: E402
from ecgssl.delineation.train import N_FOLDS, ludb_folds  # noqa: E402
from ecgssl.errors import ECGDataError  # noqa: E402
from ecgssl.eval.delineation_baselines import (  # noqa: E402
    AnnotatedLead,
    ludb_annotated_leads,
    nk_delineate_lead,
)
from ecgssl.eval.segmentation_metrics import SegmentationScorer, match_points  # noqa: E402

PARTS = ("ludb", "noise", "rates", "lead_groups", "qrs_vs_rpeaks", "rpeaks", "speed")
METHODS = ("ecgssl", "nk_prominence", "nk_dwt")
SNRS_DB = (24.0, 12.0, 6.0, 0.0, -6.0)
RPEAK_SNR_DB = 6.0  # the noise-stressed copies of the R-peak sets (long records: one SNR)
NOISE_BAND_HZ = (0.5, 40.0)  # where P, QRS and T carry their power (band_snr)
RATES = (128.0, 360.0, 1000.0)
LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
CHEST = ("V1", "V2", "V3", "V4", "V5", "V6")
FOLD_TABLE_METHODS = ("ecgssl", "nk_prominence")
RPEAK_TOL_S = 0.075
QRS_TOL_S = 0.150


def _clean(obj):
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


# ------------------------------------------------------------------------------ data


def add_noise(x: np.ndarray, fs: float, snr_db: float, seed: int) -> np.ndarray:
    """x + neurokit2 ``signal_distort`` noise rescaled to ``snr_db`` (power ratio)."""
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        distorted = nk.signal_distort(
            np.asarray(x, dtype=np.float64), sampling_rate=int(round(fs)), noise_shape="laplace",
            noise_amplitude=0.3, noise_frequency=[5, 10, 100], powerline_amplitude=0.1,
            powerline_frequency=50, artifacts_amplitude=0.5, artifacts_frequency=20,
            artifacts_number=3, linear_drift=True, random_state=seed, silent=True)
    noise = distorted - x
    p_sig = np.var(x)
    p_noise = max(np.var(noise), 1e-12)
    return (x + noise * np.sqrt(p_sig / p_noise / 10 ** (snr_db / 10))).astype(np.float32)


def noisy_leads(items, snr_db: float):
    return [AnnotatedLead(it.record_id, it.lead, add_noise(it.signal, it.fs, snr_db, k),
                          it.fs, it.waves, it.span) for k, it in enumerate(items)]


def band_snr(clean, noisy, band_hz: tuple[float, float] = NOISE_BAND_HZ) -> dict:
    """What a noise condition leaves inside the band where the waves live.

    ``add_noise`` sets the SNR over all frequencies, and most of ``signal_distort``'s power is
    drift below 0.5 Hz, which every delineator's filtering removes; this measures the SNR that
    remains in ``band_hz``.

    Args:
        clean, noisy: lists of ``AnnotatedLead`` (the same leads before and after the noise).
    Returns:
        {"band_hz", "band_snr_db_mean", "band_snr_db_min" (dB over the leads), and
        "noise_power_below_band" (fraction of the noise power below band_hz[0], lead mean)}.
    """
    snrs, low = [], []
    for a, b in zip(clean, noisy):
        x = np.asarray(a.signal, dtype=np.float64)
        n = np.asarray(b.signal, dtype=np.float64) - x
        f = np.fft.rfftfreq(x.size, 1.0 / a.fs)
        inside = (f >= band_hz[0]) & (f <= band_hz[1])
        px, pn = np.abs(np.fft.rfft(x - x.mean())) ** 2, np.abs(np.fft.rfft(n - n.mean())) ** 2
        snrs.append(10 * np.log10(max(px[inside].sum(), 1e-12) / max(pn[inside].sum(), 1e-12)))
        low.append(pn[f < band_hz[0]].sum() / max(pn.sum(), 1e-12))
    return {"band_hz": list(band_hz), "band_snr_db_mean": float(np.mean(snrs)),
            "band_snr_db_min": float(np.min(snrs)),
            "noise_power_below_band": float(np.mean(low))}


def resampled_leads(items, fs_out: float):
    out = []
    for it in items:
        r = fs_out / it.fs
        w = it.waves.copy()
        w[:, 1:] = np.where(w[:, 1:] >= 0, np.round(w[:, 1:] * r), -1)
        out.append(AnnotatedLead(it.record_id, it.lead, resample(it.signal, it.fs, fs_out),
                                 fs_out, w, (int(round(it.span[0] * r)),
                                             int(round(it.span[1] * r)))))
    return out


def long_records(root: Path, quick: bool):
    """(record_id, lead, signal mV, fs, reference beat samples) of MIT-BIH 100 and CPSC 2021."""
    from ecgssl.io.long_records import read_long_record

    paths = [root / "mitdb-100" / "100"]
    cpsc = sorted((root / "cpsc2021-sample").glob("*.hea"))
    paths += [p.with_suffix("") for p in (cpsc[:6] if quick else cpsc)]
    out = []
    for path in paths:
        rec = read_long_record(path, source=path.parent.name)
        n = rec.n_samples if not quick else min(rec.n_samples, int(300 * rec.fs))
        beats = rec.annotations["beats"]["samples"]
        beats = beats[beats < n]
        for k, lead in enumerate(rec.leads):
            out.append((rec.record_id, lead, rec.signal[k, :n].astype(np.float32), rec.fs,
                        beats))
    return out


# ------------------------------------------------------------------------------ fold models


def fold_path(fold_model: str | Path, k: int) -> Path:
    """Stem of fold ``k``'s model: ``fold{k}`` beside ``--fold-model``."""
    return Path(fold_model).parent / f"fold{k}"


def kfold_tests(ludb_root: str | Path) -> list[list[str]]:
    """Test record numbers of each fold of the split the fold models are trained on
    (``ecgssl.delineation.train.ludb_folds``), as strings."""
    return [[str(n) for n in test] for _, _, test in ludb_folds(ludb_root)[1]]


def train_hint(k: int, work: Path) -> str:
    """The two commands that build fold ``k``'s model and its post-processing choice."""
    return (f"`nice -n 10 python -m ecgssl.delineation.train --stage fold --fold {k} --work "
            f"{work}`, then `python -m ecgssl.delineation.train --stage select --fold {k} --work "
            f"{work} --out {work}/final_unused` (an --out that does not exist: for fold 0, select "
            "also writes its choice into an existing --out model, by default the bundled one)")


def load_fold_model(stem: str | Path, k: int, expected_test: list[str]) -> Delineator:
    """Fold ``k``'s model at ``stem`` (``fold_path``), refused unless it is what the CV
    protocol needs.

    Raises:
        SystemExit: a file is missing (the message gives the training commands); the model's test
            records are not fold ``k`` of ``patient_kfold(5, seed=0)``; or its post-processing was
            not chosen on its own validation records (``--stage select --fold k``).
    """
    stem = Path(stem)
    for f in (stem.with_suffix(".json"), stem.with_suffix(".safetensors")):
        if not f.is_file():
            raise SystemExit(f"fold {k}: {f} is missing: train it with "
                             f"{train_hint(k, stem.parent)}")
    dl = Delineator.load(stem)
    split = dl.spec.get("split", {})
    test = [str(r) for r in split.get("test", [])]
    if split.get("fold", k) != k or test != list(expected_test):
        raise SystemExit(f"fold {k}: {stem} was trained on another split: its test records "
                         f"({len(test)}: {test[:5]}...) are not fold {k} of patient_kfold(5, "
                         f"seed=0) of LUDB ({len(expected_test)}: {list(expected_test)[:5]}...); "
                         f"retrain it with {train_hint(k, stem.parent)}")
    val = dl.spec.get("validation") or {}
    if "postprocess" not in dl.spec or [str(r) for r in val.get("records", [])] != \
            [str(r) for r in split.get("val", [])]:
        raise SystemExit(f"fold {k}: {stem}.json has no post-processing chosen on its own "
                         f"validation records: run `python -m ecgssl.delineation.train --stage "
                         f"select --fold {k} --work {stem.parent} --out "
                         f"{stem.parent}/final_unused`")
    return dl


# ------------------------------------------------------------------------------ delineation


def predict(method: str, x: np.ndarray, fs: float, dl: Delineator | None, rid: str):
    if method == "ecgssl":
        return dl.waves(x, fs, ["x"])["x"]
    return nk_delineate_lead(x, fs, method.removeprefix("nk_"), rid)


def _score_method(method: str, items, dl) -> tuple[SegmentationScorer, list[str], float]:
    """One method over the leads: (scorer, failures scored as misses, seconds)."""
    scorer = SegmentationScorer(items[0].fs)
    failures = []
    t0 = time.perf_counter()
    for it in items:
        try:
            pred = predict(method, it.signal, it.fs, dl, it.record_id)
        except ECGDataError as exc:
            failures.append(f"{it.record_id}/{it.lead}: {exc.problem}")
            pred = np.zeros((0, 3), dtype=np.int64)
        scorer.add_lead(pred, it.waves, it.span, record_id=it.record_id,
                        n_samples=it.signal.size)
    return scorer, failures, round(time.perf_counter() - t0, 2)


def score_leads(items, methods, dl: Delineator) -> dict:
    """Scores of each method over the leads; failures (neurokit) listed and scored as misses."""
    out = {}
    for method in methods:
        scorer, failures, seconds = _score_method(method, items, dl)
        out[method] = {"summary": scorer.summary(), "n_leads": len(items),
                       "failures_scored_as_misses": failures, "seconds": seconds}
    return out


def score_cv(folds: dict, methods) -> tuple[dict, dict]:
    """Cross-validation scores: every fold's leads scored with that fold's own model, pooled.

    Args:
        folds: {fold k: (leads of fold k's test records, fold k's Delineator)}. The neurokit2
            methods do not depend on the fold (nothing is trained): they run on the same leads.
        methods: names of ``METHODS``.
    Returns:
        (pooled, per_fold): ``pooled`` in the format of ``score_leads`` over the leads of all
        folds (each fold's scorer merged, so every record counts once); ``per_fold`` {k:
        {"test_records", "n_records", "methods": {method: {"summary", "n_leads",
        "failures_scored_as_misses"}}}}.
    """
    pooled, per_fold, seen = {}, {}, {}
    for k, (items, _) in folds.items():
        records = list(dict.fromkeys(it.record_id for it in items))
        for rid in records:
            if rid in seen:  # pooling would count this record twice
                raise ValueError(f"record {rid} is in the test records of folds {seen[rid]} "
                                 f"and {k}: CV test parts must be disjoint")
            seen[rid] = k
        per_fold[k] = {"test_records": records, "n_records": len(records), "methods": {}}
    fs = next(iter(folds.values()))[0][0].fs
    for method in methods:
        merged, failures, seconds, n_leads = SegmentationScorer(fs), [], 0.0, 0
        for k, (items, dl) in folds.items():
            scorer, fails, secs = _score_method(method, items, dl)
            per_fold[k]["methods"][method] = {"summary": scorer.summary(), "n_leads": len(items),
                                              "failures_scored_as_misses": fails}
            failures += fails
            seconds += secs
            n_leads += len(items)
            merged.merge(scorer)
        pooled[method] = {"summary": merged.summary(), "n_leads": n_leads,
                          "failures_scored_as_misses": failures, "seconds": round(seconds, 2)}
    return pooled, per_fold


def qrs_vs_rpeaks(longs, methods, dl: Delineator) -> dict:
    """QRS onsets matched to reference R within +-150 ms: Se, PPV, F1, onset - R (ms)."""
    out = {}
    for method in methods:
        tp = fp = fn = 0
        errs, failures = [], []
        t0 = time.perf_counter()
        for rid, lead, x, fs, beats in longs:
            try:
                waves = predict(method, x, fs, dl, rid)
            except ECGDataError as exc:
                failures.append(f"{rid}/{lead}: {exc.problem}")
                waves = np.zeros((0, 3), dtype=np.int64)
            on = waves[(waves[:, 0] == WAVE_QRS) & (waves[:, 1] >= 0), 1]
            # Only the stretch the reference covers counts (first to last beat +- tolerance).
            lo, hi = beats.min() - QRS_TOL_S * fs, beats.max() + QRS_TOL_S * fs
            on = on[(on >= lo) & (on <= hi)]
            pi, ti = match_points(on, beats, QRS_TOL_S * fs)
            tp += len(pi)
            fp += len(on) - len(pi)
            fn += len(beats) - len(ti)
            errs += ((on[pi] - beats[ti]) * 1000.0 / fs).tolist()
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        out[method] = {"se": tp / max(tp + fn, 1), "ppv": tp / max(tp + fp, 1), "f1": f1,
                       "onset_minus_r_ms_mean": float(np.mean(errs)) if errs else None,
                       "onset_minus_r_ms_sd": float(np.std(errs, ddof=1)) if len(errs) > 1
                       else None, "tp": tp, "fp": fp, "fn": fn, "failures": failures,
                       "seconds": round(time.perf_counter() - t0, 2)}
    return out


# ------------------------------------------------------------------------------ R-peaks


def ludb_rpeaks(root: Path, items, lead: str = "II"):
    """(rid, lead, x, fs, reference R (the annotated QRS peaks), span) of one lead per record."""
    from ecgssl.io.ludb import read_ludb

    out = []
    for it in items:
        if it.lead != lead:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = read_ludb(root, it.record_id.split("/")[-1])
        w4 = np.asarray(rec.annotations["waves"][lead], dtype=np.int64).reshape(-1, 4)
        ref = w4[(w4[:, 0] == WAVE_QRS) & (w4[:, 2] >= 0), 2]
        out.append((it.record_id, lead, it.signal, it.fs, ref, it.span))
    return out


def rpeak_sets(longs, ludb_ii, snr_db: float):
    """{set name: [(rid, lead, x, fs, ref, span)]}: clean sets and noise-stressed copies."""
    base = {"mitdb100": [(r, lead, x, fs, b, None) for r, lead, x, fs, b in longs
                         if r.startswith("mitdb")],
            "cpsc2021": [(r, lead, x, fs, b, None) for r, lead, x, fs, b in longs
                         if r.startswith("cpsc")],
            "ludb_II": ludb_ii}
    sets = dict(base)
    for name, rows in base.items():
        sets[f"{name}_{snr_db:g}dB"] = [(r, lead, add_noise(x, fs, snr_db, k), fs, b, s)
                                        for k, (r, lead, x, fs, b, s) in enumerate(rows)]
    return sets


def score_rpeaks(sets, detectors) -> dict:
    out = {}
    for set_name, rows in sets.items():
        out[set_name] = {}
        for det in detectors:
            tp = fp = fn = 0
            failures = []
            t0 = time.perf_counter()
            for rid, lead, x, fs, ref, span in rows:
                try:
                    peaks = detect_lead(x, fs, det, rid)
                except ECGDataError as exc:
                    failures.append(f"{rid}/{lead}: {exc.problem}")
                    peaks = np.zeros(0, dtype=np.int64)
                tol = RPEAK_TOL_S * fs
                lo, hi = (span if span is not None else (ref.min() - tol, ref.max() + tol))
                peaks = peaks[(peaks >= lo - tol) & (peaks < hi + tol)]
                pi, ti = match_points(peaks, ref, tol)
                tp += len(pi)
                inside = (peaks >= lo) & (peaks < hi)
                matched = np.zeros(len(peaks), dtype=bool)
                matched[pi] = True
                fp += int((~matched & inside).sum())
                fn += len(ref) - len(ti)
            out[set_name][det] = {"se": tp / max(tp + fn, 1), "ppv": tp / max(tp + fp, 1),
                                  "f1": 2 * tp / max(2 * tp + fp + fn, 1), "tp": tp, "fp": fp,
                                  "fn": fn, "failures": failures,
                                  "seconds": round(time.perf_counter() - t0, 2)}
    return out


# ------------------------------------------------------------------------------ report


def _fmt(v, pct=True):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:+.1f}"


def seg_table(title: str, result: dict) -> list[str]:
    lines = [f"**{title}**", "", "| method | wave | on F1 % | on err ms | off F1 % | off err ms "
             "| leads | failed |", "|---|---|---|---|---|---|---|---|"]
    for method, r in result.items():
        s = r["summary"]
        for wave in ("P", "QRS", "T"):
            e = s[wave]
            cells = []
            for kind in ("onset", "offset"):
                k = e[kind]
                err = ("n/a" if k["error_mean_ms"] != k["error_mean_ms"] else
                       f"{k['error_mean_ms']:+.1f} +- {k['error_sd_ms']:.1f}")
                cells += [_fmt(k["f1"]), err]
            lines.append(f"| {method} | {wave} | " + " | ".join(cells) +
                         f" | {r['n_leads']} | {len(r['failures_scored_as_misses'])} |")
    return lines + [""]


def wave_f1(summary: dict, wave: str) -> float:
    """Mean of a wave's onset and offset F1 (fraction; NaN when neither is defined)."""
    vals = [summary[wave][kind]["f1"] for kind in ("onset", "offset")]
    vals = [v for v in vals if v is not None and v == v]
    return float(np.mean(vals)) if vals else float("nan")


def fold_table(per_fold: dict, methods=FOLD_TABLE_METHODS) -> list[str]:
    """Per-fold mean onset/offset F1 per wave of ``methods``, then mean +- SD over folds."""
    shown = [m for m in methods if all(m in f["methods"] for f in per_fold.values())]
    cols = [(m, w) for m in shown for w in ("P", "QRS", "T")]
    lines = ["**Per fold: mean of onset and offset F1 % per wave (ecgssl: that fold's model)**",
             "", "| fold | test records | " + " | ".join(f"{m} {w}" for m, w in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    table = {c: [] for c in cols}
    for k, f in per_fold.items():
        cells = []
        for m, w in cols:
            v = wave_f1(f["methods"][m]["summary"], w)
            table[(m, w)].append(v)
            cells.append(_fmt(v))
        lines.append(f"| {k} | {f['n_records']} | " + " | ".join(cells) + " |")
    if len(per_fold) > 1:
        cells = []
        for c in cols:
            v = np.asarray(table[c], dtype=np.float64)
            v = v[~np.isnan(v)]
            cells.append("n/a" if v.size < 2 else
                         f"{100 * v.mean():.1f} +- {100 * v.std(ddof=1):.1f}")
        lines.append("| mean +- SD over folds | " +
                     f"{sum(f['n_records'] for f in per_fold.values())} | " +
                     " | ".join(cells) + " |")
    return lines + [""]


def write_report(results: dict, out: Path, meta: dict) -> None:
    md = ["# Delineation and R-peaks on stand-ins for unseen data", "",
          f"Command: `{meta['command']}` ({meta['seconds']:.0f} s, {meta['platform']}). "
          f"Parts run: {', '.join(meta['parts'])}." + (" QUICK subset." if meta["quick"] else ""),
          "", "Tolerance +-150 ms, annotated span only; errors predicted - expert (ms, mean +- "
          "SD); neurokit failures scored as misses (counted in 'failed').", ""]
    for key, r in results.items():
        if key.startswith("seg:"):
            md += seg_table(key[4:], r)
        elif key == "ludb_cv_folds":
            md += fold_table(r)
    if "noise_in_band" in results:
        md += ["**Noise: SNR over all frequencies (as set) and what is left inside "
               f"{NOISE_BAND_HZ[0]:g}-{NOISE_BAND_HZ[1]:g} Hz** (mean and worst over the leads; "
               "most of the noise power is drift below the band)", "",
               "| SNR set dB | in-band SNR dB, mean | in-band SNR dB, worst lead | noise power "
               f"below {NOISE_BAND_HZ[0]:g} Hz % |", "|---|---|---|---|"]
        for snr, r in results["noise_in_band"].items():
            md.append(f"| {snr} | {r['band_snr_db_mean']:+.1f} | {r['band_snr_db_min']:+.1f} | "
                      f"{100 * r['noise_power_below_band']:.0f} |")
        md.append("")
    if "qrs_vs_rpeaks" in results:
        md += ["**QRS onsets vs reference R-peaks (bundled model; MIT-BIH 100 + CPSC 2021 "
               "sample, each lead alone, match within +-150 ms)**", "",
               "| method | Se % | PPV % | F1 % | onset - R ms | failed |",
               "|---|---|---|---|---|---|"]
        for m, r in results["qrs_vs_rpeaks"].items():
            err = ("n/a" if r["onset_minus_r_ms_mean"] is None else
                   f"{r['onset_minus_r_ms_mean']:+.1f} +- {r['onset_minus_r_ms_sd']:.1f}")
            md.append(f"| {m} | {_fmt(r['se'])} | {_fmt(r['ppv'])} | {_fmt(r['f1'])} | {err} | "
                      f"{len(r['failures'])} |")
        md.append("")
    if "rpeaks" in results:
        sets = list(results["rpeaks"])
        md += ["**R-peak F1 % (+-75 ms)**", "", "| detector | " + " | ".join(sets) + " | mean |",
               "|---|" + "---|" * (len(sets) + 1)]
        dets = list(results["rpeaks"][sets[0]])
        for d in dets:
            f1s = [results["rpeaks"][s][d]["f1"] for s in sets]
            md.append(f"| {d} | " + " | ".join(_fmt(v) for v in f1s) +
                      f" | {_fmt(float(np.mean(f1s)))} |")
        md += ["", f"Best mean F1: **{results['rpeaks_best']}**.", ""]
    if "speed" in results:
        md += ["**Speed** (records/s, this machine, shared CPU)", "",
               "| method | 10 s 12-lead LUDB records/s | one long lead: minutes, seconds taken |",
               "|---|---|---|"]
        for m, r in results["speed"].items():
            md.append(f"| {m} | {r['ludb_records_per_s']:.2f} | {r['long_lead_minutes']:.0f} min "
                      f"in {r['long_lead_s']:.1f} s |")
        md.append("")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps(_clean({"meta": meta, "results": results}),
                                                   indent=1) + "\n")


# ------------------------------------------------------------------------------ main


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--fold-model", default=str(REPO / "runs" / "delineation" / "fold0"),
                        help="the fold-0 model (noise, rates, lead groups, R-peaks on LUDB, "
                        "speed); its folder holds fold{K} for --folds and leads_{limb,chest}")
    parser.add_argument("--folds", default=",".join(str(k) for k in range(N_FOLDS)),
                        help="folds of the LUDB CV (part ludb), comma-separated")
    parser.add_argument("--model", default=None, help="bundled model by default")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="delineators scored (every part but rpeaks), comma-separated")
    parser.add_argument("--noise-snrs", default=",".join(f"{v:g}" for v in SNRS_DB),
                        help="SNRs (dB) of the noise part, comma-separated")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", type=int, default=None,
                        help="use only the first N test records (of fold 0 for the fold-0 "
                        "parts, of each fold for the CV; smoke runs)")
    parser.add_argument("--stem", default=None, help="result file name (default "
                        "delineation_unseen[_quick])")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        parser.error(f"unknown parts {bad}; choose from {PARTS}")
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        parser.error(f"unknown methods {bad}; choose from {METHODS}")
    try:
        folds = [int(k) for k in args.folds.split(",") if k.strip()]
        snrs = _floats(args.noise_snrs)
    except ValueError as exc:
        parser.error(f"--folds takes integers, --noise-snrs numbers: {exc}")
    if not folds or len(set(folds)) != len(folds) or not all(0 <= k < N_FOLDS for k in folds):
        parser.error(f"--folds must be distinct folds in 0..{N_FOLDS - 1}, got {args.folds!r}")
    if "noise" in parts and not snrs:
        parser.error("--noise-snrs is empty")
    import torch

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    t_start = time.perf_counter()
    results: dict = {}
    tests = kfold_tests(data / "ludb")
    fold = load_fold_model(args.fold_model, 0, tests[0])
    bundled = Delineator.load(args.model)
    test = fold.spec["split"]["test"][: args.records or (10 if args.quick else None)]
    items = list(ludb_annotated_leads(data / "ludb", test, leads=("all",)))
    cv_meta: dict = {}

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", flush=True)

    if "ludb" in parts:
        # Checked and loaded before anything is scored: a missing fold fails in seconds.
        cv_models = {k: fold if fold_path(args.fold_model, k) == Path(args.fold_model) else
                     load_fold_model(fold_path(args.fold_model, k), k, tests[k]) for k in folds}
        per_fold_n = args.records or (2 if args.quick else None)
        cv = {k: (list(ludb_annotated_leads(data / "ludb", tests[k][:per_fold_n],
                                            leads=("all",))), cv_models[k]) for k in folds}
        pooled, per_fold = score_cv(cv, methods)
        n_rec = sum(f["n_records"] for f in per_fold.values())
        which = (f"{N_FOLDS}-fold CV" if sorted(folds) == list(range(N_FOLDS)) else
                 f"CV folds {','.join(map(str, folds))} of {N_FOLDS}")
        scope = (f"all {n_rec} records" if n_rec == sum(map(len, tests)) else
                 f"{n_rec} record{'s' if n_rec != 1 else ''}")
        results[f"seg:LUDB {which} by patient (each fold's model on its own test records, "
                f"{scope}), clean, 500 Hz"] = pooled
        results["ludb_cv_folds"] = per_fold
        cv_meta = {k: {"model": str(fold_path(args.fold_model, k)),
                       "test_records": per_fold[k]["test_records"],
                       "postprocess": m.postprocess,
                       "postprocess_chosen": m.spec["validation"].get("chosen_name"),
                       "validation_records": len(m.spec["validation"]["records"]),
                       "training_steps": m.spec.get("training", {}).get("steps")}
                   for k, m in cv_models.items()}
        log("ludb done")
    if "noise" in parts:
        results["noise_in_band"] = {}
        for snr in snrs:
            noisy = noisy_leads(items, snr)
            results["noise_in_band"][f"{snr:g}"] = band_snr(items, noisy)
            results[f"seg:LUDB fold-0 test records (fold-0 model) + noise {snr:g} dB SNR"] = \
                score_leads(noisy, methods, fold)
            log(f"noise {snr} done")
    if "rates" in parts:
        for rate in RATES:
            results[f"seg:LUDB fold-0 test records (fold-0 model) resampled to {rate:g} Hz"] = \
                score_leads(resampled_leads(items, rate), methods, fold)
            log(f"rate {rate} done")
    if "lead_groups" in parts:
        for tag, dst in (("limb", CHEST), ("chest", LIMB)):
            path = Path(args.fold_model).parent / f"leads_{tag}"
            if not path.with_suffix(".json").is_file():
                raise SystemExit(f"{path}.json is missing: train it with `python -m "
                                 "ecgssl.delineation.train --stage lead_groups`")
            dl = Delineator.load(path)
            if dl.spec["split"]["test"] != fold.spec["split"]["test"]:
                raise SystemExit(f"{path}: trained on another split than {args.fold_model}")
            dl.spec["postprocess"] = fold.postprocess  # the choice made on validation
            steps = dl.spec["training"]["steps"]
            other = "chest" if tag == "limb" else "limb"
            results[f"seg:leave-lead-group-out: trained on {tag} leads ({steps} steps), "
                    f"tested on {other} leads, LUDB fold-0 test records"] = \
                score_leads([it for it in items if it.lead in dst], methods, dl)
            log(f"lead group {tag} done")
    longs = None
    if "qrs_vs_rpeaks" in parts or "rpeaks" in parts or "speed" in parts:
        longs = long_records(data, args.quick)
    if "qrs_vs_rpeaks" in parts:
        results["qrs_vs_rpeaks"] = qrs_vs_rpeaks(longs, methods, bundled)
        log("qrs vs rpeaks done")
    if "rpeaks" in parts:
        sets = rpeak_sets(longs, ludb_rpeaks(data / "ludb", items), RPEAK_SNR_DB)
        results["rpeaks"] = score_rpeaks(sets, list(DETECTORS))
        means = {d: float(np.mean([results["rpeaks"][s][d]["f1"] for s in sets]))
                 for d in DETECTORS}
        results["rpeaks_best"] = max(means, key=means.get)
        results["rpeaks_mean_f1"] = means
        log("rpeaks done")
    if "speed" in parts:
        results["speed"] = {}
        recs = sorted({it.record_id for it in items})[:5]
        by_rec = {r: [it for it in items if it.record_id == r] for r in recs}
        x_long, fs_long = longs[0][2], longs[0][3]
        for method in methods:
            t0 = time.perf_counter()
            for leads in by_rec.values():
                if method == "ecgssl":
                    bundled.waves(np.stack([it.signal for it in leads]), leads[0].fs,
                                  [it.lead for it in leads])
                else:
                    for it in leads:
                        try:
                            predict(method, it.signal, it.fs, None, it.record_id)
                        except ECGDataError:
                            pass  # speed only; accuracy parts count failures
            per_s = len(by_rec) / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            try:
                predict(method, x_long, fs_long, bundled, "long")
            except ECGDataError:
                pass
            results["speed"][method] = {"ludb_records_per_s": per_s,
                                        "long_lead_s": time.perf_counter() - t0,
                                        "long_lead_minutes": x_long.size / fs_long / 60}
        log("speed done")
    meta = {"command": "python benchmarks/delineation_unseen.py " + " ".join(argv or sys.argv[1:]),
            "seconds": time.perf_counter() - t_start, "parts": parts, "quick": args.quick,
            "platform": f"{platform.machine()}, torch threads {args.threads}",
            "fold_model": str(args.fold_model), "test_records": test,
            "fold_model_postprocess": fold.postprocess, "methods": methods,
            "folds": folds if "ludb" in parts else None, "cv_folds": cv_meta,
            "noise_snrs_db": snrs if "noise" in parts else None,
            "rpeak_snr_db": RPEAK_SNR_DB if "rpeaks" in parts else None,
            "bundled_model_postprocess": bundled.postprocess}
    stem = args.stem or ("delineation_unseen_quick" if args.quick else "delineation_unseen")
    out = Path(args.out) / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(results, out, meta)
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
