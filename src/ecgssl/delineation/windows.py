"""Any length, any rate: resample to the model rate, cut overlapping windows, stitch probabilities.

A lead of T samples at the model rate is cut into windows of ``window`` samples every
``window - overlap`` samples, the last one aligned to the end (so every sample is covered and
nothing is padded); a lead no longer than one window is one pass over its own length. Each
window is normalised on its own (``normalise_window``), the network gives class probabilities
(softmax), and overlapping windows are averaged with weights that fall linearly over
``overlap / 2`` samples towards each window edge (the network sees less context there), so a
wave crossing a window boundary comes out once, from the window that saw it best.
"""

from __future__ import annotations

import numpy as np
import torch

from ecgssl.delineation.model import normalise_window, to_tensor

#: Shortest lead accepted (seconds): below it there is not even one beat to delineate.
MIN_SECONDS = 1.0


def window_starts(n_samples: int, window: int, overlap: int) -> list[int]:
    """Start samples of the windows covering [0, n_samples) (the last aligned to the end)."""
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got {window}, {overlap}")
    if n_samples <= window:
        return [0]
    step = window - overlap
    starts = list(range(0, n_samples - window, step))
    return starts + [n_samples - window]


def _edge_weights(length: int, overlap: int) -> np.ndarray:
    ramp = max(overlap // 2, 1)
    t = np.arange(length)
    return np.minimum(1.0, np.minimum(t + 1, length - t) / ramp).astype(np.float32)


@torch.no_grad()
def stitched_probs(model: torch.nn.Module, leads: np.ndarray, window: int, overlap: int,
                   batch_size: int = 32) -> np.ndarray:
    """Class probabilities of every sample of every lead.

    Args:
        model: single-channel segmentation model, (B, 1, T) -> (B, 1, 4, T) logits.
        leads: (L, T) float mV at the model rate.
    Returns:
        float32 (L, 4, T) probabilities (none, P, QRS, T), summing to 1 over axis 1.
    """
    x = np.asarray(leads, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"leads must be (L, T), got shape {x.shape}")
    n_leads, n = x.shape
    starts = window_starts(n, window, overlap)
    length = min(window, n)
    pieces = [(k, s) for k in range(n_leads) for s in starts]
    weights = _edge_weights(length, overlap) if len(starts) > 1 else np.ones(length, np.float32)
    acc = np.zeros((n_leads, 4, n), dtype=np.float32)
    norm = np.zeros((n_leads, n), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        for b in range(0, len(pieces), batch_size):
            chunk = pieces[b:b + batch_size]
            xb = normalise_window(np.stack([x[k, s:s + length] for k, s in chunk]))
            probs = torch.softmax(model(to_tensor(xb))[:, 0], dim=1).numpy()  # (B, 4, length)
            for (k, s), p in zip(chunk, probs):
                acc[k, :, s:s + length] += p * weights
                norm[k, s:s + length] += weights
    finally:
        model.train(was_training)
    return acc / norm[:, None, :]
