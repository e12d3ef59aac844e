"""Task ``lowlabel``: the linear probe on seeded subsets of the first split's training labels
(``cfg.low_label_fractions`` x ``cfg.low_label_subsets``); validation and test unchanged."""

from __future__ import annotations

from typing import Any

from ecgssl.eval.tasks import register_task
from ecgssl.eval.tasks.base import Row, SuiteContext, Task


@register_task
class LowLabelProbe(Task):
    name = "lowlabel"
    uses_features = True

    def applies(self, ctx: SuiteContext) -> bool:
        return ctx.labels.shape[1] > 0

    def rows(self, ctx: SuiteContext) -> list[Row]:
        return ctx.frozen_rows

    def evaluate(self, ctx: SuiteContext, row: Row) -> dict[str, Any]:
        from ecgssl.eval.probe import low_label_probe

        cfg = ctx.cfg
        by_fraction = low_label_probe(ctx.features[row.name], ctx.labels, ctx.splits[0],
                                      fractions=tuple(cfg.low_label_fractions),
                                      n_subsets=cfg.low_label_subsets, seed=cfg.seed,
                                      class_names=ctx.label_names, n_boot=cfg.n_boot)
        return {f"{row.name} @ {frac:.0%} labels (n={res['n_train']})": res
                for frac, res in by_fraction.items()}

    def report(self, ctx: SuiteContext, scored: dict[str, Any],
               paired: dict[str, Any]) -> dict[str, Any]:
        ctx.report.add_classification(
            "Low-label linear probe (first split)", scored,
            note=f"seeded subsets of the training labels ({ctx.cfg.low_label_subsets} per "
                 "fraction, mean +- std); validation and test unchanged")
        return {"lowlabel": {k: {"macro_auroc": v["macro_auroc"], "macro_f1": v["macro_f1"]}
                             for k, v in scored.items()}}
