"""Benchmark: the Beat-SSL ablation (arXiv 2601.16147, Table 1) at CPU scale.

Run:  python benchmarks/beatssl_ablation.py [--steps N] [--recipes NAME ...] [--quick]

1. prepares (or reuses) two stores under ``--work`` (default ``runs/beatssl_ablation``):
   the pretraining store (LUDB + CinC 2021 sample + MIT-BIH 100 + CPSC 2021 sample, with the
   beats extra, as ``ecgssl prepare ... --set "lead_aliases={MLII: II}" --set
   allow_upsampling=true --skip-bad``) and the LUDB evaluation store (``ecgssl prepare
   data/ludb``);
2. pretrains every ablation recipe (``src/ecgssl/configs/beatssl_*.yaml``) with the same budget:
   the same CPU-scale encoder, projector sizes, optimiser steps, batch size, learning rate and
   seed (``CPU_OVERRIDES``); only the loss options of the recipe differ between rows;
3. evaluates all encoders in one ``ecgssl.eval.suite.run_suite`` call (linear probe on the LUDB
   diagnoses, k-fold CV by patient; frozen-encoder P/QRS/T segmentation), so every row uses the
   same folds and there is one random-init row of the shared architecture;
4. writes ``benchmarks/results/beatssl_ablation.{json,md}`` (``--results``): one table with the
   probe macro AUROC / F1 (mean +- std over folds), segmentation Dice and onset/offset F1 per
   wave, pretraining diagnostics (final loss, partner accuracy, effective rank of the pooled
   LUDB features, to spot collapse) and the paper's numbers where the paper reports the row.

Every choice (probe C and thresholds, segmentation epoch) is made on validation inside
``run_suite``; the test folds are touched once. The paper evaluates on PTB-XL superdiagnostic
classes (T1) and LUDB segmentation (T2) after pretraining at scale on a GPU; here the probe task
is the LUDB diagnoses and pretraining is minutes of CPU, so the paper column is a reference for
the ordering of rows, not a number to reproduce. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CONFIGS = ROOT / "src" / "ecgssl" / "configs"

# Rows of the ablation: recipe file -> the paper's numbers where Table 1 reports the row
# (docs/methods.md section 2: T1 = PTB-XL superdiagnostic macro AUROC / F1, T2 = LUDB
# segmentation F1). None where the paper does not report the row (or the value).
ABLATION: dict[str, dict | None] = {
    "beatssl_simclr_hard.yaml": {"t1_auroc": 0.811, "t1_f1": 0.595, "t2_f1": 0.802},
    "beatssl_hard_beat_hard.yaml": None,
    "beatssl_soft1_g50_beat_none.yaml": None,
    "beatssl_soft1_g50_beat_hard.yaml": {"t1_auroc": 0.843, "t1_f1": 0.622, "t2_f1": 0.911},
    "beatssl_soft1_g1_beat_hard.yaml": {"t1_auroc": 0.681, "t1_f1": 0.247, "t2_f1": None},
    "beatssl_soft1_g50_beat_soft1.yaml": None,
    "beatssl_soft1_g50_beat_soft2.yaml": None,
    "beatssl_soft2_g50_beat_hard.yaml": None,
    "beatssl_soft2_g1_beat_hard.yaml": None,
}

# The shared CPU-scale budget: every row gets exactly these overrides on top of its recipe, so
# the rows differ only in their loss options. The encoder and projector sizes are those of
# configs/beatssl_cpu.yaml (the paper's encoder and sizes are not published).
CPU_OVERRIDES = [
    "encoder.widths=[16, 32, 48, 64, 128]",
    "method.proj_hidden=128",
    "method.proj_dim=64",
    "method.max_beats=512",
    "train.precision=32-true",
    "train.max_epochs=null",
    "train.min_lr=1.0e-5",
    "train.warmup_epochs=0",
    "train.progress_bar=false",
    "train.tensorboard=false",
    "train.log_every_n_steps=5",
]

WAVES = ("P", "QRS", "T")


# --------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------


def _prepare(args: list[str], out: Path) -> Path:
    """``ecgssl prepare <args> --out <out>`` unless a finished store is already there."""
    from ecgssl.cli import main as cli_main

    if (out / "config.json").is_file():
        print(f"reusing store {out}", flush=True)
        return out
    argv = ["prepare", *args, "--out", str(out), "--no-progress"]
    print("ecgssl " + " ".join(argv), flush=True)
    rc = cli_main(argv)
    if rc not in (0, None) or not (out / "config.json").is_file():
        raise RuntimeError(f"ecgssl prepare failed for {out} (exit {rc})")
    return out


def prepare_stores(work: Path, ludb: Path, shared: Path) -> tuple[Path, Path]:
    """The pretraining store (four sources, beats extra) and the LUDB evaluation store."""
    sources = [ludb, shared / "cinc2021-sample", shared / "mitdb-100",
               shared / "cpsc2021-sample"]
    missing = [str(s) for s in sources if not s.exists()]
    if missing:
        raise FileNotFoundError(f"data not found: {missing}")
    pretrain_store = _prepare([*map(str, sources), "--set", "lead_aliases={MLII: II}",
                               "--set", "allow_upsampling=true", "--skip-bad"],
                              work / "pretrain_store")
    eval_store = _prepare([str(ludb)], work / "ludb_store")
    return pretrain_store, eval_store


# --------------------------------------------------------------------------------------------
# Pretraining
# --------------------------------------------------------------------------------------------


def resolve_recipe(name: str) -> Path:
    """``soft1_g50_beat_hard``, ``beatssl_soft1_g50_beat_hard.yaml`` or a path -> the file."""
    path = Path(name)
    if path.suffix == ".yaml" and path.exists():
        return path.resolve()
    stem = path.stem if path.suffix == ".yaml" else name
    for candidate in (f"{stem}.yaml", f"beatssl_{stem}.yaml"):
        if (CONFIGS / candidate).is_file():
            return CONFIGS / candidate
    known = ", ".join(Path(k).stem.removeprefix("beatssl_") for k in ABLATION)
    raise SystemExit(f"unknown recipe {name!r}; ablation recipes: {known}")


def row_overrides(steps: int, batch_size: int, lr: float, seed: int) -> list[str]:
    return [*CPU_OVERRIDES, f"train.max_steps={steps}", f"train.batch_size={batch_size}",
            f"train.lr={lr}", f"train.seed={seed}", f"train.warmup_steps={max(1, steps // 10)}"]


def _last_metrics(metrics_csv: Path | None, window: int = 3) -> dict[str, float]:
    """Mean of the last ``window`` logged values of the training metrics (noisy per step)."""
    if metrics_csv is None or not Path(metrics_csv).is_file():
        return {}
    df = pd.read_csv(metrics_csv)
    out = {}
    for col in ("train/loss", "train/loss_rhythm", "train/loss_beat",
                "train/rhythm_partner_acc", "train/rhythm_z_std"):
        if col in df:
            vals = df[col].dropna().to_numpy()
            if vals.size:
                out[col.split("/", 1)[1]] = float(vals[-window:].mean())
    return out


def pretrain_row(recipe: Path, store: Path, run_dir: Path, overrides: list[str],
                 reuse: bool) -> dict:
    """Pretrain one recipe (or reuse a finished run with the same resolved recipe)."""
    from ecgssl.train.recipes import load_recipe
    from ecgssl.train.run import pretrain

    resolved = load_recipe(recipe, overrides)
    stamp = run_dir / "ablation_row.json"
    if reuse and stamp.is_file() and (run_dir / "encoder.safetensors").is_file():
        saved = json.loads(stamp.read_text())
        if saved.get("recipe") == resolved and saved.get("store") == str(store):
            print(f"reusing {run_dir}", flush=True)
            return {**saved, "reused": True}
    t0 = time.perf_counter()
    result = pretrain(recipe, store, run_dir, overrides=overrides)
    row = {"recipe_file": recipe.name, "recipe": resolved, "store": str(store),
           "run_dir": str(run_dir), "global_step": result.global_step,
           "samples_per_s": result.samples_per_s, "pretrain_s": time.perf_counter() - t0,
           "final": _last_metrics(result.metrics_csv)}
    stamp.write_text(json.dumps(row, indent=1, default=str))
    return row


# --------------------------------------------------------------------------------------------
# Diagnostics and the table
# --------------------------------------------------------------------------------------------


def feature_stats(encoder, store) -> dict[str, float]:
    """Spread of the pooled LUDB features (collapse check; same numbers as the training monitor).

    ``repr_eff_rank`` near 1 or ``repr_std`` near 0: the encoder maps every ECG to about the
    same vector.
    """
    from ecgssl.eval.embeddings import compute_embeddings
    from ecgssl.eval.suite import LeadView
    from ecgssl.methods.beat_ssl import representation_stats

    leads = list(encoder.spec["preprocessing"]["leads"])
    view = LeadView(store, leads)
    x = np.stack([view.signals[i] for i in range(len(store))])
    h = compute_embeddings(encoder.module, x, batch_size=32, progress=False)
    return representation_stats(torch.as_tensor(h, dtype=torch.float32))


def _get(d: dict, *keys, default=math.nan):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def seg_metrics(seg: dict, name: str) -> dict[str, float]:
    """Pooled Dice and onset/offset F1 per wave of one suite row (NaN when absent)."""
    key = next((k for k in seg if k.split(" (frozen")[0] == name), None)
    pooled = seg[key]["pooled"] if key else {}
    out = {}
    for w in WAVES:
        out[f"{w}_dice"] = float(_get(pooled, w, "dice"))
        for kind in ("onset", "offset"):
            out[f"{w}_{kind}_f1"] = float(_get(pooled, w, kind, "f1"))
        out[f"{w}_f1"] = (out[f"{w}_onset_f1"] + out[f"{w}_offset_f1"]) / 2
    f1s = [out[f"{w}_f1"] for w in WAVES]
    out["mean_f1"] = float(np.mean(f1s)) if all(np.isfinite(f1s)) else math.nan
    return out


def _f(v, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and np.isfinite(v) else "-"


def _ms(d: dict) -> str:
    return f"{_f(d.get('mean'))} +- {_f(d.get('std'))}" if d else "-"


def markdown_table(rows: list[dict]) -> str:
    head = ("| row | rhythm loss | gamma | beat loss | probe macro AUROC | probe macro F1 | "
            "seg Dice P / QRS / T | seg F1 QRS / T / P (mean) | final loss | partner acc | "
            "feature eff. rank / std | paper T1 AUROC / F1, T2 F1 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        s = r["segmentation"]
        paper = r.get("paper")
        paper_txt = (f"{_f(paper['t1_auroc'])} / {_f(paper['t1_f1'])}, {_f(paper['t2_f1'])}"
                     if paper else "-")
        lines.append(
            f"| {r['name']} | {r.get('rhythm_loss', '-')} | {r.get('gamma', '-')} | "
            f"{r.get('beat_loss', '-')} | {_ms(r['probe'].get('macro_auroc', {}))} | "
            f"{_ms(r['probe'].get('macro_f1', {}))} | "
            f"{_f(s['P_dice'])} / {_f(s['QRS_dice'])} / {_f(s['T_dice'])} | "
            f"{_f(s['QRS_f1'])} / {_f(s['T_f1'])} / {_f(s['P_f1'])} ({_f(s['mean_f1'])}) | "
            f"{_f(r.get('final', {}).get('loss'))} | "
            f"{_f(r.get('final', {}).get('rhythm_partner_acc'), 2)} | "
            f"{_f(r['features'].get('repr_eff_rank'), 1)} / "
            f"{_f(r['features'].get('repr_std'), 3)} | {paper_txt} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="pretraining optimiser steps per row (default 150; quick 10)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", default=None,
                        help="ablation rows (e.g. simclr_hard soft1_g50_beat_hard); default all")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 10 steps, 1 segmentation epoch, two rows; writes "
                             "under --work only")
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seg-epochs", type=int, default=None, help="default 8; quick 1")
    parser.add_argument("--seg-folds", type=int, nargs="+", default=[0],
                        help="segmentation folds to run (default: fold 0 only, for time)")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--supervised", action="store_true",
                        help="add the supervised-from-scratch rows (slow)")
    parser.add_argument("--classical", action="store_true",
                        help="add the neurokit2 delineator row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "beatssl_ablation"),
                        help="stores, runs and the suite report")
    parser.add_argument("--ludb", default=str(ROOT / "data" / "ludb"))
    parser.add_argument("--shared", default=str(SHARED), help="folder with the shared data")
    parser.add_argument("--results", default=None,
                        help="output stem (default benchmarks/results/beatssl_ablation; quick: "
                             "<work>/beatssl_ablation_quick)")
    parser.add_argument("--no-reuse", action="store_true", help="retrain finished rows")
    args = parser.parse_args(argv)

    from ecgssl.api import load_encoder
    from ecgssl.data.store import ECGStore
    from ecgssl.eval.suite import SuiteConfig, run_suite

    torch.set_num_threads(args.threads)
    steps = args.steps or (10 if args.quick else 150)
    seg_epochs = args.seg_epochs or (1 if args.quick else 8)
    work = Path(args.work)
    if args.recipes:
        recipes = [resolve_recipe(r) for r in args.recipes]
    elif args.quick:
        recipes = [CONFIGS / "beatssl_simclr_hard.yaml",
                   CONFIGS / "beatssl_soft1_g50_beat_hard.yaml"]
    else:
        recipes = [CONFIGS / k for k in ABLATION]
    stem = Path(args.results) if args.results else (
        work / "beatssl_ablation_quick" if args.quick
        else ROOT / "benchmarks" / "results" / "beatssl_ablation")
    t_start = time.perf_counter()

    pretrain_store, eval_store = prepare_stores(work, Path(args.ludb), Path(args.shared))
    t_prep = time.perf_counter() - t_start

    overrides = row_overrides(steps, args.batch_size, args.lr, args.seed)
    rows, encoders = [], {}
    for k, recipe in enumerate(recipes):
        name = recipe.stem.removeprefix("beatssl_")
        print(f"[{k + 1}/{len(recipes)}] pretraining {name} ({steps} steps)", flush=True)
        info = pretrain_row(recipe, pretrain_store, work / "runs" / name, overrides,
                            reuse=not args.no_reuse)
        m = info["recipe"]["method"]
        soft_rhythm = m["rhythm_loss"] != "hard"
        rows.append({"name": name, "kind": "pretrained", "recipe_file": recipe.name,
                     "rhythm_loss": m["rhythm_loss"],
                     "gamma": m["rhythm_gamma"] if soft_rhythm else "-",
                     "beat_loss": m["beat_loss"] + (f" (gamma {m['beat_gamma']:g})"
                                                    if m["beat_loss"] in ("soft_1", "soft_2")
                                                    else ""),
                     "paper": ABLATION.get(recipe.name), "final": info["final"],
                     "pretrain_s": info["pretrain_s"], "global_step": info["global_step"],
                     "samples_per_s": info["samples_per_s"], "run_dir": info["run_dir"],
                     "reused": bool(info.get("reused"))})
        encoders[name] = load_encoder(work / "runs" / name)
        print(f"    {info['pretrain_s']:.0f} s, final {info['final']}", flush=True)
    t_pre = time.perf_counter() - t_start - t_prep

    store = ECGStore(eval_store)
    cfg = SuiteConfig(tasks=["probe", "segmentation"], n_folds=args.n_folds,
                      seg_epochs=seg_epochs, seg_folds=args.seg_folds, random_init=True,
                      supervised=args.supervised, classical=args.classical, n_boot=args.n_boot,
                      seed=args.seed, plots=False)
    print(f"evaluating {len(encoders)} encoders + baselines -> {work / 'report'}", flush=True)
    t_eval0 = time.perf_counter()
    results = run_suite(encoders, store, work / "report", cfg,
                        title="Beat-SSL ablation at CPU scale (LUDB)", progress=False)
    t_eval = time.perf_counter() - t_eval0

    seg = results.get("segmentation", {})
    probe = results.get("probe", {})
    for row in rows:
        row["features"] = feature_stats(encoders[row["name"]], store)
    baseline_names = [n for n in results["rows"] if n not in encoders]
    for name in baseline_names:
        kind = "random-init" if name.startswith("random-init") else "supervised"
        rows.append({"name": name, "kind": kind, "paper": None, "final": {}, "features": {}})
    if cfg.random_init:
        # The suite's random-init row: same architecture, torch.manual_seed(cfg.seed), then
        # create_encoder (ecgssl.eval.suite.random_init_factory), rebuilt here for its stats.
        from ecgssl.api import Encoder
        from ecgssl.models import create_encoder

        first = next(iter(encoders.values()))
        torch.manual_seed(cfg.seed)
        module = create_encoder(first.spec["encoder"]["name"],
                                **first.spec["encoder"]["overrides"])
        rnd = Encoder(module.eval(), first.spec, None)
        next(r for r in rows if r["kind"] == "random-init")["features"] = \
            feature_stats(rnd, store)
    for name in (k for k in seg if k.startswith("neurokit2")):
        rows.append({"name": name, "kind": "classical", "paper": None, "final": {},
                     "features": {}})
    for row in rows:
        row["probe"] = probe.get(row["name"], {})
        row["segmentation"] = seg_metrics(seg, row["name"])

    total = time.perf_counter() - t_start
    command = "python benchmarks/beatssl_ablation.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    budget = {"steps": steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
              "overrides": overrides, "n_folds": args.n_folds, "seg_epochs": seg_epochs,
              "seg_folds": args.seg_folds, "n_boot": args.n_boot, "threads": args.threads}
    n_pre = len(ECGStore(pretrain_store))
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": command.strip(),
           "machine": f"{platform.machine()}, torch {torch.__version__}, "
                      f"{args.threads} thread(s), shared CPU",
           "budget": budget, "pretrain_store": {"path": str(pretrain_store), "windows": n_pre},
           "eval_store": {"path": str(eval_store), "windows": len(store)},
           "probe_labels": results.get("probe_labels", []),
           "wall_s": {"prepare": round(t_prep, 1), "pretrain": round(t_pre, 1),
                      "evaluate": round(t_eval, 1), "total": round(total, 1)},
           "rows": rows}
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1, default=str))
    md = render_markdown(out)
    stem.with_suffix(".md").write_text(md)
    print(md)
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    return 0


def render_markdown(out: dict) -> str:
    b = out["budget"]
    w = out["wall_s"]
    trained = [r for r in out["rows"] if r["kind"] == "pretrained"]
    pre_s = sum(r["pretrain_s"] for r in trained)
    n_reused = sum(bool(r.get("reused")) for r in trained)
    reuse_note = (f" ({n_reused} of {len(trained)} rows reused from an earlier run with the "
                  f"identical resolved recipe and store; their training time as measured then)"
                  if n_reused else "")
    n_labels = len(out["probe_labels"])
    seg_folds = ", ".join(map(str, b["seg_folds"]))
    seg_scope = (f"all {b['n_folds']} test folds pooled (the same patient folds for every row)"
                 if sorted(b["seg_folds"]) == list(range(b["n_folds"])) else
                 f"test fold(s) {seg_folds} of {b['n_folds']} only (for time)")
    notes = [
        f"Command: `{out['command']}` ({out['date']}; {out['machine']}).",
        "",
        f"Budget, the same for every pretrained row: {b['steps']} optimiser steps, batch "
        f"{b['batch_size']}, lr {b['lr']:g} (cosine, {max(1, b['steps'] // 10)} warm-up steps), "
        f"seed {b['seed']}, encoder resnet1d_small with widths 16-32-48-64-128, projectors "
        f"128 -> 64, float32 on CPU; recipe overrides: `{' '.join(b['overrides'])}`. "
        f"Pretraining store: {out['pretrain_store']['windows']} windows of 10 s at 250 Hz "
        f"(LUDB + CinC 2021 sample + MIT-BIH 100 + CPSC 2021 sample, no labels used).",
        "",
        f"Evaluation on LUDB ({out['eval_store']['windows']} records), one `run_suite` call, so "
        f"every row sees the same folds: linear probe on frozen pooled features, "
        f"{b['n_folds']}-fold CV by patient, {n_labels} LUDB diagnosis labels with >= 10 "
        f"positives, C and thresholds chosen on validation, macro AUROC / F1 mean +- std over the "
        f"{b['n_folds']} test folds; segmentation: frozen encoder + U-Net decoder, "
        f"{b['seg_epochs']} epochs, epoch chosen on validation Dice, {seg_scope}, leads I, II, "
        f"V1-V6, annotated span only; Dice pooled over the test leads; F1 = mean of onset and "
        f"offset F1 (+-150 ms), '(mean)' = mean of the three waves.",
        "",
        "Diagnostics: final loss and rhythm partner accuracy (the other view of the same ECG "
        "ranked first among the 2B-1 candidates) are the mean of the last three logged training "
        "values; feature eff. rank / std: effective rank of the pooled features of the 200 LUDB "
        "records and the mean std across records of the L2-normalised features (rank near 1 or "
        "std near 0 = collapse).",
        "",
        "Paper column: Beat-SSL Table 1 as summarised in docs/methods.md section 2 (T1 = PTB-XL "
        "superdiagnostic macro AUROC / F1, T2 = LUDB segmentation F1), only for the rows it "
        "reports, after pretraining at scale: a reference for the ordering, not numbers this "
        "CPU-scale run can reach. The probe here is on the LUDB diagnoses, not PTB-XL.",
        "",
        f"Wall time: prepare {w['prepare']:.0f} s, pretraining {pre_s:.0f} s in all "
        f"({pre_s / max(1, len(trained)):.0f} s per row){reuse_note}, evaluation "
        f"{w['evaluate']:.0f} s; this invocation {w['total'] / 60:.1f} min. Shared, busy machine "
        f"(other jobs running): timings are noisy; re-run on a quiet machine for timings.",
    ]
    return ("# Beat-SSL ablation at CPU scale\n\n" + markdown_table(out["rows"]) + "\n\n"
            + "\n".join(notes) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
