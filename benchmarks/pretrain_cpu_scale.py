"""Benchmark: CPU-scale pretraining of ECG-JEPA and Beat-SSL on the real data, then the LUDB suite.

1. ``ecgssl prepare``: a pretraining store (LUDB, CinC 2021 sample, MIT-BIH 100, CPSC 2021 sample;
   no labels used) and the LUDB evaluation store, both high-passed at 0.5 Hz;
2. pretrains every candidate (``pretrain_cpu_scale_candidates.yaml``; ``--reuse`` keeps identical
   finished runs) and applies the collapse rule (``ecgssl.train.collapse``);
3. chooses one candidate per method on the validation probe of the non-LUDB windows
   (``ecgssl.eval.selection``: weights incl. EMA targets x ``--pools``), never on LUDB labels;
4. evaluates the chosen encoders with ``ecgssl.eval.suite.run_suite`` on LUDB;
5. writes ``benchmarks/results/<stem>.{json,md}`` (``--report-only``: re-render from the JSON).
Runs go to ``runs/pretrain_cpu_scale``; the command of each committed result: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import yaml

from ecgssl.eval.classification_metrics import jsonable
from ecgssl.eval.compare import (
    probe_difference_table,
    seed_spread_table,
    segmentation_difference_table,
    verdicts,
)
from ecgssl.eval.report import format_value
from ecgssl.eval.selection import candidate_table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared" / "data"
PRETRAIN_SOURCES = [REPO / "data" / "ludb", SHARED / "cinc2021-sample", SHARED / "mitdb-100",
                    SHARED / "cpsc2021-sample"]
HIGHPASS_SET = "highpass_hz=0.5"  # both stores: the CPSC recordings carry a DC offset
PRETRAIN_SETS = ["lead_aliases={MLII: II}", "allow_upsampling=true", HIGHPASS_SET]
# Candidates: name -> (method, recipe, steps, overrides); "full", "extra" (by name), "quick".
CANDIDATES = yaml.safe_load((Path(__file__).with_name("pretrain_cpu_scale_candidates.yaml"))
                            .read_text())
SUITE_FULL = {"seg_epochs": 6, "seg_batch_size": 8, "finetune_epochs": 6, "n_boot": 300,
              "seg_folds": None}
SUITE_QUICK = {"seg_epochs": 1, "seg_batch_size": 8, "finetune_epochs": 1, "n_boot": 50,
               "seg_folds": [0]}
METHOD_TITLES = {"jepa": "ECG-JEPA", "beat_ssl": "Beat-SSL"}
STEM, MAX_FIGURES = "pretrain_cpu_scale", 4


def _rel(path) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(path)


def prepare(sources: list[Path], out: Path, sets: list[str]) -> dict:
    """``ecgssl prepare`` in a subprocess (the command a user types); what it made."""
    from ecgssl.data.store import ECGStore

    cmd = [sys.executable, "-c", "import sys; from ecgssl.cli import main; sys.exit(main())",
           "prepare", *[_rel(s) for s in sources], "--out", _rel(out), "--skip-bad", "--overwrite",
           "--no-progress", "--workers", "1"]
    for s in sets:
        cmd += ["--set", s]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    store = ECGStore(out)
    return {"command": "ecgssl " + " ".join(f'"{c}"' if " " in c else c for c in cmd[3:]),
            "seconds": time.perf_counter() - t, "n_windows": len(store),
            "sources": store.manifest["source"].value_counts().to_dict(),
            "skipped": json.loads((out / "report.json").read_text()).get("skipped", [])}


def select_candidates(names, quick: bool) -> list[tuple]:
    """(name, method, recipe, steps, overrides) of the full (quick) list, or of those named."""
    pool = CANDIDATES["quick"] if quick else CANDIDATES["full"] | CANDIDATES["extra"]
    unknown = [n for n in names or [] if n not in pool]
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; known: {sorted(pool)}")
    chosen = names or list(CANDIDATES["quick" if quick else "full"])
    return [(n, *pool[n]) for n in chosen]


def _stem(args) -> str:
    return (args.stem or STEM) + ("_quick" if args.quick else "")


def _run_root(args) -> Path:  # <out>/full (quick) for the default stem, <out>/<stem> else
    return Path(args.out) / (_stem(args) if args.stem else "quick" if args.quick else "full")


def pretrain_candidate(name, method, recipe, steps, overrides, store, out, reuse, pools,
                       val_random) -> dict:
    """Train one candidate (or reuse it); one entry per weights x pooling, validation-scored."""
    from ecgssl.demo import recipe_path
    from ecgssl.eval.selection import score_candidates
    from ecgssl.train.collapse import collapsed, training_summary
    from ecgssl.train.run import pretrain

    ov = [f"train.max_steps={steps}", "train.progress_bar=false", "train.tensorboard=false",
          "train.log_every_n_steps=5", f"train.collapse_every_n_steps={max(5, steps // 20)}",
          "train.checkpoint_every_n_epochs=0", *overrides]
    if steps < 60:  # the recipes warm up for one epoch: longer than a smoke run
        ov += ["train.warmup_epochs=0", f"train.warmup_steps={max(1, steps // 5)}"]
    r = pretrain(recipe_path(recipe), store.path, out, overrides=ov, reuse=reuse, overwrite=True)
    summary = training_summary(out)
    is_collapsed, reason = collapsed(summary)
    print(f"    loss {summary['loss_start']:.4g} -> {summary['loss_end']:.4g}; collapsed "
          f"{is_collapsed} {reason}", flush=True)
    base = {"run": name, "method": method, "recipe": recipe, "overrides": ov, "summary": summary,
            "train": {"steps": r.global_step, "epochs": r.epochs, "wall_s": r.wall_s,
                      "samples_per_s": r.samples_per_s, "final_loss": r.final_loss,
                      "reused": r.reused},
            "collapsed": is_collapsed, "collapse_reason": reason,
            "collapse_keys": list(summary["collapse"]), "chosen": False}
    entries = score_candidates(out, store, pools, val_random)
    for key, e in entries.items():
        print(f"    {key}: validation {e['validation']['score']:.3f} (random init "
              f"{e['validation_random_init']['score']:.3f})", flush=True)
    return {k: base | e | {"run_dir": _rel(e["run_dir"])} for k, e in entries.items()}


def _title(method: str) -> str:  # a method without a title is shown by its registry name
    return METHOD_TITLES.get(method, method)


def _run_of(key: str, entry: dict) -> str:
    return entry.get("run") or key.split(" [")[0].removesuffix("/target")


def run(args) -> dict:
    import torch

    from ecgssl.api import load_encoder
    from ecgssl.data.store import ECGStore
    from ecgssl.eval.selection import choose
    from ecgssl.eval.suite import SuiteConfig, run_suite

    torch.set_num_threads(args.threads)
    t0, out = time.perf_counter(), _run_root(args)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"command": "python benchmarks/pretrain_cpu_scale.py " + " ".join(sys.argv[1:]),
                 "stem": _stem(args), "each_candidate": args.each_candidate,
                 "probe_only": args.probe_only, "threads": args.threads,
                 "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} "
                            f"CPUs, Python {platform.python_version()}, torch {torch.__version__}"}
    print("[1/4] preparing stores", flush=True)
    res["pretrain_store"] = prepare(PRETRAIN_SOURCES, out / "pretrain_store", PRETRAIN_SETS)
    res["eval_store"] = prepare([REPO / "data" / "ludb"], out / "ludb_store", [HIGHPASS_SET])
    pre_store, eval_store = ECGStore(out / "pretrain_store"), ECGStore(out / "ludb_store")
    res["pretraining"], val_random = {}, {}
    for name, method, recipe, steps, ov in select_candidates(args.candidates, args.quick):
        print(f"[2/4] pretraining {name} ({steps} steps)", flush=True)
        res["pretraining"] |= pretrain_candidate(name, method, recipe, steps, ov, pre_store,
                                                 out / name, args.reuse, args.pools, val_random)
    pre = res["pretraining"]
    titles = {_title(m): k for m, k in choose(pre).items()}  # one per method, validation only
    for key in titles.values():
        pre[key]["chosen"] = True
    res["chosen"] = {t: {"arch": pre[k]["arch"], "run": k} for t, k in titles.items()}
    if args.each_candidate:  # every run, with its validation-chosen weights and pooling
        picks = choose({k: v | {"collapsed": False} for k, v in pre.items()}, group="run")
        titles = {f"{_title(pre[k]['method'])} {r}": k for r, k in picks.items()}
        res["evaluated"] = {t: {"run": k, "arch": pre[k]["arch"]} for t, k in titles.items()}
    print("[3/4] LUDB evaluation suite", flush=True)
    cfg = SuiteConfig(n_folds=5, random_seeds=args.random_seeds, label_families=True,
                      **(SUITE_QUICK if args.quick else SUITE_FULL))
    if args.probe_only:
        cfg.tasks, cfg.supervised, cfg.classical = ["probe"], False, False
    cfg.finetune_pretrained = args.finetune
    cfg.supervised = cfg.supervised or args.finetune
    res["suite_config"] = asdict(cfg)
    t = time.perf_counter()
    encoders = {t_: load_encoder(REPO / pre[k]["run_dir"], pool=pre[k]["pool"])  # REPO/abs = abs
                for t_, k in titles.items()}
    suite = run_suite(encoders, eval_store,
                      out / "report", cfg, title="CPU-scale pretraining: LUDB evaluation",
                      progress=False)
    res["suite_s"] = time.perf_counter() - t
    res["suite"] = {k: suite.get(k) for k in ("rows", "probe", "probe_labels", "regression",
                                               "segmentation", "paired_probe",
                                               "paired_segmentation", "seconds")}
    res["seed_spread"] = suite.get("seed_spread")
    res["total_s"] = time.perf_counter() - t0
    return res


def markdown(res: dict) -> str:
    """The results page: every number below is read from ``res`` (this run's JSON)."""
    val_n = next((v["validation"].get("cinc_n") for v in res["pretraining"].values()), None)
    lines = ["# CPU-scale pretraining on the real data: ECG-JEPA and Beat-SSL vs baselines", "",
             f"Command: `{res['command']}`  ", f"Machine: {res['machine']}; torch threads "
             f"{res['threads']}; total {res['total_s'] / 60:.1f} min.", "", "## Data", ""]
    lines += [f"- {k.replace('_', ' ')}: `{res[k]['command']}` -> {res[k]['n_windows']} windows "
              f"({res[k].get('sources', '')}), {res[k]['seconds']:.0f} s"
              for k in ("pretrain_store", "eval_store")]
    lines += ["", "## Pretraining runs (every setting tried)", "",
              "Chosen per method (`ecgssl.eval.selection.choose`): the best val CinC AUROC among "
              "runs that did not collapse (`ecgssl.train.collapse.collapsed`); LUDB is not used. "
              f"val CinC AUROC: `repeated_cv_auroc` on the {val_n} CinC 2021 windows (+- = std "
              "over repeats); AF AUROC and rhythm R² are reported only; feat erank: effective "
              "rank of the pooled validation features. Random-init rows: the same probes on a "
              "random-initialised encoder of that architecture and pooling.", "",
              *candidate_table(res["pretraining"], _title)]
    lines += ["", "Overrides of each run (on top of its recipe in `src/ecgssl/configs/`):", ""]
    lines += [f"- {n}: `{r['recipe']}` " + " ".join(f"`{o}`" for o in r["overrides"])
              for n, r in res["pretraining"].items() if _run_of(n, r) == n]
    suite = res.get("suite") or {}
    lines += ["", "## LUDB evaluation (run_suite)", "", f"Settings: "
              f"{json.dumps(res['suite_config'])}. Every table of the suite: "
              f"`benchmarks/results/{res['stem']}/report.md`.", ""]
    if suite.get("probe"):
        lines += ["| row | macro AUROC (mean ± std over folds) |", "|---|---|"]
        lines += [f"| {k} | {v['macro_auroc']['mean']:.3f} ± {v['macro_auroc']['std']:.3f} |"
                  for k, v in suite["probe"].items()] + [""]
    for key, table in [("probe", probe_difference_table),
                       ("segmentation", segmentation_difference_table)]:
        if suite.get(f"paired_{key}"):
            lines += [f"### Paired differences: {key}", "", *table(suite[f"paired_{key}"]), ""]
    if res.get("seed_spread"):
        lines += [f"### LUDB probe against {res['seed_spread']['n_seeds']} random "
                  "initialisations", "", *seed_spread_table(res["seed_spread"])]
    lines += ["## What beat what", ""] + [f"- {c}" for c in res.get("comparisons", [])]
    lines += ["", "## Training statistics", ""]
    for name, r in res["pretraining"].items():
        ratio = r["summary"]["collapse"].get("collapse/feat_std_ratio")
        if ratio and _run_of(name, r) == name:
            sm = r["summary"]
            lines.append(f"- {name}: feat_std_ratio (across-batch std of the l2-normalised pooled "
                         f"features x sqrt(D)) {ratio['start']:.4f} -> {ratio['end']:.4f}; loss "
                         f"{format_value(sm['loss_start'])} -> {format_value(sm['loss_end'])}.")
    sd = [v["validation"].get("cinc_auroc_std") or 0 for v in res["pretraining"].values()]
    lines += ["", "## Caveats", "", f"- The validation probe has {val_n} windows; its AUROC "
              f"std over CV repeats is {min(sd):.3f} to {max(sd):.3f} in this run; candidates "
              "closer than that are not told apart by it.",
              "- ± over folds mixes fold difficulty into every row; the verdicts use the paired "
              "CIs (same test records), which cover the test sample, not pretraining seeds.",
              f"- The copied report keeps {len(res.get('report_figures', []))} figures "
              f"({', '.join(res.get('report_figures', []))})."]
    return "\n".join(lines) + "\n"


def copy_report(src: Path, dst: Path) -> list[str]:
    """report.md / .json and at most ``MAX_FIGURES`` small figures; never model weights."""
    shutil.rmtree(dst, ignore_errors=True)  # our own copy from an earlier run of this script
    (dst / "figures").mkdir(parents=True)
    for name in ("report.md", "report.json"):
        shutil.copy2(src / name, dst / name)
    figs = sorted((src / "figures").glob("*.png"))
    keep = [f for prefix in ("training_", "qrs_onset", "segmentation_overlay") for f in figs
            if f.stem.startswith(prefix) and not any(w in f.stem for w in ("random", "superv"))]
    for f in keep[:MAX_FIGURES]:
        shutil.copy2(f, dst / "figures" / f.name)
    return [f.name for f in keep[:MAX_FIGURES]]


def write_results(res: dict | None, args) -> int:
    """JSON + Markdown (+ the copied suite report); ``res=None``: re-render from the JSON."""
    results, stem = Path(args.results), _stem(args)
    results.mkdir(parents=True, exist_ok=True)
    if res is None:
        res = json.loads((results / f"{stem}.json").read_text())
    chosen = {t: v["arch"] for t, v in (res.get("evaluated") or res["chosen"]).items()}
    res["comparisons"] = verdicts(res.get("suite") or {}, chosen)
    if (_run_root(args) / "report").exists():
        res["report_figures"] = copy_report(_run_root(args) / "report", results / stem)
    (results / f"{stem}.json").write_text(json.dumps(jsonable(res), indent=2, default=str))
    (results / f"{stem}.md").write_text(markdown(jsonable(res)))
    print("\n".join(res["comparisons"]))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(REPO / "runs" / "pretrain_cpu_scale"))
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--candidates", nargs="+", metavar="NAME", help="only these (use --stem)")
    p.add_argument("--stem", default=None, help=f"results stem (default {STEM}) and run dir")
    p.add_argument("--random-seeds", type=int, default=1, metavar="N",
                   help="LUDB probe against N random initialisations of each architecture")
    p.add_argument("--pools", nargs="+", default=["mean", "meanmax"], choices=["mean", "meanmax"])
    for flag, text in [("--quick", "smoke run (minutes)"), ("--reuse", "keep identical "
                       "finished runs"), ("--report-only", "re-render from the results JSON"),
                       ("--each-candidate", "a LUDB row per run"), ("--probe-only", "LUDB "
                       "probe + random-init only"), ("--finetune", "fine-tune pretrained rows")]:
        p.add_argument(flag, action="store_true", help=text)
    args = p.parse_args(argv)
    return write_results(None if args.report_only else run(args), args)


if __name__ == "__main__":
    sys.exit(main())
