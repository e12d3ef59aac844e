"""The window policy (``ecgssl.data.windowing``): starts, labels per window, plans."""

from __future__ import annotations

import numpy as np
import pytest

from ecgssl.data.record import Record
from ecgssl.data.windowing import iter_windows, plan_windows, slice_record, window_starts


def _record(seconds, fs=100.0, **kw):
    n = int(seconds * fs)
    return Record(np.random.default_rng(0).normal(0, 0.3, (2, n)).astype(np.float32), fs,
                  ["I", "II"], "r", **kw)


def test_window_starts_for_every_last_window_policy():
    assert window_starts(1000, 1000, 1000) == [0]
    assert window_starts(500, 1000, 1000) == [0]
    assert window_starts(2500, 1000, 1000, "drop") == [0, 1000]
    assert window_starts(2500, 1000, 1000, "end") == [0, 1000, 1500]
    assert window_starts(2500, 1000, 1000, "pad") == [0, 1000, 2000]
    assert window_starts(2000, 1000, 500, "end") == [0, 500, 1000]
    with pytest.raises(ValueError, match="last must be"):
        window_starts(10, 5, 5, "wrap")


def test_record_labels_on_every_window_refined_by_rhythm_episodes():
    rec = _record(30, labels=["dx:164889003", "rhythm:AFIB", "rhythm:N"],
                  annotations={"rhythm": [(0, 1200, "N"), (1200, 3000, "AFIB")],
                               "beats": {"samples": np.array([50, 1500, 2900]),
                                         "symbols": ["N", "N", "V"]}})
    wins = list(iter_windows(rec, 10.0))
    assert [w.labels for w in wins] == [["dx:164889003", "rhythm:N"],
                                        ["dx:164889003", "rhythm:AFIB", "rhythm:N"],
                                        ["dx:164889003", "rhythm:AFIB"]]
    assert [w.meta["n_beats"] for w in wins] == [1, 1, 1]
    assert wins[2].annotations["beats"]["samples"].tolist() == [900]
    assert all(w.meta["parent_id"] == "r" and w.patient_id == rec.patient_id for w in wins)
    plain = list(iter_windows(_record(30, labels=["AF"]), 10.0))
    assert [w.labels for w in plain] == [["AF"]] * 3


def test_plans_count_what_they_leave_out():
    assert plan_windows(_record(6), 10.0).padded
    drop = plan_windows(_record(6), 10.0, short_records="drop")
    assert drop.parts == [] and "6.00 s is shorter" in drop.dropped
    p = plan_windows(_record(25), 10.0, last_window="drop")
    assert len(p.parts) == 2 and p.dropped_s == 5.0
    p = plan_windows(_record(25), 10.0, last_window="end")
    assert [w.meta["start_sample"] for w in p.parts] == [0, 1000, 1500] and p.dropped_s == 0
    p = plan_windows(_record(25), 10.0, last_window="pad")
    assert p.parts[-1].n_samples == 500
    p = plan_windows(_record(25), 10.0, long_records="crop", crop="center")
    assert len(p.parts) == 1 and p.parts[0].meta["start_sample"] == 750 and p.dropped_s == 15.0


def test_slice_keeps_waves_inside_the_slice():
    waves = {"I": np.array([[2, 95, 100, 105], [2, 1195, 1200, 1210]])}
    part = slice_record(_record(20, annotations={"waves": waves}), 1000, 2000)
    assert part.annotations["waves"]["I"].tolist() == [[2, 195, 200, 210]]
