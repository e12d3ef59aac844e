"""Task ``probe``: multi-label classification, linear probe on frozen pooled features.

Frozen rows (pretrained, random-init): ``ecgssl.eval.probe.linear_probe_cv`` on the suite's
splits (C and thresholds chosen on validation). Trained rows (supervised from scratch,
fine-tuned): the whole encoder + a linear head (``ecgssl.eval.finetune.finetune``), epoch chosen
on validation. Paired comparisons: every row against its twin on the same test records
(``paired_probe``); with ``cfg.random_seeds > 1`` every pretrained row also against that many
random initialisations of its architecture (``seed_spread``), optionally per label family.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ecgssl.eval.tasks import register_task
from ecgssl.eval.tasks.base import (
    LeadView,
    Row,
    SuiteContext,
    Task,
    arch_label,
    random_init_factory,
    row_features,
    slug,
)


def supervised_classifier(row: Row, ctx: SuiteContext) -> dict:
    """Encoder + linear head trained on the labels of every split (fold ``k``: seed + k)."""
    from ecgssl.eval.finetune import finetune
    from ecgssl.eval.probe import _mean_std
    from ecgssl.eval.segmentation import _quiet_lightning

    cfg, store = ctx.cfg, ctx.store
    view = LeadView(store, row.leads)
    signals = np.stack([view.signals[i] for i in range(len(store))])
    folds = []
    for k, split in enumerate(ctx.splits):
        torch.manual_seed(cfg.seed + k)
        with _quiet_lightning(False):
            out = finetune(row.make(), signals, ctx.labels, split, task="multilabel",
                           class_names=ctx.label_names, epochs=cfg.finetune_epochs,
                           lr=cfg.finetune_lr, batch_size=32, leads=row.lead_names,
                           seed=cfg.seed + k, n_boot=cfg.n_boot)
        folds.append(out)
    return {"macro_auroc": _mean_std([f.result.macro_auroc for f in folds]),
            "macro_f1": _mean_std([f.result.macro_f1 for f in folds]), "folds": folds}


def _test_scores(res) -> list:
    """Per split test scores (N_test, K): ProbeResult.test_scores (frozen rows) or
    FineTuneOutput.test_pred (trained rows)."""
    return [f.test_scores if hasattr(f, "test_scores") else f.test_pred for f in res["folds"]]


def label_families(names: list[str]) -> dict[str, list[int]]:
    """Label columns grouped by family, the prefix before ':' (``rhythm:AFIB`` -> rhythm)."""
    families: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        families.setdefault(name.split(":")[0], []).append(j)
    return families


@register_task
class LinearProbe(Task):
    name = "probe"
    uses_features = True

    def applies(self, ctx: SuiteContext) -> bool:
        return ctx.labels.shape[1] > 0

    def rows(self, ctx: SuiteContext) -> list[Row]:
        return ctx.frozen_rows + [r for r in ctx.rows if not r.frozen]

    def evaluate(self, ctx: SuiteContext, row: Row) -> dict[str, Any]:
        from ecgssl.eval.probe import linear_probe_cv

        if row.frozen:
            res = linear_probe_cv(ctx.features[row.name], ctx.labels, ctx.splits,
                                  class_names=ctx.label_names, n_boot=ctx.cfg.n_boot,
                                  seed=ctx.cfg.seed)
        else:
            res = supervised_classifier(row, ctx)
        ctx.tick()
        return {row.name: res}

    def compare(self, ctx: SuiteContext, scored: dict[str, Any]) -> dict[str, Any]:
        """{row: paired_probe_difference vs its twin} for rows whose twin was evaluated; the
        bootstrap draws patients (all windows of a patient together)."""
        from ecgssl.eval.compare import paired_probe_difference

        out = {}
        for row in ctx.rows:
            if row.twin is None or row.name not in scored or row.twin not in scored:
                continue
            sa, sb = _test_scores(scored[row.name]), _test_scores(scored[row.twin])
            if any(x is None for x in sa + sb):
                continue
            out[row.name] = {"vs": row.twin, **paired_probe_difference(
                ctx.labels, [s.test for s in ctx.splits], sa, sb, class_names=ctx.label_names,
                groups=ctx.patient_ids, n_boot=ctx.cfg.paired_boot, seed=ctx.cfg.seed)}
        return out

    def report(self, ctx: SuiteContext, scored: dict[str, Any],
               paired: dict[str, Any]) -> dict[str, Any]:
        from ecgssl.eval.compare import probe_difference_table, seed_spread_table

        cfg, report = ctx.cfg, ctx.report
        note = (f"{ctx.split_note}; {len(ctx.label_names)} "
                f"labels with >= {cfg.min_positives} positives; supervised rows: whole encoder "
                f"+ linear head trained from random init, {cfg.finetune_epochs} epochs, epoch "
                f"chosen on validation macro AUROC")
        if cfg.finetune_pretrained:
            note += "; fine-tuned rows: the same training from the pretrained weights"
        if ctx.dropped:
            note += f"; left out (too few positives): {', '.join(ctx.dropped)}"
        report.add_classification("Linear probe on frozen features; supervised and "
                                  "fine-tuned rows (multi-label)", dict(scored), note=note)
        out: dict[str, Any] = {
            "probe": {k: {"macro_auroc": v["macro_auroc"], "macro_f1": v["macro_f1"]}
                      for k, v in scored.items()},
            "probe_labels": ctx.label_names}
        out |= self.report_paired(ctx, "paired_probe", paired, probe_difference_table,
                                  "Paired differences: linear probe / fine-tuning (macro AUROC)")
        if cfg.random_seeds > 1:
            out["seed_spread"] = self.seed_spread(ctx, scored)
            report.add_text(f"Linear probe against {cfg.random_seeds} random initialisations",
                            "\n".join(seed_spread_table(out["seed_spread"])))
        if cfg.plots:
            _probe_figures(report, scored, ctx.labels, ctx.label_names, ctx.features,
                           ctx.splits)
        return out

    def seed_spread(self, ctx: SuiteContext, scored: dict[str, Any]) -> dict:
        """Every pretrained row against ``cfg.random_seeds`` random initialisations of its
        architecture (seed ``cfg.seed`` = its random-init twin row, ``cfg.seed + 1 ...`` built
        the same way), each
        difference paired record by record (same splits, labels and probe). With
        ``cfg.label_families`` also per label family (``label_families``): a breakdown of the
        macro AUROC, not a separate test.

        Returns:
            ``{"rows": {row: {"arch", "auroc", "vs_seeds": [{"seed", "auroc", "delta", "ci",
            "p_not_better"[, "families": {family: {"delta", "ci"}}]}]}}, "random": {arch:
            [macro AUROC per seed]}, "n_seeds", "families": {family: [labels]}}``.
        """
        from ecgssl.eval.compare import paired_probe_difference
        from ecgssl.eval.probe import linear_probe_cv

        cfg, labels, names = ctx.cfg, ctx.labels, ctx.label_names
        by_name = {r.name: r for r in ctx.rows}
        tests = [sp.test for sp in ctx.splits]
        families = label_families(names) if cfg.label_families else {}
        random_cv: dict[str, list] = {}
        out: dict[str, Any] = {"rows": {}, "random": {}, "n_seeds": int(cfg.random_seeds),
                               "families": {f: [names[j] for j in c]
                                            for f, c in families.items()}}
        for row in ctx.rows:
            twin = by_name.get(row.twin) if row.twin else None
            if row.kind != "pretrained" or twin is None or twin.name not in scored:
                continue
            arch = arch_label(row.spec)
            if arch not in random_cv:
                seeds = [(scored[twin.name]["macro_auroc"]["mean"],
                          _test_scores(scored[twin.name]))]
                for k in range(1, cfg.random_seeds):
                    feats = row_features(twin, LeadView(ctx.store, twin.leads),
                                         module=random_init_factory(row.spec, cfg.seed + k)(),
                                         cache_dir=cfg.feature_cache)
                    cv = linear_probe_cv(feats, labels, ctx.splits, class_names=names,
                                         n_boot=1, seed=cfg.seed)
                    seeds.append((cv["macro_auroc"]["mean"], _test_scores(cv)))
                random_cv[arch] = seeds
                out["random"][arch] = [s[0] for s in seeds]
            scores = _test_scores(scored[row.name])
            vs = []
            for k, (r_auc, r_scores) in enumerate(random_cv[arch]):
                d = paired_probe_difference(labels, tests, scores, r_scores, class_names=names,
                                            groups=ctx.patient_ids, n_boot=cfg.paired_boot,
                                            seed=cfg.seed)
                entry = {"seed": cfg.seed + k, "auroc": r_auc, "delta": d["delta"], "ci": d["ci"],
                         "p_not_better": d["p_not_better"]}
                if families:
                    entry["families"] = {}
                    for f, cols in families.items():
                        df = paired_probe_difference(
                            labels[:, cols], tests, [x[:, cols] for x in scores],
                            [x[:, cols] for x in r_scores], groups=ctx.patient_ids,
                            n_boot=cfg.paired_boot, seed=cfg.seed)
                        entry["families"][f] = {"delta": df["delta"], "ci": df["ci"]}
                vs.append(entry)
            out["rows"][row.name] = {"arch": arch,
                                     "auroc": scored[row.name]["macro_auroc"]["mean"],
                                     "vs_seeds": vs}
        return out


def _probe_figures(report, probe, labels, names, features, splits) -> None:
    from ecgssl.plots import plot_embedding_map, plot_roc_curves

    test = splits[0].test
    for name, res in probe.items():
        fold0 = res["folds"][0]
        scores = getattr(fold0, "test_scores", None)
        if scores is not None:
            fig = plot_roc_curves(labels[test], scores, names, title=f"{name}: ROC, test fold 0")
            report.add_figure(f"roc_{slug(name)}", fig, caption=f"{name}, test fold 0")
    rhythm = [k for k, n in enumerate(names) if n.startswith("rhythm:")] or list(range(len(names)))
    colour = np.array([names[rhythm[int(np.argmax(labels[i, rhythm]))]]
                       if labels[i, rhythm].any() else "other" for i in range(len(labels))])
    for name, feats in features.items():
        fig = plot_embedding_map(feats, colour, title=f"{name}: PCA of pooled features")
        report.add_figure(f"embedding_{slug(name)}", fig, caption=name)
