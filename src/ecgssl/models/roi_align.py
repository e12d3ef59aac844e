"""1-D RoI-align: one vector per heartbeat from an encoder's time feature map.

Beat-SSL's "RoI projection" (arXiv 2601.16147): each beat window, given in input samples, is mapped
onto the feature map ``e`` (B, D, T') of an encoder with ``stride`` input samples per step, and
``e`` is read at evenly spaced points with linear interpolation (RoI-align, He et al. 2017, in 1-D).

Coordinate convention (half-pixel, like ``align_corners=False``): feature step ``j`` covers input
samples ``[j * stride, (j + 1) * stride)``, so input sample ``s`` sits at feature coordinate
``u = (s + 0.5) / stride - 0.5``. Coordinates are clamped to ``[0, T' - 1]`` (edge padding).

A window ``[start, end)`` is split into ``output_size`` equal bins; each bin is sampled at
``sampling_ratio`` evenly spaced points (at the centres of equal sub-bins) whose values are
averaged. The bins are then kept (``reduce="none"``, (K, D, output_size)) or averaged
(``reduce="mean"``, (K, D)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

REDUCTIONS = ("mean", "none")


def sample_positions(boxes: torch.Tensor, output_size: int, sampling_ratio: int) -> torch.Tensor:
    """Input-sample positions (K, output_size * sampling_ratio) of the RoI-align sampling points."""
    n_points = output_size * sampling_ratio
    frac = (torch.arange(n_points, device=boxes.device, dtype=torch.float32) + 0.5) / n_points
    start, end = boxes[:, :1].float(), boxes[:, 1:2].float()
    # Window [start, end) in samples: its continuous extent is [start - 0.5, end - 0.5].
    return (start - 0.5) + frac[None, :] * (end - start)


def roi_align_1d(features: torch.Tensor, boxes: torch.Tensor, batch_index: torch.Tensor,
                 stride: int, output_size: int = 4, sampling_ratio: int = 2,
                 reduce: str = "mean") -> torch.Tensor:
    """RoI-align of windows over a batch of 1-D feature maps.

    Args:
        features: (B, D, T') feature map.
        boxes: (K, 2) windows ``[start, end)`` in input samples (float or int).
        batch_index: (K,) long, the record of each window.
        stride: input samples per feature step (>= 1).
        output_size: bins per window; sampling_ratio: points per bin (averaged).
        reduce: ``"mean"`` -> (K, D); ``"none"`` -> (K, D, output_size).
    """
    if features.ndim != 3:
        raise ValueError(f"features must be (B, D, T'), got {tuple(features.shape)}")
    if boxes.ndim != 2 or boxes.shape[1] != 2 or batch_index.shape != (boxes.shape[0],):
        raise ValueError(f"boxes must be (K, 2) and batch_index (K,), got {tuple(boxes.shape)} "
                         f"and {tuple(batch_index.shape)}")
    if stride < 1 or output_size < 1 or sampling_ratio < 1:
        raise ValueError("stride, output_size and sampling_ratio must be >= 1")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    b, d, t = features.shape
    k = boxes.shape[0]
    if k == 0:
        shape = (0, d) if reduce == "mean" else (0, d, output_size)
        return features.new_zeros(shape)
    batch_index = batch_index.to(device=features.device, dtype=torch.long)
    if int(batch_index.min()) < 0 or int(batch_index.max()) >= b:
        raise ValueError(f"batch_index out of range [0, {b})")
    pos = sample_positions(boxes.to(features.device), output_size, sampling_ratio)
    u = ((pos + 0.5) / stride - 0.5).clamp(0.0, t - 1)
    lo = u.floor().long().clamp(max=t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    w_hi = (u - lo.float()).to(features.dtype)
    # Gather from the flat (B * T', D) map: memory K * P * D, not K * D * T'.
    flat = features.permute(0, 2, 1).reshape(b * t, d)
    base = (batch_index * t)[:, None]
    v = flat[base + lo] * (1 - w_hi)[..., None] + flat[base + hi] * w_hi[..., None]  # (K, P, D)
    v = v.reshape(k, output_size, sampling_ratio, d).mean(2)
    return v.mean(1) if reduce == "mean" else v.permute(0, 2, 1)


def beat_boxes(rpeaks, n_samples: int, fs: float, before_s: float = 0.25, after_s: float = 0.45):
    """Beat windows ``[R - before, R + after)`` in samples and which of them fit in the record.

    Args:
        rpeaks: list of B int arrays (R-peaks per record, in samples) or a tuple
            ``(flat (K,), batch_index (K,))``.
        n_samples: T, the record length in samples.
    Returns:
        (boxes (K_kept, 2) float32 tensor, batch_index (K_kept,) long tensor,
        kept (K,) bool tensor over all the given beats in order).
    """
    if fs <= 0 or before_s < 0 or after_s <= 0:
        raise ValueError("fs and after_s must be > 0 and before_s >= 0")
    flat, bidx = _flatten_rpeaks(rpeaks)
    before = int(round(before_s * fs))
    after = int(round(after_s * fs))
    start, end = flat - before, flat + after
    kept = (start >= 0) & (end <= n_samples)
    boxes = torch.stack([start[kept], end[kept]], 1).float()
    return boxes, bidx[kept], kept


def _flatten_rpeaks(rpeaks):
    # A tuple of two tensors is the flat form; a list (or tuple) of arrays is one per record.
    if isinstance(rpeaks, tuple) and len(rpeaks) == 2 and isinstance(rpeaks[0], torch.Tensor):
        flat = torch.as_tensor(rpeaks[0]).long().reshape(-1)
        bidx = torch.as_tensor(rpeaks[1]).long().reshape(-1)
        if flat.shape != bidx.shape:
            raise ValueError("flat R-peaks and batch index must have the same length")
        return flat, bidx
    if not isinstance(rpeaks, Sequence):
        raise ValueError("rpeaks must be a list of per-record arrays or (flat, batch_index)")
    arrays = [torch.as_tensor(np.asarray(r, dtype=np.int64)).reshape(-1) for r in rpeaks]
    flat = torch.cat(arrays) if arrays else torch.zeros(0, dtype=torch.long)
    bidx = torch.cat([torch.full((len(a),), i, dtype=torch.long) for i, a in enumerate(arrays)]) \
        if arrays else torch.zeros(0, dtype=torch.long)
    return flat, bidx


def pool_beats(features: torch.Tensor, rpeaks, n_samples: int, fs: float, stride: int,
               before_s: float = 0.25, after_s: float = 0.45, output_size: int = 4,
               sampling_ratio: int = 2, reduce: str = "mean"):
    """One vector per beat that fits in the record.

    Args:
        features: (B, D, T') encoder feature map of records of ``n_samples`` input samples.
        rpeaks: list of B int arrays, or ``(flat, batch_index)``.
    Returns:
        (beats (K_kept, D) or (K_kept, D, output_size), batch_index (K_kept,), kept (K,) bool).
    """
    boxes, bidx, kept = beat_boxes(rpeaks, n_samples, fs, before_s, after_s)
    pooled = roi_align_1d(features, boxes, bidx.to(features.device), stride, output_size,
                          sampling_ratio, reduce)
    return pooled, bidx, kept
