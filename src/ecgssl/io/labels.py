"""Record labels from a file, for any source kind (``ecgssl prepare SRC --labels FILE``).

The file is a CSV (comma- or tab-separated), one row per record: the record id, then one or more
labels (several labels in one cell are ``;``-separated). With or without a header line: the
first row is data when its first cell names a record of the source, and a header otherwise (a
header may name the id column ``record_id``/``record``/``id``/``name`` and the labels column
``labels``/``label``/``dx``/``class``; without those names the first column is the id and every
other column holds labels). Lines starting with ``#`` are comments.

Record ids match a source's ids in full (``cinc/A00001``), without the source name
(``A00001``, ``sub/rec1``), by file name when that is unique (``rec1``), with or without an
extension (``A00001.mat``). The CinC 2017 ``REFERENCE.csv`` (``A00001,N`` without a header) is
this format; a ``REFERENCE.csv`` beside the records is used when no file is given.

Labels from the file replace the record's own (e.g. CinC ``#Dx`` codes) for the records it
lists; other records keep theirs. ``label_summary`` says how many records got labels, names the
records the file does not cover and the file rows that match no record; a file matching no
record at all is an error.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from ecgssl.data.record import Record

log = logging.getLogger(__name__)

REFERENCE_FILES = ("REFERENCE.csv",)
_ID_COLUMNS = ("record_id", "record", "id", "name", "recording", "filename", "file")
_LABEL_COLUMNS = ("labels", "label", "dx", "class", "classes", "rhythm")
_EXTENSIONS = (".mat", ".hea", ".dat", ".npy", ".csv", ".json", ".edf")


class RecordMatcher:
    """Finds the source record id a label file's id means (see the module docstring)."""

    def __init__(self, record_ids: list[str]):
        self.ids = set(record_ids)
        self.short: dict[str, str] = {}
        by_base: dict[str, list[str]] = {}
        for rid in record_ids:
            rest = rid.split("/", 1)[1] if "/" in rid else rid
            self.short.setdefault(rest, rid)
            by_base.setdefault(rest.rsplit("/", 1)[-1], []).append(rid)
        self.base = {b: ids[0] for b, ids in by_base.items() if len(ids) == 1}

    def __call__(self, key: str) -> str | None:
        key = key.strip().replace("\\", "/")
        for k in (key, *(key[: -len(e)] for e in _EXTENSIONS if key.lower().endswith(e))):
            if k in self.ids:
                return k
            if k in self.short:
                return self.short[k]
            if k in self.base:
                return self.base[k]
        return None


def _split(cell: str) -> list[str]:
    return [lab.strip() for lab in cell.split(";") if lab.strip()]


def read_labels_file(path: str | Path, record_ids: list[str]) -> tuple[dict[str, list[str]], dict]:
    """``({record id: labels}, summary)`` from a labels CSV matched against ``record_ids``.

    Raises:
        FileNotFoundError: no such file. ValueError: an empty file, or no row matches a record.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file {path} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"labels file {path} holds no rows")
    delimiter = "\t" if "\t" in lines[0] else ","
    rows = [[c.strip() for c in row] for row in csv.reader(lines, delimiter=delimiter)]
    match = RecordMatcher(record_ids)
    header = None
    if match(rows[0][0]) is None:
        header, rows = rows[0], rows[1:]
    id_col, label_cols = 0, None
    if header is not None:
        lower = [h.lower() for h in header]
        id_col = next((lower.index(c) for c in _ID_COLUMNS if c in lower), 0)
        named = [lower.index(c) for c in _LABEL_COLUMNS if c in lower]
        label_cols = named[:1] or None
    table: dict[str, list[str]] = {}
    unmatched: list[str] = []
    for row in rows:
        if len(row) <= id_col or not row[id_col]:
            continue
        rid = match(row[id_col])
        if rid is None:
            unmatched.append(row[id_col])
            continue
        cols = label_cols if label_cols is not None else [k for k in range(len(row))
                                                          if k != id_col]
        labels = [lab for k in cols if k < len(row) for lab in _split(row[k])]
        table[rid] = sorted(set(table.get(rid, [])) | set(labels))
    if not table:
        example = unmatched[0] if unmatched else "?"
        raise ValueError(f"labels file {path}: record {example!r} (and {max(len(unmatched) - 1, 0)}"
                         f" more rows) is not in the source (ids such as "
                         f"{sorted(record_ids)[:3]}); check the id column")
    without = [rid for rid in record_ids if rid not in table]
    summary = {"file": str(path), "header": header, "n_rows": len(rows),
               "n_records": len(record_ids), "n_records_labelled": len(table),
               "records_without_labels": without, "rows_matching_no_record": unmatched,
               # the labels themselves: a store reused for an edited file would keep old labels
               "sha256": hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()}
    if unmatched:
        log.warning("labels file %s: %d rows match no record (e.g. %s)", path, len(unmatched),
                    unmatched[:3])
    return table, summary


class LabelledSource:
    """Any source with labels from a file replacing the listed records' labels (picklable)."""

    def __init__(self, source, labels_file: str | Path):
        self.source = source
        self.kind = getattr(source, "kind", "?")
        self.name = source.name
        self.root = getattr(source, "root", None)
        self.path = getattr(source, "path", self.root)
        self.labels, summary = read_labels_file(labels_file, source.record_ids())
        self.label_summaries = [*getattr(source, "label_summaries", []), summary]

    def record_ids(self) -> list[str]:
        return self.source.record_ids()

    def read(self, record_id: str) -> Record:
        record = self.source.read(record_id)
        if record_id in self.labels:
            record.labels = list(self.labels[record_id])
            record.meta["labels_from"] = "labels file"
        return record

    def __len__(self) -> int:
        return len(self.source)

    def __iter__(self) -> Iterator[Record]:
        for rid in self.record_ids():
            yield self.read(rid)

    def __repr__(self) -> str:
        return f"LabelledSource({self.source!r}, {len(self.labels)} records labelled)"


def attach_labels(source, labels: str | Path | None = "auto"):
    """``source`` with labels from ``labels`` (a file), from a ``REFERENCE.csv`` beside the
    records (``"auto"``), or unchanged (None, or "auto" without such a file)."""
    if labels is None:
        return source
    if isinstance(labels, str) and labels == "auto":
        root = getattr(source, "root", None)
        found = [root / n for n in REFERENCE_FILES if root is not None and (root / n).is_file()]
        if not found:
            return source
        labels = found[0]
    return LabelledSource(source, labels)


def describe_labels(summaries: list[dict], limit: int = 10) -> list[str]:
    """Lines for the prepare summary: how many records got labels, which did not."""
    lines = []
    for s in summaries:
        lines.append(f"labels from {s['file']}: {s['n_records_labelled']} of {s['n_records']} "
                     f"records" + (f" (header {','.join(s['header'])})" if s["header"] else
                                   " (no header)"))
        without = s["records_without_labels"]
        if without:
            more = f" and {len(without) - limit} more" if len(without) > limit else ""
            lines.append(f"  {len(without)} records not in the file keep their own labels (none "
                         f"for most formats): {', '.join(without[:limit])}{more}")
        if s["rows_matching_no_record"]:
            rows = s["rows_matching_no_record"]
            lines.append(f"  {len(rows)} rows match no record: {', '.join(rows[:limit])}")
    return lines
