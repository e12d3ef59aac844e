"""Windows cover every sample; stitching equals one pass for a model without context."""

import numpy as np
import torch
from torch import nn

from ecgssl.delineation.windows import stitched_probs, window_starts


def test_window_starts_cover_everything():
    assert window_starts(100, 2048, 512) == [0]
    starts = window_starts(5000, 2048, 512)
    assert starts[0] == 0 and starts[-1] == 5000 - 2048
    assert all(b - a <= 2048 - 512 for a, b in zip(starts, starts[1:]))


class _Local(nn.Module):
    """Per-sample logits from the sample alone (no context): windows cannot change them."""

    def forward(self, x):
        return torch.stack([x, -x, x ** 2, torch.zeros_like(x)], dim=2)


def test_stitching_is_exact_for_a_context_free_model(rng, monkeypatch):
    import ecgssl.delineation.windows as windows

    # The normalisation is per window (it sees context); take it out to test the stitching.
    monkeypatch.setattr(windows, "normalise_window", lambda x: np.asarray(x, np.float32))
    x = rng.normal(size=(2, 6000)).astype(np.float32)
    probs = stitched_probs(_Local(), x, window=2048, overlap=512)
    single = stitched_probs(_Local(), x, window=6000, overlap=0)
    assert probs.shape == (2, 4, 6000)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(probs, single, atol=1e-4)
