"""R-peak detector accuracy and speed on real annotated ECGs (``ecgssl.data.beats``).

Data (``/work/shared/data``, override with ``ECGSSL_SHARED_DATA``):
- MIT-BIH Arrhythmia record 100 (30 min, MLII + V5, 360 Hz), reference beats from ``100.atr``
  (beat symbols only). Resampled to 250 Hz and cut into non-overlapping 10 s windows as
  ``prepare`` would; every reference beat inside a window counts.
- LUDB (10 s, 12 leads, 500 Hz, digital / 1000 = mV): reference QRS peaks = symbol ``N`` of the
  lead-ii annotation file; resampled to 250 Hz; only detections inside the annotated span
  (first to last annotation of lead ii, +- the tolerance) count.

A detection matches a reference beat within +-75 ms (one-to-one, nearest first). Prints and
writes JSON with sensitivity (TP / references), PPV (TP / detections) and the median time per
``annotate_beats`` call (with ``--detector``, a name of ``ecgssl.delineation.rpeaks.DETECTORS``;
default the prepare default, ``PREPARE_DETECTOR``) and the windows per second over all calls.
Timings taken on a busy machine are noisy: re-run on a quiet one. The bundled delineator
(``--detector delineator``) was trained on all of LUDB: its LUDB numbers are in-sample.

Usage: python benchmarks/rpeak_accuracy.py [--detector NAME] [--threads N] [--tolerance-s S]
       [--ludb-records N] [--mitdb-seconds S] [--out PATH]
       (default out: results/rpeak_accuracy_<detector>[_tol<ms>].json)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import wfdb
from scipy.signal import resample_poly

from ecgssl.data.beats import annotate_beats
from ecgssl.delineation.rpeaks import DETECTORS, PREPARE_DETECTOR

FS = 250
TOL_S = 0.075
MITDB_BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
LUDB_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def data_dir() -> Path:
    env = os.environ.get("ECGSSL_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def match(ref: np.ndarray, det: np.ndarray, tol: float) -> int:
    """Number of one-to-one matches within ``tol`` samples (closest pairs first)."""
    if len(ref) == 0 or len(det) == 0:
        return 0
    d = np.abs(ref[:, None].astype(float) - det[None, :].astype(float))
    pairs = np.argwhere(d <= tol)
    order = np.argsort(d[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_r, used_d, tp = set(), set(), 0
    for i, j in pairs[order]:
        if i not in used_r and j not in used_d:
            used_r.add(i)
            used_d.add(j)
            tp += 1
    return tp


def mitdb(seconds: float | None, root: Path, detector: str):
    rec = wfdb.rdrecord(str(root / "mitdb-100" / "100"))
    ann = wfdb.rdann(str(root / "mitdb-100" / "100"), "atr")
    fs0 = rec.fs
    sig = rec.p_signal.T
    if seconds is not None:
        sig = sig[:, : int(seconds * fs0)]
    keep = np.array([s in MITDB_BEAT_SYMBOLS for s in ann.symbol])
    ref_all = np.round(ann.sample[keep] * FS / fs0).astype(int)
    x = resample_poly(sig, 25, 36, axis=1)  # 360 -> 250 Hz
    leads = ["MLII" if n == "MLII" else n for n in rec.sig_name]
    win = 10 * FS
    tp = n_ref = n_det = 0
    times = []
    for start in range(0, x.shape[1] - win + 1, win):
        seg = x[:, start:start + win].astype(np.float32)
        t0 = time.perf_counter()
        det = annotate_beats(seg, FS, leads, record_id=f"100@{start}", detector=detector).rpeaks
        times.append(time.perf_counter() - t0)
        ref = ref_all[(ref_all >= start) & (ref_all < start + win)] - start
        tp += match(ref, det, TOL_S * FS)
        n_ref += len(ref)
        n_det += len(det)
    return {"windows": len(times), "references": n_ref, "detections": n_det, "tp": tp,
            "sensitivity": tp / max(n_ref, 1), "ppv": tp / max(n_det, 1),
            "median_ms_per_window": 1000 * float(np.median(times)),
            "windows_per_s": len(times) / float(np.sum(times))}


def ludb(n_records: int, root: Path, detector: str):
    base = root / "ludb" / "data"
    tp = n_ref = n_det = 0
    times, worst = [], []
    for rid in range(1, n_records + 1):
        rec = wfdb.rdrecord(str(base / str(rid)), physical=False)
        sig = rec.d_signal.T.astype(np.float64) / 1000.0  # digital units are microvolts
        ann = wfdb.rdann(str(base / str(rid)), "ii")
        fs0 = rec.fs
        sym = np.array(ann.symbol)
        ref = np.round(ann.sample[sym == "N"] * FS / fs0).astype(int)
        lo, hi = ann.sample.min() * FS / fs0, ann.sample.max() * FS / fs0
        x = resample_poly(sig, 1, fs0 // FS, axis=1).astype(np.float32)
        t0 = time.perf_counter()
        det = annotate_beats(x, FS, LUDB_LEADS, record_id=f"ludb/{rid}",
                             detector=detector).rpeaks
        times.append(time.perf_counter() - t0)
        tol = TOL_S * FS
        det = det[(det >= lo - tol) & (det <= hi + tol)]
        m = match(ref, det, tol)
        tp += m
        n_ref += len(ref)
        n_det += len(det)
        if m < len(ref) or m < len(det):
            worst.append({"record": rid, "references": len(ref), "detections": len(det), "tp": m})
    return {"records": n_records, "references": n_ref, "detections": n_det, "tp": tp,
            "sensitivity": tp / max(n_ref, 1), "ppv": tp / max(n_det, 1),
            "median_ms_per_record": 1000 * float(np.median(times)),
            "windows_per_s": len(times) / float(np.sum(times)), "errors": worst}


def main() -> None:
    global TOL_S
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default=PREPARE_DETECTOR, choices=sorted(DETECTORS))
    p.add_argument("--threads", type=int, default=1, help="torch threads (the delineator's)")
    p.add_argument("--tolerance-s", type=float, default=TOL_S,
                   help="match tolerance (s); 0.15 scores detection apart from peak placement")
    p.add_argument("--ludb-records", type=int, default=200)
    p.add_argument("--mitdb-seconds", type=float, default=None, help="default: whole record")
    p.add_argument("--out", help="default: results/rpeak_accuracy_<detector>.json (with another "
                   "tolerance: ..._<detector>_tol<ms>.json)")
    args = p.parse_args()
    TOL_S = args.tolerance_s  # read by mitdb() and ludb()
    import torch

    torch.set_num_threads(args.threads)
    tag = "" if TOL_S == 0.075 else f"_tol{round(1000 * TOL_S)}"
    out = Path(args.out or Path(__file__).parent / "results"
               / f"rpeak_accuracy_{args.detector}{tag}.json")
    root = data_dir()
    result = {"fs": FS, "tolerance_s": TOL_S, "detector": args.detector,
              "torch_threads": args.threads,
              "mitdb_100": mitdb(args.mitdb_seconds, root, args.detector),
              "ludb": ludb(args.ludb_records, root, args.detector)}
    for name in ("mitdb_100", "ludb"):
        r = result[name]
        print(f"{name}: sensitivity {r['sensitivity']:.4f}  PPV {r['ppv']:.4f}  "
              f"({r['tp']} / {r['references']} refs, {r['detections']} detections)  "
              f"{r['windows_per_s']:.1f} windows/s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
