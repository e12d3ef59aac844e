"""AAMI mapping of beat symbols, and the beat classifier against MIT-BIH 100 reference labels."""

import numpy as np
import pytest

from ecgssl.data.beats import (
    AAMI_CLASS_NAMES,
    BEAT_CLASS_NAMES,
    BEAT_CLASS_TO_AAMI,
    aami_class,
    aami_classes,
    annotate_beats,
)
from ecgssl.data.preprocess import resample
from ecgssl.eval.segmentation_metrics import match_points
from ecgssl.io.long_records import BEAT_SYMBOLS, read_long_record

FS = 250


def test_aami_mapping():
    expected = {"N": "N", "L": "N", "R": "N", "e": "N", "j": "N", "A": "S", "a": "S", "J": "S",
                "S": "S", "V": "V", "E": "V", "F": "F", "/": "Q", "f": "Q", "Q": "Q", "?": "Q"}
    assert {s: aami_class(s) for s in expected} == expected
    # Every MIT beat symbol has a class, and nothing else does.
    assert all(aami_class(s) in AAMI_CLASS_NAMES for s in BEAT_SYMBOLS)
    for non_beat in ("+", "~", "|", "x", ""):
        with pytest.raises(ValueError, match="not a MIT-BIH beat"):
            aami_class(non_beat)
    idx = aami_classes(["N", "A", "V", "F", "/"])
    assert idx.dtype == np.int8 and idx.tolist() == [0, 1, 2, 3, 4]
    assert aami_classes([]).shape == (0,)
    # The classifier's classes map onto the first three AAMI classes, in order.
    assert len(BEAT_CLASS_TO_AAMI) == len(BEAT_CLASS_NAMES)
    assert list(BEAT_CLASS_TO_AAMI) == list(AAMI_CLASS_NAMES[:3])


def test_classifier_on_mitdb_100_slice(shared_data):
    """First 5 min of record 100 (367 N, 4 A), 10 s windows at 250 Hz as ``prepare``."""
    rec = read_long_record(shared_data / "mitdb-100" / "100", source="mitdb")
    x = resample(rec.signal[:, : int(300 * rec.fs)].astype(np.float64), rec.fs, FS)
    beats = rec.annotations["beats"]
    ref_all = np.round(beats["samples"] * FS / rec.fs).astype(np.int64)
    cls_all = aami_classes(beats["symbols"])
    win = 10 * FS
    confusion = np.zeros((len(AAMI_CLASS_NAMES), len(BEAT_CLASS_NAMES)), dtype=int)
    n_ref = n_det = 0
    for start in range(0, x.shape[1] - win + 1, win):
        ann = annotate_beats(x[:, start:start + win], FS, rec.leads)
        sel = (ref_all >= start) & (ref_all < start + win)
        pi, ti = match_points(ann.rpeaks, ref_all[sel] - start, 0.075 * FS)
        np.add.at(confusion, (cls_all[sel][ti], ann.beat_classes[pi]), 1)
        n_ref, n_det = n_ref + sel.sum(), n_det + len(ann.rpeaks)
    n_total = confusion[0].sum()
    assert n_total > 350 and confusion.sum() >= 0.99 * max(n_ref, n_det)
    # Normal sinus beats must almost all stay normal (full record: 2231/2231).
    assert confusion[0, 0] / n_total >= 0.98
    # The atrial premature beats of this slice are called supraventricular (full record: 33/33).
    assert confusion[1].sum() >= 1 and confusion[1, 1] == confusion[1].sum()
