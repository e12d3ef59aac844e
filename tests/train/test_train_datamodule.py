"""Batch order: rank sharding, epochs, resume skipping, seeded collate, picklable datasets."""

import numpy as np
import pytest
import torch

from ecgssl.train.datamodule import (
    PretrainDataModule,
    ResumableBatchSampler,
    check_dataset_picklable,
)
from tests.train.train_helpers import ToyDataset, toy_collate


def _indices(sampler):
    return [[i for i, _ in batch] for batch in sampler]


def test_ranks_get_disjoint_shares_and_epochs_differ():
    a = ResumableBatchSampler(50, 4, seed=3, rank=0, world_size=2)
    b = ResumableBatchSampler(50, 4, seed=3, rank=1, world_size=2)
    assert len(a) == len(b) == 6  # 25 per rank, drop_last
    ia, ib = sum(_indices(a), []), sum(_indices(b), [])
    assert not set(ia) & set(ib) and len(set(ia)) == 24
    a.set_epoch(1)
    assert sum(_indices(a), []) != ia
    a.set_epoch(0)
    assert sum(_indices(a), []) == ia  # a pure function of (seed, epoch)


def test_no_drop_last_pads_every_rank_to_the_same_length():
    samplers = [ResumableBatchSampler(10, 4, drop_last=False, rank=r, world_size=3)
                for r in range(3)]
    lengths = {len(s) for s in samplers}
    assert lengths == {1}
    seen = sum((sum(_indices(s), []) for s in samplers), [])
    assert set(seen) == set(range(10)) and len(seen) == 12  # 2 wrapped around


def test_resume_skips_consumed_batches_once():
    s = ResumableBatchSampler(40, 8, seed=0)
    s.set_epoch(2)
    full = list(s)
    s.resume(2, 3)
    assert s.epoch == 2 and list(s) == full[3:]
    assert list(s) == full  # a resume point is used once
    s.resume(2, 5)  # the epoch was complete: the next iteration is epoch 3
    assert s.epoch == 3
    s.set_epoch(3)
    third = list(s)
    assert third != full and len(third) == 5


def test_batch_seeds_differ_and_are_shared_within_a_batch():
    s = ResumableBatchSampler(16, 4, seed=0)
    seeds = [{seed for _, seed in batch} for batch in s]
    assert all(len(x) == 1 for x in seeds) and len({x.pop() for x in seeds}) == 4


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="fewer than one batch"):
        ResumableBatchSampler(5, 8)
    with pytest.raises(ValueError, match="empty"):
        ResumableBatchSampler(0, 1)
    with pytest.raises(ValueError, match="bad rank"):
        ResumableBatchSampler(10, 1, rank=2, world_size=2)


def test_augmentations_do_not_depend_on_workers():
    def batches(workers):
        dm = PretrainDataModule(ToyDataset(n=24), toy_collate, 4, num_workers=workers,
                                persistent_workers=False, seed=5)
        return list(dm.train_dataloader())

    state = torch.random.get_rng_state()
    serial, parallel = batches(0), batches(2)
    # Loading in the main process leaves the global RNG as it was.
    assert torch.equal(state, torch.random.get_rng_state())
    assert len(serial) == len(parallel) == 6
    for a, b in zip(serial, parallel):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["view1"], b["view1"])
    assert not torch.equal(serial[0]["view1"], serial[0]["view2"])


class _Heavy(ToyDataset):
    def __init__(self):
        super().__init__()
        self.data = np.zeros(70 * 2**20 // 4, dtype=np.float32)  # 70 MiB carried along


def test_dataset_that_carries_arrays_is_refused():
    assert check_dataset_picklable(ToyDataset()) < 10_000
    with pytest.raises(ValueError, match="carries data into every worker"):
        PretrainDataModule(_Heavy(), toy_collate, 4, num_workers=1)
    with pytest.raises(ValueError, match="cannot be pickled"):
        check_dataset_picklable(lambda: None)
