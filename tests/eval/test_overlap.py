"""Pretraining-overlap check: by record id where known, by database otherwise."""

import pytest

from ecgssl.eval.overlap import (
    PretrainingOverlapWarning,
    canonical_databases,
    check_suite_overlap,
    find_overlap,
)

CINC = [("cinc2021-sample", f"cinc2021-sample/{r}") for r in
        ("HR06001", "HR06002", "E07500", "JS20001", "JS20002", "JS20003")]


def spec(pretraining=(), sources=None, record_ids=None):
    training = {"pretraining_data": [{"database": d} for d in pretraining]}
    if sources is not None:
        training["sources"] = sources
    if record_ids is not None:
        training["record_ids"] = record_ids
    return {"training": training}


def test_collections_and_aliases():
    assert {"PTB-XL", "Georgia", "Chapman"} <= canonical_databases("PhysioNet 2021")
    assert canonical_databases("ptbxl") == {"PTB-XL"}
    assert canonical_databases("ptb") == {"PTB"}
    assert canonical_databases("my-hospital") == set()


def test_physionet2021_holds_ptbxl_records_of_a_cinc_store():
    found = find_overlap("ecgfm", spec(["PhysioNet2021", "MIMIC-IV-ECG"]), CINC)
    assert found.by_database == {"PTB-XL": 2, "Georgia": 1, "Chapman/Ningbo": 3}
    assert found.by_record_id == 0 and found.n_eval == 6
    # Pretrained on Chapman and Ningbo only: the CinC JS records overlap, the others do not.
    found = find_overlap("stmem", spec(["Chapman", "Ningbo", "CODE-15"]), CINC)
    assert found.by_database == {"Chapman/Ningbo": 3}
    assert not find_overlap("founder", spec(["HEEDB"]), CINC).any


def test_record_ids_when_known():
    records = [("ludb", f"ludb/{i}") for i in range(1, 6)]
    ours = spec(sources={"ludb": 3}, record_ids=["ludb/1", "ludb/2", "ludb/3"])
    found = find_overlap("jepa", ours, records)
    # The ids are known for this source: ludb/4 and ludb/5 were not seen, no database warning.
    assert found.by_record_id == 3 and found.by_database == {}
    # Older exports list the sources only: every LUDB record may have been seen.
    found = find_overlap("old", spec(sources={"ludb": 200}), records)
    assert found.by_database == {"LUDB": 5}
    found = find_overlap("x", spec(["Home-made DB"]), [("home-made db", "a")])
    assert found.by_database == {"home-made db": 1} and found.unmatched_names == ["Home-made DB"]


def test_suite_hook_warns_and_writes_the_section():
    class Enc:
        def __init__(self, spec):
            self.spec = spec

    class Store:
        import pandas as pd

        manifest = pd.DataFrame({"source": [s for s, _ in CINC],
                                 "record_id": [r for _, r in CINC]})

    class Report:
        def __init__(self):
            self.sections = {}

        def add_text(self, title, text):
            self.sections[title] = text

    report = Report()
    with pytest.warns(PretrainingOverlapWarning, match="2 of 6 evaluation records come from "
                                                       "PTB-XL"):
        res = check_suite_overlap({"ecgfm": Enc(spec(["PhysioNet2021"])),
                                   "founder": Enc(spec(["HEEDB"]))}, Store(), report)
    assert res["founder"]["by_database"] == {}
    text = report.sections["Pretraining overlap"]
    assert "optimistic" in text and "founder: no evaluation record" in text
