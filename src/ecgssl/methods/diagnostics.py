"""Representation-spread statistics shared by every method, callback and benchmark.

Two numbers say whether a batch of representations has collapsed (one definition each, used by
``train.callbacks.feature_collapse_stats``, the methods' ``collapse_metrics`` and training
metrics, and ``eval.selection``):

- ``batch_std``: mean over features of the std across the batch (0 = every sample the same);
  with ``normalise=True`` of the l2-normalised vectors (about ``1/sqrt(D)`` when spread).
- ``effective_rank``: exp of the entropy of the normalised singular values of the batch-centred
  matrix (Roy & Vetterli 2007): 1 = all spread along one direction, up to ``min(B, D)``.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_matrix(z) -> torch.Tensor:
    z = torch.as_tensor(np.asarray(z) if not isinstance(z, torch.Tensor) else z)
    if z.ndim != 2:
        raise ValueError(f"need (B, D) representations, got shape {tuple(z.shape)}")
    return z.detach().float()


def effective_rank(z: torch.Tensor | np.ndarray) -> float:
    """Effective rank of (B, D) representations (tensor or array), float32.

    Returns:
        exp(entropy) of ``s / s.sum()`` over the singular values ``s`` of ``z - z.mean(0)``;
        NaN for B < 2 (no spread is defined); 0.0 when every row is the same (no direction).
    """
    z = _as_matrix(z)
    if z.shape[0] < 2:
        return float("nan")
    s = torch.linalg.svdvals(z - z.mean(0, keepdim=True))
    total = float(s.sum())
    if total == 0.0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def batch_std(z: torch.Tensor | np.ndarray, normalise: bool = False) -> float:
    """Mean over features of the (unbiased) std across the batch of (B, D) representations.

    ``normalise``: l2-normalise each row first (scale-free; about ``1/sqrt(D)`` when spread,
    0 when collapsed). NaN for B < 2.
    """
    z = _as_matrix(z)
    if z.shape[0] < 2:
        return float("nan")
    if normalise:
        z = torch.nn.functional.normalize(z, dim=1)
    return float(z.std(dim=0).mean())
