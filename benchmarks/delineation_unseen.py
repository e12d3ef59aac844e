"""Delineation and R-peaks on data that stands in for unseen databases, beside neurokit2.

Methods on the same leads: ``ecgssl`` (the single-channel delineator, ``ecgssl.delineation``),
neurokit2 ``prominence`` and ``dwt`` (``ecgssl.eval.delineation_baselines``). Every lead is
delineated alone, at the rate of the protocol. Scoring: ``SegmentationScorer`` (annotated span
only, onsets/offsets matched one-to-one within +-150 ms, P not scored on leads without expert P).

Parts (``--parts``, default all):

* ``ludb``: LUDB fold-0 test records of ``patient_kfold(5, seed=0)`` (never seen in training or
  post-processing choice by the fold-0 model, ``python -m ecgssl.delineation.train --stage
  fold``), all 12 leads. Only fold 0 runs (the other folds would need four more trainings).
* ``noise``: the same leads plus noise at 24, 12 and 6 dB SNR (noise power relative to the
  lead's own power). The noise is neurokit2's ``signal_distort`` (Laplace noise at 5, 10 and
  100 Hz, 50 Hz powerline, artefact bursts, linear drift), rescaled to the SNR: a generator
  written independently of ``ecgssl.delineation.augment``.
* ``rates``: the same leads resampled (polyphase) to 128, 360 and 1000 Hz.
* ``lead_groups``: models trained (fold-0 training records) on limb leads only and tested on
  chest leads of the test records, and the reverse (``python -m ecgssl.delineation.train
  --stage lead_groups``; they use the fold-0 model's post-processing choice).
* ``qrs_vs_rpeaks``: the bundled model (trained on all of LUDB: MIT-BIH and CPSC are unseen)
  on MIT-BIH 100 (MLII and V5, each alone) and the CPSC 2021 sample (each lead alone): predicted
  QRS onsets matched to the reference beats within [-150, +150] ms of R (F1), onset - R in ms.
* ``rpeaks``: R-peak detectors (``ecgssl.delineation.rpeaks.DETECTORS``: ours, the delineator's,
  neurokit2's seven) on MIT-BIH 100, CPSC 2021 sample, LUDB test lead II, clean and at 6 dB SNR;
  a detection matches a reference beat within +-75 ms (one-to-one); Se, PPV, F1.
* ``speed``: records/s of each delineator (10 s 12-lead LUDB records; MIT-BIH 100's MLII, 30
  min, 5 min with ``--quick``).

``--quick``: 10 LUDB test records, the first 5 min of MIT-BIH 100 and of 6 CPSC records.
Writes ``benchmarks/results/delineation_unseen[_quick].json`` and ``.md``.

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
from ecgssl.errors import ECGDataError  # noqa: E402
from ecgssl.eval.delineation_baselines import (  # noqa: E402
    AnnotatedLead,
    ludb_annotated_leads,
    nk_delineate_lead,
)
from ecgssl.eval.segmentation_metrics import SegmentationScorer, match_points  # noqa: E402

PARTS = ("ludb", "noise", "rates", "lead_groups", "qrs_vs_rpeaks", "rpeaks", "speed")
METHODS = ("ecgssl", "nk_prominence", "nk_dwt")
SNRS_DB = (24.0, 12.0, 6.0)
RATES = (128.0, 360.0, 1000.0)
LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
CHEST = ("V1", "V2", "V3", "V4", "V5", "V6")
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


# ------------------------------------------------------------------------------ delineation


def predict(method: str, x: np.ndarray, fs: float, dl: Delineator | None, rid: str):
    if method == "ecgssl":
        return dl.waves(x, fs, ["x"])["x"]
    return nk_delineate_lead(x, fs, method.removeprefix("nk_"), rid)


def score_leads(items, methods, dl: Delineator) -> dict:
    """Scores of each method over the leads; failures (neurokit) listed and scored as misses."""
    out = {}
    for method in methods:
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
        out[method] = {"summary": scorer.summary(), "n_leads": len(items),
                       "failures_scored_as_misses": failures,
                       "seconds": round(time.perf_counter() - t0, 2)}
    return out


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


def write_report(results: dict, out: Path, meta: dict) -> None:
    md = ["# Delineation and R-peaks on stand-ins for unseen data", "",
          f"Command: `{meta['command']}` ({meta['seconds']:.0f} s, {meta['platform']}). "
          f"Parts run: {', '.join(meta['parts'])}." + (" QUICK subset." if meta["quick"] else ""),
          "", "Tolerance +-150 ms, annotated span only; errors predicted - expert (ms, mean +- "
          "SD); neurokit failures scored as misses (counted in 'failed').", ""]
    for key, r in results.items():
        if key.startswith("seg:"):
            md += seg_table(key[4:], r)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--fold-model", default=str(REPO / "runs" / "delineation" / "fold0"))
    parser.add_argument("--model", default=None, help="bundled model by default")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", type=int, default=None,
                        help="use only the first N test records (smoke runs)")
    parser.add_argument("--stem", default=None, help="result file name (default "
                        "delineation_unseen[_quick])")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        parser.error(f"unknown parts {bad}; choose from {PARTS}")
    data = Path(args.data)
    t_start = time.perf_counter()
    results: dict = {}
    fold = Delineator.load(args.fold_model)
    bundled = Delineator.load(args.model)
    test = fold.spec["split"]["test"][: args.records or (10 if args.quick else None)]
    items = list(ludb_annotated_leads(data / "ludb", test, leads=("all",)))

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", flush=True)

    if "ludb" in parts:
        results["seg:LUDB fold-0 test records, clean, 500 Hz"] = score_leads(items, METHODS,
                                                                             fold)
        log("ludb done")
    if "noise" in parts:
        for snr in SNRS_DB:
            results[f"seg:LUDB test + noise {snr:g} dB SNR"] = score_leads(
                noisy_leads(items, snr), METHODS, fold)
            log(f"noise {snr} done")
    if "rates" in parts:
        for rate in RATES:
            results[f"seg:LUDB test resampled to {rate:g} Hz"] = score_leads(
                resampled_leads(items, rate), METHODS, fold)
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
            results[f"seg:leave-lead-group-out: trained on {tag} leads ({steps} steps), "
                    f"tested on {'chest' if tag == 'limb' else 'limb'} leads, LUDB test"] = \
                score_leads([it for it in items if it.lead in dst], METHODS, dl)
            log(f"lead group {tag} done")
    longs = None
    if "qrs_vs_rpeaks" in parts or "rpeaks" in parts or "speed" in parts:
        longs = long_records(data, args.quick)
    if "qrs_vs_rpeaks" in parts:
        results["qrs_vs_rpeaks"] = qrs_vs_rpeaks(longs, METHODS, bundled)
        log("qrs vs rpeaks done")
    if "rpeaks" in parts:
        sets = rpeak_sets(longs, ludb_rpeaks(data / "ludb", items), 6.0)
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
        for method in METHODS:
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
            "fold_model_postprocess": fold.postprocess,
            "bundled_model_postprocess": bundled.postprocess}
    stem = args.stem or ("delineation_unseen_quick" if args.quick else "delineation_unseen")
    out = Path(args.out) / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(results, out, meta)
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
