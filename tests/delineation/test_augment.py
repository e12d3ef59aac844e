"""Recorder augmentations: every one changes the signal, none breaks its shape or the labels."""

import numpy as np
import pytest

from ecgssl.delineation.augment import AUGMENTATIONS, augment_lead, stretch_crop

FS = 250.0


@pytest.mark.parametrize("name", [n for n in AUGMENTATIONS if n != "time_stretch"])
def test_each_augmentation_changes_the_lead(name, rng):
    x = np.sin(2 * np.pi * 1.2 * np.arange(1280) / FS).astype(np.float32)
    y = augment_lead(x, FS, rng, probs={name: 1.0})
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert not np.allclose(x, y)
    assert np.allclose(augment_lead(x, FS, rng, probs={}), x)  # nothing on: unchanged


def test_stretch_crop_moves_signal_and_mask_together(rng):
    t = np.arange(2500)
    mask = ((t // 100) % 2).astype(np.int8)          # alternating 100-sample blocks
    signal = mask.astype(np.float32)                 # the signal is the mask
    for factor in (0.85, 1.0, 1.15):
        x, m, span = stretch_crop(signal, mask, (200, 2300), 1280, factor, rng)
        assert x.shape == m.shape == (1280,)
        assert np.mean(np.round(x) == m) > 0.97      # labels follow the samples
        assert 0 <= span[0] <= span[1] <= 1280
