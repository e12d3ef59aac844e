"""The base class every pretraining method derives from."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


class SSLMethod(nn.Module):
    """A self-supervised method: an encoder plus whatever heads and loss the method needs.

    Subclasses implement ``training_step_loss``. The training engine (``ecgssl.train``) owns the
    loop, optimiser, schedules, precision, distribution and checkpoints; a method knows nothing of
    where the batch came from.
    """

    name: str = "base"
    #: What the training step calls, per child module: ``train.compile`` compiles exactly these
    #: (e.g. ECG-JEPA trains through ``encoder.forward_tokens``, not ``encoder.forward``).
    #: Children not listed get their ``forward`` compiled.
    training_entry_points: dict[str, tuple[str, ...]] = {}
    # True: batches must carry ``patient_code`` / ``record_code`` (``StoreDataset(ids=True)``).
    needs_ids: bool = False

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def training_step_loss(
        self, batch: dict[str, Any], step: int, max_steps: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss for one batch and a dict of scalar metrics to log."""
        raise NotImplementedError

    def make_collate(self) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        """A picklable collate function run in DataLoader workers (default: stack the samples)."""
        from ecgssl.data.dataset import default_collate

        return default_collate

    def compile_training(self, **options: Any) -> list[str]:
        """``torch.compile`` the paths the training step runs, in place (parameter names, and so
        checkpoints, do not change). Returns what was compiled, as ``"child.method"`` names.

        ``forward`` is compiled with ``nn.Module.compile`` (calls through ``module(...)``); any
        other entry point is replaced on the instance by its compiled bound method.
        """
        done = []
        for child_name, child in self.named_children():
            entry_points = self.training_entry_points.get(child_name, ("forward",))
            for entry in entry_points:
                if entry == "forward":
                    child.compile(**options)
                else:
                    setattr(child, entry, torch.compile(getattr(child, entry), **options))
                done.append(f"{child_name}.{entry}")
        return done

    @torch.no_grad()
    def after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Hook after each optimiser step (EMA target updates)."""

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: no weight decay on biases, norms, embeddings and other 1-D parameters."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            if param.ndim <= 1 or name.endswith(".bias") or "pos_embed" in name or "token" in name:
                no_decay.append(param)
            else:
                decay.append(param)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def state_for_resume(self) -> dict[str, Any]:
        """Extra state (e.g. mask-generator RNG) that a checkpoint must carry to resume exactly."""
        return {}

    def load_state_for_resume(self, state: dict[str, Any]) -> None:
        """Restore what ``state_for_resume`` returned."""

    def collapse_metrics(self, batch: dict[str, Any]) -> dict[str, float]:
        """Optional diagnostics of representation collapse (std across batch, effective rank)."""
        return {}

    # Names (``train/<name>`` in metrics.csv) of the training metrics that show this method's
    # representation spread; ``train.collapse.training_summary`` reports them beside the
    # generic ``collapse/*`` statistics. A method lists what its ``training_step_loss`` logs.
    spread_metrics: tuple[str, ...] = ()

    def untrained_parameter_names(self) -> set[str]:
        """Parameters that no loss gradient reaches by design (e.g. EMA targets). The contract
        tests check that every other parameter gets a gradient."""
        return set()


class MomentumMethod(SSLMethod):
    """An SSL method with EMA ("momentum") copies of some of its modules (BYOL, I-JEPA style).

    ``add_momentum_copy("encoder", "target_encoder")`` registers a frozen deep copy; after every
    optimiser step each copy follows its online module, ``target <- m target + (1 - m) online``,
    with ``m`` rising linearly from ``ema[0]`` (step 0) to ``ema[1]`` (step ``max_steps``).
    The current momentum is ``self._momentum`` (a subclass carries it in its resume state).

    Args:
        encoder: the online encoder (``self.encoder``).
        ema: (start, end) momentum, ``0 <= start <= end <= 1``.
    """

    def __init__(self, encoder: nn.Module, ema: Sequence[float] = (0.996, 1.0)):
        super().__init__(encoder)
        ema = tuple(ema)
        if len(ema) != 2 or not 0.0 <= ema[0] <= ema[1] <= 1.0:
            raise ValueError(f"ema must be (start, end) with 0 <= start <= end <= 1, got {ema}")
        self.ema = (float(ema[0]), float(ema[1]))
        self._momentum = self.ema[0]
        self._momentum_pairs: list[tuple[str, str]] = []

    def add_momentum_copy(self, online: str, target: str) -> nn.Module:
        """Register ``self.<target>``: a frozen copy of ``self.<online>`` updated by EMA."""
        module = copy.deepcopy(getattr(self, online))
        module.requires_grad_(False)
        setattr(self, target, module)
        self._momentum_pairs.append((online, target))
        return module

    def momentum(self, step: int, max_steps: int) -> float:
        """EMA momentum after optimiser step ``step`` (0-based) of ``max_steps``: linear."""
        from ecgssl.train.schedules import ema_momentum  # the one schedule (no other import)

        if max_steps <= 0:
            return self.ema[1]
        return ema_momentum(step, max_steps, *self.ema)

    @torch.no_grad()
    def after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Every momentum copy: target <- m * target + (1 - m) * online."""
        m = self.momentum(step, max_steps)
        self._momentum = m
        for online, target in self._momentum_pairs:
            torch._foreach_lerp_(list(getattr(self, target).parameters()),
                                 list(getattr(self, online).parameters()), 1.0 - m)

    def untrained_parameter_names(self) -> set[str]:
        """The momentum copies' parameters (they follow by EMA, never by gradient)."""
        targets = tuple(f"{t}." for _, t in self._momentum_pairs)
        return {n for n, _ in self.named_parameters() if n.startswith(targets)}
