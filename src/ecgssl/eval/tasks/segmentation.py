"""Task ``segmentation``: P / QRS / T delineation as per-sample classification.

Every row trains a decoder (frozen rows: on the frozen encoder; trained rows: the whole network)
with k-fold CV by patient (``ecgssl.eval.segmentation.cross_validate_segmentation``), on the
same scored leads for every row (``LeadView``); the epoch is chosen on validation Dice. The
classical neurokit2 delineator is scored by the same code on the same leads and records.
Writes ``segmentation_model.safetensors`` (+ ``.json``): the pretrained row with the best validation
score of fold 0.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ecgssl.eval.tasks import register_task
from ecgssl.eval.tasks.base import LeadView, Row, SuiteContext, Task, slug

log = logging.getLogger(__name__)


def seg_label(row: Row) -> str:
    """A row's name in the segmentation table (frozen rows train a decoder only)."""
    return row.name + (" (frozen encoder + decoder)" if row.frozen else "")


def classical_rows(view: LeadView, score_leads: list[str], methods=("prominence",),
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
    return {f"neurokit2 {method} (classical)": evaluate_nk_baseline(items, method)
            for method in methods}


@register_task
class Segmentation(Task):
    name = "segmentation"

    def __init__(self):
        self.best = None  # (row, CV result, fold-0 validation score) of the best pretrained row
        self.last = None  # the last row's CV result (its test records)
        self.skipped: list[str] = []  # rows whose encoder has no time feature map
        self._has_map: dict[str, bool] | None = None

    def applies(self, ctx: SuiteContext) -> bool:
        return "waves" in ctx.store.extras

    def rows(self, ctx: SuiteContext) -> list[Row]:
        """Every row whose encoder has a time feature map; the others (HuBERT-ECG, declared by
        ``has_time_features``) are left out of segmentation, named in the report."""
        from ecgssl.models import has_time_features

        if self._has_map is None:  # decided once: the suite asks for the rows twice
            self._has_map = {r.name: has_time_features(r.make()) for r in ctx.rows}
            self.skipped = [r.name for r in ctx.rows if not self._has_map[r.name]]
            if self.skipped:
                log.warning("segmentation: %s left out (no time feature map)",
                            ", ".join(self.skipped))
        return [r for r in ctx.rows if self._has_map[r.name]]

    def evaluate(self, ctx: SuiteContext, row: Row) -> dict[str, Any]:
        from ecgssl.eval.segmentation import SegmentationConfig, cross_validate_segmentation

        cfg = ctx.cfg
        view = LeadView(ctx.store, row.leads, ctx.score_leads)
        seg_cfg = SegmentationConfig(
            n_folds=cfg.n_folds, epochs=cfg.seg_epochs, batch_size=cfg.seg_batch_size,
            lr=cfg.seg_lr, freeze_encoder=row.frozen, seed=cfg.seed, leads=row.lead_names,
            folds=cfg.seg_folds, keep_models=True)
        res = self.last = cross_validate_segmentation(view, row.make, seg_cfg)
        # The model saved for `ecgssl delineate` (and drawn in the overlay): the pretrained row
        # with the best validation score of fold 0, a choice made on validation only.
        val = res.folds[0]["best_val_score"] if res.folds else float("-inf")
        if row.kind == "pretrained" and (self.best is None or val > self.best[2]):
            self.best = (row, res, val)
        ctx.tick()
        return {seg_label(row): {"scorer": res.pooled, "summary": res.summary()}}

    def extra_rows(self, ctx: SuiteContext, scored: dict[str, Any]) -> dict[str, Any]:
        if not ctx.cfg.classical:
            return {}
        view = LeadView(ctx.store, ctx.score_leads, ctx.score_leads)
        # Only the records the learned rows were tested on (all of them unless seg_folds).
        tested = None
        if ctx.cfg.seg_folds is not None and self.last is not None:
            tested = {r for fold in self.last.folds for r in fold["test_records"]}
        return {name: {"scorer": result.scorer,
                       "summary": {"pooled": result.scorer.summary(),
                                   "failures": result.failures}}
                for name, result in classical_rows(view, ctx.score_leads,
                                                   records=tested).items()}

    def compare(self, ctx: SuiteContext, scored: dict[str, Any]) -> dict[str, Any]:
        """{row label: paired_segmentation_difference vs its twin's label}."""
        from ecgssl.eval.compare import paired_segmentation_difference

        by_name = {r.name: r for r in ctx.rows}
        out = {}
        for row in ctx.rows:
            twin = by_name.get(row.twin) if row.twin else None
            if twin is None or seg_label(row) not in scored or seg_label(twin) not in scored:
                continue
            out[seg_label(row)] = {"vs": seg_label(twin), **paired_segmentation_difference(
                scored[seg_label(row)]["scorer"], scored[seg_label(twin)]["scorer"],
                n_boot=ctx.cfg.paired_boot, seed=ctx.cfg.seed)}
        return out

    def report(self, ctx: SuiteContext, scored: dict[str, Any],
               paired: dict[str, Any]) -> dict[str, Any]:
        from ecgssl.eval.compare import segmentation_difference_table

        cfg, report = ctx.cfg, ctx.report
        scorers = {k: v["scorer"] for k, v in scored.items()}
        folds_note = "all folds" if cfg.seg_folds is None else f"folds {cfg.seg_folds} only"
        report.add_segmentation(
            "P/QRS/T segmentation (pooled test folds)",
            {k: v.summary() for k, v in scorers.items()},
            note=f"{cfg.n_folds}-fold CV by patient ({folds_note}); leads "
                 f"{', '.join(ctx.score_leads)}; annotated span only; onsets/offsets matched "
                 f"within +-150 ms; {cfg.seg_epochs} epochs per fold, epoch chosen on "
                 f"validation Dice"
                 + (f"; left out (encoder without a time feature map): "
                    f"{', '.join(self.skipped)}" if self.skipped else ""))
        if cfg.plots and self.best is not None:
            _segmentation_figures(report, ctx.store, ctx.score_leads, self.best, scorers,
                                  ctx.out_dir)
        out: dict[str, Any] = {"segmentation": {k: v["summary"] for k, v in scored.items()}}
        return out | self.report_paired(ctx, "paired_segmentation", paired,
                                        segmentation_difference_table,
                                        "Paired differences: segmentation")


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
    pred = predict_classes(model, view.signals[i], row.lead_names)
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
            report.add_figure(f"qrs_onset_error_{slug(name)}", fig, caption=name)
    spec = {"encoder": encoder_spec(model.encoder),
            "preprocessing": {"fs": store.fs, "leads": leads, "n_samples": store.n_samples,
                              "units": store.config.get("units", "mV"),
                              "filters": None, "normalisation": None}}
    save_segmentation_model(model, Path(out_dir) / "segmentation_model.safetensors", spec,
                            {"row": row.name, "fold": 0, "store": str(store.path),
                             "scored_leads": list(score_leads)})
