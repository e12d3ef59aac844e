"""Readers of ECG databases and folders, all yielding ``ecgssl.data.record.Record``.

``open_source(path, kind=None, **options)`` returns a picklable ``Source`` (``name``,
``record_ids()``, ``read(record_id)``, iteration); ``detect_source_kind(path)`` guesses the kind:

- ``"ptbxl"``: a folder with ``ptbxl_database.csv``;
- ``"ludb"``: a folder with ``ludb.csv`` or LUDB per-lead annotation files (``data/N.i``);
- ``"cinc"``: WFDB headers whose signal file is a ``.mat``;
- ``"long"``: WFDB folders with any record longer than 60 s;
- ``"wfdb"``: other WFDB records;
- ``"folder"``: ``.npy`` arrays (possibly mixed with records).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from ecgssl.io.checks import DEFAULT_CHECKS, SignalChecks, check_signal
from ecgssl.io.cinc import read_cinc
from ecgssl.io.long_records import iter_windows, read_long_record
from ecgssl.io.ludb import LUDB_LABEL_GROUPS, ludb_label_names, ludb_masks, read_ludb, wave_mask
from ecgssl.io.ptbxl import PTBXL_AGGREGATIONS, ptbxl_split
from ecgssl.io.sources import (
    SOURCE_CLASSES,
    CincSource,
    FolderSource,
    LongRecordSource,
    LUDBSource,
    MultiSource,
    PTBXLSource,
    Source,
    WFDBSource,
)
from ecgssl.io.wfdb_header import read_header
from ecgssl.io.wfdb_record import read_wfdb

SOURCE_KINDS = tuple(SOURCE_CLASSES)
LONG_RECORD_S = 60.0  # records longer than this make a WFDB folder a "long" source


def detect_source_kind(path: str | Path) -> str:
    """Guess the kind of the source at ``path`` (a folder); see the module docstring.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: it is not a folder, or holds no recognisable ECG records.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ECG source path {path} does not exist")
    if not path.is_dir():
        raise ValueError(f"ECG source path {path} is not a folder; give the folder that holds "
                         "the records")
    if (path / "ptbxl_database.csv").is_file():
        return "ptbxl"
    if (path / "ludb.csv").is_file() or any(islice((path / "data").glob("*.i"), 1)) \
            or any(islice(path.glob("*.avf"), 1)):
        return "ludb"
    headers = list(islice(path.rglob("*.hea"), 20))
    has_npy = any(islice(path.rglob("*.npy"), 1))
    if has_npy:
        return "folder"
    if not headers:
        raise ValueError(f"no ECG records found in {path} (looked for WFDB .hea headers, "
                         "CinC .mat + .hea, .npy arrays, ptbxl_database.csv, ludb.csv)")
    kinds = set()
    for hea in headers:
        try:
            h = read_header(hea)
        except ValueError:
            continue
        if h.signals and h.signals[0].file_name.lower().endswith(".mat"):
            kinds.add("cinc")
        elif h.sig_len and h.fs and h.sig_len / h.fs > LONG_RECORD_S:
            kinds.add("long")
        else:
            kinds.add("wfdb")
    if not kinds:
        raise ValueError(f"no readable WFDB headers in {path}")
    if kinds == {"wfdb", "long"}:
        return "long"  # e.g. CPSC 2021: some recordings are short, the reader handles both
    if len(kinds) > 1:
        return "folder"  # mixed content: read each file by its own type
    return kinds.pop()


GENERIC_OPTIONS = ("labels",)  # taken by open_source for every kind (ecgssl.io.labels)


def source_options(kind: str) -> list[str]:
    """The options a source kind takes (its constructor's keywords) plus ``GENERIC_OPTIONS``."""
    import inspect

    if kind not in SOURCE_CLASSES:
        raise ValueError(f"unknown source kind {kind!r}; choose from {SOURCE_KINDS}")
    params = inspect.signature(SOURCE_CLASSES[kind].__init__).parameters
    return [n for n in params if n not in ("self", "root")] + list(GENERIC_OPTIONS)


def check_source_options(kind: str, options: dict) -> None:
    """ValueError naming an option the kind does not take and the ones it does."""
    accepted = source_options(kind)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"source kind {kind!r} does not take option(s) {unknown}; it takes "
                         f"{accepted}")


def open_source(path: str | Path, kind: str | None = None, labels: str | Path | None = "auto",
                **options) -> Source:
    """Open the database or folder at ``path`` as a ``Source``.

    Args:
        kind: one of ``SOURCE_KINDS``; detected when None.
        labels: a labels CSV (``ecgssl.io.labels``) whose labels replace the listed records';
            ``"auto"`` uses a ``REFERENCE.csv`` in the folder when there is one; None: none.
        **options: passed to the Source class (``source_options(kind)`` lists them), e.g.
            ``name``, ``checks`` (``SignalChecks``, a dict of its fields, or None),
            ``fs``/``aggregation`` (ptbxl), ``annotations`` (ludb), ``scored_year`` (cinc),
            ``ann_ext`` (long), ``fs``/``leads`` (folder). ``labels_csv`` is an older name of
            ``labels``.
    Raises:
        ValueError: an option the kind does not take (naming the ones it takes).
    """
    from ecgssl.io.labels import attach_labels

    kind = kind or detect_source_kind(path)
    if "labels_csv" in options:
        labels = options.pop("labels_csv")
    check_source_options(kind, options)
    if isinstance(options.get("checks"), dict):
        options["checks"] = SignalChecks(**options["checks"])
    return attach_labels(SOURCE_CLASSES[kind](path, **options), labels)


def open_sources(paths, kind: str | None = None, labels: str | Path | None = "auto", **options):
    """One source for one path; a ``MultiSource`` named after the folders for several (a
    ``labels`` file then applies to all of them; ``"auto"``: each folder's REFERENCE.csv)."""
    from ecgssl.io.labels import attach_labels

    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if len(paths) == 1:
        return open_source(paths[0], kind=kind, labels=labels, **options)
    names = [p.name or str(p) for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"sources need distinct folder names, got {names}")
    multi = MultiSource([open_source(p, kind=kind, name=n, **options)
                         for p, n in zip(paths, names)])
    return multi if labels in (None, "auto") else attach_labels(multi, labels)


__all__ = [
    "CincSource",
    "DEFAULT_CHECKS",
    "FolderSource",
    "LUDBSource",
    "LUDB_LABEL_GROUPS",
    "LongRecordSource",
    "MultiSource",
    "PTBXLSource",
    "PTBXL_AGGREGATIONS",
    "SOURCE_KINDS",
    "SignalChecks",
    "Source",
    "WFDBSource",
    "check_signal",
    "detect_source_kind",
    "iter_windows",
    "ludb_label_names",
    "ludb_masks",
    "check_source_options",
    "open_source",
    "open_sources",
    "source_options",
    "ptbxl_split",
    "read_cinc",
    "read_long_record",
    "read_ludb",
    "read_wfdb",
    "wave_mask",
]
