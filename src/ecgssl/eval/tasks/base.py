"""What every evaluation task is given (``SuiteContext``, ``Row``, ``LeadView``) and must do
(``Task``).

The suite (``ecgssl.eval.suite.run_suite``) builds the rows (encoders under test and their
baselines), the splits and the label matrix once, then for each chosen task:

1. ``rows(ctx)``: the rows it evaluates; for each, ``evaluate(ctx, row)`` fits on the training
   and validation parts of every split and scores on the test parts, returning
   ``{table label: result}``;
2. ``extra_rows(ctx, scored)``: rows that are not encoders (e.g. a classical delineator);
3. ``compare(ctx, scored)`` (when ``cfg.paired_boot``): each row against its twin, record by
   record (``ecgssl.eval.compare``);
4. ``report(ctx, scored, paired)``: its section(s) of the report (tables, notes, figures) and
   its entries of ``report.json``, returned as a dict.

Every choice (C, alpha, thresholds, epochs) is made on validation parts only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ecgssl.errors import SpecMismatchError


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
    spec: dict | None = None  # the export spec (pretrained and random-init rows)

    @property
    def frozen(self) -> bool:
        """Evaluated on frozen features (probe, ridge, decoder-only segmentation)."""
        return self.kind in ("pretrained", "random-init")

    @property
    def lead_names(self) -> list[str] | None:
        """What to pass as ``leads=`` to its encoder (None: it reads its own leads in order)."""
        return self.leads if self.takes_leads else None


def random_init_factory(spec: dict, seed: int):
    """``() -> encoder``: the architecture of an export ``spec``, initialised from ``seed``."""
    from ecgssl.models import create_encoder

    def make() -> nn.Module:
        torch.manual_seed(seed)
        return create_encoder(spec["encoder"]["name"], **spec["encoder"]["overrides"])

    return make


def arch_label(spec: dict) -> str:
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


def row_features(row: Row, view: LeadView, batch_size: int = 32,
                 module: nn.Module | None = None, cache_dir: str | Path | None = None
                 ) -> np.ndarray:
    """(N, pooled_dim) float32 pooled features of every window of ``view`` (frozen encoder).

    ``module``: use it instead of a fresh ``row.make()``. ``cache_dir``: read / write them with
    ``ecgssl.eval.embeddings.cached_embeddings``, keyed by the weights, the pooling, the store's
    ``store_id`` and the view's leads.
    """
    from ecgssl.eval.embeddings import cached_embeddings, compute_embeddings

    encoder = module if module is not None else row.make()
    if cache_dir is None:
        # The view streams batches from the store's memmap: memory stays flat with store size.
        return compute_embeddings(encoder, view.signals, batch_size=batch_size,
                                  leads=row.lead_names, progress=False)
    store_id = view.config.get("store_id")
    if not store_id:
        raise ValueError(f"store {view.path} has no store_id (prepared by an older ecgssl): "
                         "re-prepare it to cache features, or run without a feature cache")
    leads_key = hashlib.sha1(",".join(view.leads).encode()).hexdigest()[:8]
    return np.asarray(cached_embeddings(encoder, view.signals, cache_dir,
                                        store_hash=f"{store_id}-{leads_key}",
                                        batch_size=batch_size, leads=row.lead_names,
                                        progress=False))


@dataclass
class SuiteContext:
    """Everything a task reads, built once per ``run_suite`` call.

    Attributes:
        store: the evaluation ``ECGStore``; cfg: the ``SuiteConfig``.
        rows: every row (pretrained, fine-tuned, random-init, supervised), in table order.
        labels: (N, K) 0/1 classification labels kept (``label_names``; ``dropped``: too few
            positives); splits: ``[Split(train, val, test)]`` (k folds or PTB-XL's one split);
        split_note: how the splits were made (for report notes); patient_ids: (N,) str.
        score_leads: leads segmentation is trained and scored on, for every row.
        features: row name -> (N, pooled_dim) frozen features (filled before tasks that set
            ``uses_features``); report: the ``Report``; out_dir: where it is written.
        results: ``report.json`` so far (a task may read an earlier task's entries).
    """

    store: Any
    cfg: Any
    rows: list[Row]
    labels: np.ndarray
    label_names: list[str]
    dropped: list[str]
    splits: list
    split_note: str
    patient_ids: list[str]
    score_leads: list[str]
    report: Any
    out_dir: Path
    results: dict[str, Any]
    features: dict[str, np.ndarray] = field(default_factory=dict)
    bar: Any = None

    @property
    def frozen_rows(self) -> list[Row]:
        return [r for r in self.rows if r.frozen]

    def tick(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)


class Task:
    """One evaluation task (see the module doc for the order of calls).

    Class attributes: ``name`` (``SuiteConfig.tasks`` entry), ``uses_features`` (the suite
    computes every frozen row's pooled features once, shared by all such tasks, before they
    run). An instance lives for one suite run and may keep state between its calls.
    """

    name: ClassVar[str] = ""
    uses_features: ClassVar[bool] = False

    def applies(self, ctx: SuiteContext) -> bool:
        """Whether the store supports the task (labels, targets, wave masks ...)."""
        return True

    def rows(self, ctx: SuiteContext) -> list[Row]:
        return list(ctx.rows)

    def evaluate(self, ctx: SuiteContext, row: Row) -> dict[str, Any]:
        """Fit on train / validation, score on test, for one row: ``{table label: result}``."""
        raise NotImplementedError

    def extra_rows(self, ctx: SuiteContext, scored: dict[str, Any]) -> dict[str, Any]:
        """Rows that are not encoders, scored by the same code (default: none)."""
        return {}

    def compare(self, ctx: SuiteContext, scored: dict[str, Any]) -> dict[str, Any]:
        """Paired comparisons of rows with their twins (default: none)."""
        return {}

    def report(self, ctx: SuiteContext, scored: dict[str, Any],
               paired: dict[str, Any]) -> dict[str, Any]:
        """Add the task's report section(s); return its ``report.json`` entries."""
        raise NotImplementedError

    @staticmethod
    def report_paired(ctx: SuiteContext, key: str, paired: dict[str, Any], table,
                      title: str) -> dict[str, Any]:
        """The paired comparisons as ``report.json[key]`` (also in the report's meta) and, when
        there are any, a report section ``title`` of ``table(paired)`` lines; nothing when
        ``cfg.paired_boot`` is 0."""
        if not ctx.cfg.paired_boot:
            return {}
        ctx.report.meta[key] = paired
        if paired:
            ctx.report.add_text(title, "\n".join(table(paired)))
        return {key: paired}


def slug(text: str) -> str:
    """A file-name-safe form of a row name (figure names)."""
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")[:60]
