"""Which samples of a window are real signal: the per-window valid span of the store.

A store window shorter records were padded into carries ``valid_span`` = ``[start, end)`` in
window samples of real signal (``ECGStore.valid_spans``, batches ``batch["valid_span"]`` (B, 2)
long). Methods use it to leave padding out of their losses: a feature step or token that covers
only padded samples says nothing about the ECG (its value depends on position only).
"""

from __future__ import annotations

from typing import Any

import torch


def batch_spans(batch: dict[str, Any], n_windows: int, n_samples: int,
                device: torch.device | None = None) -> torch.Tensor:
    """(B, 2) long ``[start, end)`` of real signal per window; the whole window when the batch
    carries no ``valid_span`` (older stores, unpadded data).

    Raises:
        ValueError: a span of the wrong shape or outside ``[0, n_samples]``.
    """
    span = batch.get("valid_span")
    if span is None:
        out = torch.zeros(n_windows, 2, dtype=torch.long, device=device)
        out[:, 1] = n_samples
        return out
    span = torch.as_tensor(span, dtype=torch.long, device=device)
    if span.shape != (n_windows, 2):
        raise ValueError(f"batch['valid_span'] must be ({n_windows}, 2), got {tuple(span.shape)}")
    if bool((span < 0).any()) or bool((span > n_samples).any()) or \
            bool((span[:, 0] > span[:, 1]).any()):
        raise ValueError(f"batch['valid_span'] must satisfy 0 <= start <= end <= {n_samples}")
    return span


def steps_with_signal(spans: torch.Tensor, n_steps: int, stride: int) -> torch.Tensor:
    """(B, n_steps) bool: step ``j`` (input samples ``[j * stride, (j + 1) * stride)``, a
    feature-map step or a patch) covers at least one real sample of its window.

    A window whose span is empty has no such step (all False)."""
    j = torch.arange(n_steps, device=spans.device)
    start, end = spans[:, :1], spans[:, 1:2]
    return (j[None] * stride < end) & ((j[None] + 1) * stride > start)
