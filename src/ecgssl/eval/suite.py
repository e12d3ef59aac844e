"""One evaluation suite over one or more encoders on one store, written as a report.

``run_suite`` is what ``ecgssl evaluate`` and ``ecgssl demo`` call. For every encoder, and for a
random-initialised encoder of each architecture (and supervised training from scratch), it runs:

the chosen tasks, each a plug-in module of ``ecgssl.eval.tasks`` (``list_tasks()``):

- ``probe``: linear probe on frozen pooled features, k-fold cross-validation by patient
  (validation carved from the training folds; C and thresholds chosen on validation); macro
  AUROC / F1 mean +- std over folds (``tasks/probe.py``); ``lowlabel``: the same on subsets of
  the training labels (``tasks/lowlabel.py``).
- ``regression``: ridge on frozen features for heart rate, QRS, PR, QT (expert targets from the
  store's manifest), pooled out-of-fold MAE and R^2 with bootstrap CIs (``tasks/regression.py``).
- ``segmentation``: a decoder on the frozen encoder (and, for the supervised baseline, the whole
  network trained from scratch), k-fold CV, per-wave Dice and onset/offset F1 / error; the
  classical neurokit2 delineator scored by the same code on the same leads and records
  (``tasks/segmentation.py``).

This module builds what the tasks share (rows, splits, labels, features: ``SuiteContext``) and
runs them in turn. Every number comes from test folds never used for a choice. The report
(Markdown + JSON + PNG) says what each row is.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgssl.data.leads import LEADS_8
from ecgssl.errors import SpecMismatchError
from ecgssl.eval.tasks.base import (
    LeadView,
    Row,
    SuiteContext,
    arch_label,
    random_init_factory,
    row_features,
    slug,
)
from ecgssl.eval.tasks.segmentation import seg_label
from ecgssl.safety import claim_output_dir

__all__ = ["LeadView", "Row", "SuiteConfig", "arch_label", "filter_mismatch", "label_matrix",
           "random_init_factory", "run_suite", "seg_label", "suite_splits"]

log = logging.getLogger(__name__)

SPLITS = ("auto", "kfold", "ptbxl", "stratified", "holdout")


@dataclass
class SuiteConfig:
    """Options of ``run_suite``.

    Attributes:
        tasks: subset of ``ecgssl.eval.tasks.list_tasks()`` ("lowlabel": linear probe on
            seeded subsets of the training labels of the first split, ``low_label_fractions`` x
            ``low_label_subsets``); run in registration order whatever the order given.
        n_folds: k of the k-fold CV by patient (all tasks share the same folds).
        split: ``"auto"`` (PTB-XL's folds 1-8 / 9 / 10 when the manifest has ``strat_fold``,
            else k-fold by patient), ``"kfold"``, ``"ptbxl"``, ``"stratified"`` (one seeded
            70 / 15 / 15 split by patient, stratified by labels and sources, for data without
            official folds) or ``"holdout"`` (out of distribution: every window of
            ``test_sources`` is test, the rest split by patient into train / validation).
        test_sources: the sources held out with ``split="holdout"``. (Splits apply to the
            probe, low-label and regression tasks; segmentation runs its own k-fold CV by
            patient, ``n_folds``, whatever the split.)
        score_leads: leads on which segmentation is trained and scored for every row, so rows
            are comparable (default: the 8 independent leads I, II, V1-V6 present in the store).
        min_positives: classification labels with fewer positive windows are left out (named in
            the report).
        label_prefix: only labels starting with one of these (e.g. ``["rhythm:"]``), or all.
        unlabelled: windows without any label in a labelled store: ``"error"`` (refuse, the
            default) or ``"negative"`` (score them as negatives, counted in the report);
            ``ecgssl.eval.labels``.
        seg_epochs, seg_batch_size, seg_lr: segmentation training budget (same for every row).
        seg_folds: run only these segmentation folds (quick runs; stated in the report).
        finetune_epochs, finetune_lr: budget of the supervised-from-scratch classifier (the
            whole encoder + a linear head trained on the labels; epoch chosen on validation).
        random_init, supervised, classical: which baselines to add.
        finetune_pretrained: also fine-tune every pretrained encoder (whole encoder + head,
            the supervised rows' budget and protocol) for classification and segmentation, and
            compare it with supervised from scratch: the same training, only the init differs.
        paired_boot: resamples of the paired bootstrap of each pretrained row against its
            random-init twin (and each fine-tuned row against supervised from scratch);
            0 skips the paired comparisons.
        random_seeds: > 1: the probe also pairs every pretrained row with this many random
            initialisations of its architecture (seed, seed + 1, ...; the first is its twin):
            ``report.json["seed_spread"]`` and a report section.
        label_families: with ``random_seeds`` > 1, also each of those paired differences on
            every label family's labels only (the prefix before ':', e.g. ``rhythm``).
        feature_cache: a directory where frozen rows' pooled features are cached
            (``ecgssl.eval.embeddings.cached_embeddings``): a rerun on the same store reads them
            instead of recomputing them. None: computed every run.
        n_boot: bootstrap resamples for CIs; seed: every random choice.
        plots: write figures.
    """

    tasks: list[str] = field(default_factory=lambda: ["probe", "regression", "segmentation"])
    n_folds: int = 5
    split: str = "auto"
    test_sources: list[str] | None = None
    low_label_fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    low_label_subsets: int = 3
    score_leads: list[str] | None = None
    min_positives: int = 10
    label_prefix: list[str] | None = None
    unlabelled: str = "error"
    seg_epochs: int = 20
    seg_batch_size: int = 16
    seg_lr: float = 1e-3
    seg_folds: list[int] | None = None
    finetune_epochs: int = 15
    finetune_lr: float = 1e-3
    random_init: bool = True
    supervised: bool = True
    classical: bool = True
    finetune_pretrained: bool = False
    paired_boot: int = 2000
    n_boot: int = 1000
    random_seeds: int = 1
    label_families: bool = False
    feature_cache: str | None = None
    seed: int = 0
    plots: bool = True

    def __post_init__(self) -> None:
        from ecgssl.eval.tasks import list_tasks

        unknown = set(self.tasks) - set(list_tasks())
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)}; choose from {list_tasks()}")
        if self.random_seeds < 1:
            raise ValueError(f"random_seeds must be >= 1, got {self.random_seeds}")
        if self.n_folds < 2:
            raise ValueError("n_folds must be >= 2")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if (self.split == "holdout") != bool(self.test_sources):
            raise ValueError("split='holdout' needs test_sources (and test_sources needs it)")


# --------------------------------------------------------------------------------------------
# Rows of the tables: the encoders under test and their baselines
# --------------------------------------------------------------------------------------------


def _rows(encoders: dict[str, Any], cfg: SuiteConfig) -> list[Row]:
    from ecgssl.models.registry import takes_lead_names

    rows, seen_arch, tuned = [], {}, []
    for name, enc in encoders.items():
        module, spec = enc.module, enc.spec
        leads = list(spec["preprocessing"]["leads"])
        takes = takes_lead_names(module)
        run_dir = enc.path.parent if enc.path is not None else None
        csv = run_dir / "metrics.csv" if run_dir and (run_dir / "metrics.csv").exists() else None
        label = arch_label(spec)
        make = lambda m=module: copy.deepcopy(m)  # noqa: E731 - a fresh copy per use
        rows.append(Row(name, "pretrained", make, leads, takes, csv,
                        twin=f"random-init {label}" if cfg.random_init else None, spec=spec))
        if cfg.finetune_pretrained:
            tuned.append(Row(f"{name} fine-tuned", "finetuned", make, leads, takes,
                             twin=f"supervised from scratch {label}" if cfg.supervised else None))
        # Exports made before the pooling option have no "pool": the same as "mean".
        overrides = {"pool": "mean", **spec["encoder"]["overrides"]}
        arch = (spec["encoder"]["name"], str(sorted(overrides.items())))
        if arch not in seen_arch:
            seen_arch[arch] = (spec, leads, takes)
    rows += tuned
    for spec, leads, takes in seen_arch.values():
        label = arch_label(spec)
        if cfg.random_init:
            rows.append(Row(f"random-init {label}", "random-init",
                            random_init_factory(spec, cfg.seed), leads, takes, spec=spec))
        if cfg.supervised:
            rows.append(Row(f"supervised from scratch {label}", "supervised",
                            random_init_factory(spec, cfg.seed), leads, takes))
    return rows


def label_matrix(store, cfg: SuiteConfig) -> tuple[np.ndarray, list[str], list[str]]:
    """(N, K) 0/1 labels of ``store`` kept by ``cfg`` (``label_prefix``, ``min_positives``),
    their names, and the names left out for too few positives."""
    labels = np.asarray(store.labels)
    names = store.label_names
    keep, dropped = [], []
    for k, name in enumerate(names):
        if cfg.label_prefix and not any(name.startswith(p) for p in cfg.label_prefix):
            continue
        (keep if labels[:, k].sum() >= cfg.min_positives else dropped).append(k)
    return labels[:, keep], [names[k] for k in keep], [names[k] for k in dropped]


def suite_splits(store, labels: np.ndarray, cfg: SuiteConfig) -> tuple[list, str]:
    """The splits every task shares and a note saying how they were made: PTB-XL's folds
    (``cfg.split`` "ptbxl", or "auto" with a ``strat_fold`` column), one stratified or
    source-holdout split, else k-fold by patient stratified on ``labels``."""
    from ecgssl.eval.splits import (
        patient_kfold,
        ptbxl_standard_split,
        source_holdout_split,
        stratified_split,
    )

    manifest = store.manifest
    if cfg.split == "ptbxl" or (cfg.split == "auto" and "strat_fold" in manifest):
        return ([ptbxl_standard_split(manifest)],
                "PTB-XL standard split (folds 1-8 train, 9 validation, 10 test)")
    pids = manifest["patient_id"].astype(str).tolist()
    sources = manifest["source"].astype(str).tolist()
    strat = labels if labels.shape[1] else None
    if cfg.split == "stratified":
        return ([stratified_split(pids, strat, (0.7, 0.15, 0.15), sources=sources,
                                  seed=cfg.seed)],
                "one split by patient (70 / 15 / 15 %, stratified by labels and sources)")
    if cfg.split == "holdout":
        return ([source_holdout_split(sources, cfg.test_sources, pids, strat, seed=cfg.seed)],
                f"source holdout: test = every window of {', '.join(cfg.test_sources)}; "
                "the rest split by patient into train / validation (85 / 15 %)")
    return (patient_kfold(cfg.n_folds, patient_ids=pids,
                          labels=labels if labels.shape[1] else None, seed=cfg.seed),
            f"{cfg.n_folds}-fold CV by patient; mean +- std over folds")


# --------------------------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------------------------


FILTER_KEYS = ("highpass_hz", "bandpass_hz")


def filter_mismatch(encoder_pre: dict[str, Any], store_config: dict[str, Any]) -> str | None:
    """Why an encoder's training filters differ from a store's, or None when they agree.

    An encoder pretrained on high-passed windows and evaluated on raw ones (or the reverse)
    sees a baseline it never saw; the rate / length checks alone do not catch it.
    ``encoder_pre["filters"]`` None (unknown, e.g. an original ECG-JEPA release): no check.
    """
    filters = encoder_pre.get("filters")
    if not isinstance(filters, dict):
        return None
    store_pre = store_config.get("preprocess") or {}
    diffs = [f"{k} {filters.get(k)} (store {store_pre.get(k)})" for k in FILTER_KEYS
             if filters.get(k) != store_pre.get(k)]
    if not diffs:
        return None
    return ("trained on other filters than the store has: " + ", ".join(diffs)
            + "; prepare the evaluation store with the same --set highpass_hz / bandpass_hz")


def run_suite(encoders: dict[str, Any], store, out_dir: str | Path,
              cfg: SuiteConfig | None = None, title: str = "ecgssl evaluation",
              progress: bool = True) -> dict[str, Any]:
    """Evaluate encoders (name -> ``ecgssl.api.Encoder``) on a prepared store; write a report.

    Returns:
        The report's JSON-able results, also written to ``out_dir/report.json`` with
        ``report.md`` and ``figures/*.png``.
    Raises:
        SpecMismatchError: an encoder expects another rate, length or leads than the store has.
    """
    from tqdm.auto import tqdm

    from ecgssl.eval.report import Report
    from ecgssl.eval.tasks import create_task, list_tasks

    cfg = cfg or SuiteConfig()
    out_dir = Path(out_dir)
    claim_output_dir(out_dir, "report", existing_ok=True)  # never write into a foreign folder
    t_start = time.perf_counter()
    for name, enc in encoders.items():
        pre = enc.spec["preprocessing"]
        if float(pre["fs"]) != store.fs or int(pre["n_samples"]) != store.n_samples:
            raise SpecMismatchError(
                f"encoder {name!r} expects {pre['fs']:g} Hz x {pre['n_samples']} samples; store "
                f"{store.path} has {store.fs:g} Hz x {store.n_samples}: prepare the store with "
                f"--set fs={pre['fs']:g} --set window_s={pre['n_samples'] / pre['fs']:g}")
        problem = filter_mismatch(pre, store.config)
        if problem:
            raise SpecMismatchError(f"encoder {name!r}: {problem}")
    score_leads = cfg.score_leads or [x for x in LEADS_8 if x in store.leads]
    rows = _rows(encoders, cfg)
    for row in rows:
        missing = [x for x in score_leads if x not in row.leads]
        if missing:
            raise SpecMismatchError(f"{row.name} does not read the scored leads {missing}")
    report = Report(title, description=_describe(cfg, store, score_leads),
                    meta={"store": str(store.path), "config": asdict(cfg)})
    results: dict[str, Any] = {"rows": [r.name for r in rows], "config": asdict(cfg)}
    from ecgssl.eval.overlap import check_suite_overlap  # warns + report section (#19)

    results["pretraining_overlap"] = check_suite_overlap(encoders, store, report)
    labels, label_names, dropped = label_matrix(store, cfg)
    if {"probe", "lowlabel"} & set(cfg.tasks):
        from ecgssl.eval.labels import check_unlabelled

        unlabelled_note = check_unlabelled(store, cfg.unlabelled)
        results["unlabelled_windows"] = unlabelled_note
        if unlabelled_note:
            report.add_text("Unlabelled windows", unlabelled_note)
    splits, split_note = suite_splits(store, labels, cfg)
    tasks = [create_task(name) for name in list_tasks() if name in cfg.tasks]
    ctx = SuiteContext(store=store, cfg=cfg, rows=rows, labels=labels, label_names=label_names,
                       dropped=dropped, splits=splits, split_note=split_note,
                       patient_ids=store.manifest["patient_id"].astype(str).tolist(),
                       score_leads=score_leads, report=report, out_dir=out_dir,
                       results=results)
    ctx.bar = tqdm(total=sum(len(t.rows(ctx)) for t in tasks), desc="evaluate", unit="task",
                   disable=not progress)
    if any(t.uses_features for t in tasks):
        for row in ctx.frozen_rows:
            ctx.features[row.name] = row_features(row, LeadView(store, row.leads),
                                                  cache_dir=cfg.feature_cache)
    for task in tasks:
        if not task.applies(ctx):
            continue
        scored: dict[str, Any] = {}
        for row in task.rows(ctx):
            scored.update(task.evaluate(ctx, row))
        scored.update(task.extra_rows(ctx, scored))
        paired = task.compare(ctx, scored) if cfg.paired_boot else {}
        results.update(task.report(ctx, scored, paired))
    ctx.bar.close()
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    curves = [r for r in rows if r.metrics_csv is not None]
    if cfg.plots and curves:
        from ecgssl.plots import plot_training_curves

        for r in curves:
            report.add_figure(f"training_{slug(r.name)}", plot_training_curves(
                r.metrics_csv, title=f"pretraining: {r.name}"), caption=f"{r.name} pretraining")
    report.meta["seconds"] = results["seconds"]
    report.write(out_dir)
    return results


def _describe(cfg: SuiteConfig, store, score_leads) -> str:
    return (f"Store `{store.path}`: {len(store)} windows, {store.fs:g} Hz, "
            f"{store.n_samples} samples, leads {', '.join(store.leads)}. "
            f"Tasks: {', '.join(cfg.tasks)}. {cfg.n_folds}-fold cross-validation by patient with "
            f"validation carved from the training folds; every choice (C, alpha, thresholds, "
            f"epoch) on validation only. Baselines: random-init encoder of the same architecture "
            f"(frozen), supervised from scratch (segmentation: whole network trained), "
            f"neurokit2 prominence delineator"
            + ("; fine-tuned rows: each pretrained encoder trained like the supervised rows"
               if cfg.finetune_pretrained else "")
            + (f"; paired bootstrap ({cfg.paired_boot} resamples) of every row against its "
               "twin" if cfg.paired_boot else "")
            + f". Segmentation scored on {', '.join(score_leads)}.")
