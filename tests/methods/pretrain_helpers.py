"""A tiny generated store and a helper that pretrains a recipe on it and returns its losses."""

from __future__ import annotations

import pandas as pd

from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import prepare_store
from ecgssl.train.run import pretrain
from tests.data.synthetic import SyntheticSource

TRAIN = {"batch_size": 4, "lr": 2e-3, "min_lr": 2e-3, "warmup_steps": 1, "accelerator": "cpu",
         "devices": 1, "progress_bar": False, "tensorboard": False, "log_every_n_steps": 1,
         "checkpoint_every_n_epochs": 0, "seed": 0}


def tiny_store(path, n: int = 8):
    """8 synthetic 12-lead 10 s records at 250 Hz, two per patient (SyntheticSource)."""
    prepare_store(SyntheticSource(n), path, PreprocessConfig(beats=False), workers=0,
                  progress=False)
    return path


def pretrain_losses(recipe: dict, store, out, steps: int) -> list[float]:
    """Pretrain ``recipe`` for ``steps`` optimiser steps; the logged training losses."""
    recipe = {**recipe, "train": {**TRAIN, "max_steps": steps, **recipe.get("train", {})}}
    result = pretrain(recipe, store, out)
    assert result.global_step == steps
    metrics = pd.read_csv(out / "metrics.csv")
    return metrics["train/loss"].dropna().tolist()


def mean(xs) -> float:
    return sum(xs) / len(xs)
