"""Pooling of an encoder's feature map into one vector per ECG (the frozen representation).

- ``"mean"``: the mean over time (over all tokens for a ViT): D values.
- ``"meanmax"``: the mean and the maximum over time, concatenated: 2 D values. The mean summarises
  what the whole 10 s share (rhythm); the maximum keeps a feature that fires on one beat only (an
  ectopic beat, a single wide complex), which the mean divides by the number of time steps.
  Beat-level pretraining (Beat-SSL's RoI-pooled beats) trains exactly such per-beat features.

The pooling is a constructor argument of every encoder, stored in its ``spec`` (so exports,
checkpoints and random-init twins rebuild it) and only changes ``forward``: pretraining losses,
RoI pooling and segmentation heads use the feature map itself.
"""

from __future__ import annotations

import torch

POOLS = ("mean", "meanmax")


def check_pool(pool: str) -> str:
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; choose from {POOLS}")
    return pool


def pooled_dim(embed_dim: int, pool: str) -> int:
    """Length of the pooled vector for a feature map of ``embed_dim`` channels."""
    return int(embed_dim) * (2 if check_pool(pool) == "meanmax" else 1)


def output_dim(module) -> int | None:
    """Length of ``module(x)``'s last axis: ``pooled_dim`` for ecgssl encoders, else the
    module's ``embed_dim`` (other encoders pool to D), else None."""
    return getattr(module, "pooled_dim", getattr(module, "embed_dim", None))


def pool_features(x: torch.Tensor, pool: str, dim: int) -> torch.Tensor:
    """Pool ``x`` over axis ``dim`` (time or tokens): (..., D) with ``dim`` removed; ``"meanmax"``
    concatenates [mean, max] along the last axis (D -> 2 D)."""
    mean = x.mean(dim=dim)
    if check_pool(pool) == "mean":
        return mean
    return torch.cat([mean, x.amax(dim=dim)], dim=-1)
