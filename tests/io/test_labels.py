"""Labels files for any source (``ecgssl.io.labels``)."""

from __future__ import annotations

import pytest

from ecgssl.io import open_source
from ecgssl.io.labels import RecordMatcher, read_labels_file

from ..data.synthetic import synthetic_ecg
from .formats import write_cinc

IDS = ["cinc/A1", "cinc/sub/B2", "cinc/C3"]


def test_matching_ids_with_or_without_prefix_path_and_extension():
    m = RecordMatcher(IDS)
    assert [m(k) for k in ["cinc/A1", "A1", "A1.mat", "sub/B2", "B2.hea", "Z9"]] == \
        ["cinc/A1", "cinc/A1", "cinc/A1", "cinc/sub/B2", "cinc/sub/B2", None]


@pytest.mark.parametrize("text", [
    "A1,N\nB2,A;O\nC3,~\n",                       # CinC 2017: no header
    "record_id,labels\nA1,N\nB2,A;O\nC3,~\n",     # header, ;-separated labels
    "name\tx\ty\nA1\tN\t\nB2\tA\tO\nC3\t~\t\n",   # tab-separated, labels in several columns
    "# comment\nA1.mat,N\n\nB2,O\nB2,A\nC3,~\n",  # comments, blank lines, repeated rows
])
def test_label_file_forms(tmp_path, text):
    (tmp_path / "l.csv").write_text(text)
    table, summary = read_labels_file(tmp_path / "l.csv", IDS)
    assert table == {"cinc/A1": ["N"], "cinc/sub/B2": ["A", "O"], "cinc/C3": ["~"]}
    assert summary["n_records_labelled"] == 3 and summary["records_without_labels"] == []


def test_unmatched_rows_are_reported_and_a_file_matching_nothing_refused(tmp_path):
    (tmp_path / "l.csv").write_text("A1,N\nZ9,A\n")
    table, summary = read_labels_file(tmp_path / "l.csv", IDS)
    assert table == {"cinc/A1": ["N"]} and summary["rows_matching_no_record"] == ["Z9"]
    assert summary["records_without_labels"] == ["cinc/sub/B2", "cinc/C3"]
    (tmp_path / "m.csv").write_text("Y1,N\nZ9,A\n")
    with pytest.raises(ValueError, match="'Z9' .*is not in the source"):
        read_labels_file(tmp_path / "m.csv", IDS)
    with pytest.raises(FileNotFoundError):
        read_labels_file(tmp_path / "none.csv", IDS)


def test_every_source_kind_takes_labels_and_reference_csv_is_picked_up(tmp_path):
    write_cinc(tmp_path, "A1", synthetic_ecg(1, 300.0, 10), 300.0, ["I"], dx=["164889003"])
    write_cinc(tmp_path, "A2", synthetic_ecg(1, 300.0, 10), 300.0, ["I"], dx=["426783006"])
    (tmp_path / "REFERENCE.csv").write_text("A1,A\n")
    src = open_source(tmp_path)
    assert src.read("cinc/A1").labels == ["A"] and src.read("cinc/A2").labels == ["426783006"]
    assert src.label_summaries[0]["records_without_labels"] == ["cinc/A2"]
    assert open_source(tmp_path, labels=None).read("cinc/A1").labels == ["164889003"]
    (tmp_path / "other.csv").write_text("A2,N\n")
    for kind in ("cinc", "folder"):
        src = open_source(tmp_path, kind=kind, labels=tmp_path / "other.csv")
        assert src.read(f"{kind}/A2").labels == ["N"]
    with pytest.raises(ValueError, match=r"source kind 'cinc' does not take option\(s\) "
                       r"\['fs'\]; it takes \['name', 'checks', 'scored_year', 'labels'\]"):
        open_source(tmp_path, kind="cinc", fs=300)


def test_store_is_not_reused_for_another_labels_file(tmp_path):
    """Same preprocessing, another labels file into the same --out: refused, not the old store."""
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.data.store import ECGStore, prepare_store
    from ecgssl.io import open_sources
    from tests.io.formats import EXAMPLE, make_own_data_folder

    folder = make_own_data_folder(tmp_path / "src")
    (folder / "REFERENCE.csv").unlink()
    ids = sorted(EXAMPLE)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("".join(f"{rid},N\n" for rid in ids))
    second.write_text("".join(f"{rid},A\n" for rid in ids))
    cfg = PreprocessConfig.from_dict({"lead_aliases": {"ECG": "I"}})
    out = tmp_path / "store"
    prepare_store(open_sources([str(folder)], labels=str(first)), out, cfg, workers=0)
    assert ECGStore(out).label_names == ["N"]
    with pytest.raises(FileExistsError, match="another source, labels"):
        prepare_store(open_sources([str(folder)], labels=str(second)), out, cfg, workers=0)
    prepare_store(open_sources([str(folder)], labels=str(second)), out, cfg, workers=0,
                  overwrite=True)
    assert ECGStore(out).label_names == ["A"]
