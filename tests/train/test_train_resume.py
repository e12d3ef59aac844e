"""Exact resume: an interrupted and resumed run equals the uninterrupted one, bit for bit."""

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch

from ecgssl.train.recipes import load_recipe
from ecgssl.train.run import fit
from tests.train.train_helpers import Recorder, ToyDataset, ToyMethod, toy_recipe

# 40 samples, batch 8: 5 steps per epoch, 3 epochs = 15 steps.
TOTAL = 15


class Crash(RuntimeError):
    pass


class CrashAt(pl.Callback):
    """Simulates a crash before step ``step + 1`` (after the checkpoint of step ``step``)."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise Crash(f"simulated interruption at step {self.step}")


def _run(out, resume=None, callbacks=(), **recipe):
    pl.seed_everything(0)  # the same initial weights as pretrain() would build
    method, rec = ToyMethod(), Recorder()
    fit(load_recipe(toy_recipe(**recipe)), method, ToyDataset(), out, resume=resume,
        callbacks=[rec, *callbacks])
    return method, rec


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, with a checkpoint at every step."""
    out = tmp_path_factory.mktemp("full")
    method, rec = _run(out)
    return out, method, rec


def _assert_same(method_a, method_b):
    state_a, state_b = method_a.state_dict(), method_b.state_dict()
    assert state_a.keys() == state_b.keys()
    assert any("target" in k for k in state_a)  # the EMA copy is compared too
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), f"{key} differs after resume"
    assert torch.equal(method_a.mask_gen.get_state(), method_b.mask_gen.get_state())


def test_reference_run_trains(reference):
    _, method, rec = reference
    assert sorted(rec.losses) == list(range(1, TOTAL + 1))
    assert rec.losses[TOTAL] < rec.losses[1]
    assert len(method.momenta) == TOTAL and method.momenta[0] == pytest.approx(0.9)


def test_resume_mid_epoch_is_exact(reference, tmp_path):
    full_dir, full, full_rec = reference
    # Step 7 is the 2nd batch of epoch 1.
    method, rec = _run(tmp_path, resume=full_dir / "checkpoints" / "step0000007.ckpt")
    assert sorted(rec.losses) == list(range(8, TOTAL + 1))
    for step in rec.losses:
        assert rec.indices[step] == full_rec.indices[step], f"data order differs at {step}"
        assert rec.losses[step] == full_rec.losses[step], f"loss differs at step {step}"
    _assert_same(full, method)


def test_crash_and_resume_at_epoch_boundary_with_workers(reference, tmp_path):
    full_dir, full, full_rec = reference
    with pytest.raises(Crash):
        _run(tmp_path, callbacks=[CrashAt(5)], train__checkpoint_every_n_steps=5)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    # Resume into the same run dir, now loading in 2 worker processes: the data order and the
    # augmentations drawn in the workers do not depend on the number of workers.
    method, rec = _run(tmp_path, resume="last", train__checkpoint_every_n_steps=5,
                       data__num_workers=2)
    assert sorted(rec.losses) == list(range(6, TOTAL + 1))
    for step in rec.losses:
        assert rec.indices[step] == full_rec.indices[step]
        assert rec.losses[step] == full_rec.losses[step], f"loss differs at step {step}"
    _assert_same(full, method)
    # metrics.csv keeps the interrupted part and has every step's loss once, as logged in full.
    got = pd.read_csv(tmp_path / "metrics.csv").dropna(subset=["train/loss"])
    want = pd.read_csv(full_dir / "metrics.csv").dropna(subset=["train/loss"])
    assert list(got["step"]) == list(want["step"]) == list(range(TOTAL))
    assert list(got["train/loss"]) == list(want["train/loss"])


def test_resume_with_a_different_run_length_is_refused(reference, tmp_path):
    full_dir, _, _ = reference
    with pytest.raises(ValueError, match="15-step run, this run has 20"):
        _run(tmp_path, resume=full_dir / "checkpoints" / "step0000007.ckpt",
             train__max_epochs=4)
