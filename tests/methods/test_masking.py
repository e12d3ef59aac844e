"""Time-column masks: statistics, per-sample rectangularity, seeding and resume."""

from __future__ import annotations

import pytest
import torch

from ecgssl.methods.masking import TimeColumnMasker, split_columns


def test_multi_block_statistics():
    masker = TimeColumnMasker(50, "block", block_scale=(0.175, 0.225), n_blocks=4, seed=0)
    masks = torch.stack([masker() for _ in range(2000)])
    ratios = masks.float().mean(1)
    # each block is 8..11 columns; 4 of them: union 8..44 columns
    assert ratios.min() >= 8 / 50 and ratios.max() <= 44 / 50
    assert 0.50 < ratios.mean() < 0.60  # the paper quotes about 55 %
    assert masks.any(0).all()  # every column, the last included, gets masked sometimes
    # masks are unions of contiguous blocks: at most 4 runs of True
    runs = (masks[:, 1:] & ~masks[:, :-1]).sum(1) + masks[:, 0]
    assert runs.max() <= 4


def test_random_statistics():
    masker = TimeColumnMasker(50, "random", ratio=(0.6, 0.7), seed=1)
    counts = torch.stack([masker() for _ in range(500)]).sum(1)
    assert counts.min() >= 30 and counts.max() <= 35
    assert len(set(counts.tolist())) > 3


def test_per_sample_masks_are_rectangular():
    masker = TimeColumnMasker(50, "block", per_sample=True, seed=2)
    for _ in range(20):
        mask = masker(16)
        assert mask.shape == (16, 50)
        assert len(set(mask.sum(1).tolist())) == 1
        assert len({tuple(row.tolist()) for row in mask}) > 1
        visible, masked = split_columns(mask)
        assert visible.shape[0] == masked.shape[0] == 16
        for row, vis, msk in zip(mask, visible, masked):
            assert torch.equal(torch.sort(torch.cat([vis, msk])).values, torch.arange(50))
            assert not row[vis].any() and row[msk].all()


def test_split_columns_is_ascending():
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[7, 2, 3]] = True
    visible, masked = split_columns(mask)
    assert visible.tolist() == [0, 1, 4, 5, 6, 8, 9] and masked.tolist() == [2, 3, 7]
    with pytest.raises(ValueError, match="equal counts"):
        split_columns(torch.tensor([[True, False, False], [True, True, False]]))
    with pytest.raises(ValueError, match="1..P-1"):
        split_columns(torch.zeros(5, dtype=torch.bool))


def test_seed_and_resume_reproduce_the_sequence():
    a = TimeColumnMasker(50, seed=7)
    b = TimeColumnMasker(50, seed=7)
    assert all(torch.equal(a(), b()) for _ in range(5))
    state = a.state_dict()
    expected = [a() for _ in range(5)]
    c = TimeColumnMasker(50, seed=123)
    c.load_state_dict(state)
    assert all(torch.equal(c(), e) for e in expected)
    assert not torch.equal(TimeColumnMasker(50, seed=8)(), TimeColumnMasker(50, seed=7)())


def test_invalid_arguments():
    with pytest.raises(ValueError, match="mask_type"):
        TimeColumnMasker(50, "grid")
    with pytest.raises(ValueError, match="ratio"):
        TimeColumnMasker(50, "random", ratio=(0.7, 0.6))
    with pytest.raises(ValueError, match="could mask all"):
        TimeColumnMasker(50, "block", block_scale=(0.2, 0.3), n_blocks=4)
    with pytest.raises(ValueError, match="empty blocks"):
        TimeColumnMasker(10, "block", block_scale=(0.05, 0.1))
