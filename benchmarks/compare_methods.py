"""Benchmark: seven pretraining methods on the same data and budget, then one LUDB evaluation.

ECG-JEPA, Beat-SSL, SimCLR with 3KG views (Beat-SSL's ``beatssl_simclr_hard`` row at CPU scale),
TS2Vec, CMSC (CLOCS), ST-MEM and CPC are each pretrained (CPC joined the list after the committed
results, which hold the other six; titles count the methods a run holds)

- on the same store (LUDB + the CinC 2021 sample + MIT-BIH 100 + the CPSC 2021 sample, the
  pretraining store of ``benchmarks/pretrain_cpu_scale.py``, prepared with the same commands),
- for the same number of **samples seen** (``--samples``; steps = samples / the recipe's batch
  size), single-threaded (``--threads``), with wall and CPU minutes recorded per method,

and then evaluated together by ``ecgssl.eval.suite.run_suite`` on LUDB: a random-init twin per
architecture (pooled the same way), supervised-from-scratch rows, the neurokit2 delineator,
paired bootstrap CIs of every pretrained row against its twin; every choice inside the suite is
made on validation folds.

No setting is chosen here. Every method runs at its CPU recipe; ECG-JEPA at the setting that the
CinC validation probe of ``pretrain_cpu_scale.py`` chose (ViT w128 d4, ``input_scale`` 20), and
every row is pooled by mean + max (``meanmax``), the pooling that validation probe chose for both
of our methods, applied to all of them for one protocol.

Usage (repository root; run directories go to ``runs/compare_methods``, ignored by git)::

    nice -n 10 python benchmarks/compare_methods.py --quick      # minutes: -> *_quick.*
    nice -n 10 python benchmarks/compare_methods.py --samples 4800 --finetune
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared" / "data"
PRETRAIN_SOURCES = [REPO / "data" / "ludb", SHARED / "cinc2021-sample", SHARED / "mitdb-100",
                    SHARED / "cpsc2021-sample"]
HIGHPASS_SET = "highpass_hz=0.5"  # the CPSC recordings' DC offset (see pretrain_cpu_scale.py)
PRETRAIN_SETS = ["lead_aliases={MLII: II}", "allow_upsampling=true", HIGHPASS_SET]
EVAL_SETS = [HIGHPASS_SET]

# The SimCLR-3KG recipe is a GPU-scale one (batch 256, 100 epochs, bf16, a 512-wide projector):
# at CPU scale it gets Beat-SSL's CPU encoder, batch, projector and schedule, so the two rows
# differ only in the loss (soft rhythm + beat terms vs NT-Xent).
SIMCLR_CPU = ["encoder.widths=[16, 32, 48, 64, 128]", "train.batch_size=32",
              "train.max_epochs=null", "train.precision=32-true", "train.min_lr=1e-5",
              "train.warmup_epochs=1", "method.proj_hidden=128", "method.proj_dim=64",
              "method.max_beats=512"]
# (row title, method, recipe, overrides)
METHODS = [
    # ECG-JEPA's validation-chosen CPU setting (ViT w128 d4, input_scale 20).
    ("ECG-JEPA", "jepa", "jepa_cpu_scaled.yaml", []),
    ("Beat-SSL", "beat_ssl", "beatssl_cpu.yaml", []),
    ("SimCLR-3KG", "beat_ssl", "beatssl_simclr_hard.yaml", SIMCLR_CPU),
    ("TS2Vec", "ts2vec", "ts2vec_cpu.yaml", []),
    ("CMSC", "cmsc", "cmsc_cpu.yaml", []),
    ("ST-MEM", "st_mem", "st_mem_cpu.yaml", []),
    ("CPC", "cpc", "cpc_cpu.yaml", []),
]
POOL = "meanmax"
SUITE_FULL = {"seg_epochs": 4, "seg_batch_size": 8, "finetune_epochs": 4, "n_boot": 300,
              "paired_boot": 1000, "seg_folds": None}
SUITE_QUICK = {"seg_epochs": 1, "seg_batch_size": 8, "finetune_epochs": 1, "n_boot": 50,
               "paired_boot": 200, "seg_folds": [0]}
WAVES = ("P", "QRS", "T")


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def prepare(sources: list[Path], out: Path, sets: list[str]) -> str:
    """``ecgssl prepare`` in a subprocess (the command a user types); returns the command."""
    cmd = [sys.executable, "-c", "import sys; from ecgssl.cli import main; sys.exit(main())",
           "prepare", *[_rel(s) for s in sources], "--out", _rel(out), "--skip-bad",
           "--overwrite", "--no-progress", "--workers", "1"]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, cwd=REPO)
    return "ecgssl " + " ".join(f'"{c}"' if " " in c else c for c in cmd[3:])


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _losses(metrics_csv: Path) -> list[float]:
    import pandas as pd

    df = pd.read_csv(metrics_csv)
    return df["train/loss"].dropna().tolist() if "train/loss" in df else []


def pretrain_one(title: str, recipe: str, overrides: list[str], store: Path, out: Path,
                 samples: int, reuse: bool) -> dict:
    """Pretrain one method for ``samples`` samples seen; its budget, time and loss curve."""
    from ecgssl.demo import recipe_path
    from ecgssl.train.recipes import load_recipe
    from ecgssl.train.run import pretrain

    base = load_recipe(recipe_path(recipe), [*overrides, "train.max_steps=1",
                                             "train.max_epochs=null"])
    batch = int(base["train"]["batch_size"])
    steps = max(1, samples // batch)
    ov = [*overrides, f"train.max_steps={steps}", "train.max_epochs=null",
          "train.progress_bar=false", "train.tensorboard=false", "train.log_every_n_steps=5",
          "train.checkpoint_every_n_epochs=0",
          # One warm-up rule for all (the recipes warm up for an epoch, which is longer than a
          # quick run): a tenth of the steps.
          "train.warmup_epochs=0", f"train.warmup_steps={max(1, steps // 10)}"]
    info_file = out / "compare_info.json"
    if reuse and info_file.is_file() and (out / "encoder.safetensors").is_file():
        info = json.loads(info_file.read_text())
        if info.get("overrides") == ov and info.get("recipe") == recipe:
            print(f"    reusing the finished run in {_rel(out)}", flush=True)
            return info | {"reused": True}
    t, cpu = time.perf_counter(), _cpu_s()
    result = pretrain(recipe_path(recipe), store, out, overrides=ov)
    wall, cpu = time.perf_counter() - t, _cpu_s() - cpu
    losses = _losses(out / "metrics.csv")
    k = max(1, len(losses) // 10)
    info = {"title": title, "recipe": recipe, "overrides": ov, "batch_size": batch,
            "steps": result.global_step, "samples_seen": result.global_step * batch,
            "epochs": result.epochs, "wall_min": wall / 60, "cpu_min": cpu / 60,
            "loss_first_10pct": float(np.mean(losses[:k])) if losses else None,
            "loss_last_10pct": float(np.mean(losses[-k:])) if losses else None,
            "run_dir": _rel(out)}
    info_file.write_text(json.dumps(info, indent=2))
    return info


def _seg_f1(pooled: dict | None, wave: str) -> float | None:
    w = (pooled or {}).get(wave)
    if not w:
        return None
    return (w["onset"]["f1"] + w["offset"]["f1"]) / 2


def _f(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else \
        f"{v:.{digits}f}"


def _ci(d: dict | None, key: str = "delta", ci: str = "ci") -> str:
    if not d or d.get(key) is None:
        return "–"
    lo, hi = d[ci]
    return f"{d[key]:+.3f} [{lo:+.3f}, {hi:+.3f}]"


_COUNT = ("One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten")


def _count(n: int) -> str:
    """'Six' for 6: the titles name how many methods a run holds (digits past ten)."""
    return _COUNT[n - 1] if 1 <= n <= len(_COUNT) else str(n)


def markdown(res: dict) -> str:
    suite = res["suite"]
    lines = [f"# {_count(len(res['pretraining']))} pretraining methods on one budget: LUDB "
             "evaluation", "",
             f"Command: `{res['command']}`  ", f"Machine: {res['machine']}; torch threads "
             f"{res['threads']}; total {res['total_min']:.1f} min (shared machine: timings are "
             f"upper bounds).", "",
             "## Data and budget", "",
             f"- pretrain store: `{res['pretrain_store']['command']}` -> "
             f"{res['pretrain_store']['n_windows']} windows",
             f"- eval store: `{res['eval_store']['command']}` -> "
             f"{res['eval_store']['n_windows']} windows",
             f"- budget: {res['samples']} samples seen per method (steps = samples / batch "
             f"size); every row pooled `{POOL}`; no setting chosen in this run (module doc).", "",
             "| method | recipe | batch | steps | samples seen | wall min | CPU min | "
             "loss first 10 % -> last 10 % |", "|---|---|---|---|---|---|---|---|"]
    for title, p in res["pretraining"].items():
        lines.append(f"| {title} | `{p['recipe']}` | {p['batch_size']} | {p['steps']} | "
                     f"{p['samples_seen']} | {_f(p['wall_min'], 1)} | {_f(p['cpu_min'], 1)} | "
                     f"{_f(p['loss_first_10pct'])} -> {_f(p['loss_last_10pct'])} |")
    lines += ["", "Overrides on top of each recipe (`src/ecgssl/configs/`):", ""]
    lines += [f"- {t}: " + " ".join(f"`{o}`" for o in p["overrides"])
              for t, p in res["pretraining"].items()]
    lines += ["", "## LUDB (run_suite)", "",
              f"Settings: {json.dumps(res['suite_config'])}. Full report: "
              f"`{res['report_dir']}/report.md` (figures, not committed: "
              f"`{res.get('figures_dir', 'runs/')}`).", "",
              "| row | probe macro AUROC | probe macro F1 | HR MAE bpm | QRS ms MAE | "
              "seg F1 P | seg F1 QRS | seg F1 T |", "|---|---|---|---|---|---|---|---|"]
    seg = suite.get("segmentation") or {}
    for row in suite.get("rows") or []:
        probe = (suite.get("probe") or {}).get(row) or {}
        reg = (suite.get("regression") or {}).get(row) or {}
        seg_row = seg.get(f"{row} (frozen encoder + decoder)") or seg.get(row) or {}
        pooled = seg_row.get("pooled")
        lines.append(
            f"| {row} | {_f((probe.get('macro_auroc') or {}).get('mean'))} | "
            f"{_f((probe.get('macro_f1') or {}).get('mean'))} | "
            f"{_f((reg.get('hr_bpm') or {}).get('mae'), 2)} | "
            f"{_f((reg.get('qrs_ms') or {}).get('mae'), 1)} | "
            + " | ".join(_f(_seg_f1(pooled, w)) for w in WAVES) + " |")
    lines += ["", "Paired differences against the random-init twin (95 % bootstrap CI over "
              "records; probe: over classes and folds as the suite computes it):", "",
              "| row | vs | probe AUROC delta | seg F1 delta (frozen) |", "|---|---|---|---|"]
    pp = suite.get("paired_probe") or {}
    ps = suite.get("paired_segmentation") or {}
    for title in res["pretraining"]:
        p = pp.get(title) or {}
        s = ps.get(f"{title} (frozen encoder + decoder)") or {}
        lines.append(f"| {title} | {p.get('vs', '–')} | {_ci(p)} | "
                     f"{_ci(s, 'delta_f1', 'ci_f1')} |")
    tuned = [t for t in res["pretraining"] if f"{t} fine-tuned" in pp]
    if tuned:
        lines += ["", "Fine-tuned rows (whole encoder + head or decoder trained on the labels, the "
                  "supervised rows' budget and protocol) against supervised from scratch of the "
                  "same architecture: only the initialisation differs (95 % paired bootstrap CI):",
                  "", "| row | vs | probe AUROC delta | seg F1 delta (fine-tuned) |",
                  "|---|---|---|---|"]
        for title in tuned:
            p = pp.get(f"{title} fine-tuned") or {}
            s = ps.get(f"{title} fine-tuned") or {}
            lines.append(f"| {title} fine-tuned | {p.get('vs', '–')} | {_ci(p)} | "
                         f"{_ci(s, 'delta_f1', 'ci_f1')} |")
    lines += ["", "## The papers' directions", ""] + res["directions"]
    return "\n".join(lines) + "\n"


def directions(res: dict) -> list[str]:
    """Whether we see what the papers report, from this run's numbers (no judgement added)."""
    suite = res["suite"]
    seg = suite.get("segmentation") or {}
    ps = suite.get("paired_segmentation") or {}
    f1 = {}
    for title in res["pretraining"]:
        pooled = (seg.get(f"{title} (frozen encoder + decoder)") or {}).get("pooled")
        vals = [v for v in (_seg_f1(pooled, w) for w in WAVES) if v is not None]
        f1[title] = float(np.mean(vals)) if vals else None
    known = {k: v for k, v in f1.items() if v is not None}
    out = []
    if known:
        best = max(known, key=known.get)
        order = ", ".join(f"{k} {v:.3f}" for k, v in sorted(known.items(), key=lambda kv: -kv[1]))
        out.append(f"- Beat-SSL best on segmentation (frozen, mean F1 over P/QRS/T onsets and "
                   f"offsets): {'seen' if best == 'Beat-SSL' else 'not seen'}; order: {order}.")
        bs = ps.get("Beat-SSL (frozen encoder + decoder)") or {}
        if bs.get("ci_f1"):
            out.append(f"  Beat-SSL vs its random-init twin: {_ci(bs, 'delta_f1', 'ci_f1')}.")
    probe = suite.get("probe") or {}
    pp = suite.get("paired_probe") or {}

    def auroc(t):
        return ((probe.get(t) or {}).get("macro_auroc") or {}).get("mean")

    a, b = auroc("ECG-JEPA"), auroc("ST-MEM")
    if a is not None and b is not None:
        out.append(f"- Masked latent prediction (ECG-JEPA) beats masked reconstruction (ST-MEM) "
                   f"on the LUDB probe: {'seen' if a > b else 'not seen'} (macro AUROC {a:.3f} "
                   f"vs {b:.3f}; against their twins {_ci(pp.get('ECG-JEPA'))} and "
                   f"{_ci(pp.get('ST-MEM'))}). The two use different ViTs (CroPA, 8 leads vs "
                   f"full attention with separators, 12 leads) of one width and depth.")
    if f1.get("ECG-JEPA") is not None and f1.get("ST-MEM") is not None:
        out.append(f"  Segmentation (frozen, mean F1): ECG-JEPA {f1['ECG-JEPA']:.3f}, ST-MEM "
                   f"{f1['ST-MEM']:.3f}.")
    tuned = {}
    for title in res["pretraining"]:
        pooled = (seg.get(f"{title} fine-tuned") or {}).get("pooled")
        vals = [v for v in (_seg_f1(pooled, w) for w in WAVES) if v is not None]
        if vals:
            tuned[title] = float(np.mean(vals))
    if tuned:
        best = max(tuned, key=tuned.get)
        order = ", ".join(f"{k} {v:.3f}" for k, v in sorted(tuned.items(), key=lambda kv: -kv[1]))
        out.append(f"- Beat-SSL best on segmentation, fine-tuned: "
                   f"{'seen' if best == 'Beat-SSL' else 'not seen'}; order: {order}.")
        beats = [t for t in tuned if ((ps.get(f"{t} fine-tuned") or {}).get("ci_f1")
                                      or [0, 0])[0] > 0]
        out.append(f"  Fine-tuned rows whose CI is above supervised from scratch: "
                   f"{', '.join(beats) if beats else 'none'}.")
    out.append(f"- Budget: {res['samples']} samples seen per method, a few hundred steps at "
               f"most; the papers pretrain for 10^5-10^6 ECGs x tens of epochs. A direction not "
               f"seen here is not evidence against the paper.")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=2400,
                    help="samples seen per method (default 2400)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 320 samples per method, 1-fold 1-epoch segmentation")
    ap.add_argument("--finetune", action="store_true",
                    help="also fine-tune every pretrained encoder (classification, segmentation)")
    ap.add_argument("--methods", nargs="+", default=None,
                    help=f"a subset of {[m[0] for m in METHODS]}")
    ap.add_argument("--seg-epochs", type=int, default=None,
                    help=f"segmentation epochs (default {SUITE_FULL['seg_epochs']})")
    ap.add_argument("--seg-folds", type=int, nargs="+", default=None,
                    help="segmentation test folds to run (default all 5)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse", action="store_true",
                    help="keep finished runs whose recipe and overrides match")
    ap.add_argument("--stem", default=None)
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the Markdown (and the directions) from the stem's JSON")
    args = ap.parse_args(argv)
    if args.report_only:
        stem = args.stem or ("compare_methods_quick" if args.quick else "compare_methods")
        res = json.loads((RESULTS / f"{stem}.json").read_text())
        res["directions"] = directions(res)
        (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str))
        (RESULTS / f"{stem}.md").write_text(markdown(res))
        print(f"wrote {_rel(RESULTS / f'{stem}.md')}")
        return 0

    import torch

    from ecgssl.api import load_encoder
    from ecgssl.data.store import ECGStore
    from ecgssl.eval.suite import SuiteConfig, run_suite

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    samples = 320 if args.quick else args.samples
    stem = args.stem or ("compare_methods_quick" if args.quick else "compare_methods")
    out = REPO / "runs" / "compare_methods" / stem
    out.mkdir(parents=True, exist_ok=True)
    methods = [m for m in METHODS if args.methods is None or m[0] in args.methods]
    if args.methods and len(methods) != len(args.methods):
        raise SystemExit(f"unknown methods in {args.methods}; known {[m[0] for m in METHODS]}")
    command = "python benchmarks/compare_methods.py" + (" --quick" if args.quick else
                                                        f" --samples {args.samples}")
    command += (" --finetune" if args.finetune else "") + \
        (f" --methods {' '.join(args.methods)}" if args.methods else "") + \
        (f" --seg-epochs {args.seg_epochs}" if args.seg_epochs else "") + \
        (f" --seg-folds {' '.join(map(str, args.seg_folds))}" if args.seg_folds else "") + \
        (f" --threads {args.threads}" if args.threads != 1 else "") + \
        (" --reuse" if args.reuse else "") + (f" --stem {args.stem}" if args.stem else "")
    res: dict = {"command": command, "samples": samples, "threads": args.threads,
                 "machine": f"{platform.processor() or platform.machine()}, "
                            f"{__import__('os').cpu_count()} CPUs, Python "
                            f"{platform.python_version()}, torch {torch.__version__}"}

    print("[1/3] preparing stores", flush=True)
    pre_dir, eval_dir = out / "pretrain_store", out / "ludb_store"
    if not (args.reuse and (pre_dir / "config.json").is_file()):
        res["pretrain_store"] = {"command": prepare(PRETRAIN_SOURCES, pre_dir, PRETRAIN_SETS)}
    else:
        res["pretrain_store"] = {"command": "(reused) " + _rel(pre_dir)}
    if not (args.reuse and (eval_dir / "config.json").is_file()):
        res["eval_store"] = {"command": prepare([REPO / "data" / "ludb"], eval_dir, EVAL_SETS)}
    else:
        res["eval_store"] = {"command": "(reused) " + _rel(eval_dir)}
    res["pretrain_store"]["n_windows"] = len(ECGStore(pre_dir))
    eval_store = ECGStore(eval_dir)
    res["eval_store"]["n_windows"] = len(eval_store)

    res["pretraining"] = {}
    encoders = {}
    for title, _method, recipe, overrides in methods:
        print(f"[2/3] pretraining {title} ({samples} samples)", flush=True)
        info = pretrain_one(title, recipe, overrides, pre_dir, out / title.lower(), samples,
                            args.reuse)
        res["pretraining"][title] = info
        print(f"    {info['steps']} steps, loss {_f(info['loss_first_10pct'])} -> "
              f"{_f(info['loss_last_10pct'])}, {info['wall_min']:.1f} min", flush=True)
        encoders[title] = load_encoder(out / title.lower(), pool=POOL)
        (RESULTS / f"{stem}_partial.json").write_text(json.dumps(res, indent=2, default=str))

    print("[3/3] LUDB evaluation suite", flush=True)
    budget = dict(SUITE_QUICK if args.quick else SUITE_FULL)
    if args.seg_epochs:
        budget["seg_epochs"] = args.seg_epochs
    if args.seg_folds:
        budget["seg_folds"] = list(args.seg_folds)
    tasks = ["probe", "regression", "segmentation"] + ([] if args.quick else ["lowlabel"])
    cfg = SuiteConfig(tasks=tasks, n_folds=5, finetune_pretrained=args.finetune, plots=True,
                      **budget)
    res["suite_config"] = budget | {"tasks": tasks, "n_folds": 5,
                                    "finetune_pretrained": args.finetune}
    report_dir = out / "report"
    t = time.perf_counter()
    suite = run_suite(encoders, eval_store, report_dir, cfg,
                      title=f"{_count(len(methods))} pretraining methods, one budget: LUDB "
                            "evaluation",
                      progress=False)
    res["suite_min"] = (time.perf_counter() - t) / 60
    # The report's text is committed; its ~40 figures (2 MB) and the segmentation model stay in
    # runs/ (the report's figure links point there).
    shown = RESULTS / stem
    shown.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.json"):
        if (report_dir / name).is_file():
            shutil.copy2(report_dir / name, shown / name)
    res["report_dir"] = _rel(shown)
    res["figures_dir"] = _rel(report_dir / "figures")
    res["suite"] = {k: suite.get(k) for k in ("rows", "probe", "probe_labels", "regression",
                                               "segmentation", "lowlabel", "paired_probe",
                                               "paired_segmentation", "seconds")}
    res["total_min"] = (time.perf_counter() - t0) / 60
    res["directions"] = directions(res)
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / f"{stem}.md").write_text(markdown(res))
    (RESULTS / f"{stem}_partial.json").unlink(missing_ok=True)
    print(f"wrote {_rel(RESULTS / f'{stem}.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
