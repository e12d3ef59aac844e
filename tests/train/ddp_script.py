"""Run by test_train_ddp.py as a script: 2-process CPU DDP pretraining of the toy method.

Lightning's ``ddp`` strategy re-launches this script for rank 1. Each rank writes the dataset
indices it consumed and its final weights to ``<out>/rank<r>.pt``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402

from ecgssl.train.recipes import load_recipe  # noqa: E402
from ecgssl.train.run import fit  # noqa: E402
from tests.train.train_helpers import Recorder, ToyDataset, ToyMethod, toy_recipe  # noqa: E402


class Dump(pl.Callback):
    def __init__(self, out, recorder):
        self.out, self.recorder = out, recorder

    def on_train_end(self, trainer, pl_module):
        state = {k: v.clone() for k, v in pl_module.method.state_dict().items()}
        torch.save({"indices": self.recorder.indices, "state": state,
                    "world_size": trainer.world_size},
                   Path(self.out) / f"rank{trainer.global_rank}.pt")


def main(out: str) -> None:
    recipe = load_recipe(toy_recipe(train__max_epochs=2, train__devices=2, train__strategy="ddp",
                                    train__checkpoint_every_n_steps=0, train__batch_size=4))
    pl.seed_everything(0)
    recorder = Recorder()
    fit(recipe, ToyMethod(), ToyDataset(n=24), Path(out) / "run",
        callbacks=[recorder, Dump(out, recorder)])


if __name__ == "__main__":
    main(sys.argv[1])
