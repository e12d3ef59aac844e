"""LUDB: real millivolts, wave annotations, masks and spans, diagnoses."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import wfdb

from ecgssl.data.record import WAVE_P, WAVE_QRS, WAVE_T
from ecgssl.io.ludb import (
    LUDB_LABEL_GROUPS,
    LUDB_LEAD_EXTENSIONS,
    diagnosis_to_label,
    ludb_label_names,
    ludb_masks,
    ludb_record_numbers,
    read_ludb,
    wave_mask,
)


@pytest.fixture(scope="module")
def ludb_records(shared_data):
    root = shared_data / "ludb"
    return {n: read_ludb(root, n) for n in ludb_record_numbers(root)}


def test_amplitudes_are_real_millivolts(ludb_records):
    assert len(ludb_records) == 200
    ptp = np.array([np.ptp(r.signal, axis=1) for r in ludb_records.values()])  # (200, 12)
    limb = np.median(ptp[:, :6], axis=0)
    assert ((limb > 0.5) & (limb < 1.6)).all(), limb
    assert 0.9 <= np.median(ptp[:, :6]) <= 1.4
    # wfdb's physical values are normalised to ~1 per lead; ours are not.
    assert np.std(ptp[:, 0]) > 0.1


def test_record_115_v6_dc_offset(ludb_records):
    rec = ludb_records["115"]
    assert rec.leads == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert rec.signal.shape == (12, 5000) and rec.fs == 500.0
    offset = float(np.median(rec.lead("V6")))
    assert 4.3 < abs(offset) < 5.3


def test_wave_counts_match_rdann(ludb_records, shared_data):
    for n in ("1", "7", "95", "104"):
        rec = ludb_records[n]
        for ext, lead in zip(LUDB_LEAD_EXTENSIONS, rec.leads):
            ann = wfdb.rdann(str(shared_data / "ludb" / "data" / n), ext)
            counts = collections.Counter(ann.symbol)
            waves = rec.annotations["waves"][lead]
            assert (waves[:, 0] == WAVE_P).sum() == counts["p"]
            assert (waves[:, 0] == WAVE_QRS).sum() == counts["N"]
            assert (waves[:, 0] == WAVE_T).sum() == counts["t"]
            assert np.isin(waves[:, 2], ann.sample).all()
    total = collections.Counter()
    for rec in ludb_records.values():
        for w in rec.annotations["waves"].values():
            total.update(w[:, 0].tolist())
    # The published files hold 21965 QRS, 19661 T, 16797 P peaks (the README's table says
    # 21966 / 19666 / 16797).
    assert (total[WAVE_QRS], total[WAVE_T], total[WAVE_P]) == (21965, 19661, 16797)


def test_waves_are_ordered_triplets(ludb_records):
    w = ludb_records["1"].annotations["waves"]["II"]
    assert w[:4].tolist() == [[2, 644, 662, 682], [3, 776, 843, 878], [1, 1250, 1278, 1302],
                              [2, 1324, 1342, 1374]]
    for rec in list(ludb_records.values())[:50]:
        for waves in rec.annotations["waves"].values():
            ok = (waves[:, 1] >= 0) & (waves[:, 3] >= 0)
            assert (waves[ok, 1] <= waves[ok, 2]).all() and (waves[ok, 2] <= waves[ok, 3]).all()


def test_irregular_annotation_runs(ludb_records):
    w = ludb_records["7"].annotations["waves"]["V1"]
    assert w[0].tolist() == [WAVE_QRS, -1, 968, 996]  # first beat cut by the record start
    assert [WAVE_QRS, 1765, 1765, 1796] in w.tolist()  # "N ( )": onset one sample late


def test_af_records_have_no_p_waves(ludb_records):
    af = [r for r in ludb_records.values() if "rhythm:atrial_fibrillation" in r.labels]
    assert len(af) == 15
    for rec in af:
        for waves in rec.annotations["waves"].values():
            assert not (waves[:, 0] == WAVE_P).any()


def test_masks_and_spans(ludb_records):
    rec = ludb_records["1"]
    masks, spans = ludb_masks(rec)
    assert masks.shape == (12, 5000) and masks.dtype == np.int8
    assert spans.shape == (12, 2) and spans.dtype == np.int32
    assert spans[1].tolist() == [644, 3997]  # lead II
    m, span = wave_mask(rec.annotations["waves"]["II"], 5000)
    assert span == (644, int(rec.annotations["waves"]["II"][:, 3].max()) + 1)
    assert (m[644:683] == WAVE_QRS).all() and m[683] != WAVE_QRS
    assert (m[1250:1303] == WAVE_P).all() and (m[:644] == 0).all() and (m[span[1]:] == 0).all()
    assert set(np.unique(m)) <= {0, 1, 2, 3}


def test_wave_mask_edge_cases():
    mask, span = wave_mask(np.zeros((0, 4), dtype=np.int64), 100)
    assert span == (0, 0) and not mask.any()
    mask, span = wave_mask(np.array([[2, -1, 5, 9], [3, 20, 30, -1]]), 40)
    assert span == (0, 0)  # the only onset lies after the only offset
    assert (mask[5:10] == 2).all() and (mask[20:31] == 3).all()
    with pytest.raises(ValueError):
        wave_mask(np.zeros((0, 4)), -1)


def test_labels_and_groups(ludb_records):
    counts = collections.Counter(lab for r in ludb_records.values() for lab in r.labels)
    # The counts of the LUDB README's tables.
    assert counts["rhythm:sinus_rhythm"] == 143 and counts["rhythm:sinus_bradycardia"] == 25
    assert counts["rhythm:atrial_flutter"] == 3 and counts["hypertrophy:lvh"] == 108
    assert counts["hypertrophy:lah"] == 102 and counts["axis:left_deviation"] == 66
    assert counts["conduction:irbbb"] == 29
    names = ludb_label_names()
    assert set(counts) <= set(names) and len(names) == len(set(names))
    assert list(LUDB_LABEL_GROUPS) == ["rhythm", "axis", "conduction", "extrasystoles",
                                       "hypertrophy", "pacing", "ischemia", "repolarisation"]
    assert ludb_label_names(["axis"]) == LUDB_LABEL_GROUPS["axis"]
    assert diagnosis_to_label("Rhythm: Sinus bradycardia.") == "rhythm:sinus_bradycardia"
    assert diagnosis_to_label("STEMI: septal.") == "ischemia:stemi"
    assert diagnosis_to_label("Something new") is None
    rec = ludb_records["1"]
    assert rec.patient_id == rec.record_id == "ludb/1" and rec.meta["age"] == 51.0
    with pytest.raises(ValueError):
        ludb_label_names(["nope"])
