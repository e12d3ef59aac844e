"""The LightningModule that trains any ``SSLMethod``: optimiser, lr schedule, hooks, exact resume.

Exact resume: a checkpoint holds the model (online and EMA target weights alike: they are all in
the method's state dict), the optimiser and scheduler, Lightning's loop counters (global step,
epoch), the data position (via the DataModule), the global RNG states (python, numpy, torch CPU
and CUDA) and the method's own resume state (``state_for_resume``, e.g. a mask generator). The RNG
states are captured when the checkpoint is written (after an optimiser step) and put back just
before the first batch after the restart, so no restore-time work can shift the random stream.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from ecgssl.methods.base import SSLMethod
from ecgssl.train.schedules import WarmupCosineFactor

RNG_KEY = "ecgssl_rng"
METHOD_STATE_KEY = "ecgssl_method_state"
POSITION_KEY = "ecgssl_data_position"


@dataclass
class OptimConfig:
    """Optimiser and schedule settings (the ``train`` section of a recipe, in part).

    ``warmup_steps`` wins over ``warmup_epochs`` when both are given; epochs are converted with the
    number of optimiser steps per epoch known once the data is set up.
    """

    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int | None = None
    warmup_epochs: float = 0.0

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")


def capture_rng() -> dict[str, Any]:
    """Global RNG states: python ``random``, numpy legacy, torch CPU and every CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
             "torch": torch.random.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class PretrainModule(pl.LightningModule):
    """Trains ``method`` with AdamW over ``method.param_groups`` and a warm-up + cosine schedule.

    Args:
        method: the ``SSLMethod`` (owns encoder, heads, loss).
        optim: optimiser / schedule settings.
        total_steps: optimiser steps of the whole run for the schedules; ``None`` uses Lightning's
            ``estimated_stepping_batches`` (epochs x steps per epoch, or ``max_steps``).

    Logged per step: ``train/loss``, ``train/lr``, and every metric of the method as
    ``train/<name>``.
    """

    def __init__(self, method: SSLMethod, optim: OptimConfig | None = None,
                 total_steps: int | None = None):
        super().__init__()
        if not isinstance(method, SSLMethod):
            raise TypeError(f"method must be an SSLMethod, got {type(method).__name__}")
        self.method = method
        self.optim = optim or OptimConfig()
        self._total_steps = total_steps
        self._epoch_batches = 0
        self._pending_rng: dict[str, Any] | None = None

    # --- schedule bookkeeping -------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        """Optimiser steps in the whole run (what the lr and EMA schedules run over)."""
        if self._total_steps is None:
            estimate = self.trainer.estimated_stepping_batches
            if not math.isfinite(estimate):
                raise ValueError("training length unknown: give train.epochs or train.max_steps")
            self._total_steps = int(estimate)
        return self._total_steps

    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch on this rank (sets up the training data if needed)."""
        trainer = self.trainer
        if not math.isfinite(trainer.num_training_batches):
            trainer.fit_loop.setup_data()  # with max_steps, Lightning has not needed it yet
        return max(1, math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches))

    def warmup_steps(self) -> int:
        if self.optim.warmup_steps is not None:
            return int(self.optim.warmup_steps)
        if self.optim.warmup_epochs == 0:
            return 0
        return int(round(self.optim.warmup_epochs * self.steps_per_epoch()))

    def configure_optimizers(self):
        total = self.total_steps
        saved = getattr(self, "_ckpt_total_steps", None)
        if saved is not None and saved != total:
            raise ValueError(f"the checkpoint is from a {saved}-step run, this run has {total} "
                             "steps: the lr / EMA schedules would not resume (keep the recipe's "
                             "max_epochs / max_steps, batch size and devices)")
        warmup = self.warmup_steps()
        if warmup >= total:
            raise ValueError(f"warm-up ({warmup} steps) must be shorter than the run ({total}); "
                             "set train.warmup_epochs=0 or train.warmup_steps=N for short runs")
        groups = self.method.param_groups(self.optim.weight_decay)
        for group in groups:
            group["lr"] = self.optim.lr * float(group.pop("lr_scale", 1.0))
        optimizer = torch.optim.AdamW(groups, lr=self.optim.lr, betas=tuple(self.optim.betas),
                                      eps=self.optim.eps)
        factor = WarmupCosineFactor(total, self.optim.lr, self.optim.min_lr, warmup)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # --- training ------------------------------------------------------------------------
    def data_position(self) -> tuple[int, int]:
        """(epoch, batches of it consumed so far): the resume point of the data order.

        A checkpoint written after the last batch of an epoch (at that batch's end or at
        ``on_train_epoch_end``) points at the start of the next epoch, which is where Lightning
        resumes from it.
        """
        epoch = self.current_epoch
        if self._trainer is not None:
            trainer = self.trainer
            if trainer.fit_loop.epoch_progress.current.processed > epoch or \
                    self._epoch_batches >= trainer.num_training_batches:
                return epoch + 1, 0
        return epoch, self._epoch_batches

    def on_train_epoch_start(self) -> None:
        self._epoch_batches = 0

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._pending_rng is not None:  # first batch after a restart
            restore_rng(self._pending_rng)
            self._pending_rng = None
        # Mid-epoch restart: Lightning's batch_idx counts the consumed batches of the epoch.
        self._epoch_batches = batch_idx

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, metrics = self.method.training_step_loss(batch, self.global_step, self.total_steps)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.global_step}")
        batch_size = int(batch["signal"].shape[0]) if "signal" in batch else None
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch_size)
        for name, value in metrics.items():
            if name != "loss":  # already logged, from the tensor that is optimised
                self.log(f"train/{name}", float(value), batch_size=batch_size)
        self._epoch_batches = batch_idx + 1
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        self.log("train/lr", optimizer.param_groups[0]["lr"])

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # global_step counts completed steps and is updated after this hook: this is the step
        # just taken (0-based).
        self.method.after_optimizer_step(self.global_step, self.total_steps)

    # --- checkpoints ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_KEY] = capture_rng()
        checkpoint[METHOD_STATE_KEY] = self.method.state_for_resume()
        checkpoint[POSITION_KEY] = list(self.data_position())
        checkpoint["ecgssl_total_steps"] = self.total_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if RNG_KEY in checkpoint:
            self._pending_rng = checkpoint[RNG_KEY]
        if checkpoint.get(METHOD_STATE_KEY):
            self.method.load_state_for_resume(checkpoint[METHOD_STATE_KEY])
        # Checked in configure_optimizers, which Lightning calls after this hook.
        self._ckpt_total_steps = checkpoint.get("ecgssl_total_steps")
        if POSITION_KEY in checkpoint:
            self._epoch_batches = int(checkpoint[POSITION_KEY][1])
