"""The base class every pretraining method derives from."""

from __future__ import annotations

from collections.abc import Callable
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
