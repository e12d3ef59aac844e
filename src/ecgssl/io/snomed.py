"""SNOMED CT codes of the PhysioNet/CinC Challenges 2020 and 2021 and their scored classes.

The table ``ecgssl/resources/snomed_ct.csv`` was written for this project from the challenges'
published scoring description: Perez Alday et al., "Classification of 12-lead ECGs: the
PhysioNet/Computing in Cardiology Challenge 2020", Physiol. Meas. 41 (2020); Reyna et al., "Will
Two Do? Varying Dimensions in Electrocardiography: the PhysioNet/Computing in Cardiology Challenge
2021", CinC 2021 (the challenges' ``dx_mapping_scored.csv``).

Columns: ``snomed_code, abbreviation, description, scored_2020, scored_2021, equivalent_to``.
2020 scored 27 codes; the challenge treated three pairs as the same class (CRBBB = RBBB,
PAC = SVPB, PVC = VPB), giving 24 classes. 2021 scored 30 codes with a fourth pair
(CLBBB = LBBB), giving 26 classes. ``equivalent_to`` names the class representative used here.
A few common unscored codes are listed with both flags 0 (for readable names only).
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

# CPSC 2018 (China Physiological Signal Challenge) abbreviations -> SNOMED CT, as used when the
# CPSC data entered the CinC 2020 training set. PVC is mapped to the scored PVC code 427172004.
CPSC2018_TO_SNOMED = {
    "Normal": "426783006",  # sinus rhythm
    "AF": "164889003",
    "I-AVB": "270492004",
    "LBBB": "164909002",
    "RBBB": "59118001",
    "PAC": "284470004",
    "PVC": "427172004",
    "STD": "429622005",
    "STE": "164931005",
}


@lru_cache(maxsize=1)
def snomed_table() -> tuple[dict[str, str], ...]:
    """Rows of the SNOMED table as dicts of strings (cached)."""
    text = resources.files("ecgssl").joinpath("resources/snomed_ct.csv").read_text("utf-8")
    return tuple(dict(row) for row in csv.DictReader(text.splitlines()))


def _check_year(year: int) -> None:
    if year not in (2020, 2021):
        raise ValueError(f"year must be 2020 or 2021, got {year!r}")


def _representative(code: str, year: int) -> str:
    """The class representative of ``code`` in ``year`` (itself when it has no equivalent)."""
    rows = {r["snomed_code"]: r for r in snomed_table()}
    row = rows.get(code)
    if row is None or not row["equivalent_to"]:
        return code
    rep = row["equivalent_to"]
    # CLBBB (733534002) was not scored in 2020: there LBBB itself represents the pair.
    if rows[rep][f"scored_{year}"] != "1":
        return code
    return rep


def scored_codes(year: int = 2021) -> list[str]:
    """All scored SNOMED codes of ``year`` (27 in 2020, 30 in 2021), equivalents included."""
    _check_year(year)
    return [r["snomed_code"] for r in snomed_table() if r[f"scored_{year}"] == "1"]


def scored_classes(year: int = 2021) -> list[str]:
    """The scored classes (24 in 2020, 26 in 2021), one representative code per class."""
    out: list[str] = []
    for code in scored_codes(year):
        rep = _representative(code, year)
        if rep not in out:
            out.append(rep)
    return out


def map_to_scored(codes, year: int = 2021, drop_unscored: bool = True) -> list[str]:
    """Map SNOMED codes onto the scored classes of ``year``.

    Equivalent codes become their class representative (e.g. 59118001 RBBB -> 713427006 CRBBB);
    unscored codes are dropped, or kept as they are when ``drop_unscored`` is False. Order of first
    appearance is kept, duplicates removed.
    """
    _check_year(year)
    scored = set(scored_codes(year))
    out: list[str] = []
    for code in codes:
        code = str(code).strip()
        if not code:
            continue
        if code in scored:
            code = _representative(code, year)
        elif drop_unscored:
            continue
        if code not in out:
            out.append(code)
    return out


def snomed_abbreviation(code: str) -> str | None:
    """The challenge's abbreviation of a code (``'164889003' -> 'AF'``), None if not listed."""
    for r in snomed_table():
        if r["snomed_code"] == str(code):
            return r["abbreviation"]
    return None


def cpsc2018_to_snomed(labels) -> list[str]:
    """CPSC 2018 abbreviations (``Normal, AF, I-AVB, LBBB, RBBB, PAC, PVC, STD, STE``) -> codes."""
    out = []
    for lab in labels:
        try:
            out.append(CPSC2018_TO_SNOMED[lab.strip()])
        except KeyError:
            raise ValueError(f"unknown CPSC 2018 label {lab!r}; expected one of "
                             f"{sorted(CPSC2018_TO_SNOMED)}") from None
    return out
