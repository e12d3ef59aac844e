"""Generic check that a method's loss under DDP is the loss of one process on the whole batch.

``check_ddp_equivalence(build, batch)`` runs ``build()`` (a picklable, module-level factory that
seeds and returns an ``SSLMethod``) in ``world`` gloo processes, each on a contiguous slice of
``batch`` (what a distributed sampler hands a rank), computes ``training_step_loss``, backward,
and averages the parameter gradients over the ranks exactly as DDP does (all-reduce sum / world).
It returns the loss and gradients of rank 0 and of one process on the concatenated batch.

Any method that gathers its contrastive inputs (``ecgssl.methods.distributed.gather``) must give
equal losses and gradients; a method that contrasts within a rank's slice does not.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def split_batch(batch: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """Rank ``rank``'s contiguous slice of a collated batch (tensors and per-sample lists)."""
    n = len(batch["index"]) if "index" in batch else batch["signal"].shape[0]
    per = n // world
    lo, hi = rank * per, (rank + 1) * per
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == n:
            out[key] = value[lo:hi]
        elif isinstance(value, list) and len(value) == n:
            out[key] = value[lo:hi]
        else:
            out[key] = value
    return out


def _loss_and_grads(method, batch) -> tuple[float, dict[str, torch.Tensor], dict[str, float]]:
    loss, metrics = method.training_step_loss(batch, 0, 10)
    loss.backward()
    grads = {name: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
             for name, p in method.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads, metrics


def _worker(rank: int, world: int, init_file: str, build, batch, out_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        method = build()
        loss, grads, metrics = _loss_and_grads(method, split_batch(batch, rank, world))
        for g in grads.values():  # what DDP does to parameter gradients
            dist.all_reduce(g, op=dist.ReduceOp.SUM)
            g /= world
        if rank == 0:
            torch.save({"loss": loss, "grads": grads, "metrics": metrics}, out_file)
    finally:
        dist.destroy_process_group()


def check_ddp_equivalence(build, batch: dict[str, Any], world: int = 2) -> dict[str, Any]:
    """Returns ``{"ddp": (loss, grads), "single": (loss, grads)}`` (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        out_file = os.path.join(tmp, "rank0.pt")
        mp.spawn(_worker, args=(world, init_file, build, batch, out_file), nprocs=world,
                 join=True)
        ddp = torch.load(out_file, weights_only=False)
    single = _loss_and_grads(build(), batch)
    return {"ddp": (ddp["loss"], ddp["grads"], ddp["metrics"]), "single": single}
