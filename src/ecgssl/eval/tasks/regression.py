"""Task ``regression``: ridge on frozen pooled features for the expert interval targets
(heart rate, QRS, PR, QT: ``target_*`` columns of the store's manifest); pooled out-of-fold
MAE and R^2 with bootstrap CIs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgssl.eval.tasks import register_task
from ecgssl.eval.tasks.base import Row, SuiteContext, Task


def interval_targets(store) -> tuple[np.ndarray, list[str]] | None:
    """(N, 4) float32 expert targets and their names, or None if the store has none."""
    from ecgssl.eval.regression import INTERVAL_TARGETS

    cols = [f"target_{t}" for t in INTERVAL_TARGETS]
    if not all(c in store.manifest.columns for c in cols):
        return None
    return store.manifest[cols].to_numpy(dtype=np.float32), list(INTERVAL_TARGETS)


@register_task
class IntervalRegression(Task):
    name = "regression"
    uses_features = True

    def applies(self, ctx: SuiteContext) -> bool:
        self.targets = interval_targets(ctx.store)
        return self.targets is not None

    def rows(self, ctx: SuiteContext) -> list[Row]:
        return ctx.frozen_rows

    def evaluate(self, ctx: SuiteContext, row: Row) -> dict[str, Any]:
        from ecgssl.eval.regression import INTERVAL_UNITS, ridge_probe_cv

        res = ridge_probe_cv(ctx.features[row.name], self.targets[0], ctx.splits,
                             target_names=self.targets[1], units=INTERVAL_UNITS,
                             n_boot=ctx.cfg.n_boot, seed=ctx.cfg.seed)
        ctx.tick()
        return {row.name: res}

    def report(self, ctx: SuiteContext, scored: dict[str, Any],
               paired: dict[str, Any]) -> dict[str, Any]:
        ctx.report.add_regression("Feature prediction from frozen features (ridge)",
                                  {k: v["results"] for k, v in scored.items()},
                                  note="expert targets from LUDB annotations (lead II medians); "
                                       "pooled out-of-fold predictions, bootstrap 95 % CI")
        return {"regression": {k: {t: r.to_dict() for t, r in v["results"].items()}
                               for k, v in scored.items()}}
