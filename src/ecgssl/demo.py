"""``ecgssl demo``: the quick start, end to end on the bundled LUDB records, on a CPU.

1. prepare the bundled LUDB (200 real 12-lead ECGs with expert P/QRS/T annotations) into a store;
2. pretrain a small ECG-JEPA (ViT with Cross-Pattern Attention) and a small Beat-SSL (ResNet-1d)
   on it, without labels, each at the CPU setting a validation probe chose (``SETTINGS``);
3. evaluate both against a random-initialised encoder of the same architecture, supervised
   training from scratch and the classical neurokit2 delineator: linear probe on the
   cardiologists' diagnoses, heart-rate/interval regression, P/QRS/T segmentation (k-fold by
   patient, every choice on validation);
4. write a report (Markdown, JSON, PNG figures) into the run folder.

This is a smoke-scale run (200 records, minutes of CPU): its numbers show the pipeline and the
protocol, not what the methods reach with real pretraining data.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from ecgssl.errors import ECGDataError

REPO_DATA = Path(__file__).resolve().parents[2] / "data" / "ludb"

# Budgets (optimiser steps, segmentation epochs) of the full and the quick demo. ECG-JEPA's chosen
# ViT (w128 d4) costs about twice the step of the w64 d2 one the demo used before: 200 steps keep
# the demo's time.
BUDGETS = {
    "full": {"jepa_steps": 200, "beat_steps": 200, "seg_epochs": 15, "finetune_epochs": 10,
             "n_boot": 500},
    "quick": {"jepa_steps": 60, "beat_steps": 50, "seg_epochs": 4, "finetune_epochs": 3,
              "n_boot": 200},
}

# Each method at the CPU setting that the CinC 2021 validation probe chose among the candidates
# of benchmarks/pretrain_cpu_scale.py (never on LUDB labels; benchmarks/results/
# pretrain_cpu_scale.md): the recipe, the pooling of the frozen features, and why.
SETTINGS = {
    "ECG-JEPA": {
        "recipe": "jepa_cpu_scaled.yaml", "pool": "meanmax",
        "why": "ViT w128 d4 with input_scale 20 (mV x 20 before the patch embedding, so ECG "
               "content is not drowned by the position embedding; at the original scale the "
               "encoder ties its random twin by construction) and mean+max pooling: the best "
               "validation score (val CinC AUROC 0.692 vs 0.671 mean-pooled, 0.541 at scale 1)"},
    "Beat-SSL": {
        "recipe": "beatssl_cpu.yaml", "pool": "meanmax",
        "why": "the paper's best loss row (soft rhythm gamma 50 + hard beat) with 3KG rotations "
               "of +-45 deg and mean+max pooling: the best validation score (val CinC AUROC "
               "0.820 vs 0.795 mean-pooled, 0.785 at +-15 deg)"},
}


# The store's preprocessing: the one the validation probe's runs were prepared with
# (``benchmarks/pretrain_cpu_scale.py``: ``--set highpass_hz=0.5``). ECG-JEPA's input_scale 20
# was chosen on high-passed windows: on raw LUDB a baseline offset of a few tenths of a mV,
# scaled by 20, dominates the patch tokens (measured: probe -0.050 [-0.084, -0.017] below its
# twin without the high-pass, +0.005 [-0.029, +0.037] with it, 200 steps each).
HIGHPASS_HZ = 0.5


def setting_lines() -> list[str]:
    """What the demo runs each method with, and why (printed with the summary)."""
    return [f"{name}: {s['recipe']}, pool {s['pool']}: {s['why']}"
            for name, s in SETTINGS.items()] + [
        f"store: {HIGHPASS_HZ} Hz high-pass, as the validation runs were prepared"]


def recipe_path(name: str) -> Path:
    """A recipe shipped with the package (``src/ecgssl/configs``, also ``configs/``)."""
    path = Path(str(resources.files("ecgssl") / "configs" / name))
    if not path.exists():
        raise FileNotFoundError(f"recipe {name} is not installed with ecgssl ({path})")
    return path


def _summary_lines(results: dict) -> list[str]:
    lines = []
    probe = results.get("probe", {})
    seg = results.get("segmentation", {})
    reg = results.get("regression", {})
    names = list(dict.fromkeys(list(probe) + [k.split(" (frozen")[0] for k in seg
                                              if not k.startswith("neurokit2")]))
    header = (f"{'model':<44} {'probe AUROC':>12} {'HR MAE':>7} {'QRS F1':>7} {'T F1':>6} "
              f"{'P F1':>6}")
    lines += [header, "-" * len(header)]
    for name in names:
        auc = probe.get(name, {}).get("macro_auroc", {}).get("mean")
        hr = reg.get(name, {}).get("hr_bpm", {}).get("mae")
        key = next((k for k in seg if k.split(" (frozen")[0] == name), None)
        pooled = (seg[key].get("pooled") or {}) if key else {}

        def f1(wave, pooled=pooled):
            w = pooled.get(wave)
            return None if not w else (w["onset"]["f1"] + w["offset"]["f1"]) / 2

        def fmt(v, digits=3, width=6):
            return f"{v:>{width}.{digits}f}" if isinstance(v, float) else f"{'-':>{width}}"

        lines.append(f"{name[:44]:<44} {fmt(auc, 3, 12)} {fmt(hr, 1, 7)} "
                     f"{fmt(f1('QRS'), 3, 7)} {fmt(f1('T'))} {fmt(f1('P'))}")
    for key in seg:
        if key.startswith("neurokit2"):
            pooled = seg[key]["pooled"]
            vals = [(pooled[w]["onset"]["f1"] + pooled[w]["offset"]["f1"]) / 2
                    for w in ("QRS", "T", "P")]
            lines.append(f"{key[:44]:<44} {'-':>12} {'-':>7} {vals[0]:>7.3f} {vals[1]:>6.3f} "
                         f"{vals[2]:>6.3f}")
    return lines + _paired_lines(results)


def _paired_lines(results: dict) -> list[str]:
    """Each pretrained encoder minus its random-init twin, with the paired 95 % CI."""
    from ecgssl.eval.compare import format_ci

    probe = results.get("paired_probe") or {}
    seg = results.get("paired_segmentation") or {}
    lines = []
    for name, r in probe.items():
        line = (f"{name}: probe {r['delta']:+.3f} {format_ci(r['ci'])} vs {r['vs']}")
        s = next((v for k, v in seg.items() if k.split(" (frozen")[0] == name), None)
        if s:
            line += f"; segmentation mean F1 {s['delta_f1']:+.3f} {format_ci(s['ci_f1'])}"
        lines.append(line)
    if lines:
        lines = ["", "paired differences (95 % CI; a CI above 0 means the encoder beats its "
                 "random-init twin on the same records):", *lines]
    return lines


def _store_hash(path: Path) -> str | None:
    """The preprocessing hash of the store at ``path``, or None where there is none."""
    import json

    try:
        return json.loads((path / "config.json").read_text()).get("hash")
    except (OSError, ValueError):
        return None


def run_demo(out: str | Path = "runs/demo", quick: bool = False, data: str | Path | None = None,
             progress: bool = True, threads: int | None = None,
             supervised: bool = False) -> dict:
    """Run the whole quick start; returns the evaluation results (also in the report).

    ``supervised`` adds the supervised-from-scratch rows (whole encoder trained on the labels,
    for the probe and for segmentation): about 5 more minutes on 2 cores, so they are off by
    default; the CPU benchmarks (``benchmarks/pretrain_cpu_scale.py``,
    ``benchmarks/compare_methods.py``) always have them.
    """
    import torch

    from ecgssl.api import load_encoder
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.data.store import ECGStore, prepare_store
    from ecgssl.eval.suite import SuiteConfig, run_suite
    from ecgssl.io import open_source
    from ecgssl.train.run import pretrain

    budget = BUDGETS["quick" if quick else "full"]
    out = Path(out)
    data = Path(data) if data else REPO_DATA
    if not data.exists():
        raise FileNotFoundError(f"LUDB not found at {data}: pass --data /path/to/ludb")
    if threads:
        torch.set_num_threads(threads)
    timings, t0 = {}, time.perf_counter()

    print(f"[1/4] preparing {data} -> {out / 'store'}")
    source = open_source(data, checks=None)
    if source.kind != "ludb":
        raise ECGDataError(str(data), f"the demo needs LUDB (found a {source.kind} source)")
    cfg_store = PreprocessConfig(highpass_hz=HIGHPASS_HZ)
    # A store an earlier demo left with another preprocessing (an older ecgssl) is the demo's
    # own: rebuilt, and said so (prepare_store's guard still refuses anything not ecgssl's).
    rebuild = _store_hash(out / "store") not in (None, cfg_store.hash())
    if rebuild:
        print(f"      {out / 'store'} was prepared with another preprocessing: rebuilding it")
    prepare_store(source, out / "store", cfg_store, progress=progress, overwrite=rebuild)
    store = ECGStore(out / "store")
    timings["prepare_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    print(f"[2/4] pretraining ECG-JEPA ({budget['jepa_steps']} steps) -> {out / 'jepa'}")
    quiet = [] if progress else ["train.progress_bar=false"]
    pretrain(recipe_path(SETTINGS["ECG-JEPA"]["recipe"]), out / "store", out / "jepa",
             overrides=[f"train.max_steps={budget['jepa_steps']}", *quiet], overwrite=True)
    timings["jepa_s"] = time.perf_counter() - t

    t = time.perf_counter()
    print(f"[3/4] pretraining Beat-SSL ({budget['beat_steps']} steps) -> {out / 'beat_ssl'}")
    pretrain(recipe_path(SETTINGS["Beat-SSL"]["recipe"]), out / "store", out / "beat_ssl",
             overrides=[f"train.max_steps={budget['beat_steps']}", *quiet], overwrite=True)
    timings["beat_ssl_s"] = time.perf_counter() - t

    t = time.perf_counter()
    print(f"[4/4] evaluating against baselines -> {out / 'report'}")
    encoders = {"ECG-JEPA": load_encoder(out / "jepa", pool=SETTINGS["ECG-JEPA"]["pool"]),
                "Beat-SSL": load_encoder(out / "beat_ssl", pool=SETTINGS["Beat-SSL"]["pool"])}
    cfg = SuiteConfig(n_folds=5, seg_epochs=budget["seg_epochs"], seg_folds=[0],
                      finetune_epochs=budget["finetune_epochs"], n_boot=budget["n_boot"],
                      supervised=supervised)
    results = run_suite(encoders, store, out / "report", cfg,
                        title="ecgssl demo: LUDB, CPU scale", progress=progress)
    timings["evaluate_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    print()
    print("\n".join(_summary_lines(results)))
    print()
    print("settings (chosen on a CinC 2021 validation probe, benchmarks/pretrain_cpu_scale.py):")
    print("\n".join(setting_lines()))
    print()
    print("probe: 5-fold CV by patient, macro AUROC over LUDB diagnoses (mean over folds); "
          "HR MAE in bpm; F1 = mean of onset/offset F1 (+-150 ms), segmentation test fold 0 of 5")
    print(f"took {timings['total_s'] / 60:.1f} min (prepare {timings['prepare_s']:.0f} s, "
          f"ECG-JEPA {timings['jepa_s']:.0f} s, Beat-SSL {timings['beat_ssl_s']:.0f} s, "
          f"evaluation {timings['evaluate_s']:.0f} s)")
    print(f"report: {out / 'report' / 'report.md'}  figures: {out / 'report' / 'figures'}")
    print(f"encoders: {out / 'jepa' / 'encoder.safetensors'}, "
          f"{out / 'beat_ssl' / 'encoder.safetensors'}")
    print(f"try: ecgssl delineate {data / 'data' / '1'} --model "
          f"{out / 'report' / 'segmentation_model.safetensors'} --plot {out / 'waves_1.png'}")
    results["timings"] = timings
    return results
