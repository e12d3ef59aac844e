"""Splits are by patient, seeded, stratified; low-label subsets are nested and cover classes."""

import numpy as np
import pandas as pd
import pytest

from ecgssl.eval.splits import (
    Split,
    check_disjoint_patients,
    low_label_subsets,
    patient_kfold,
    ptbxl_standard_split,
    source_holdout_split,
    stratified_split,
)


def _data(rng, n=300, k=5):
    patients = rng.integers(0, 120, n).astype(str)  # several records per patient
    labels = (rng.random((n, k)) < [0.4, 0.2, 0.1, 0.05, 0.02]).astype(np.uint8)
    return patients, labels


def _patients_disjoint(patients, split):
    parts = [set(patients[i]) for i in (split.train, split.val, split.test)]
    return not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_ptbxl_standard_split():
    m = pd.DataFrame({"patient_id": np.arange(20) // 2,
                      "strat_fold": np.repeat(np.arange(1, 11), 2)})
    s = ptbxl_standard_split(m)
    assert s.sizes() == {"train": 16, "val": 2, "test": 2}
    assert set(m.strat_fold[s.test]) == {10} and set(m.strat_fold[s.val]) == {9}
    m.loc[19, "patient_id"] = 0  # a patient in fold 1 and fold 10
    with pytest.raises(ValueError, match="patient '0'"):
        ptbxl_standard_split(m)
    with pytest.raises(ValueError, match="strat_fold"):
        ptbxl_standard_split(m.drop(columns="strat_fold"))


def test_kfold_by_patient_disjoint_and_complete(rng):
    patients, labels = _data(rng)
    folds = patient_kfold(5, patients, labels, seed=1)
    all_test = np.concatenate([f.test for f in folds])
    assert sorted(all_test) == list(range(len(patients)))  # each record tested once
    for f in folds:
        assert _patients_disjoint(patients, f)
        check_disjoint_patients(patients, f)
        assert len(f.val) > 0
        # stratified: every class with >= 5 positive patients shows up in each test fold
        assert (labels[f.test][:, :3].sum(axis=0) > 0).all()
    again = patient_kfold(5, patients, labels, seed=1)
    assert all((a.test == b.test).all() and (a.val == b.val).all() for a, b in zip(folds, again))
    other = patient_kfold(5, patients, labels, seed=2)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(folds, other))


def test_kfold_records_as_patients():
    folds = patient_kfold(5, None, n_records=200, seed=0)
    assert [len(f.test) for f in folds] == [40] * 5


def test_stratified_split_by_source(rng):
    patients, labels = _data(rng)
    sources = np.where(np.arange(len(patients)) % 3 == 0, "georgia", "chapman")
    s = stratified_split(patients, labels, (0.6, 0.2, 0.2), sources=sources, seed=0)
    assert _patients_disjoint(patients, s)
    assert sum(s.sizes().values()) == len(patients)
    assert 0.45 < len(s.train) / len(patients) < 0.75
    for part in (s.train, s.val, s.test):
        assert {"georgia", "chapman"} <= set(sources[part])
    h = source_holdout_split(sources, ["georgia"], patients, labels)
    assert set(sources[h.test]) == {"georgia"} and "georgia" not in set(sources[h.train])


def test_check_disjoint_patients_names_patient():
    with pytest.raises(ValueError, match="'p1'"):
        check_disjoint_patients(["p1", "p1", "p2"], Split(np.array([0]), np.array([2]),
                                                          np.array([1])))


def test_low_label_subsets_nested_seeded_covering(rng):
    _, labels = _data(rng, n=1000)
    train = np.arange(100, 1000)
    a = low_label_subsets(train, labels, (0.01, 0.1, 1.0), n_subsets=3, seed=5)
    b = low_label_subsets(train, labels, (0.01, 0.1, 1.0), n_subsets=3, seed=5)
    for f in a:
        assert all((x == y).all() for x, y in zip(a[f], b[f]))
    assert [len(x) for x in a[0.01]] == [9] * 3
    for s in range(3):
        assert set(a[0.01][s]) <= set(a[0.1][s]) <= set(a[1.0][s]) == set(train)
        # every class with a training positive keeps one, even at 1 %
        assert (labels[a[0.01][s]].sum(axis=0) > 0).all()
    assert any(set(a[0.1][0]) != set(a[0.1][s]) for s in (1, 2))
    with pytest.raises(ValueError):
        low_label_subsets(train, labels, (0.0,))
