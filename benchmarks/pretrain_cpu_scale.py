"""Benchmark: CPU-scale pretraining of ECG-JEPA and Beat-SSL on the real data, then the LUDB suite.

One command does everything (issues 3, 4 and 5):

1. prepares a pretraining store from LUDB + the CinC 2021 sample + MIT-BIH record 100 + the
   CPSC 2021 sample (long recordings cut into 10 s windows; ~870 windows, no labels used), and
   the LUDB evaluation store (``ecgssl prepare``, the exact commands are in the results), both
   high-passed at 0.5 Hz (the CPSC recordings carry a ~5 mV DC offset);
2. pretrains every candidate setting of each method (``ecgssl.train.run.pretrain``) with collapse
   monitoring; for ECG-JEPA both the student and the EMA target encoder are candidates, and
   each weights are tried with two feature poolings (``--pools``: mean over time, and mean + max
   over time concatenated, ``ecgssl.models.pooling``);
3. chooses ONE candidate per method WITHOUT touching LUDB labels: a validation probe on the
   non-LUDB windows of the pretraining store (linear probe on the CinC 2021 sample's SNOMED
   diagnoses, 50 patients, repeated 5-fold CV; the CPSC AF probe and a rhythm-feature ridge R^2
   are reported only), among the runs that did not collapse. Random-init encoders are scored by
   the same probe for reference;
4. evaluates the chosen encoders with ``ecgssl.eval.suite.run_suite`` on LUDB: 5-fold CV by
   patient, all folds for segmentation, random-init + supervised-from-scratch + neurokit2 rows;
5. writes ``benchmarks/results/pretrain_cpu_scale.{json,md}`` and the suite report (Markdown,
   JSON, a few figures) under ``benchmarks/results/pretrain_cpu_scale/``.

Usage (from the repository root)::

    python benchmarks/pretrain_cpu_scale.py                 # full run (~1 h on one core)
    python benchmarks/pretrain_cpu_scale.py --quick         # smoke run (minutes), -> *_quick.*
    # a subset of candidates, each evaluated on LUDB (probe only), results under another stem:
    python benchmarks/pretrain_cpu_scale.py --candidates jepa_w128_d4 jepa_w128_d4_x20 \
        --each-candidate --probe-only --stem pretrain_cpu_scale_jepa_fix --threads 2

Run directories (checkpoints, encoders, the stores) go to ``runs/pretrain_cpu_scale`` (ignored by
git). Timings taken on a shared machine are noisy; re-run on a quiet machine for final numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ecgssl.eval.compare import format_ci, probe_difference_table, segmentation_difference_table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared" / "data"
PRETRAIN_SOURCES = [REPO / "data" / "ludb", SHARED / "cinc2021-sample", SHARED / "mitdb-100",
                    SHARED / "cpsc2021-sample"]
# High-pass 0.5 Hz (zero-phase Butterworth) in BOTH stores: the CPSC 2021 recordings carry a
# ~5 mV DC offset on leads I and II (their physical signal, not a reader error), which without it
# is the dominant direction of every encoder's pooled features (JEPA's effective rank ~1.2).
HIGHPASS_SET = "highpass_hz=0.5"
PRETRAIN_SETS = ["lead_aliases={MLII: II}", "allow_upsampling=true", HIGHPASS_SET]
EVAL_SETS = [HIGHPASS_SET]

# Candidate pretraining settings: (name, method, recipe, overrides). Every one is trained and
# listed in the results; one per method is chosen on the validation probe (module docstring).
# JEPA lr: the paper's 5e-5 is for batch 64 and 100 epochs of 174 k ECGs; a few thousand steps
# on 870 windows need a larger rate, so the CPU recipe's 5e-4 (batch 16) and a ViT of 4 blocks.
# Beat-SSL: 3KG rotations of +-45 deg teach invariance to the electrical axis, which several
# diagnoses (axis deviation, hypertrophy) depend on; +-15 deg is the second candidate.
_W128 = ["encoder.width=128", "encoder.depth=4", "encoder.num_heads=4",
         "method.predictor_embed_dim=64", "method.predictor_depth=2"]
# input_scale 20: the ViT multiplies the mV input by 20 before W_P, so that at init the patch
# part of a token (RMS ~0.67 on the high-passed data) is as large as the sin-cos position
# embedding (RMS 0.71) instead of 0.03 (benchmarks/results/vit_input_scale_diag.md; chosen from
# that ratio, not from any probe).
_X20 = [*_W128, "encoder.input_scale=20.0"]
CANDIDATES_FULL = [
    ("jepa_w64_d2", "jepa", "jepa_cpu.yaml", 1500, []),
    ("jepa_w128_d4", "jepa", "jepa_cpu.yaml", 1500, _W128),
    ("jepa_w128_d4_x20", "jepa", "jepa_cpu.yaml", 1500, _X20),
    ("beatssl_small", "beat_ssl", "beatssl_cpu.yaml", 1000, []),
    ("beatssl_small_rot15", "beat_ssl", "beatssl_cpu.yaml", 1000,
     ["method.views.max_angle_deg=15.0"]),
]
# Not in the full run; chosen by name with --candidates.
CANDIDATES_EXTRA = [
    # The position embedding added once at the input (not before every block): the most
    # ECG-dependent tokens at initialisation in benchmarks/vit_input_scale_diag.py.
    ("jepa_w128_d4_x20_pos1", "jepa", "jepa_cpu.yaml", 1500,
     [*_X20, "encoder.pos_every_block=false"]),
    # Seed replicates of the chosen settings (train.seed drives init, data order, views,
    # masks): the spread between pretraining seeds, next to that between random inits.
    *[(f"jepa_w128_d4_x20_s{s}", "jepa", "jepa_cpu.yaml", 1500, [*_X20, f"train.seed={s}"])
      for s in (1, 2)],
    *[(f"beatssl_small_s{s}", "beat_ssl", "beatssl_cpu.yaml", 1000, [f"train.seed={s}"])
      for s in (1, 2)],
    # Beat-SSL's loss still falls at 1000 steps: three times the budget.
    ("beatssl_small_3k", "beat_ssl", "beatssl_cpu.yaml", 3000, []),
    # Beat-SSL on ECG-JEPA's encoder (ViT w128 d4 x20, 8 leads): both methods on one
    # architecture, each against a random-init twin of that architecture (pooled as its row).
    ("beatssl_vit_w128_d4_x20", "beat_ssl", "beatssl_cpu_vit.yaml", 1000, []),
    ("beatssl_vit_w128_d4_x20_s1", "beat_ssl", "beatssl_cpu_vit.yaml", 1000, ["train.seed=1"]),
]
CANDIDATES_QUICK = [
    ("jepa_w64_d2", "jepa", "jepa_cpu.yaml", 30, []),
    ("beatssl_small", "beat_ssl", "beatssl_cpu.yaml", 20, []),
]
# Segmentation: batch 8 gives twice the optimiser steps of batch 16 for the same compute.
SUITE_FULL = {"seg_epochs": 6, "seg_batch_size": 8, "finetune_epochs": 6, "n_boot": 300,
              "seg_folds": None}
SUITE_QUICK = {"seg_epochs": 1, "seg_batch_size": 8, "finetune_epochs": 1, "n_boot": 50,
               "seg_folds": [0]}
METHOD_TITLES = {"jepa": "ECG-JEPA", "beat_ssl": "Beat-SSL"}
STEM = "pretrain_cpu_scale"
MAX_FIGURES = 4


# --------------------------------------------------------------------------- helpers
def _clean(obj):
    """JSON cannot hold NaN / inf / numpy scalars: write null / plain numbers instead."""
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def prepare(sources: list[Path], out: Path, sets: list[str]) -> tuple[str, float]:
    """``ecgssl prepare`` in a subprocess (the same command a user types); returns it and s."""
    cmd = [sys.executable, "-c", "import sys; from ecgssl.cli import main; sys.exit(main())",
           "prepare", *[_rel(s) for s in sources], "--out", _rel(out), "--skip-bad",
           "--overwrite", "--no-progress", "--workers", "1"]
    for s in sets:
        cmd += ["--set", s]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    shown = "ecgssl " + " ".join(f'"{c}"' if " " in c else c for c in cmd[3:])
    return shown, time.perf_counter() - t


def select_candidates(names: list[str] | None, quick: bool) -> list[tuple]:
    """The candidate tuples to run: all of the full (or quick) list, or those named (from the
    full list and ``CANDIDATES_EXTRA``, in the order given)."""
    if not names:
        return CANDIDATES_QUICK if quick else CANDIDATES_FULL
    # The quick list reuses full names with smoke budgets: only one of the two lists applies.
    pool = CANDIDATES_QUICK if quick else CANDIDATES_FULL + CANDIDATES_EXTRA
    known = {c[0]: c for c in pool}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; known: {sorted(known)}")
    return [known[n] for n in names]


def _stem(args) -> str:
    """Results stem: ``--stem`` or pretrain_cpu_scale, + ``_quick`` for smoke runs."""
    return (args.stem or STEM) + ("_quick" if args.quick else "")


def _run_root(args) -> Path:
    """Run directory: ``<out>/full`` (``quick``) for the default stem, ``<out>/<stem>`` else, so
    a partial run never overwrites the committed full run's checkpoints."""
    sub = "quick" if args.quick else "full"
    return Path(args.out) / (args.stem + ("_quick" if args.quick else "") if args.stem else sub)


# --------------------------------------------------------------------------- pretraining
def _series(df, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.array([])
    return df[col].dropna().to_numpy(dtype=float)


def training_summary(metrics_csv: Path, method: str) -> dict:
    """Loss at start / end (mean of the first / last 10 % of logged steps) and collapse metrics
    (first and last logged value of every ``collapse/*`` column and the method's own spread
    statistics: JEPA ``train/target_std``, ``train/target_erank``; Beat-SSL
    ``train/rhythm_z_std``)."""
    import pandas as pd

    df = pd.read_csv(metrics_csv)
    loss = _series(df, "train/loss")
    k = max(1, len(loss) // 10)
    out = {"loss_start": float(loss[:k].mean()) if len(loss) else None,
           "loss_end": float(loss[-k:].mean()) if len(loss) else None,
           "loss_first_step": float(loss[0]) if len(loss) else None,
           "loss_min": float(loss.min()) if len(loss) else None, "n_logged": int(len(loss))}
    spread = {"jepa": ["train/target_std", "train/target_erank", "train/pred_std"],
              "beat_ssl": ["train/rhythm_z_std", "train/rhythm_partner_acc",
                           "train/loss_rhythm", "train/loss_beat"]}[method]
    cols = spread + [c for c in df.columns if c.startswith("collapse/")]
    collapse = {}
    for col in cols:
        s = _series(df, col)
        if len(s):
            kk = max(1, len(s) // 10)
            collapse[col] = {"start": float(s[:kk].mean()), "end": float(s[-kk:].mean()),
                             "min": float(s.min())}
    out["collapse"] = collapse
    return out


def collapsed(summary: dict) -> tuple[bool, str]:
    """A run collapsed if its pooled features lost their spread (generic ``collapse/*`` stats
    of ``CollapseMonitor``): the across-batch std of the normalised features fell below 10 % of
    its start (complete collapse), or the effective rank fell to below 1.5 from a start of 2 or
    more (dimensional collapse onto one direction). Not an absolute rank threshold: a randomly
    initialised ViT's mean-pooled features already have an effective rank of only ~1.3 (one
    dominant direction), while a random ResNet's are near-isotropic noise (rank ~14 in a batch
    of 32) that any training shrinks."""
    c = summary["collapse"]
    reasons = []
    erank, std = c.get("collapse/eff_rank"), c.get("collapse/feat_std")
    if erank is not None and erank["start"] >= 2.0 and erank["end"] < 1.5:
        reasons.append(f"effective rank {erank['start']:.2f} -> {erank['end']:.2f}")
    if std is not None and std["start"] > 0 and std["end"] < 0.1 * std["start"]:
        reasons.append(f"feature std {std['start']:.3g} -> {std['end']:.3g}")
    return bool(reasons), "; ".join(reasons)


TRAIN_INFO = "bench_train.json"  # what run_pretraining measured, kept for --reuse


def reusable(out: Path, resolved: dict, store: Path) -> dict | None:
    """The stored training info of a finished run in ``out`` trained with exactly this resolved
    recipe on a store with the same preprocessing hash, windows and sources, else None
    (``--reuse``; the store itself is re-prepared by every run, so its creation time differs)."""
    import yaml

    from ecgssl.data.store import ECGStore

    files = [out / "config.yaml", out / "run.json", out / "encoder.safetensors", out / TRAIN_INFO]
    if not all(f.exists() for f in files):
        return None
    if yaml.safe_load((out / "config.yaml").read_text()) != resolved:
        return None
    trained = json.loads((out / "run.json").read_text())["training"]
    st = ECGStore(store)
    now = {"store_hash": st.config.get("hash"), "n_windows": len(st),
           "sources": st.manifest["source"].value_counts().to_dict()}
    if any(trained.get(k) != v for k, v in now.items()):
        return None
    return json.loads((out / TRAIN_INFO).read_text())


def run_pretraining(name: str, recipe: str, store: Path, out: Path, steps: int,
                    overrides: list[str], reuse: bool = False) -> tuple[dict, list[str]]:
    """Pretrain one candidate into ``out`` (or, with ``reuse``, keep an identical finished run)."""
    from ecgssl.demo import recipe_path
    from ecgssl.train.recipes import load_recipe
    from ecgssl.train.run import pretrain

    ov = [f"train.max_steps={steps}", "train.progress_bar=false", "train.tensorboard=false",
          "train.log_every_n_steps=5", f"train.collapse_every_n_steps={max(5, steps // 20)}",
          "train.checkpoint_every_n_epochs=0", *overrides]
    if steps < 60:  # the recipes warm up for one epoch: shorter than a smoke run
        ov += ["train.warmup_epochs=0", f"train.warmup_steps={max(1, steps // 5)}"]
    if reuse:
        info = reusable(out, load_recipe(recipe_path(recipe), ov), store)
        if info is not None:
            print(f"    reusing the finished run in {_rel(out)}", flush=True)
            return info | {"reused": True}, ov
    t = time.perf_counter()
    result = pretrain(recipe_path(recipe), store, out, overrides=ov)
    info = {"steps": result.global_step, "epochs": result.epochs, "wall_s": time.perf_counter() - t,
            "samples_per_s": result.samples_per_s, "final_loss": result.final_loss}
    (out / TRAIN_INFO).write_text(json.dumps(info, indent=2))
    return info, ov


def export_target_encoder(run_dir: Path) -> Path:
    """Export the EMA target encoder of a finished ECG-JEPA run as ``<run_dir>/target/encoder.*``.

    The engine exports the student (context) encoder; I-JEPA evaluates the EMA target encoder
    (a temporal ensemble of the student, usually the better representation). Both are candidates
    here and the validation probe chooses. Same architecture and preprocessing JSON as the
    student's export, weights from ``method.target_encoder.*`` of ``checkpoints/last.ckpt``.
    """
    import torch
    from safetensors.torch import save_file

    from ecgssl.api import load_encoder

    student = load_encoder(run_dir)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    prefix = "method.target_encoder."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    student.module.load_state_dict(state, strict=True)  # fails loudly on any mismatch
    out = run_dir / "target"
    out.mkdir(exist_ok=True)
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()},
              str(out / "encoder.safetensors"),
              metadata={"format": "pt", "ecgssl": "ecgssl-encoder"})
    meta = json.loads((run_dir / "encoder.json").read_text())
    meta["training"]["exported_weights"] = "EMA target encoder (method.target_encoder)"
    (out / "encoder.json").write_text(json.dumps(meta, indent=2))
    shutil.copy2(run_dir / "metrics.csv", out / "metrics.csv")  # the suite's training curves
    return out


# --------------------------------------------------------------------------- validation probe
def _embed(encoder, store, rows: np.ndarray, seed: int | None = None) -> np.ndarray:
    """Pooled features of store rows, for a loaded encoder (``seed``: a random-init copy)."""
    import torch

    from ecgssl.api import _takes_leads  # the suite's own test of "forward(x, leads)"
    from ecgssl.eval.embeddings import compute_embeddings
    from ecgssl.eval.suite import LeadView
    from ecgssl.models import create_encoder

    module = encoder.module
    if seed is not None:
        torch.manual_seed(seed)
        spec = encoder.spec["encoder"]
        module = create_encoder(spec["name"], **spec["overrides"]).eval()
    leads = list(encoder.spec["preprocessing"]["leads"])
    view = LeadView(store, leads)
    signals = np.stack([view.signals[int(i)] for i in rows]).astype(np.float32)
    return compute_embeddings(module, signals, batch_size=32,
                              leads=leads if _takes_leads(module) else None, progress=False)


def centred_erank(feats: np.ndarray) -> float:
    """Effective rank (exp entropy of normalised singular values) of (n, D) features after
    centring: 1 = one direction carries all the spread across windows."""
    s = np.linalg.svd(feats - feats.mean(0), compute_uv=False)
    p = s / max(s.sum(), 1e-12)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


VAL_MIN_POSITIVES = 5   # CinC classes with fewer positives (of 50) are not scored
VAL_REPEATS = 5         # shuffled 5-fold CV repeated: AUROC over 50 records is noisy
VAL_C = 0.1             # fixed: the same probe for every encoder, nothing tuned per encoder


def cinc_probe(feats: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Multi-label linear probe on the CinC 2021 sample (one record per patient, so plain
    K-fold is grouped by patient): standardise, L2 logistic regression (C = ``VAL_C``) per class,
    out-of-fold scores of ``VAL_REPEATS`` shuffled 5-fold splits.

    Args:
        feats: (n, D) frozen features of the CinC windows; labels: (n, K) 0/1 SNOMED codes.
    Returns:
        ``{"macro_auroc", "macro_auroc_std" (over repeats), "classes", "n"}``; the AUROC of a
        repeat is the mean over classes with >= ``VAL_MIN_POSITIVES`` positives and negatives.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pos = labels.sum(0)
    keep = np.flatnonzero((pos >= VAL_MIN_POSITIVES) & (len(labels) - pos >= VAL_MIN_POSITIVES))
    per_repeat = []
    for rep in range(VAL_REPEATS):
        oof = np.zeros((len(labels), len(keep)))
        for tr, te in KFold(5, shuffle=True, random_state=rep).split(feats):
            for j, k in enumerate(keep):
                y = labels[tr, k]
                if y.min() == y.max():  # a fold without positives: predict the prevalence
                    oof[te, j] = y.mean()
                    continue
                clf = make_pipeline(StandardScaler(), LogisticRegression(C=VAL_C, max_iter=2000))
                clf.fit(feats[tr], y)
                oof[te, j] = clf.predict_proba(feats[te])[:, 1]
        per_repeat.append(np.mean([roc_auc_score(labels[:, k], oof[:, j])
                                   for j, k in enumerate(keep)]))
    return {"macro_auroc": float(np.mean(per_repeat)),
            "macro_auroc_std": float(np.std(per_repeat, ddof=1)),
            "classes": [names[k] for k in keep], "n": int(len(labels))}


def validation_probe(encoder, store, seed: int | None = None) -> dict:
    """Scores of frozen features on the NON-LUDB windows of the pretraining store.

    ``cinc_auroc`` (the selection ``score``): ``cinc_probe`` on the 50 CinC 2021 records and
    their SNOMED diagnoses (12-lead 10 s ECGs like LUDB's, 50 patients).
    Reported only: ``af_auroc``, logistic AF vs non-AF on the CPSC 2021 windows, 5-fold
    GroupKFold by recording (6 patients, 4 of them single-class: below 0.5 for most encoders);
    ``rhythm_r2``, ridge regression of the store's measured rhythm features (standardised) on all
    non-LUDB windows, grouped 5-fold CV, mean R^2 over features.
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    man = store.manifest
    rows = np.flatnonzero((man["source"] != "ludb").to_numpy())
    feats = _embed(encoder, store, rows, seed)
    groups = man["patient_id"].astype(str).to_numpy()[rows]
    names = list(store.label_names)
    labels = np.asarray(store.labels)[rows]
    source = man["source"].to_numpy()[rows]
    out: dict = {"n_windows": int(len(rows)), "feat_erank": centred_erank(feats)}

    cinc = source == "cinc2021-sample"
    if cinc.sum() >= 20:
        if len(set(groups[cinc])) != cinc.sum():
            raise ValueError("CinC windows share patients: the CinC probe needs grouped folds")
        c = cinc_probe(feats[cinc], labels[cinc].astype(int), names)
        out.update({"cinc_auroc": c["macro_auroc"], "cinc_auroc_std": c["macro_auroc_std"],
                    "cinc_classes": c["classes"], "cinc_n": c["n"]})
    cpsc = source == "cpsc2021-sample"
    if "rhythm:AFIB" in names and cpsc.sum() >= 20:
        y = labels[cpsc, names.index("rhythm:AFIB")].astype(int)
        x, g = feats[cpsc], groups[cpsc]
        oof = np.zeros(len(y))
        for tr, te in GroupKFold(5).split(x, y, g):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
            clf.fit(x[tr], y[tr])
            oof[te] = clf.predict_proba(x[te])[:, 1]
        out["af_auroc"] = float(roc_auc_score(y, oof))
        out["af_n"] = [int(y.sum()), int(len(y) - y.sum())]
    if (Path(store.path) / "features.npy").exists():
        target = np.asarray(store.features)[rows]
        pred = np.zeros_like(target)
        for tr, te in GroupKFold(5).split(feats, target, groups):
            reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
            reg.fit(feats[tr], target[tr])
            pred[te] = reg.predict(feats[te])
        r2 = [float(r2_score(target[:, j], pred[:, j])) for j in range(target.shape[1])]
        out["rhythm_r2"] = float(np.mean(r2))
        out["rhythm_r2_per_feature"] = dict(zip(store.config.get("feature_names", []), r2))
    out["score"] = out.get("cinc_auroc", float("nan"))
    return out


# --------------------------------------------------------------------------- reporting
def _f(v, digits=3) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else \
        f"{v:.{digits}f}"


def _pm(d: dict | None, digits=3) -> str:
    if not d or d.get("mean") is None:
        return "-"
    return f"{d['mean']:.{digits}f} ± {d.get('std', float('nan')):.{digits}f}"


def _val(v: dict) -> str:
    """'0.612 ± 0.010': CinC probe AUROC ± std over repeats."""
    if v.get("cinc_auroc") is None:
        return "-"
    return f"{v['cinc_auroc']:.3f} ± {v.get('cinc_auroc_std', float('nan')):.3f}"


def _seg_f1(pooled: dict, wave: str) -> float | None:
    w = (pooled or {}).get(wave)
    if not w:
        return None
    return (w["onset"]["f1"] + w["offset"]["f1"]) / 2


def _seg_dice(pooled: dict, wave: str) -> float | None:
    w = (pooled or {}).get(wave) or {}
    d = w.get("dice")
    return d.get("value", d.get("mean")) if isinstance(d, dict) else d


def markdown(res: dict) -> str:
    lines = ["# CPU-scale pretraining on the real data: ECG-JEPA and Beat-SSL vs baselines", "",
             f"Command: `{res['command']}`  ",
             f"Machine: {res['machine']}; torch threads {res['threads']}; total "
             f"{res['total_s'] / 60:.1f} min. Timings were taken on a shared machine (another "
             "job ran in parallel): re-run on a quiet machine for final timings.", "",
             "## Data", ""]
    for key in ("pretrain_store", "eval_store"):
        s = res[key]
        lines.append(f"- {key.replace('_', ' ')}: `{s['command']}` -> {s['n_windows']} windows "
                     f"({s.get('sources', '')}), {s['seconds']:.0f} s")
    lines += ["", "## Pretraining runs (every setting tried)", "",
              "Selection: per method, the candidate with the best validation score among runs "
              "that did not collapse; for ECG-JEPA the student (context) encoder and the EMA "
              "target encoder of every run (`<run>/target`) are both candidates, and every "
              "weights are tried with each feature pooling (mean over time, and `[meanmax]`: "
              "mean and max over time concatenated; the random-init twin pools the same "
              "way). The validation "
              "probe never sees LUDB. Score = **val CinC AUROC**: logistic probe (standardised, "
              f"C {VAL_C}) on the 50 CinC 2021 records (50 patients), macro AUROC over the SNOMED "
              f"codes with >= {VAL_MIN_POSITIVES} positives, out-of-fold over "
              f"{VAL_REPEATS} repeats of shuffled 5-fold CV (± = std over the repeats). "
              "Reported only: AF vs non-AF on the CPSC 2021 windows (grouped CV by recording; 6 "
              "patients, 4 single-class: below 0.5 for most encoders, useless for choices) and "
              "ridge R² of measured rhythm features on all non-LUDB windows (grouped CV over 20 "
              "recordings of 3 sources: negative for every encoder). feat erank: effective "
              "rank of the centred pooled features of the 671 non-LUDB windows. Random-init rows: "
              "the same probes on a random-initialised encoder of that architecture.", "",
              "| run | method | weights | steps (epochs) | wall s | loss start -> end | collapse "
              "metrics start -> end | collapsed | feat erank | val CinC AUROC | val AF AUROC | "
              "val rhythm R² | chosen |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    shown_random = set()
    for name, r in res["pretraining"].items():
        t, s, v = r["train"], r["summary"], r["validation"]
        coll = "; ".join(f"{k.split('/')[-1]} {_f(x['start'])} -> {_f(x['end'])}"
                         for k, x in s["collapse"].items()
                         if k in r["collapse_keys"])
        pooled = ", mean+max pooled" if r.get("pool") == "meanmax" else ""
        lines.append(f"| {name} | {METHOD_TITLES[r['method']]} | {r.get('weights', '')}{pooled} | "
                     f"{t['steps']} ({t['epochs']}) | "
                     f"{t['wall_s']:.0f}{' (earlier run, reused)' if t.get('reused') else ''} | "
                     f"{_f(s['loss_start'])} -> {_f(s['loss_end'])} | "
                     f"{coll} | {'yes: ' + r['collapse_reason'] if r['collapsed'] else 'no'} | "
                     f"{_f(v.get('feat_erank'), 1)} | {_val(v)} | {_f(v.get('af_auroc'))} | "
                     f"{_f(v.get('rhythm_r2'))} | {'**yes**' if r['chosen'] else ''} |")
        if r["arch"] in shown_random:
            continue
        shown_random.add(r["arch"])
        rv = r["validation_random_init"]
        lines.append(f"| random-init {r['arch']} | | | | | | | | {_f(rv.get('feat_erank'), 1)} | "
                     f"{_val(rv)} | {_f(rv.get('af_auroc'))} | {_f(rv.get('rhythm_r2'))} | |")
    lines += ["", "Overrides of each run (on top of its recipe in `src/ecgssl/configs/`):", ""]
    for name, r in res["pretraining"].items():
        if _run_of(name, r) != name:
            continue
        lines.append(f"- {name}: `{r['recipe']}` " + " ".join(f"`{o}`" for o in r["overrides"]))

    suite = res.get("suite") or {}
    lines += ["", "## LUDB evaluation (run_suite)", "",
              f"Settings: {json.dumps(res['suite_config'])}. 5-fold cross-validation by "
              "patient; validation carved from the training folds; every choice (C, alpha, "
              "threshold, epoch) made on validation; test folds touched once. Full report: "
              f"`benchmarks/results/{res.get('stem', STEM)}/report.md`."
              + (" Rows: every candidate run (its validation-chosen weights: student or EMA "
                 "target), not only the chosen one." if res.get("each_candidate") else ""),
              ""]
    probe = suite.get("probe") or {}
    if probe:
        lines += ["### Classification (LUDB diagnoses, multi-label)", "",
                  "Frozen rows: linear probe on pooled features. Supervised rows: the whole "
                  "encoder + linear head trained from random init.", "",
                  "| row | macro AUROC | macro F1 |", "|---|---|---|"]
        for k, v in probe.items():
            lines.append(f"| {k} | {_pm(v['macro_auroc'])} | {_pm(v['macro_f1'])} |")
        lines += ["", f"Labels ({len(suite.get('probe_labels', []))}): "
                  f"{', '.join(suite.get('probe_labels', []))}", ""]
        lines += _paired_probe_md(suite.get("paired_probe") or {})
    reg = suite.get("regression") or {}
    if reg:
        targets = list(next(iter(reg.values())).keys())
        lines += ["### Feature prediction (ridge on frozen features, expert LUDB targets)", "",
                  "| row | " + " | ".join(f"{t} MAE / R²" for t in targets) + " |",
                  "|---|" + "---|" * len(targets)]
        for k, v in reg.items():
            cells = [f"{_f(v[t].get('mae'), 1)} / {_f(v[t].get('r2'), 2)}" for t in targets]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
    seg = suite.get("segmentation") or {}
    if seg:
        lines += ["### P/QRS/T segmentation (pooled test folds)", "",
                  "F1 = mean of onset and offset F1 within ±150 ms; Dice over the annotated "
                  "span.", "",
                  "| row | QRS F1 | T F1 | P F1 | QRS Dice | T Dice | P Dice |",
                  "|---|---|---|---|---|---|---|"]
        for k, v in seg.items():
            pooled = v.get("pooled") or {}
            lines.append(f"| {k} | " + " | ".join(_f(_seg_f1(pooled, w)) for w in
                                                   ("QRS", "T", "P")) + " | " +
                         " | ".join(_f(_seg_dice(pooled, w)) for w in ("QRS", "T", "P")) + " |")
        lines.append("")
        lines += _paired_seg_md(suite.get("paired_segmentation") or {})
    lines += _seed_spread_md(res.get("seed_spread"))
    lines += ["## What beat what", ""] + [f"- {c}" for c in res.get("comparisons", [])]
    lines += ["", "## Diagnosis", ""] + [f"- {c}" for c in diagnosis(res)]
    lines += ["", "## Caveats", ""] + [f"- {c}" for c in caveats(res)]
    return "\n".join(lines) + "\n"


def _verdict(ci, baseline: str = "random init") -> str:
    """What a 95 % CI of a difference (row - baseline) says."""
    if ci[0] > 0:
        return f"beats {baseline}"
    if ci[1] < 0:
        return f"WORSE than {baseline}"
    return f"NOT shown to beat {baseline} (the CI includes 0)"


def _finetuned_line(title: str, metric: str, a: float, b: float, delta: float, ci) -> str:
    """Fine-tuned pretrained row against the same training from random init."""
    return (f"{title} fine-tuned {metric} {a:.3f} vs supervised from scratch {b:.3f} "
            f"({delta:+.3f}, 95 % paired CI {format_ci(ci)}: "
            + _verdict(ci, "the same training from random init") + ").")


def _paired_probe_md(paired: dict) -> list[str]:
    if not paired:
        return []
    return ["#### Paired differences (same folds, same test records)", "",
            *probe_difference_table(paired), ""]


def _paired_seg_md(paired: dict) -> list[str]:
    if not paired:
        return []
    return ["#### Paired differences (same test records)", "",
            *segmentation_difference_table(paired), ""]


def _seed_spread_md(spread: dict | None) -> list[str]:
    if not spread:
        return []
    n = spread["n_seeds"]
    lines = [f"### LUDB probe against {n} random initialisations", "",
             "The suite's twin is seed 0. Every pretrained row is paired with each random "
             "initialisation of its architecture (same folds and records; 95 % paired bootstrap "
             "CI).", "",
             "| architecture | random-init macro AUROC per seed | mean ± sd |", "|---|---|---|"]
    for arch, aucs in spread["random"].items():
        lines.append(f"| {arch} | " + " ".join(f"{a:.3f}" for a in aucs)
                     + f" | {np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f} |")
    lines += ["", "| pretrained row | macro AUROC | beats seeds (CI above 0) | difference per seed "
              "[95 % CI] |", "|---|---|---|---|"]
    for title, r in spread["rows"].items():
        wins = sum(v["ci"][0] > 0 for v in r["vs_seeds"])
        cells = "; ".join(f"s{v['seed']} {v['delta']:+.3f} {format_ci(v['ci'])}"
                          for v in r["vs_seeds"])
        lines.append(f"| {title} | {r['auroc']:.3f} | {wins}/{len(r['vs_seeds'])} | {cells} |")
    fams = spread.get("families")
    if fams and all("families" in v for r in spread["rows"].values() for v in r["vs_seeds"]):
        lines += ["", "By label family: the same paired difference on each family's labels only "
                  "(a breakdown of the macro AUROC, added after the per-label table showed the "
                  "pattern; not a pre-registered test). Cell: difference to the suite's twin "
                  f"(seed 0) [95 % CI]; then in how many of the {n} seeds the CI is above 0 / "
                  "below 0.", "",
                  "| pretrained row | " + " | ".join(f"{f} ({len(v)})" for f, v in fams.items())
                  + " |", "|---|" + "---|" * len(fams)]
        for title, r in spread["rows"].items():
            cells = []
            for f in fams:
                v0 = r["vs_seeds"][0]["families"][f]
                up = sum(v["families"][f]["ci"][0] > 0 for v in r["vs_seeds"])
                down = sum(v["families"][f]["ci"][1] < 0 for v in r["vs_seeds"])
                cells.append(f"{v0['delta']:+.3f} {format_ci(v0['ci'])}; {up}/{down}")
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines + [""]


def diagnosis(res: dict) -> list[str]:
    """What the training statistics say about each ECG-JEPA run (written from the results)."""
    out = []
    for name, r in res["pretraining"].items():
        c = r["summary"]["collapse"]
        ratio = c.get("collapse/feat_std_ratio")
        if r["method"] != "jepa" or _run_of(name, r) != name or ratio is None:
            continue
        scale = next((float(o.split("=", 1)[1]) for o in r["overrides"]
                      if o.startswith("encoder.input_scale=")), 1.0)
        if scale != 1.0:  # the fix under test: numbers only, the explanation below is scale 1's
            out.append(
                f"{name} (input_scale {scale:g}): feat_std_ratio {ratio['start']:.4f} at "
                f"initialisation, {ratio['end']:.4f} at the end; loss "
                f"{r['summary']['loss_start']:.3f} -> {r['summary']['loss_end']:.3f}.")
            continue
        out.append(
            f"{name}: the pooled ViT features are nearly the same vector for every ECG: "
            f"feat_std_ratio (across-batch std of the l2-normalised features x sqrt(D); about 1 "
            f"for well-spread features) {ratio['start']:.4f} at initialisation, "
            f"{ratio['end']:.4f} at the end, while the loss fell "
            f"{r['summary']['loss_start']:.3f} -> {r['summary']['loss_end']:.3f}. The tokens are "
            "dominated by the fixed sin-cos position embedding (entries of order 1, re-added "
            "before every block), next to which the patch embedding of mV-scale patches "
            "(weights at init std 0.02) is small; the predictor recovers most of the "
            "layer-normed targets from position alone, so the loss falls without the encoder "
            "having to read the ECG. The collapse rule (relative to the start) does not fire "
            "because the spread is tiny from the first step; the effective rank of the "
            "centred features stays high (the standardised probes see the small "
            "input-dependent part).")
    return out


def caveats(res: dict) -> list[str]:
    """What a reader must know to weigh the numbers (written from the results themselves)."""
    out = []
    out.append("The validation probe is small: 50 CinC 2021 records (a handful of positives per "
               "scored code), so its AUROC moves by about its ± between repeats of the CV "
               "splits; settings closer than that are not told apart by it. It is still the only "
               "basis of the choice: LUDB labels are used for nothing but the final table. "
               "The CPSC AF AUROC (reported only) is below chance for most encoders: 6 "
               "patients, 4 of them single-class, so grouped CV rewards nothing useful.")
    if (res.get("suite") or {}).get("paired_probe"):
        out.append("± is the std over the 5 folds, which mixes how hard each fold is into every "
                   "row; the verdicts use the paired CIs instead (same records for both rows). "
                   "They cover the test sample, not other pretraining seeds: the seed-replicate "
                   "candidates (`--candidates ..._s1 ..._s2`) and `--random-seeds` cover those.")
    else:
        out.append("Differences between rows of a few hundredths (probe AUROC, segmentation F1) "
                   "are within the fold-to-fold spread (± std over the 5 folds); one seed, one "
                   "run per setting.")
    out.append("CPU-scale budgets (1000-1500 optimiser steps, ~870 pretraining windows, "
               f"{res['suite_config'].get('seg_epochs')} segmentation epochs): these numbers test "
               "the pipeline and the protocol at small scale, not what the methods reach with "
               "real pretraining data.")
    out.append(f"The copied report (`{res.get('stem', STEM)}/report.md`) keeps only "
               f"{len(res.get('report_figures', []))} of its figures "
               f"({', '.join(res.get('report_figures', []))}); the others are in the run folder.")
    return out


def comparisons(suite: dict, chosen: dict[str, str]) -> list[str]:
    """Plain statements: each pretrained row against random-init and supervised of its arch."""
    out = []
    # A task the suite skipped (--probe-only) is stored as None.
    probe, seg, reg = (suite.get(k) or {} for k in ("probe", "segmentation", "regression"))
    paired_probe = suite.get("paired_probe") or {}
    paired_seg = suite.get("paired_segmentation") or {}
    for title, arch in chosen.items():
        rnd, sup = f"random-init {arch}", f"supervised from scratch {arch}"
        if title in probe and rnd in probe:
            a, b = probe[title]["macro_auroc"]["mean"], probe[rnd]["macro_auroc"]["mean"]
            sa, sb = probe[title]["macro_auroc"]["std"], probe[rnd]["macro_auroc"]["std"]
            s = probe.get(sup, {}).get("macro_auroc", {}).get("mean")
            # Folds are not paired in the stored results: call a gap real only when it exceeds
            # the larger of the two fold-to-fold stds.
            spread = max(sa, sb)
            verdict = ("beyond" if abs(a - b) > spread else "within") + \
                f" the fold-to-fold spread (± {spread:.3f})"
            sup_text = "" if s is None else f"; supervised from scratch {_f(s)}"
            pp = paired_probe.get(title)
            if pp:  # paired bootstrap over the same test records: the verdict's basis
                verdict = (f"95 % paired CI {format_ci(pp['ci'])}, P(not better) "
                           f"{pp['p_not_better']:.3f}: "
                           + _verdict(pp["ci"])
                           + f"; better on {pp['classes_better']}/{pp['n_classes']} labels")
            out.append(f"{title} LUDB probe macro AUROC {a:.3f} ± {sa:.3f} vs random-init "
                       f"{b:.3f} ± {sb:.3f}: {'higher' if a > b else 'NOT higher'} than random "
                       f"init ({a - b:+.3f}, {verdict}){sup_text}.")
        ft = paired_probe.get(f"{title} fine-tuned")
        if ft:
            out.append(_finetuned_line(title, "LUDB classification macro AUROC", ft["a"],
                                       ft["b"], ft["delta"], ft["ci"]))
        key = f"{title} (frozen encoder + decoder)"
        rkey = f"{rnd} (frozen encoder + decoder)"
        nk = next((k for k in seg if k.startswith("neurokit2")), None)
        if key in seg and rkey in seg:
            p, q = seg[key]["pooled"], seg[rkey]["pooled"]
            fa = np.mean([_seg_f1(p, w) for w in ("QRS", "T", "P")])
            fb = np.mean([_seg_f1(q, w) for w in ("QRS", "T", "P")])
            line = (f"{title} segmentation mean F1 (QRS, T, P) {fa:.3f} vs random-init "
                    f"{fb:.3f}: {'beats' if fa > fb else 'does NOT beat'} random init")
            ps = paired_seg.get(key)
            if ps:
                line += (f" ({ps['delta_f1']:+.3f}, 95 % paired CI {format_ci(ps['ci_f1'])}: "
                         + _verdict(ps["ci_f1"]) + ")")
            if nk:
                fn = np.mean([_seg_f1(seg[nk]["pooled"], w) for w in ("QRS", "T", "P")])
                line += f"; neurokit2 prominence {fn:.3f} ({'beaten' if fa > fn else 'NOT beaten'})"
            out.append(line + ".")
        ps = paired_seg.get(f"{title} fine-tuned")
        if ps:
            out.append(_finetuned_line(title, "segmentation mean F1", ps["a_f1"], ps["b_f1"],
                                       ps["delta_f1"], ps["ci_f1"]))
        if title in reg and rnd in reg:
            wins = [t for t in reg[title] if reg[title][t].get("mae") is not None
                    and reg[rnd].get(t, {}).get("mae") is not None
                    and reg[title][t]["mae"] < reg[rnd][t]["mae"]]
            out.append(f"{title} feature prediction: lower MAE than random init on "
                       f"{len(wins)}/{len(reg[title])} targets ({', '.join(wins) or 'none'}).")
    nk = next((k for k in seg if k.startswith("neurokit2")), None)
    if nk:
        ref = seg[nk]["pooled"]
        for k in seg:
            if k == nk:
                continue
            p = seg[k]["pooled"]
            f1 = [w for w in ("QRS", "T", "P") if _seg_f1(p, w) > _seg_f1(ref, w)]
            dice = [w for w in ("QRS", "T", "P")
                    if (_seg_dice(p, w) or 0) > (_seg_dice(ref, w) or 0)]
            out.append(f"{k} vs neurokit2 prominence: higher F1 on {', '.join(f1) or 'no wave'}"
                       f"; higher Dice on {', '.join(dice) or 'no wave'}.")
    return out


def copy_report(src: Path, dst: Path) -> list[str]:
    """report.md, report.json and at most ``MAX_FIGURES`` figures (training curves, QRS onset
    errors of the pretrained rows, the overlay); model weights are never copied."""
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "figures").mkdir(parents=True)
    for name in ("report.md", "report.json"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    figs = sorted((src / "figures").glob("*.png")) if (src / "figures").exists() else []
    # Small figures first: the 12-lead overlay is ~0.5 MB, kept only if room is left.
    order = [f for f in figs if f.stem.startswith("training_")] + \
        [f for f in figs if f.stem.startswith("qrs_onset") and "random" not in f.stem
         and "supervised" not in f.stem] + \
        [f for f in figs if f.stem.startswith("segmentation_overlay")]
    kept = []
    for f in order[:MAX_FIGURES]:
        shutil.copy2(f, dst / "figures" / f.name)
        kept.append(f.name)
    return kept


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (minutes)")
    parser.add_argument("--out", default=str(REPO / "runs" / "pretrain_cpu_scale"))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: the machine is shared)")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the Markdown (and the copied suite report) from the "
                             "results JSON of an earlier run, without training")
    parser.add_argument("--candidates", nargs="+", metavar="NAME",
                        help="run only these candidates (names from the full list or "
                             "CANDIDATES_EXTRA); use with --stem so the full results stay")
    parser.add_argument("--stem", default=None,
                        help=f"results stem (default {STEM}) and run sub-directory")
    parser.add_argument("--each-candidate", action="store_true",
                        help="evaluate every candidate run on LUDB (its validation-chosen "
                             "weights, student or EMA target), not only the chosen one per "
                             "method; the choice between runs is still the validation probe's")
    parser.add_argument("--probe-only", action="store_true",
                        help="LUDB suite: linear probe + random-init twins only (no "
                             "regression, segmentation, supervised or classical rows)")
    parser.add_argument("--finetune", action="store_true",
                        help="LUDB suite: also fine-tune each pretrained encoder (classification "
                             "and segmentation) beside supervised from scratch")
    parser.add_argument("--random-seeds", type=int, default=1, metavar="N",
                        help="LUDB probe of N random initialisations of each architecture "
                             "(seeds 0..N-1), each paired with every pretrained row")
    parser.add_argument("--pools", nargs="+", default=["mean", "meanmax"],
                        choices=["mean", "meanmax"],
                        help="feature poolings tried for every run (a candidate each; the "
                             "validation probe chooses)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a candidate's finished run when its resolved recipe and "
                             "pretraining store hash are those of this run (no retraining)")
    args = parser.parse_args(argv)
    if args.report_only:
        return write_results(None, args)

    import torch

    torch.set_num_threads(args.threads)
    from ecgssl.api import load_encoder
    from ecgssl.data.store import ECGStore
    from ecgssl.eval.suite import SuiteConfig, _arch_label, run_suite

    t0 = time.perf_counter()
    out = _run_root(args)
    out.mkdir(parents=True, exist_ok=True)
    stem = _stem(args)
    candidates = select_candidates(args.candidates, args.quick)
    suite_budget = SUITE_QUICK if args.quick else SUITE_FULL
    res: dict = {"command": "python benchmarks/pretrain_cpu_scale.py"
                 + (" --quick" if args.quick else "")
                 + (" --candidates " + " ".join(args.candidates) if args.candidates else "")
                 + (" --each-candidate" if args.each_candidate else "")
                 + (" --probe-only" if args.probe_only else "")
                 + (" --finetune" if args.finetune else "")
                 + (f" --random-seeds {args.random_seeds}" if args.random_seeds > 1 else "")
                 + (" --reuse" if args.reuse else "")
                 + (f" --pools {' '.join(args.pools)}" if args.pools != ["mean", "meanmax"]
                    else "")
                 + (f" --stem {args.stem}" if args.stem else "")
                 + (f" --threads {args.threads}" if args.threads != 1 else ""),
                 "stem": stem, "each_candidate": args.each_candidate,
                 "probe_only": args.probe_only,
                 "machine": f"{platform.processor() or platform.machine()}, "
                            f"{__import__('os').cpu_count()} CPUs, Python "
                            f"{platform.python_version()}, torch {torch.__version__}",
                 "threads": args.threads}

    # 1. stores
    print("[1/4] preparing stores", flush=True)
    pre_dir, eval_dir = out / "pretrain_store", out / "ludb_store"
    cmd, sec = prepare(PRETRAIN_SOURCES, pre_dir, PRETRAIN_SETS)
    pre_store = ECGStore(pre_dir)
    res["pretrain_store"] = {"command": cmd, "seconds": sec, "n_windows": len(pre_store),
                             "sources": pre_store.manifest["source"].value_counts().to_dict(),
                             "skipped": json.loads((pre_dir / "report.json").read_text())
                             .get("skipped", [])}
    cmd, sec = prepare([REPO / "data" / "ludb"], eval_dir, EVAL_SETS)
    eval_store = ECGStore(eval_dir)
    res["eval_store"] = {"command": cmd, "seconds": sec, "n_windows": len(eval_store),
                         "sources": eval_store.manifest["source"].value_counts().to_dict()}

    # 2. pretraining + 3. validation probe and choice
    res["pretraining"] = {}
    val_random: dict[str, dict] = {}  # encoder spec -> validation of its random-init twin
    for name, method, recipe, steps, overrides in candidates:
        print(f"[2/4] pretraining {name} ({steps} steps)", flush=True)
        run_dir = out / name
        info, ov = run_pretraining(name, recipe, pre_dir, run_dir, steps, overrides,
                                   reuse=args.reuse)
        summary = training_summary(run_dir / "metrics.csv", method)
        is_collapsed, reason = collapsed(summary)
        keys = ["train/target_std", "train/target_erank", "train/rhythm_z_std"] + \
            [k for k in summary["collapse"] if k.startswith("collapse/")]
        base = {"run": name, "method": method, "recipe": recipe, "overrides": ov, "train": info,
                "summary": summary, "collapsed": is_collapsed, "collapse_reason": reason,
                "collapse_keys": keys, "chosen": False}
        print(f"    loss {summary['loss_start']:.4g} -> {summary['loss_end']:.4g}; collapsed "
              f"{is_collapsed} {reason}; {info['wall_s']:.0f} s", flush=True)
        # Candidates of this run: its weights (and, for ECG-JEPA, the EMA target encoder's)
        # x every pooling of the features; the validation probe chooses among all of them.
        weights = [(name, run_dir, "student (context) encoder" if method == "jepa" else
                    "encoder")]
        if method == "jepa":
            weights.append((f"{name}/target", export_target_encoder(run_dir),
                            "EMA target encoder"))
        for key, weights_dir, weights_title in weights:
            for pool in args.pools:
                t = time.perf_counter()
                enc = load_encoder(weights_dir, pool=pool)
                arch = _arch_label(enc.spec)  # random-init twins pool the same way
                # Keyed by the whole spec: the label leaves out e.g. pos_every_block.
                spec_key = json.dumps(enc.spec["encoder"], sort_keys=True, default=str)
                if spec_key not in val_random:
                    val_random[spec_key] = validation_probe(enc, pre_store, seed=0)
                val = validation_probe(enc, pre_store)
                entry_key = key if pool == "mean" else f"{key} [{pool}]"
                res["pretraining"][entry_key] = base | {
                    "validation": val, "validation_random_init": val_random[spec_key],
                    "validation_s": time.perf_counter() - t, "arch": arch,
                    "run_dir": _rel(weights_dir), "weights": weights_title, "pool": pool}
                print(f"    {entry_key}: validation score {val['score']:.3f} (random init "
                      f"{val_random[spec_key]['score']:.3f})", flush=True)
    chosen: dict[str, str] = {}
    encoders = {}
    for method in dict.fromkeys(c[1] for c in candidates):
        runs = {k: v for k, v in res["pretraining"].items() if v["method"] == method}
        ok = {k: v for k, v in runs.items() if not v["collapsed"]} or runs
        best = max(ok, key=lambda k: ok[k]["validation"]["score"])
        res["pretraining"][best]["chosen"] = True
        title = METHOD_TITLES[method]
        encoders[title] = _load_entry(res["pretraining"][best])
        chosen[title] = res["pretraining"][best]["arch"]
        print(f"    chosen for {title}: {best}", flush=True)
    res["chosen"] = {t: {"arch": a, "run": next(k for k, v in res["pretraining"].items()
                                                if v["chosen"] and METHOD_TITLES[v["method"]] == t)}
                     for t, a in chosen.items()}
    if args.each_candidate:
        encoders, chosen, res["evaluated"] = evaluate_each(res["pretraining"])

    # Partial results now, so that a run stopped during the suite still leaves its pretraining.
    Path(args.results).mkdir(parents=True, exist_ok=True)
    (Path(args.results) / f"{stem}_partial.json").write_text(
        json.dumps(_clean(res), indent=2, default=str))

    # 4. LUDB suite
    print("[3/4] LUDB evaluation suite", flush=True)
    cfg = SuiteConfig(n_folds=5, seg_epochs=suite_budget["seg_epochs"],
                      seg_batch_size=suite_budget["seg_batch_size"],
                      finetune_epochs=suite_budget["finetune_epochs"],
                      n_boot=suite_budget["n_boot"], seg_folds=suite_budget["seg_folds"],
                      plots=True)
    res["suite_config"] = {k: suite_budget[k] for k in suite_budget} | {"n_folds": 5}
    if args.probe_only:  # the classification probe against the random-init twins, nothing else
        cfg.tasks, cfg.supervised, cfg.classical = ["probe"], False, False
        res["suite_config"] |= {"tasks": ["probe"], "supervised": False, "classical": False}
    if args.finetune:
        cfg.finetune_pretrained = cfg.supervised = True
        res["suite_config"] |= {"finetune_pretrained": True, "supervised": True}
    t = time.perf_counter()
    suite = run_suite(encoders, eval_store, out / "report", cfg,
                      title="CPU-scale pretraining on the real data: LUDB evaluation",
                      progress=False)
    res["suite_s"] = time.perf_counter() - t
    res["suite"] = {k: suite.get(k) for k in ("rows", "probe", "probe_labels", "regression",
                                               "segmentation", "paired_probe",
                                               "paired_segmentation", "seconds")}
    if args.random_seeds > 1:
        print(f"[3/4] LUDB probe: {args.random_seeds} random initialisations", flush=True)
        res["seed_spread"] = seed_spread(encoders, eval_store, cfg, args.random_seeds)
    res["total_s"] = time.perf_counter() - t0
    (Path(args.results) / f"{stem}_partial.json").write_text(
        json.dumps(_clean(res), indent=2, default=str))
    return write_results(res, args)


def seed_spread(encoders: dict, store, cfg, n_seeds: int) -> dict:
    """LUDB linear probe of every pretrained row against ``n_seeds`` random initialisations of
    its architecture (seeds 0..n-1; seed 0 is the suite's twin), each difference paired record
    by record. Same folds, labels and probe as ``run_suite``.

    Also per label family (the prefix of a LUDB label: axis, conduction, hypertrophy,
    ischemia, repolarisation, rhythm), the same paired difference on that family's labels only:
    a breakdown of the macro AUROC, not a separate test (written after the per-label
    differences showed that Beat-SSL's wins and losses follow the families).

    Returns:
        ``{"rows": {title: {"arch", "auroc", "vs_seeds": [{"seed", "auroc", "delta", "ci",
        "p_not_better", "families": {family: {"delta", "ci"}}}]}}, "random": {arch: [auroc
        per seed]}, "families": {family: [labels]}}``.
    """
    from ecgssl.eval.compare import paired_probe_difference
    from ecgssl.eval.probe import linear_probe_cv
    from ecgssl.eval.splits import patient_kfold
    from ecgssl.eval.suite import _arch_label, _label_matrix

    labels, names, _ = _label_matrix(store, cfg)
    pids = store.manifest["patient_id"].astype(str).tolist()
    splits = patient_kfold(cfg.n_folds, patient_ids=pids, labels=labels, seed=cfg.seed)
    rows = np.arange(len(store))

    def probe(feats):
        cv = linear_probe_cv(feats, labels, splits, class_names=names, n_boot=1, seed=cfg.seed)
        return cv["macro_auroc"]["mean"], [f.test_scores for f in cv["folds"]]

    random_cv: dict[str, list] = {}
    for enc in encoders.values():
        arch = _arch_label(enc.spec)
        if arch not in random_cv:
            random_cv[arch] = [probe(_embed(enc, store, rows, seed=s)) for s in range(n_seeds)]
    families: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        families.setdefault(name.split(":")[0], []).append(j)
    out = {"rows": {}, "random": {a: [v[0] for v in cvs] for a, cvs in random_cv.items()},
           "n_seeds": n_seeds, "families": {f: [names[j] for j in c] for f, c in families.items()}}
    tests = [sp.test for sp in splits]
    for title, enc in encoders.items():
        arch = _arch_label(enc.spec)
        auc, scores = probe(_embed(enc, store, rows))
        vs = []
        for seed, (r_auc, r_scores) in enumerate(random_cv[arch]):
            d = paired_probe_difference(labels, tests, scores, r_scores, class_names=names,
                                        groups=pids, n_boot=cfg.paired_boot, seed=cfg.seed)
            fam = {}
            for f, cols in families.items():
                df = paired_probe_difference(labels[:, cols], tests, [x[:, cols] for x in scores],
                                             [x[:, cols] for x in r_scores], groups=pids,
                                             n_boot=cfg.paired_boot, seed=cfg.seed)
                fam[f] = {"delta": df["delta"], "ci": df["ci"]}
            vs.append({"seed": seed, "auroc": r_auc, "delta": d["delta"], "ci": d["ci"],
                       "p_not_better": d["p_not_better"], "families": fam})
        out["rows"][title] = {"arch": arch, "auroc": auc, "vs_seeds": vs}
    return out


def evaluate_each(pretraining: dict) -> tuple[dict, dict, dict]:
    """``--each-candidate``: one LUDB row per candidate run, titled ``<method> <run>``, with the
    weights (student or EMA target) and pooling the validation probe scored highest for that run.

    Returns ``(encoders, chosen, evaluated)``: title -> loaded encoder, title -> arch label (for
    the random-init comparisons), title -> ``{"run", "arch"}`` (stored in the results)."""
    encoders, chosen, evaluated = {}, {}, {}
    for name in dict.fromkeys(_run_of(k, r) for k, r in pretraining.items()):
        variants = {k: r for k, r in pretraining.items() if _run_of(k, r) == name}
        best = max(variants, key=lambda k: variants[k]["validation"]["score"])
        r = variants[best]
        title = f"{METHOD_TITLES[r['method']]} {name}"
        encoders[title] = _load_entry(r)
        chosen[title] = r["arch"]
        evaluated[title] = {"run": best, "arch": r["arch"]}
    return encoders, chosen, evaluated


def _run_of(key: str, entry: dict) -> str:
    """The pretraining run of a candidate entry (``run``, ``run/target``, ``run [meanmax]``)."""
    return entry.get("run") or key.split(" [")[0].removesuffix("/target")


def _load_entry(entry: dict):
    """The encoder of a candidate entry: its weights directory and its pooling."""
    from ecgssl.api import load_encoder

    path = Path(entry["run_dir"])
    return load_encoder(path if path.is_absolute() else REPO / path,
                        pool=entry.get("pool", "mean"))


def write_results(res: dict | None, args) -> int:
    """Final JSON + Markdown + the copied suite report. ``res=None``: read them back from the
    JSON an earlier run wrote (``--report-only``)."""
    stem = _stem(args)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    final, partial = results / f"{stem}.json", results / f"{stem}_partial.json"
    if res is None:
        res = json.loads((partial if partial.exists() else final).read_text())
    print("[4/4] writing results", flush=True)
    rows = res.get("evaluated") or res["chosen"]
    chosen = {t: v["arch"] for t, v in rows.items()}
    res["comparisons"] = comparisons(res.get("suite") or {}, chosen)
    out = _run_root(args)
    if (out / "report").exists():
        res["report_figures"] = copy_report(out / "report", results / stem)
    final.write_text(json.dumps(_clean(res), indent=2, default=str))
    partial.unlink(missing_ok=True)
    (results / f"{stem}.md").write_text(markdown(_clean(res)))
    print("\n".join(res["comparisons"]))
    print(f"done in {res['total_s'] / 60:.1f} min: {results / f'{stem}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
