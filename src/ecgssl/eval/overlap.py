"""Was the evaluation data in an encoder's pretraining data? By record id where known, by
database otherwise.

A pretrained encoder scored on recordings it was pretrained on (even without their labels) has an
optimistic score. Every encoder's spec says what it was pretrained on:

- ecgssl exports: ``spec["training"]["sources"]`` (source name -> windows, from the store
  manifest) and, for stores written since, ``spec["training"]["record_ids"]``;
- foundation models: ``spec["training"]["pretraining_data"]`` (the databases the paper states,
  ``ecgssl.models.foundation``).

Database names are matched through an alias table (``DATABASES``); collections are expanded
(``COLLECTIONS``: the PhysioNet/CinC 2020 and 2021 training sets hold PTB-XL, Georgia, CPSC ...),
and records of a CinC collection are assigned to their member database by the record name's
prefix (``HR`` PTB-XL, ``E`` Georgia, ``JS`` Chapman/Ningbo, ...). A source name that matches no
known database is compared by its own (lower-cased) name only and said so in the finding.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# canonical database -> regular expression over a lower-cased source / dataset name
DATABASES = {
    "PTB-XL": r"ptb[-_ ]?xl",
    "PTB": r"^ptb$|ptb[-_ ]?diagnostic",
    "LUDB": r"ludb|lobachevsky",
    "CPSC2018": r"cpsc[-_ ]?2018|icbeb",
    "CPSC-Extra": r"cpsc[-_ ]?extra",
    "CPSC2021": r"cpsc[-_ ]?2021",
    "Georgia": r"georgia|g12ec",
    "Chapman": r"chapman|shaoxing",
    "Ningbo": r"ningbo",
    "INCART": r"incart|st[-_ ]?petersburg",
    "CODE-15": r"code[-_ ]?15",
    "SaMi-Trop": r"sami[-_ ]?trop",
    "MIMIC-IV-ECG": r"mimic",
    "HEEDB": r"heedb|harvard[-_ ]?emory",
    "MIT-BIH": r"mitdb|mit[-_ ]?bih",
    "Hefei": r"hefei",
    "SPH": r"^sph$|shandong",
}
# collections -> member databases (the PhysioNet/CinC Challenge training sets)
COLLECTIONS = {
    "PhysioNet2021": ("PTB-XL", "PTB", "CPSC2018", "CPSC-Extra", "Georgia", "INCART", "Chapman",
                      "Ningbo"),
    "PhysioNet2020": ("PTB-XL", "PTB", "CPSC2018", "CPSC-Extra", "Georgia", "INCART"),
}
COLLECTION_PATTERNS = {"PhysioNet2021": r"(cinc|physionet|challenge)[-_ ]?2021",
                       "PhysioNet2020": r"(cinc|physionet|challenge)[-_ ]?2020"}
# record-name prefix in the CinC collections -> member database
CINC_PREFIXES = (("HR", "PTB-XL"), ("JS", "Chapman/Ningbo"), ("S", "PTB"), ("A", "CPSC2018"),
                 ("Q", "CPSC-Extra"), ("I", "INCART"), ("E", "Georgia"))


class PretrainingOverlapWarning(UserWarning):
    """Evaluation data were (or may have been) in an encoder's pretraining data."""


@dataclass
class Overlap:
    """One encoder's overlap with an evaluation store.

    Attributes:
        encoder: the encoder's name in the evaluation.
        n_eval: evaluation records (unique record ids).
        by_record_id: evaluation records whose id is in the pretraining record ids.
        by_database: database -> evaluation records from a database the encoder was pretrained
            on (records already counted by id are not counted again).
        unmatched_names: pretraining or evaluation source names matching no known database
            (compared by their own name only).
    """

    encoder: str
    n_eval: int
    by_record_id: int = 0
    by_database: dict[str, int] = field(default_factory=dict)
    unmatched_names: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.by_record_id or self.by_database)

    def message(self) -> str:
        parts = []
        if self.by_record_id:
            parts.append(f"{self.by_record_id} of {self.n_eval} evaluation records are in its "
                         "pretraining data (same record id)")
        for db, n in sorted(self.by_database.items()):
            parts.append(f"{n} of {self.n_eval} evaluation records come from {db}, a database "
                         "it was pretrained on (record ids unknown)")
        return f"encoder {self.encoder!r}: " + "; ".join(parts)


def canonical_databases(name: str) -> set[str]:
    """Canonical database names a source / dataset name stands for (collections expanded)."""
    key = str(name).strip().lower()
    for coll, pattern in COLLECTION_PATTERNS.items():
        if re.search(pattern, key) or key == coll.lower():
            found = set(COLLECTIONS[coll])
            break
    else:
        found = {db for db, pattern in DATABASES.items() if re.search(pattern, key)}
    if found & {"Chapman", "Ningbo"}:
        found.add("Chapman/Ningbo")  # CinC 2021 gives both the same record prefix
    return found


def _cinc_member(record_id: str) -> str | None:
    base = str(record_id).replace("\\", "/").rsplit("/", 1)[-1]
    for prefix, db in CINC_PREFIXES:
        if base.startswith(prefix) and base[len(prefix):len(prefix) + 1].isdigit():
            return db
    return None


def pretraining_data(spec: Mapping[str, Any]) -> tuple[set[str], set[str] | None, list[str]]:
    """(databases, record ids or None when not known, unmatched names) of an encoder spec."""
    training = spec.get("training") or {}
    names = [d["database"] if isinstance(d, Mapping) else str(d)
             for d in training.get("pretraining_data", [])]
    names += [str(s) for s in (training.get("sources") or {})]
    dbs, unmatched = set(), []
    for name in names:
        found = canonical_databases(name)
        if found:
            dbs |= found
        else:
            unmatched.append(name)
            dbs.add(name.strip().lower())
    ids = training.get("record_ids")
    return dbs, (set(map(str, ids)) if ids is not None else None), unmatched


def _eval_databases(source: str, record_id: str) -> set[str]:
    found = canonical_databases(source)
    if found and any(re.search(p, source.lower()) for p in COLLECTION_PATTERNS.values()):
        member = _cinc_member(record_id)
        return {member} if member else found  # a CinC record belongs to one member database
    if not found and re.search(r"cinc|physionet", source.lower()):
        member = _cinc_member(record_id)
        return {member} if member else set()
    return found or {source.strip().lower()}


def find_overlap(name: str, spec: Mapping[str, Any], records: Iterable[tuple[str, str]]
                 ) -> Overlap:
    """Compare an encoder's pretraining data with evaluation ``records`` (source, record id)."""
    dbs, ids, unmatched = pretraining_data(spec)
    records = list(dict.fromkeys((str(s), str(r)) for s, r in records))
    out = Overlap(encoder=name, n_eval=len(records), unmatched_names=unmatched)
    by_db: Counter = Counter()
    for source, rid in records:
        if ids is not None and rid in ids:
            out.by_record_id += 1
            continue
        hit = sorted(_eval_databases(source, rid) & dbs)
        if hit and not (ids is not None and _same_source_known_by_id(source, spec)):
            by_db[hit[0]] += 1
    out.by_database = dict(by_db)
    return out


def _same_source_known_by_id(source: str, spec: Mapping[str, Any]) -> bool:
    """True when the encoder's pretraining record ids cover this very source (so a record of it
    that is not in the ids was not pretrained on: no database-level warning)."""
    sources = (spec.get("training") or {}).get("sources") or {}
    return source in sources


def check_suite_overlap(encoders: Mapping[str, Any], store, report=None) -> dict[str, Any]:
    """Warn (``PretrainingOverlapWarning``) and add a report section for every encoder whose
    pretraining data hold evaluation records; returns ``{name: Overlap as dict}``."""
    manifest = store.manifest
    sources = (manifest["source"].astype(str) if "source" in manifest
               else ["?"] * len(manifest))
    records = list(zip(sources, manifest["record_id"].astype(str)))
    results, lines = {}, []
    for name, enc in encoders.items():
        found = find_overlap(name, enc.spec, records)
        results[name] = asdict(found)
        if found.any:
            warnings.warn(found.message(), PretrainingOverlapWarning, stacklevel=2)
            lines.append(f"- **{found.message()}**: its scores on these data are optimistic.")
        else:
            lines.append(f"- {name}: no evaluation record is in its stated pretraining data.")
        if found.unmatched_names:
            lines.append(f"  (pretraining names matched by name only: {found.unmatched_names})")
    if report is not None:
        report.add_text("Pretraining overlap", "\n".join(lines))
        if isinstance(getattr(report, "meta", None), dict):  # report.json carries the counts
            report.meta["pretraining_overlap"] = results
    return results
