"""Global-batch tensors for losses under data parallelism (DDP): all-gather with gradients.

Under DDP every process (rank) holds a slice of the global batch. A contrastive loss computed on
the slice contrasts each view against its own rank's views only, and a soft-target matrix built
from the slice's features covers the slice only: a different method from the one-process run on
the whole batch. The fix (as in SimCLR's TPU code, solo-learn and lightly's
``gather_distributed``): gather the projections of every rank, with a gradient path back to the
rank that computed them, and build every target matrix from gathered features.

Gradient contract (checked by ``tests/methods/test_distributed.py``): every rank computes the
*same* global loss ``L`` from the gathered tensors. The backward of ``gather`` sums, over ranks,
the gradient each rank's loss sends to the rows of every rank (an all-reduce) and keeps this
rank's rows, i.e. ``W * dL/dz_local``. DDP then averages parameter gradients over the ``W`` ranks,
which gives exactly ``dL/dtheta`` of the one-process run on the concatenated batch.

Rows may be ragged (a different count per rank, e.g. heartbeats): ``gather`` exchanges the counts,
pads every slice to the largest, gathers, and removes the padding; rank ``r``'s rows come after
those of ranks ``0 .. r-1`` (the order of the concatenated batch when the sampler gives each
rank a contiguous slice, which is how the equivalence tests split it).

Any method can use it: call ``gather(z)`` on what its loss contrasts (with gradient) and
``gather(x, grad=False)`` on what its targets are built from, then compute the loss as on one
process. Outside an initialised process group (or with one process) both return the input.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes of the default group (1 when torch.distributed is not in use)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    """This process's rank (0 when torch.distributed is not in use)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def _counts(n: int, device: torch.device) -> list[int]:
    """Rows held by every rank."""
    local = torch.tensor([n], dtype=torch.long, device=device)
    out = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(out, local)
    return [int(c) for c in out]


def _gather_padded(x: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """All ranks' rows concatenated in rank order (ragged along dim 0)."""
    longest = max(counts)
    pad = x.new_zeros((longest - x.shape[0], *x.shape[1:]))
    padded = torch.cat([x, pad]) if pad.shape[0] else x.contiguous()
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


class _GatherWithGrad(torch.autograd.Function):
    """Forward: all ranks' rows. Backward: all-reduce (sum) the gradient, keep this rank's rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        counts = _counts(x.shape[0], x.device)
        r = rank()
        ctx.slice = (sum(counts[:r]), sum(counts[:r + 1]))
        return _gather_padded(x, counts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # all_reduce is in place: never on autograd's buffer
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start, end = ctx.slice
        return grad[start:end]


def gather(x: torch.Tensor, grad: bool = True) -> torch.Tensor:
    """Rows of ``x`` (n_r, ...) of every rank, concatenated in rank order: (sum_r n_r, ...).

    Args:
        x: this rank's rows; the trailing shape and dtype must agree across ranks, the row count
            may differ (0 included).
        grad: keep a gradient path to this rank's rows (for what the loss is computed on);
            False for targets (features, classes), which need none.
    Returns:
        ``x`` itself when not distributed (or with one process).
    """
    if world_size() == 1:
        return x
    if grad and x.requires_grad:
        return _GatherWithGrad.apply(x)
    with torch.no_grad():
        return _gather_padded(x.detach(), _counts(x.shape[0], x.device))


def should_gather(enabled: bool) -> bool:
    """True when gathering is switched on and more than one process is running."""
    return bool(enabled) and world_size() > 1
