"""Subprocess entry points of the fault suite: run a step and SIGKILL it at a chosen phase.

    python drivers.py prepare PHASE SRC OUT [--overwrite]
    python drivers.py pretrain PHASE OUT

The kill is a real ``SIGKILL`` of this process (no cleanup, no ``finally``), raised from inside
the step at a precise point by wrapping one function of the module under test.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root (tests.*)


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------ prepare

PREPARE_PHASES = ("none", "chunks", "finalise", "cleanup", "swap", "slow", "pool")
CHUNK = 2  # records per chunk: several chunks from a handful of records


def prepare(phase: str, src: str, out: str, overwrite: bool = False) -> None:
    import shutil

    from ecgssl.data import store
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.io import open_sources

    store.CHUNK_RECORDS = CHUNK
    real_write, real_concat = store._write_chunk, store._concat_to_npy
    real_rmtree, real_replace = shutil.rmtree, os.replace
    written = []

    def write_chunk(path, *a, **k):
        real_write(path, *a, **k)
        written.append(path)
        if phase == "chunks" and len(written) == 2:
            die()  # two chunks on disk, the rest not started
        if phase == "pool":  # killed with 2 worker processes running
            kids = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text()
            (Path(out).parent / "worker_pids.txt").write_text(kids)
            die()

    def concat(path, *a, **k):
        if phase == "finalise" and Path(path).name == "lead_mask.npy":
            die()  # signals.npy written, lead_mask.npy not, no config.json
        return real_concat(path, *a, **k)

    class PatchedShutil:
        def __getattr__(self, name):
            return getattr(shutil, name)

        @staticmethod
        def rmtree(path, *a, **k):
            path = Path(path)
            if phase == "cleanup" and path.name == "chunks":
                first = sorted(path.iterdir())[0]
                (first / "meta.json").unlink()  # a half-removed chunk, then the kill
                (first / "signals.npy").unlink()
                die()
            return real_rmtree(path, *a, **k)

    class PatchedOs:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def replace(a, b):
            real_replace(a, b)
            if phase == "swap" and Path(b).name.endswith(".old"):
                die()  # the old store moved aside, the new one not yet in place

    real_recover = store._recover

    def recover(*a, **k):
        if phase == "slow":  # holding the lock: tell the test, wait for its go-ahead
            print("locked", flush=True)
            go = Path(out).parent / "go"
            deadline = time.time() + 60
            while not go.exists() and time.time() < deadline:
                time.sleep(0.05)
        return real_recover(*a, **k)

    store._recover = recover
    store._write_chunk, store._concat_to_npy = write_chunk, concat
    store.shutil, store.os = PatchedShutil(), PatchedOs()
    source = open_sources([src], kind="wfdb", checks=None)
    store.prepare_store(source, out, PreprocessConfig(beats=False),
                        workers=2 if phase == "pool" else 0, overwrite=overwrite, progress=False)
    print("prepared", out)


# ------------------------------------------------------------------------------ pretrain

PRETRAIN_PHASES = ("none", "step", "torn", "export", "workers")
KILL_STEP = 6
STORE_CONFIG = {"fs": 250, "leads": ["I", "II"], "n_samples": 64, "hash": "h",
                "preprocess": {"normalize": None, "bandpass_hz": None}}


def toy_fit(out: str, resume=None, phase: str = "none"):
    """The toy run of tests/train (40 samples, batch 8, 3 epochs = 15 steps), checkpoint every
    step, exported; returns the RunResult."""
    import lightning.pytorch as pl
    import torch

    from ecgssl.models import registry
    from ecgssl.train import run
    from ecgssl.train.recipes import load_recipe
    from tests.train.train_helpers import ToyDataset, ToyEncoder, ToyMethod, toy_recipe

    torch.set_num_threads(1)
    registry._REGISTRY["toy_conv"] = ToyEncoder
    callbacks = []
    workers = 2 if phase == "workers" else 0

    class Kill(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step < KILL_STEP:
                return
            ckpts = Path(out) / "checkpoints"
            if phase == "torn":  # killed while writing: the two newest files truncated
                for name in ("last.ckpt", f"step{KILL_STEP:07d}.ckpt"):
                    data = (ckpts / name).read_bytes()
                    (ckpts / name).write_bytes(data[: len(data) // 3])
            if phase == "workers":
                kids = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text()
                (Path(out).parent / "worker_pids.txt").write_text(kids)
            die()

    if phase in ("step", "torn", "workers"):
        callbacks.append(Kill())
    if phase == "export":
        real_save = run.export_encoder

        def export_then_die(*a, **k):
            paths = real_save(*a, **k)
            data = paths[0].read_bytes()
            paths[0].write_bytes(data[: len(data) // 2])  # killed while writing the weights
            die()

        run.export_encoder = export_then_die
    pl.seed_everything(0)
    recipe = load_recipe(toy_recipe(train__checkpoint_every_n_steps=1,
                                    data__num_workers=workers))
    return run.fit(recipe, ToyMethod(), ToyDataset(), out, resume=resume,
                   store_config=STORE_CONFIG, callbacks=callbacks)


if __name__ == "__main__":
    what, phase = sys.argv[1], sys.argv[2]
    if what == "prepare":
        prepare(phase, sys.argv[3], sys.argv[4], overwrite="--overwrite" in sys.argv)
    elif what == "pretrain":
        toy_fit(sys.argv[3], phase=phase)
    else:
        raise SystemExit(f"unknown driver {what}")
