"""The training command's pieces on two LUDB records and a tiny network."""

import numpy as np

from ecgssl.delineation.train import fit, load_ludb_leads, ludb_fold_split

TINY = {"encoder": "unet1d", "overrides": {"widths": [4, 4, 4, 4, 4], "kernel": 3}, "head": {}}


def test_ludb_leads_at_250_hz_and_a_few_steps(shared_data):
    data = load_ludb_leads(shared_data / "ludb", ["1", "2"])
    assert data["signals"].shape == (2, 12, 2500) and data["masks"].shape == (2, 12, 2500)
    assert (data["spans"][..., 1] > data["spans"][..., 0]).all()
    assert set(np.unique(data["masks"])) <= {0, 1, 2, 3}
    model, history = fit(data, steps=2, batch_size=2, crop=256, log_every=1, network=TINY)
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    assert not model.training


def test_split_is_patient_disjoint_and_covers_ludb(shared_data):
    numbers, (train, val, test) = ludb_fold_split(shared_data / "ludb")
    assert len(numbers) == 200
    assert not (set(train) & set(val)) and not (set(train) & set(test))
    assert not (set(val) & set(test)) and len(train) + len(val) + len(test) == 200
