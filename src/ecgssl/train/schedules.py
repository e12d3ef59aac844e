"""Per-step schedules: learning rate (linear warm-up then cosine) and EMA momentum.

Both are plain functions of the optimiser step so that they resume exactly from a checkpoint
(the step is the only state) and can be unit-tested against closed forms.
"""

from __future__ import annotations

import math


def warmup_cosine_lr(step: int, total_steps: int, base_lr: float, min_lr: float = 0.0,
                     warmup_steps: int = 0) -> float:
    """Learning rate at optimiser step ``step`` (0-based; the step about to be taken).

    Warm-up: ``base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps`` (so the first
    step already moves; it never uses lr 0). Then a half cosine from ``base_lr`` at
    ``step == warmup_steps`` down to ``min_lr`` at ``step == total_steps`` (held there after).

    Raises:
        ValueError: non-positive ``total_steps``, negative lrs or warm-up, ``min_lr > base_lr``.
    """
    _check(total_steps, base_lr, min_lr, warmup_steps)
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _check(total_steps: int, base_lr: float, min_lr: float, warmup_steps: int) -> None:
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if base_lr <= 0:
        raise ValueError(f"base lr must be > 0, got {base_lr}")
    if min_lr < 0 or min_lr > base_lr:
        raise ValueError(f"min_lr must be in [0, lr={base_lr}], got {min_lr}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")


class WarmupCosineFactor:
    """A picklable ``LambdaLR`` factor: ``warmup_cosine_lr(step, ...) / base_lr``.

    ``LambdaLR`` multiplies each group's initial lr by this factor, so groups that carry their own
    lr (e.g. a layer-wise scale) keep their ratio to the base lr throughout.
    """

    def __init__(self, total_steps: int, base_lr: float, min_lr: float, warmup_steps: int):
        _check(total_steps, base_lr, min_lr, warmup_steps)
        self.total_steps = int(total_steps)
        self.base_lr = float(base_lr)
        self.min_lr = float(min_lr)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int) -> float:
        lr = warmup_cosine_lr(step, self.total_steps, self.base_lr, self.min_lr, self.warmup_steps)
        return lr / self.base_lr


def ema_momentum(step: int, total_steps: int, start: float = 0.996, end: float = 1.0) -> float:
    """EMA momentum rising linearly from ``start`` (step 0) to ``end`` (step ``total_steps``).

    This is the ECG-JEPA / I-JEPA schedule; the target update is
    ``target = m * target + (1 - m) * online``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0):
        raise ValueError(f"EMA momenta must be in [0, 1], got start={start}, end={end}")
    progress = min(1.0, max(0.0, step / total_steps))
    return start + (end - start) * progress
