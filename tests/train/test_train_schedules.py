"""Learning-rate and EMA schedules: closed-form values, and what the optimiser really used."""

import math

import pytest
import torch

from ecgssl.train.schedules import WarmupCosineFactor, ema_momentum, warmup_cosine_lr


def test_warmup_is_linear_and_never_zero():
    lrs = [warmup_cosine_lr(s, 100, 1e-3, 1e-5, warmup_steps=10) for s in range(10)]
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[9] == pytest.approx(1e-3)
    assert all(b - a == pytest.approx(1e-4) for a, b in zip(lrs, lrs[1:]))


def test_cosine_values_and_floor():
    lr, min_lr, w, total = 1e-3, 1e-5, 10, 110
    assert warmup_cosine_lr(w, total, lr, min_lr, w) == pytest.approx(lr)
    # Half way through the cosine: the mean of lr and min_lr.
    assert warmup_cosine_lr(w + 50, total, lr, min_lr, w) == pytest.approx((lr + min_lr) / 2)
    q = warmup_cosine_lr(w + 25, total, lr, min_lr, w)
    assert q == pytest.approx(min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine_lr(total, total, lr, min_lr, w) == pytest.approx(min_lr)
    assert warmup_cosine_lr(total + 50, total, lr, min_lr, w) == pytest.approx(min_lr)
    after = [warmup_cosine_lr(s, total, lr, min_lr, w) for s in range(w, total)]
    assert all(a >= b for a, b in zip(after, after[1:]))


def test_no_warmup_starts_at_base_lr():
    assert warmup_cosine_lr(0, 10, 0.5, 0.0, 0) == pytest.approx(0.5)


@pytest.mark.parametrize("args", [(0, 1e-3, 0.0, 0), (10, 0.0, 0.0, 0), (10, 1e-3, 1e-2, 0),
                                  (10, 1e-3, 0.0, -1)])
def test_schedule_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        warmup_cosine_lr(0, *args)


def test_lambda_factor_drives_param_group_lrs():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.AdamW([{"params": params[:1], "lr": 1e-3},
                             {"params": params[1:], "lr": 5e-4}], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosineFactor(20, 1e-3, 1e-5, 5))
    for step in range(20):
        want = warmup_cosine_lr(step, 20, 1e-3, 1e-5, 5)
        assert opt.param_groups[0]["lr"] == pytest.approx(want)
        assert opt.param_groups[1]["lr"] == pytest.approx(want / 2)  # a group's scale is kept
        opt.step()
        sched.step()


def test_ema_momentum_linear():
    assert ema_momentum(0, 100) == pytest.approx(0.996)
    assert ema_momentum(50, 100) == pytest.approx(0.998)
    assert ema_momentum(100, 100) == pytest.approx(1.0)
    assert ema_momentum(500, 100) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ema_momentum(0, 0)
    with pytest.raises(ValueError):
        ema_momentum(0, 10, start=1.5)
