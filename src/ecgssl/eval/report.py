"""Evaluation reports: ``report.md`` (Markdown tables) + ``report.json`` (every number) + PNGs.

Rows are encoders / checkpoints (including the random-init and supervised-from-scratch
baselines, which docs/evaluation.md requires in the same table); columns are metrics with their
95 % intervals. One function per table type builds (markdown, json rows); ``Report`` collects
sections and figures and writes the folder.

Accepted row values:
- classification: ``ClassificationResult``, anything with a ``.result`` attribute holding one
  (``ProbeResult``, ``FineTuneOutput``), its ``to_dict()``, or a low-label / CV summary
  ``{"macro_auroc": {"mean", "std", "n"}, "macro_f1": {...}}``;
- regression: ``{target: RegressionResult or its to_dict()}``;
- segmentation: a (possibly nested) dict of metrics from the segmentation evaluator, e.g.
  ``{"P": {"dice": .9, "onset": {"se": .98, "ppv": .97, "f1": .975, "error_mean_ms": 2.1,
  "error_sd_ms": 10.3}, ...}, ...}``; nested keys become column names ("P onset f1").
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ecgssl.eval.classification_metrics import ClassificationResult, jsonable
from ecgssl.eval.regression_metrics import RegressionResult

__all__ = [
    "format_value",
    "classification_table",
    "regression_table",
    "segmentation_table",
    "markdown_table",
    "Report",
]

Row = tuple[str, Any]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def format_value(value, ci=None, digits: int = 3, std=None) -> str:
    """``0.912 [0.901, 0.923]``, ``0.84 +- 0.01`` or ``-`` for missing / NaN."""
    if value is None or not _finite(value):
        return "-"
    text = f"{value:.{digits}f}"
    if ci is not None and len(ci) == 2 and all(_finite(c) for c in ci):
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    elif std is not None and _finite(std):
        text += f" +- {std:.{digits}f}"
    return text


def _escape(cell: str) -> str:
    return str(cell).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table (first column left-aligned, the rest right-aligned)."""
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _as_rows(rows) -> list[Row]:
    if isinstance(rows, Mapping):
        return list(rows.items())
    out = []
    for r in rows:
        if isinstance(r, Mapping) and "name" in r:
            out.append((str(r["name"]), r.get("result", {k: v for k, v in r.items()
                                                      if k != "name"})))
        else:
            name, value = r
            out.append((str(name), value))
    return out


def _classification_dict(value) -> dict:
    if hasattr(value, "result") and isinstance(value.result, ClassificationResult):
        d = value.to_dict() if hasattr(value, "to_dict") else value.result.to_dict()
        return d
    if isinstance(value, ClassificationResult):
        return value.to_dict()
    if isinstance(value, Mapping):
        # Summaries may hold result objects ("runs", "folds"): keep only their numbers.
        return jsonable({k: v for k, v in value.items() if k not in ("runs", "folds")})
    raise TypeError(f"cannot read classification metrics from {type(value).__name__}")


def classification_table(rows, digits: int = 3) -> tuple[str, list[dict]]:
    """Rows (name, result) -> (Markdown table, JSON rows).

    Columns: macro AUROC [95 % CI], macro F1 [95 % CI], classes evaluated / skipped, test
    records, protocol details (chosen C or epoch, training records).
    """
    # One test split: value [95 % bootstrap CI]; cross-validation / seeds: mean +- std (n runs).
    header = ["model", "macro AUROC ([95% CI] or mean +- std)", "macro F1", "classes (skipped)",
              "n test", "selection"]
    md_rows, js = [], []
    for name, value in _as_rows(rows):
        d = _classification_dict(value)
        auc, f1 = d.get("macro_auroc"), d.get("macro_f1")
        if isinstance(auc, Mapping):  # mean +- std summary over seeds / folds
            auc_txt = format_value(auc.get("mean"), std=auc.get("std"), digits=digits)
            auc_txt += f" (n={auc.get('n')})"
            f1_txt = format_value((f1 or {}).get("mean"), std=(f1 or {}).get("std"),
                                  digits=digits)
            classes, n_test = "-", "-"
        else:
            auc_txt = format_value(auc, d.get("macro_auroc_ci"), digits)
            f1_txt = format_value(f1, d.get("macro_f1_ci"), digits)
            skipped = d.get("skipped_classes") or []
            n_eval = d.get("n_evaluated_classes", "-")
            classes = f"{n_eval} ({len(skipped)})"
            n_test = str(d.get("n_records", "-"))
        extra = d.get("extra") or {}
        sel = []
        for key, label in (("best_c", "C"), ("best_epoch", "epoch"), ("n_train", "n train"),
                           ("fraction", "labels")):
            if key in extra and extra[key] is not None:
                sel.append(f"{label}={extra[key]:g}" if isinstance(extra[key], float)
                           else f"{label}={extra[key]}")
        if "n_train" in d and "n_train" not in extra:
            sel.append(f"n train={d['n_train']}")
        md_rows.append([name, auc_txt, f1_txt, classes, n_test, ", ".join(sel) or "-"])
        js.append({"name": name, **d})
    # Skipped classes are named, not just counted (docs/evaluation.md).
    notes = [f"- {r['name']}: skipped (no positive or no negative test record): "
             + ", ".join(r["skipped_classes"]) for r in js if r.get("skipped_classes")]
    md = markdown_table(header, md_rows)
    return (md + "\n" + "\n".join(notes) + "\n") if notes else md, js


def _regression_dict(value) -> dict:
    if isinstance(value, RegressionResult):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot read regression metrics from {type(value).__name__}")


def regression_table(rows, digits: int = 2) -> tuple[str, list[dict]]:
    """Rows (name, {target: RegressionResult}) -> (Markdown, JSON rows).

    Columns per target: MAE [CI] (unit) and R^2 [CI]; excluded (NaN-target) counts are given in
    the header as the maximum over rows.
    """
    rows = _as_rows(rows)
    per_row = [(name, {t: _regression_dict(v) for t, v in res.items()}) for name, res in rows]
    targets: list[str] = []
    for _, res in per_row:
        targets += [t for t in res if t not in targets]
    header = ["model"]
    for t in targets:
        unit = next((r[t].get("unit") for _, r in per_row if t in r and r[t].get("unit")), "")
        excl = max((r[t].get("n_excluded", 0) or 0 for _, r in per_row if t in r), default=0)
        note = f", {excl} excluded" if excl else ""
        header += [f"{t} MAE ({unit}{note})" if unit or note else f"{t} MAE", f"{t} R^2"]
    md_rows, js = [], []
    for name, res in per_row:
        cells = [name]
        for t in targets:
            r = res.get(t)
            if r is None:
                cells += ["-", "-"]
                continue
            cells += [format_value(r.get("mae"), r.get("mae_ci"), digits),
                      format_value(r.get("r2"), r.get("r2_ci"), 3)]
        md_rows.append(cells)
        js.append({"name": name, "targets": jsonable(res)})
    return markdown_table(header, md_rows), js


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix} {k}".strip()
        if isinstance(v, Mapping):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


_WAVES = ("P", "QRS", "T")
_POINT_KEYS = ("se", "ppv", "f1")


def _is_delineation_summary(m: Mapping) -> bool:
    """The ``segmentation_metrics`` summary layout: {"P": {"dice", "onset": {...}, ...}, ...}."""
    return any(isinstance(m.get(w), Mapping) and "dice" in m[w] for w in _WAVES)


def _delineation_rows(rows: list[Row], digits: int) -> tuple[str, list[dict]]:
    header = ["model", "wave", "Dice"]
    for kind in ("onset", "offset"):
        header += [f"{kind} Se", f"{kind} PPV", f"{kind} F1", f"{kind} error (ms)"]
    md_rows = []
    for name, m in rows:
        for w in _WAVES:
            d = m.get(w)
            if not isinstance(d, Mapping):
                continue
            cells = [name, w, format_value(d.get("dice"), d.get("dice_ci"), digits)]
            for kind in ("onset", "offset"):
                p = d.get(kind) or {}
                cells += [format_value(p.get(k), p.get(f"{k}_ci"), digits) for k in _POINT_KEYS]
                cells.append(format_value(p.get("error_mean_ms"), std=p.get("error_sd_ms"),
                                          digits=1))
            md_rows.append(cells)
    return markdown_table(header, md_rows), [{"name": n, **jsonable(dict(m))} for n, m in rows]


def segmentation_table(rows, digits: int = 3) -> tuple[str, list[dict]]:
    """Rows (name, metrics dict) -> (Markdown, JSON rows).

    The segmentation evaluator's summary (``{"P": {"dice", "onset": {"se", "ppv", "f1",
    "error_mean_ms", "error_sd_ms"}, "offset": {...}}, "QRS": ..., "T": ...}``, or a
    cross-validation summary holding it under ``"pooled"``) gives one row per model and wave:
    Dice, onset/offset Se, PPV, F1 and error mean +- SD (ms). Any other nested dict is
    flattened: one column per leaf metric (union over rows, first-seen order; pairs
    ``[lo, hi]`` print as intervals; ``*_ci`` keys attach to their metric).
    """
    rows = [(n, m["pooled"] if isinstance(m, Mapping) and isinstance(m.get("pooled"), Mapping)
             else m) for n, m in _as_rows(rows)]
    if rows and all(isinstance(m, Mapping) and _is_delineation_summary(m) for _, m in rows):
        return _delineation_rows(rows, digits)
    flat = [(name, _flatten(jsonable(dict(m)))) for name, m in rows]
    cols: list[str] = []
    for _, f in flat:
        cols += [c for c in f if c not in cols and not c.endswith("_ci")]
    md_rows = []
    for name, f in flat:
        cells = [name]
        for c in cols:
            v = f.get(c)
            if isinstance(v, (list, tuple)) and len(v) == 2:
                cells.append(f"[{format_value(v[0], digits=digits)}, "
                             f"{format_value(v[1], digits=digits)}]")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                d = 1 if c.endswith("_ms") or " ms" in c else digits
                cells.append(format_value(float(v), f.get(c + "_ci"), d))
            else:
                cells.append("-" if v is None else str(v))
        md_rows.append(cells)
    return markdown_table(["model"] + cols, md_rows), [
        {"name": n, **jsonable(dict(m))} for n, m in rows]


class Report:
    """Collects sections and figures; ``write(out_dir)`` produces the report folder.

    Example::

        rep = Report("PTB-XL superdiagnostic, linear probe")
        rep.add_classification("Linear probe", [("ECG-JEPA", probe), ("random init", rnd)])
        rep.add_figure("roc_jepa", fig, "ROC curves of the ECG-JEPA probe")
        rep.write("reports/ptbxl_super")
    """

    def __init__(self, title: str, description: str = "", meta: Mapping | None = None):
        if not title:
            raise ValueError("a report needs a title")
        self.title = title
        self.description = description
        self.meta = dict(meta or {})
        self.sections: list[dict] = []
        self.figures: list[tuple[str, Any, str]] = []

    def _add(self, kind: str, title: str, md: str, js: list[dict], note: str) -> None:
        self.sections.append({"kind": kind, "title": title, "markdown": md, "rows": js,
                              "note": note})

    def add_classification(self, title: str, rows, note: str = "") -> None:
        self._add("classification", title, *classification_table(rows), note)

    def add_regression(self, title: str, rows, note: str = "") -> None:
        self._add("regression", title, *regression_table(rows), note)

    def add_segmentation(self, title: str, rows, note: str = "") -> None:
        self._add("segmentation", title, *segmentation_table(rows), note)

    def add_text(self, title: str, text: str) -> None:
        self.sections.append({"kind": "text", "title": title, "markdown": text + "\n",
                              "rows": [], "note": ""})

    def add_figure(self, name: str, figure, caption: str = "") -> None:
        """A matplotlib Figure (saved as ``figures/<name>.png``) or an existing PNG path."""
        if not name or any(c in name for c in "/\\ "):
            raise ValueError(f"figure name must be a plain file stem, got {name!r}")
        self.figures.append((name, figure, caption))

    def markdown(self) -> str:
        parts = [f"# {self.title}\n"]
        if self.description:
            parts.append(self.description + "\n")
        for s in self.sections:
            parts.append(f"## {s['title']}\n")
            parts.append(s["markdown"])
            if s["note"]:
                parts.append(f"\n{s['note']}\n")
        if self.figures:
            parts.append("## Figures\n")
            for name, _, caption in self.figures:
                parts.append(f"![{caption or name}](figures/{name}.png)\n")
                if caption:
                    parts.append(f"*{caption}*\n")
        return "\n".join(parts)

    def write(self, out_dir: str | os.PathLike) -> Path:
        """Write ``report.md``, ``report.json`` and ``figures/*.png``; returns the folder.

        The folder must be new, empty or an ecgssl report (``ecgssl.safety.outputs``): a report
        is never written into someone else's folder. One writer at a time (lock file).
        """
        from ecgssl.safety import claim_output_dir, output_lock

        out = Path(out_dir)
        existed = (out / "report.json").is_file()
        if claim_output_dir(out, "report", existing_ok=True) == "ours" and existed:
            import logging

            logging.getLogger(__name__).warning("replacing the ecgssl report in %s", out)
        with output_lock(out / ".ecgssl.lock", out):
            return self._write(out)

    def _write(self, out: Path) -> Path:
        import shutil

        from ecgssl.plots import save_figure

        (out / "figures").mkdir(parents=True, exist_ok=True)
        for name, fig, _ in self.figures:
            target = out / "figures" / f"{name}.png"
            if isinstance(fig, (str, os.PathLike)):
                shutil.copyfile(fig, target)
            else:
                save_figure(fig, target)
        (out / "report.md").write_text(self.markdown())
        payload = {
            "title": self.title,
            "description": self.description,
            "meta": jsonable(self.meta),
            "sections": [{k: v for k, v in s.items() if k != "markdown"} for s in self.sections],
            "figures": [{"name": n, "file": f"figures/{n}.png", "caption": c}
                        for n, _, c in self.figures],
        }
        (out / "report.json").write_text(json.dumps(jsonable(payload), indent=2,
                                                    allow_nan=False))
        return out
