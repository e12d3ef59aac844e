"""Sources: a database or folder as a list of record ids plus ``read(record_id) -> Record``.

Listing ids is cheap (no signal is read), and every Source is picklable (plain attributes only),
so a parallel ``prepare`` can send the Source and chunks of ids to worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError
from ecgssl.io.checks import DEFAULT_CHECKS, SignalChecks


class Source:
    """Base class. Subclasses set ``name`` and ``_ids`` and implement ``_read``."""

    kind = "base"

    def __init__(self, root: str | Path, name: str | None = None,
                 checks: SignalChecks | None = DEFAULT_CHECKS):
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"{self.kind} source path {self.root} does not exist")
        if checks is not None and not isinstance(checks, SignalChecks):
            raise ValueError(f"checks must be a SignalChecks or None, got {type(checks).__name__}")
        self.name = name or self.kind
        self.checks = checks
        self._ids: dict[str, object] = {}

    def record_ids(self) -> list[str]:
        """All record ids, in a stable order."""
        return list(self._ids)

    def read(self, record_id: str) -> Record:
        """Read one record; ``ECGDataError`` when it cannot be used."""
        if record_id not in self._ids:
            raise KeyError(f"{record_id!r} is not a record of source {self.name!r} "
                           f"({len(self._ids)} records, e.g. {self.record_ids()[:3]})")
        return self._read(record_id, self._ids[record_id])

    def _read(self, record_id: str, key) -> Record:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[Record]:
        for rid in self._ids:
            yield self.read(rid)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, name={self.name!r}, n={len(self)})"


class LUDBSource(Source):
    """LUDB v1.0.1 (``ecgssl.io.ludb``); ids ``ludb/1`` ... ``ludb/200``."""

    kind = "ludb"

    def __init__(self, root, name=None, checks=DEFAULT_CHECKS, annotations: bool = True):
        super().__init__(root, name, checks)
        from ecgssl.io.ludb import ludb_record_numbers

        self.annotations = bool(annotations)
        self._ids = {f"{self.name}/{n}": n for n in ludb_record_numbers(self.root)}

    def _read(self, record_id, key):
        from ecgssl.io.ludb import read_ludb

        return read_ludb(self.root, key, annotations=self.annotations, checks=self.checks,
                         source=self.name)


class CincSource(Source):
    """PhysioNet/CinC 2020/2021 records (``.hea`` + ``.mat``, searched recursively)."""

    kind = "cinc"

    def __init__(self, root, name=None, checks=DEFAULT_CHECKS, scored_year: int | None = None):
        super().__init__(root, name, checks)
        if scored_year not in (None, 2020, 2021):
            raise ValueError(f"scored_year must be None, 2020 or 2021, got {scored_year!r}")
        self.scored_year = scored_year
        for hea in sorted(self.root.rglob("*.hea")):
            rid = f"{self.name}/{hea.stem}"
            if rid in self._ids:
                raise ValueError(f"duplicate CinC record name {hea.stem} in {self.root}")
            self._ids[rid] = str(hea.with_suffix(""))

    def _read(self, record_id, key):
        from ecgssl.io.cinc import read_cinc

        return read_cinc(key, record_id=record_id, source=self.name, checks=self.checks,
                         scored_year=self.scored_year)


class PTBXLSource(Source):
    """PTB-XL native layout; ids ``ptbxl/<ecg_id>``; ``fs`` 100 or 500."""

    kind = "ptbxl"

    def __init__(self, root, name=None, checks=DEFAULT_CHECKS, fs: int = 500,
                 aggregation: str = "superdiagnostic"):
        super().__init__(root, name, checks)
        from ecgssl.io.ptbxl import PTBXL_AGGREGATIONS, load_ptbxl_index

        if aggregation not in PTBXL_AGGREGATIONS:
            raise ValueError(f"unknown PTB-XL aggregation {aggregation!r}; "
                             f"choose from {PTBXL_AGGREGATIONS}")
        self.fs, self.aggregation = int(fs), aggregation
        index = load_ptbxl_index(self.root, self.fs)
        self._ids = {f"{self.name}/{e.ecg_id}": e for e in index.values()}

    def _read(self, record_id, key):
        from ecgssl.io.ptbxl import read_ptbxl_entry

        return read_ptbxl_entry(self.root, key, self.aggregation, self.checks, source=self.name)


class WFDBSource(Source):
    """Generic WFDB records (``RECORDS`` file if present, else every ``.hea`` recursively)."""

    kind = "wfdb"

    def __init__(self, root, name=None, checks=DEFAULT_CHECKS):
        super().__init__(root, name, checks)
        for rel in _wfdb_record_names(self.root):
            self._ids[f"{self.name}/{rel}"] = str(self.root / rel)

    def _read(self, record_id, key):
        from ecgssl.io.wfdb_record import read_wfdb

        return read_wfdb(key, record_id=record_id, source=self.name, checks=self.checks)


class LongRecordSource(Source):
    """Long WFDB recordings with ``.atr`` beats/rhythm (``ecgssl.io.long_records``)."""

    kind = "long"

    def __init__(self, root, name=None, checks=None, ann_ext: str | None = "atr"):
        from ecgssl.io.long_records import LONG_RECORD_CHECKS

        super().__init__(root, name, LONG_RECORD_CHECKS if checks is None else checks)
        self.ann_ext = ann_ext
        for rel in _wfdb_record_names(self.root):
            self._ids[f"{self.name}/{rel}"] = str(self.root / rel)

    def _read(self, record_id, key):
        from ecgssl.io.long_records import read_long_record

        return read_long_record(key, record_id=record_id, source=self.name,
                                ann_ext=self.ann_ext, checks=self.checks)


class FolderSource(Source):
    """The user's own files (``ecgssl.io.folder``)."""

    kind = "folder"

    def __init__(self, root, name=None, checks=DEFAULT_CHECKS, fs: float | None = None,
                 leads: list[str] | None = None):
        super().__init__(root, name, checks)
        from ecgssl.io.folder import scan_folder

        if fs is not None and fs <= 0:
            raise ValueError(f"fs must be > 0, got {fs!r}")
        self.fs, self.leads = fs, (list(leads) if leads is not None else None)
        entries = scan_folder(self.root)
        self._ids = {f"{self.name}/{rel}": (kind, path, rel)
                     for rel, (kind, path) in entries.items()}

    def _read(self, record_id, key):
        from ecgssl.io.folder import read_folder_record

        kind, path, _ = key
        return read_folder_record(kind, path, record_id, fs=self.fs, leads=self.leads,
                                  source=self.name, checks=self.checks)


def _wfdb_record_names(root: Path) -> list[str]:
    rec_file = root / "RECORDS"
    if rec_file.is_file():
        names = [line.strip() for line in rec_file.read_text().splitlines() if line.strip()]
        if names:
            return names
    return [h.relative_to(root).with_suffix("").as_posix() for h in sorted(root.rglob("*.hea"))]


SOURCE_CLASSES = {cls.kind: cls for cls in (LUDBSource, CincSource, PTBXLSource, WFDBSource,
                                            LongRecordSource, FolderSource)}
__all__ = ["Source", "SOURCE_CLASSES", "ECGDataError"] + [c.__name__ for c in
                                                          SOURCE_CLASSES.values()]


class MultiSource:
    """Several sources read as one (e.g. LUDB + CinC + Holter windows for pretraining).

    Record ids stay those of each source, which are prefixed by the source's name; give the
    sources distinct names (``open_sources`` names each after its folder).
    """

    kind = "multi"

    def __init__(self, sources: list):
        if not sources:
            raise ValueError("MultiSource needs at least one source")
        self.sources = list(sources)
        self.name = "+".join(s.name for s in self.sources)
        self.path = ";".join(str(getattr(s, "root", "")) for s in self.sources)
        self._owner: dict[str, int] = {}
        for k, source in enumerate(self.sources):
            for rid in source.record_ids():
                if rid in self._owner:
                    raise ValueError(f"record id {rid!r} appears in two sources "
                                     f"({self.sources[self._owner[rid]].name}, {source.name}); "
                                     "give the sources distinct names")
                self._owner[rid] = k

    def record_ids(self) -> list[str]:
        return list(self._owner)

    @property
    def label_summaries(self) -> list[dict]:
        """Summaries of the labels files of the sources (``ecgssl.io.labels``)."""
        return [x for s in self.sources for x in getattr(s, "label_summaries", [])]

    def read(self, record_id: str) -> Record:
        if record_id not in self._owner:
            raise KeyError(f"{record_id!r} is not a record of {self.name!r}")
        return self.sources[self._owner[record_id]].read(record_id)

    def __len__(self) -> int:
        return len(self._owner)

    def __iter__(self) -> Iterator[Record]:
        for rid in self._owner:
            yield self.read(rid)
