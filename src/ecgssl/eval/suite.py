"""One evaluation suite over one or more encoders on one store, written as a report.

``run_suite`` is what ``ecgssl evaluate`` and ``ecgssl demo`` call. For every encoder, and for a
random-initialised encoder of each architecture (and supervised training from scratch), it runs:

- ``probe``: linear probe on frozen pooled features, k-fold cross-validation by patient
  (validation carved from the training folds; C and thresholds chosen on validation); macro
  AUROC / F1 mean +- std over folds.
- ``regression``: ridge on frozen features for heart rate, QRS, PR, QT (expert targets from the
  store's manifest), pooled out-of-fold MAE and R^2 with bootstrap CIs.
- ``segmentation``: a decoder on the frozen encoder (and, for the supervised baseline, the whole
  network trained from scratch), k-fold CV, per-wave Dice and onset/offset F1 / error; the
  classical neurokit2 delineator scored by the same code on the same leads and records.

Every number comes from test folds never used for a choice. The report (Markdown + JSON + PNG)
says what each row is.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgssl.data.leads import LEADS_8
from ecgssl.errors import SpecMismatchError
from ecgssl.eval.compare import (
    paired_probe_difference,
    paired_segmentation_difference,
    probe_difference_table,
    segmentation_difference_table,
)

log = logging.getLogger(__name__)

TASKS = ("probe", "lowlabel", "regression", "segmentation")


@dataclass
class SuiteConfig:
    """Options of ``run_suite``.

    Attributes:
        tasks: subset of ``TASKS`` ("lowlabel": linear probe on seeded subsets of the training
            labels of the first split, ``low_label_fractions`` x ``low_label_subsets``).
        n_folds: k of the k-fold CV by patient (all tasks share the same folds).
        split: ``"auto"`` (PTB-XL's folds 1-8 / 9 / 10 when the manifest has ``strat_fold``,
            else k-fold by patient), ``"kfold"`` or ``"ptbxl"``.
        score_leads: leads on which segmentation is trained and scored for every row, so rows
            are comparable (default: the 8 independent leads I, II, V1-V6 present in the store).
        min_positives: classification labels with fewer positive windows are left out (named in
            the report).
        label_prefix: only labels starting with one of these (e.g. ``["rhythm:"]``), or all.
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
        n_boot: bootstrap resamples for CIs; seed: every random choice.
        plots: write figures.
    """

    tasks: list[str] = field(default_factory=lambda: ["probe", "regression", "segmentation"])
    n_folds: int = 5
    split: str = "auto"
    low_label_fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    low_label_subsets: int = 3
    score_leads: list[str] | None = None
    min_positives: int = 10
    label_prefix: list[str] | None = None
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
    seed: int = 0
    plots: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)}; choose from {TASKS}")
        if self.n_folds < 2:
            raise ValueError("n_folds must be >= 2")
        if self.split not in ("auto", "kfold", "ptbxl"):
            raise ValueError(f"split must be 'auto', 'kfold' or 'ptbxl', got {self.split!r}")


# --------------------------------------------------------------------------------------------
# Store views restricted to an encoder's leads
# --------------------------------------------------------------------------------------------


class _RowSelect:
    """``base[i][rows]`` on demand: selects lead rows of a (N, L, T) memmap without copying it."""

    def __init__(self, base, rows: np.ndarray):
        self.base, self.rows = base, rows

    def __len__(self) -> int:
        return len(self.base)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.base.shape[0], len(self.rows), self.base.shape[-1])

    ndim = 3

    def __getitem__(self, i):
        return np.asarray(self.base[i])[..., self.rows, :]


class LeadView:
    """A store restricted (and reordered) to ``leads``; spans of leads not in ``score_leads``
    are emptied, so those leads are neither trained on nor scored in segmentation."""

    def __init__(self, store, leads: list[str], score_leads: list[str] | None = None):
        missing = [x for x in leads if x not in store.leads]
        if missing:
            raise SpecMismatchError(f"store {store.path} lacks leads {missing} (has {store.leads})")
        rows = np.array([store.leads.index(x) for x in leads])
        self.store, self.leads, self.path = store, list(leads), store.path
        self.manifest = store.manifest
        self.config = {**store.config, "leads": list(leads)}
        self.signals = _RowSelect(store.signals, rows)
        if "waves" in store.extras:
            self.masks = _RowSelect(store.masks, rows)
            spans = np.array(store.spans)[:, rows]
            if score_leads is not None:
                spans[:, [x not in score_leads for x in leads]] = 0
            self.spans = spans


# --------------------------------------------------------------------------------------------
# Rows of the tables: the encoders under test and their baselines
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One row of the tables: a name, a factory of fresh encoders, and the leads it reads."""

    name: str
    kind: str  # "pretrained", "random-init", "supervised", "finetuned"
    make: Any  # () -> nn.Module
    leads: list[str]
    takes_leads: bool
    metrics_csv: Path | None = None
    twin: str | None = None  # the baseline row it is compared with, record by record

    @property
    def frozen(self) -> bool:
        """Evaluated on frozen features (probe, ridge, decoder-only segmentation)."""
        return self.kind in ("pretrained", "random-init")


def _random_init_factory(spec: dict, seed: int):
    from ecgssl.models import create_encoder

    def make() -> nn.Module:
        torch.manual_seed(seed)
        return create_encoder(spec["encoder"]["name"], **spec["encoder"]["overrides"])

    return make


def _rows(encoders: dict[str, Any], cfg: SuiteConfig) -> list[Row]:
    from ecgssl.models.registry import takes_lead_names

    rows, seen_arch, tuned = [], {}, []
    for name, enc in encoders.items():
        module, spec = enc.module, enc.spec
        leads = list(spec["preprocessing"]["leads"])
        takes = takes_lead_names(module)
        run_dir = enc.path.parent if enc.path is not None else None
        csv = run_dir / "metrics.csv" if run_dir and (run_dir / "metrics.csv").exists() else None
        label = _arch_label(spec)
        make = lambda m=module: copy.deepcopy(m)  # noqa: E731 - a fresh copy per use
        rows.append(Row(name, "pretrained", make, leads, takes, csv,
                        twin=f"random-init {label}" if cfg.random_init else None))
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
        label = _arch_label(spec)
        if cfg.random_init:
            rows.append(Row(f"random-init {label}", "random-init",
                            _random_init_factory(spec, cfg.seed), leads, takes))
        if cfg.supervised:
            rows.append(Row(f"supervised from scratch {label}", "supervised",
                            _random_init_factory(spec, cfg.seed), leads, takes))
    return rows


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


def _features(row: Row, view: LeadView, batch_size: int = 32) -> np.ndarray:
    from ecgssl.eval.embeddings import compute_embeddings

    encoder = row.make()
    # The view streams batches from the store's memmap: memory stays flat with store size.
    return compute_embeddings(encoder, view.signals, batch_size=batch_size,
                              leads=row.leads if row.takes_leads else None, progress=False)


def _supervised_classifier(row: Row, store, labels, label_names, splits, cfg) -> dict:
    """Supervised from scratch: encoder + linear head trained on the labels, per fold."""
    from ecgssl.eval.finetune import finetune
    from ecgssl.eval.probe import _mean_std
    from ecgssl.eval.segmentation import _quiet_lightning

    view = LeadView(store, row.leads)
    signals = np.stack([view.signals[i] for i in range(len(store))])
    folds = []
    for k, split in enumerate(splits):
        torch.manual_seed(cfg.seed + k)
        with _quiet_lightning(False):
            out = finetune(row.make(), signals, labels, split, task="multilabel",
                           class_names=label_names, epochs=cfg.finetune_epochs,
                           lr=cfg.finetune_lr, batch_size=32,
                           leads=row.leads if row.takes_leads else None, seed=cfg.seed + k,
                           n_boot=cfg.n_boot)
        folds.append(out)
    return {"macro_auroc": _mean_std([f.result.macro_auroc for f in folds]),
            "macro_f1": _mean_std([f.result.macro_f1 for f in folds]), "folds": folds}


def _label_matrix(store, cfg: SuiteConfig) -> tuple[np.ndarray, list[str], list[str]]:
    labels = np.asarray(store.labels)
    names = store.label_names
    keep, dropped = [], []
    for k, name in enumerate(names):
        if cfg.label_prefix and not any(name.startswith(p) for p in cfg.label_prefix):
            continue
        (keep if labels[:, k].sum() >= cfg.min_positives else dropped).append(k)
    return labels[:, keep], [names[k] for k in keep], [names[k] for k in dropped]


def _targets(store) -> tuple[np.ndarray, list[str]] | None:
    from ecgssl.eval.regression import INTERVAL_TARGETS

    cols = [f"target_{t}" for t in INTERVAL_TARGETS]
    if not all(c in store.manifest.columns for c in cols):
        return None
    return store.manifest[cols].to_numpy(dtype=np.float32), list(INTERVAL_TARGETS)


def _classical_rows(view: LeadView, score_leads: list[str], methods=("prominence",),
                    records: set[str] | None = None):
    """neurokit2 delineators on every scored lead of the annotated windows (of ``records``,
    the test records of the learned rows, when given), scored by the same code."""
    from ecgssl.eval.delineation_baselines import AnnotatedLead, evaluate_nk_baseline
    from ecgssl.eval.postprocess import mask_to_waves

    fs = float(view.config["fs"])
    items = []
    parents = view.manifest["parent_id"].astype(str).tolist()
    for i, rid in enumerate(view.manifest["record_id"].tolist()):
        if records is not None and parents[i] not in records:
            continue
        signals, masks = view.signals[i], view.masks[i]
        for k, lead in enumerate(view.leads):
            start, end = view.spans[i, k]
            if lead not in score_leads or end <= start:
                continue
            # Expert waves from the expert mask: no post-processing (no merging, no minimum).
            waves = mask_to_waves(masks[k], fs, min_duration_ms={1: 0, 2: 0, 3: 0},
                                  max_gap_ms=0)
            items.append(AnnotatedLead(str(rid), lead, signals[k].astype(np.float32), fs,
                                       waves, (int(start), int(end))))
    out = {}
    for method in methods:
        result = evaluate_nk_baseline(items, method)
        out[f"neurokit2 {method} (classical)"] = result
    return out


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
    from ecgssl.eval.splits import patient_kfold

    cfg = cfg or SuiteConfig()
    out_dir = Path(out_dir)
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
    manifest = store.manifest
    pids = manifest["patient_id"].astype(str).tolist()
    labels, label_names, dropped = _label_matrix(store, cfg)
    use_ptbxl = cfg.split == "ptbxl" or (cfg.split == "auto" and "strat_fold" in manifest)
    if use_ptbxl:
        from ecgssl.eval.splits import ptbxl_standard_split

        splits = [ptbxl_standard_split(manifest)]
    else:
        splits = patient_kfold(cfg.n_folds, patient_ids=pids,
                               labels=labels if labels.shape[1] else None, seed=cfg.seed)
    split_note = ("PTB-XL standard split (folds 1-8 train, 9 validation, 10 test)" if use_ptbxl
                  else f"{cfg.n_folds}-fold CV by patient; mean +- std over folds")
    frozen_rows = [r for r in rows if r.frozen]
    bar = tqdm(total=len(frozen_rows) * ("regression" in cfg.tasks)
               + len(rows) * (("segmentation" in cfg.tasks) + ("probe" in cfg.tasks)),
               desc="evaluate", unit="task",
               disable=not progress)
    features: dict[str, np.ndarray] = {}

    if {"probe", "lowlabel", "regression"} & set(cfg.tasks):
        for row in frozen_rows:
            features[row.name] = _features(row, LeadView(store, row.leads))

    if "probe" in cfg.tasks and labels.shape[1]:
        from ecgssl.eval.probe import linear_probe_cv

        probe = {}
        for row in frozen_rows:
            probe[row.name] = linear_probe_cv(features[row.name], labels, splits,
                                              class_names=label_names, n_boot=cfg.n_boot,
                                              seed=cfg.seed)
            bar.update(1)
        for row in (r for r in rows if not r.frozen):
            probe[row.name] = _supervised_classifier(row, store, labels, label_names, splits,
                                                     cfg)
            bar.update(1)
        note = (f"{split_note}; {len(label_names)} "
                f"labels with >= {cfg.min_positives} positives; supervised rows: whole encoder "
                f"+ linear head trained from random init, {cfg.finetune_epochs} epochs, epoch "
                f"chosen on validation macro AUROC")
        if cfg.finetune_pretrained:
            note += "; fine-tuned rows: the same training from the pretrained weights"
        if dropped:
            note += f"; left out (too few positives): {', '.join(dropped)}"
        report.add_classification("Linear probe on frozen features; supervised and "
                                  "fine-tuned rows (multi-label)",
                                  {k: v for k, v in probe.items()}, note=note)
        results["probe"] = {k: {"macro_auroc": v["macro_auroc"], "macro_f1": v["macro_f1"]}
                            for k, v in probe.items()}
        results["probe_labels"] = label_names
        if cfg.paired_boot:
            results["paired_probe"] = _paired_probe(rows, probe, labels, label_names, splits,
                                                    pids, cfg)
            report.meta["paired_probe"] = results["paired_probe"]
            if results["paired_probe"]:
                report.add_text("Paired differences: linear probe / fine-tuning (macro AUROC)",
                                "\n".join(probe_difference_table(results["paired_probe"])))
        if cfg.plots:
            _probe_figures(report, probe, labels, label_names, features, splits)

    if "lowlabel" in cfg.tasks and labels.shape[1]:
        from ecgssl.eval.probe import low_label_probe

        low = {}
        for row in frozen_rows:
            by_fraction = low_label_probe(features[row.name], labels, splits[0],
                                          fractions=tuple(cfg.low_label_fractions),
                                          n_subsets=cfg.low_label_subsets, seed=cfg.seed,
                                          class_names=label_names, n_boot=cfg.n_boot)
            for frac, res in by_fraction.items():
                low[f"{row.name} @ {frac:.0%} labels (n={res['n_train']})"] = res
        report.add_classification(
            "Low-label linear probe (first split)", low,
            note=f"seeded subsets of the training labels ({cfg.low_label_subsets} per "
                 "fraction, mean +- std); validation and test unchanged")
        results["lowlabel"] = {k: {"macro_auroc": v["macro_auroc"], "macro_f1": v["macro_f1"]}
                               for k, v in low.items()}

    targets = _targets(store)
    if "regression" in cfg.tasks and targets is not None:
        from ecgssl.eval.regression import INTERVAL_UNITS, ridge_probe_cv

        reg = {}
        for row in frozen_rows:
            reg[row.name] = ridge_probe_cv(features[row.name], targets[0], splits,
                                           target_names=targets[1], units=INTERVAL_UNITS,
                                           n_boot=cfg.n_boot, seed=cfg.seed)
            bar.update(1)
        report.add_regression("Feature prediction from frozen features (ridge)",
                              {k: v["results"] for k, v in reg.items()},
                              note="expert targets from LUDB annotations (lead II medians); "
                                   "pooled out-of-fold predictions, bootstrap 95 % CI")
        results["regression"] = {k: {t: r.to_dict() for t, r in v["results"].items()}
                                 for k, v in reg.items()}

    if "segmentation" in cfg.tasks and "waves" in store.extras:
        results["segmentation"], scorers = _segmentation(rows, store, score_leads, cfg, report,
                                                         bar, out_dir)
        if cfg.paired_boot:
            results["paired_segmentation"] = _paired_segmentation(rows, scorers, cfg)
            report.meta["paired_segmentation"] = results["paired_segmentation"]
            if results["paired_segmentation"]:
                report.add_text("Paired differences: segmentation", "\n".join(
                    segmentation_difference_table(results["paired_segmentation"])))
    bar.close()
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    curves = [r for r in rows if r.metrics_csv is not None]
    if cfg.plots and curves:
        from ecgssl.plots import plot_training_curves

        for r in curves:
            report.add_figure(f"training_{_slug(r.name)}", plot_training_curves(
                r.metrics_csv, title=f"pretraining: {r.name}"), caption=f"{r.name} pretraining")
    report.meta["seconds"] = results["seconds"]
    report.write(out_dir)
    return results


def _segmentation(rows, store, score_leads, cfg, report, bar, out_dir) -> tuple[dict, dict]:
    from ecgssl.eval.segmentation import SegmentationConfig, cross_validate_segmentation

    seg_results, scorers = {}, {}
    best_model = last_result = None
    for row in rows:
        view = LeadView(store, row.leads, score_leads)
        seg_cfg = SegmentationConfig(
            n_folds=cfg.n_folds, epochs=cfg.seg_epochs, batch_size=cfg.seg_batch_size,
            lr=cfg.seg_lr, freeze_encoder=row.frozen, seed=cfg.seed,
            leads=row.leads if row.takes_leads else None, folds=cfg.seg_folds,
            keep_models=True)
        res = last_result = cross_validate_segmentation(view, row.make, seg_cfg)
        label = seg_label(row)
        scorers[label] = res.pooled
        seg_results[label] = res.summary()
        # The model saved for `ecgssl delineate` (and drawn in the overlay): the pretrained row
        # with the best validation score of fold 0, a choice made on validation only.
        val = res.folds[0]["best_val_score"] if res.folds else float("-inf")
        if row.kind == "pretrained" and (best_model is None or val > best_model[2]):
            best_model = (row, res, val)
        bar.update(1)
    if cfg.classical:
        view = LeadView(store, score_leads, score_leads)
        # Only the records the learned rows were tested on (all of them unless seg_folds).
        tested = None
        if cfg.seg_folds is not None and last_result is not None:
            tested = {r for fold in last_result.folds for r in fold["test_records"]}
        for name, result in _classical_rows(view, score_leads, records=tested).items():
            scorers[name] = result.scorer
            seg_results[name] = {"pooled": result.scorer.summary(),
                                 "failures": result.failures}
    folds_note = "all folds" if cfg.seg_folds is None else f"folds {cfg.seg_folds} only"
    report.add_segmentation(
        "P/QRS/T segmentation (pooled test folds)",
        {k: v.summary() for k, v in scorers.items()},
        note=f"{cfg.n_folds}-fold CV by patient ({folds_note}); leads {', '.join(score_leads)}; "
             f"annotated span only; onsets/offsets matched within +-150 ms; "
             f"{cfg.seg_epochs} epochs per fold, epoch chosen on validation Dice")
    if cfg.plots and best_model is not None:
        _segmentation_figures(report, store, score_leads, best_model, scorers, out_dir)
    return seg_results, scorers


def seg_label(row: Row) -> str:
    """A row's name in the segmentation table (frozen rows train a decoder only)."""
    return row.name + (" (frozen encoder + decoder)" if row.frozen else "")


# --------------------------------------------------------------------------------------------
# Paired comparisons (each row against its baseline twin, record by record)
# --------------------------------------------------------------------------------------------


def _paired_probe(rows, probe, labels, label_names, splits, patient_ids, cfg) -> dict:
    """{row: paired_probe_difference vs its twin} for rows whose twin was evaluated; the
    bootstrap draws patients (all windows of a patient together)."""
    def scores(res):  # ProbeResult.test_scores (frozen rows), FineTuneOutput.test_pred
        return [f.test_scores if hasattr(f, "test_scores") else f.test_pred
                for f in res["folds"]]

    out = {}
    for row in rows:
        if row.twin is None or row.name not in probe or row.twin not in probe:
            continue
        sa, sb = scores(probe[row.name]), scores(probe[row.twin])
        if any(x is None for x in sa + sb):
            continue
        out[row.name] = {"vs": row.twin, **paired_probe_difference(
            labels, [s.test for s in splits], sa, sb, class_names=label_names,
            groups=patient_ids, n_boot=cfg.paired_boot, seed=cfg.seed)}
    return out


def _paired_segmentation(rows, scorers, cfg) -> dict:
    """{row label: paired_segmentation_difference vs its twin's label}."""
    by_name = {r.name: r for r in rows}
    out = {}
    for row in rows:
        twin = by_name.get(row.twin) if row.twin else None
        if twin is None or seg_label(row) not in scorers or seg_label(twin) not in scorers:
            continue
        out[seg_label(row)] = {"vs": seg_label(twin), **paired_segmentation_difference(
            scorers[seg_label(row)], scorers[seg_label(twin)], n_boot=cfg.paired_boot,
            seed=cfg.seed)}
    return out


def _segmentation_figures(report, store, score_leads, best, scorers, out_dir) -> None:
    from ecgssl.api import save_segmentation_model
    from ecgssl.eval.segmentation import predict_classes
    from ecgssl.plots import plot_ecg, plot_error_histogram
    from ecgssl.train.export import encoder_spec

    row, res, _ = best
    model = res.models[0]
    fold = res.folds[0]
    # A record from fold 0's test part, predicted by fold 0's model (never trained on it).
    rid = fold["test_records"][0]
    i = int(np.flatnonzero(store.manifest["parent_id"].astype(str) == rid)[0])
    view = LeadView(store, row.leads, score_leads)
    pred = predict_classes(model, view.signals[i], row.leads if row.takes_leads else None)
    leads = list(row.leads)
    expert = np.asarray(view.masks[i])
    # Only the scored leads: the others were neither trained on nor scored.
    keep = [k for k, lead in enumerate(leads) if lead in score_leads]
    fig = plot_ecg(np.asarray(view.signals[i])[keep], store.fs, [leads[k] for k in keep],
                   layout="rows", rhythm_lead=None, waves=expert[keep],
                   predicted_waves=pred[keep],
                   title=f"{rid}: expert (upper shading) vs {row.name} (hatched)")
    report.add_figure("segmentation_overlay", fig,
                      caption=f"{rid} (test fold 0): expert vs predicted waves")
    for name, scorer in scorers.items():
        err = scorer.errors_ms("QRS", "onset")
        if err.size:
            fig = plot_error_histogram(np.zeros_like(err), err, name=f"{name}: QRS onset",
                                       unit="ms")
            report.add_figure(f"qrs_onset_error_{_slug(name)}", fig, caption=name)
    spec = {"encoder": encoder_spec(model.encoder),
            "preprocessing": {"fs": store.fs, "leads": leads, "n_samples": store.n_samples,
                              "units": store.config.get("units", "mV"),
                              "filters": None, "normalisation": None}}
    save_segmentation_model(model, Path(out_dir) / "segmentation_model.pt", spec,
                            {"row": row.name, "fold": 0, "store": str(store.path),
                             "scored_leads": list(score_leads)})


def _probe_figures(report, probe, labels, names, features, splits) -> None:
    from ecgssl.plots import plot_embedding_map, plot_roc_curves

    test = splits[0].test
    for name, res in probe.items():
        fold0 = res["folds"][0]
        scores = getattr(fold0, "test_scores", None)
        if scores is not None:
            fig = plot_roc_curves(labels[test], scores, names, title=f"{name}: ROC, test fold 0")
            report.add_figure(f"roc_{_slug(name)}", fig, caption=f"{name}, test fold 0")
    rhythm = [k for k, n in enumerate(names) if n.startswith("rhythm:")] or list(range(len(names)))
    colour = np.array([names[rhythm[int(np.argmax(labels[i, rhythm]))]]
                       if labels[i, rhythm].any() else "other" for i in range(len(labels))])
    for name, feats in features.items():
        fig = plot_embedding_map(feats, colour, title=f"{name}: PCA of pooled features")
        report.add_figure(f"embedding_{_slug(name)}", fig, caption=name)


def _arch_label(spec: dict) -> str:
    """``vit_base w64 d2``: the registry name plus the size overrides that distinguish it."""
    o = spec["encoder"].get("overrides", {})
    parts = [spec["encoder"]["name"]] + [f"{k[0]}{o[k]}" for k in ("width", "depth") if k in o]
    # A ViT with a non-default input scale is another architecture (its own random-init twin).
    if float(o.get("input_scale", 1.0)) != 1.0:
        parts.append(f"x{float(o['input_scale']):g}")
    # So is another pooling of the features (its twin must pool the same way).
    if o.get("pool", "mean") != "mean":
        parts.append(str(o["pool"]))
    return " ".join(parts)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")[:60]


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
