"""Long recordings: MIT-BIH 100 and CPSC 2021, and windowing."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import wfdb

from ecgssl.io.long_records import iter_windows, read_long_record


@pytest.fixture(scope="module")
def mitdb100(shared_data):
    return read_long_record(shared_data / "mitdb-100" / "100", source="mitdb")


def test_mitdb_100(mitdb100):
    rec = mitdb100
    assert rec.signal.shape == (2, 650000) and rec.fs == 360.0
    assert rec.leads == ["MLII", "V5"] and rec.record_id == "mitdb/100"
    counts = collections.Counter(rec.annotations["beats"]["symbols"])
    assert counts == {"N": 2239, "A": 33, "V": 1}
    assert rec.annotations["rhythm"] == [(18, 650000, "N")]
    assert -1.5 < np.median(rec.signal[0]) < 0.5  # baseline 1024 removed, gain 200/mV


def test_windows_carry_the_right_beats(mitdb100):
    rec = mitdb100
    wins = list(iter_windows(rec, 10.0))
    assert len(wins) == 650000 // 3600
    beats = rec.annotations["beats"]
    total = 0
    for w in wins:
        start = w.meta["start_sample"]
        assert w.record_id == f"mitdb/100@{start}" and w.meta["parent_id"] == "mitdb/100"
        assert w.signal.shape == (2, 3600)
        np.testing.assert_array_equal(w.signal, rec.signal[:, start:start + 3600])
        s = w.annotations["beats"]["samples"]
        assert ((s >= 0) & (s < 3600)).all()
        inside = (beats["samples"] >= start) & (beats["samples"] < start + 3600)
        np.testing.assert_array_equal(s + start, beats["samples"][inside])
        assert w.meta["n_beats"] == inside.sum() == sum(w.meta["beat_counts"].values())
        total += w.meta["n_beats"]
    a_windows = [w for w in wins if w.meta["beat_counts"].get("A")]
    assert sum(w.meta["beat_counts"]["A"] for w in a_windows) <= 33
    assert total <= 2273
    over = list(iter_windows(rec, 10.0, stride_s=5.0))
    assert len(over) == (650000 - 3600) // 1800 + 1 and over[1].meta["start_sample"] == 1800
    with pytest.raises(ValueError):
        list(iter_windows(rec, 0))


def test_cpsc2021_float_gains_and_af_episodes(shared_data):
    base = shared_data / "cpsc2021-sample" / "data_101_6"
    rec = read_long_record(base)
    ref = wfdb.rdrecord(str(base))
    assert ref.adc_gain[0] != round(ref.adc_gain[0]) and ref.baseline[0] < 0
    np.testing.assert_allclose(rec.signal, ref.p_signal.T, atol=1e-5)
    assert rec.patient_id == "long/patient_101"
    rhythm = rec.annotations["rhythm"]
    assert rhythm[0] == (3132, 5639, "AFIB") and rhythm[-1] == (21303, 22355, "AFIB")
    assert rec.labels == ["rhythm:AFIB", "rhythm:N"]
    wins = {w.meta["start_sample"]: w for w in iter_windows(rec, 10.0)}
    assert wins[0].labels == []  # before the first rhythm annotation
    assert wins[4000].labels == ["rhythm:AFIB", "rhythm:N"]
    assert wins[4000].annotations["rhythm"] == [(0, 1639, "AFIB"), (1639, 2000, "N")]
    assert wins[12000].labels == ["rhythm:AFIB"]


def test_all_cpsc_records_read(shared_data):
    for hea in sorted((shared_data / "cpsc2021-sample").glob("*.hea")):
        rec = read_long_record(hea.with_suffix(""))
        assert rec.fs == 200.0 and rec.signal.shape[0] == 2
        for s, e, _ in rec.annotations["rhythm"]:
            assert 0 <= s < e <= rec.n_samples
        persistent = "persistent" in " ".join(rec.meta["comments"])
        if persistent:
            assert rec.labels == ["rhythm:AFIB"]
