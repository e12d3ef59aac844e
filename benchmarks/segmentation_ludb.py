"""Benchmark: supervised P/QRS/T segmentation on LUDB against the neurokit2 delineator.

A U-Net-style 1-D CNN (``unet1d`` encoder + U-Net decoder) trained from scratch on the expert
masks, 5-fold cross-validation by patient (validation carved from the training folds, epoch
chosen on validation Dice, each test fold predicted once), scored by the same code as neurokit2's
``prominence`` delineator on the same leads and records (inside each lead's annotated span,
onsets/offsets within +-150 ms).

Run:  python benchmarks/segmentation_ludb.py [--epochs 30] [--folds 5] [--threads 2]
Writes benchmarks/results/segmentation_ludb/ (report.md, report.json, figures) and prints the
table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ludb", default=str(ROOT / "data" / "ludb"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "segmentation_ludb"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--encoder", default="unet1d")
    args = parser.parse_args()

    import torch

    from ecgssl.api import load_encoder
    from ecgssl.data.leads import LEADS_8
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.data.store import ECGStore, prepare_store
    from ecgssl.eval.suite import SuiteConfig, run_suite
    from ecgssl.io import open_source
    from ecgssl.models import create_encoder
    from ecgssl.train.export import export_encoder

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    work = Path(args.work)
    prepare_store(open_source(args.ludb, checks=None), work / "store",
                  PreprocessConfig(beats=False), progress=False)
    store = ECGStore(work / "store")
    # The suite's supervised row trains this architecture from scratch; the frozen random row
    # of the same architecture is kept as the reference for what the decoder alone learns.
    torch.manual_seed(0)
    encoder = create_encoder(args.encoder, n_leads=len(LEADS_8))
    export_encoder(encoder, work / "random_init", store.config, leads=list(LEADS_8))
    cfg = SuiteConfig(tasks=["segmentation"], n_folds=args.folds, seg_epochs=args.epochs,
                      random_init=False, supervised=True, classical=True, n_boot=200)
    out = ROOT / "benchmarks" / "results" / "segmentation_ludb"
    results = run_suite({f"random-init {args.encoder} (frozen)":
                         load_encoder(work / "random_init.safetensors")}, store, out, cfg,
                        title="LUDB segmentation: supervised U-Net vs neurokit2")
    minutes = (time.perf_counter() - t0) / 60
    summary = {"command": "python benchmarks/segmentation_ludb.py "
                          f"--epochs {args.epochs} --folds {args.folds} --threads {args.threads}",
               "minutes": round(minutes, 1), "rows": {}}
    for name, res in results["segmentation"].items():
        pooled = res["pooled"]
        summary["rows"][name] = {w: {"dice": pooled[w]["dice"],
                                     "onset_f1": pooled[w]["onset"]["f1"],
                                     "offset_f1": pooled[w]["offset"]["f1"],
                                     "onset_err_sd_ms": pooled[w]["onset"]["error_sd_ms"],
                                     "offset_err_sd_ms": pooled[w]["offset"]["error_sd_ms"]}
                                 for w in ("P", "QRS", "T")}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"{'row':<50} {'wave':<4} {'Dice':>6} {'on F1':>6} {'off F1':>6} "
          f"{'on SD':>6} {'off SD':>6}")
    for name, waves in summary["rows"].items():
        for w, m in waves.items():
            print(f"{name[:50]:<50} {w:<4} {m['dice']:6.3f} {m['onset_f1']:6.3f} "
                  f"{m['offset_f1']:6.3f} {m['onset_err_sd_ms']:6.1f} {m['offset_err_sd_ms']:6.1f}")
    print(f"took {minutes:.1f} min; report: {out / 'report.md'}")


if __name__ == "__main__":
    main()
