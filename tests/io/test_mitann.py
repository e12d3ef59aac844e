"""The numpy MIT annotation reader agrees with wfdb.rdann on every real annotation file."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb

from ecgssl.errors import ECGDataError
from ecgssl.io.mitann import parse_annotation_bytes, read_annotations


def _same(path_no_ext, ext):
    ours = read_annotations(f"{path_no_ext}.{ext}")
    ref = wfdb.rdann(str(path_no_ext), ext)
    assert np.array_equal(ours.sample, ref.sample)
    assert ours.symbol == list(ref.symbol)
    assert ours.aux == [a.rstrip("\x00") for a in ref.aux_note]
    assert np.array_equal(ours.subtype, ref.subtype)
    assert np.array_equal(ours.chan, ref.chan)
    assert np.array_equal(ours.num, ref.num)


def test_all_ludb_annotation_files_match_rdann(shared_data):
    data = shared_data / "ludb" / "data"
    files = sorted(p for p in data.iterdir() if p.suffix not in (".hea", ".dat"))
    assert len(files) == 2400
    for p in files:
        _same(p.with_suffix(""), p.suffix[1:])


def test_mitdb_and_cpsc_annotations_match_rdann(shared_data):
    _same(shared_data / "mitdb-100" / "100", "atr")
    for hea in sorted((shared_data / "cpsc2021-sample").glob("*.hea")):
        _same(hea.with_suffix(""), "atr")


def test_wrann_file_with_skip_num_chan_and_aux(tmp_path):
    samples = np.array([5, 2000, 70000, 70001])  # 70000 needs a SKIP word
    wfdb.wrann("rec", "atr", samples, symbol=["N", "+", "V", "N"], subtype=np.array([0, 0, 3, 0]),
               chan=np.array([0, 0, 1, 1]), num=np.array([0, 2, 2, 0]),
               aux_note=["", "(AFIB", "", ""], write_dir=str(tmp_path))
    _same(tmp_path / "rec", "atr")
    ann = read_annotations(tmp_path / "rec.atr")
    assert ann.sample.tolist() == samples.tolist()
    assert ann.aux[1] == "(AFIB"


def test_truncated_aux_is_a_clear_error():
    # One N at t=1, then an AUX word announcing 10 bytes with only 2 present.
    words = np.array([(1 << 10) | 1, (63 << 10) | 10, 0x4141], dtype="<u2")
    with pytest.raises(ECGDataError, match="AUX"):
        parse_annotation_bytes(words.view(np.uint8), "recX")
