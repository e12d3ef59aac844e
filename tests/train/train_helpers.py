"""A tiny SSL method and in-memory dataset for testing the training engine in isolation.

The method has what makes exact resume hard: an EMA target updated after each optimiser step, a
random augmentation drawn from the global numpy RNG in the collate (run in loader workers), a
masking generator of its own (``state_for_resume``), and dropout (global torch RNG).
"""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from ecgssl.methods.base import SSLMethod
from ecgssl.train.schedules import ema_momentum


class ToyEncoder(nn.Module):
    """Conv1d (L -> width, kernel 5, stride 4) + GELU + conv; pooled by the time mean."""

    def __init__(self, n_leads: int = 2, width: int = 8):
        super().__init__()
        self.embed_dim, self.stride = width, 4
        self.spec = {"name": "toy_conv", "overrides": {"n_leads": n_leads, "width": width}}
        self.conv1 = nn.Conv1d(n_leads, width, 5, stride=4, padding=2)
        self.norm = nn.LayerNorm(width)
        self.conv2 = nn.Conv1d(width, width, 3, padding=1)

    def forward_features(self, x, leads=None):
        h = torch.nn.functional.gelu(self.conv1(x))
        h = self.norm(h.transpose(1, 2)).transpose(1, 2)
        return self.conv2(h)

    def feature_pyramid(self, x, leads=None):
        return [self.forward_features(x)]

    def forward(self, x, leads=None):
        return self.forward_features(x).mean(dim=-1)


def toy_collate(items):
    """Stack and make two views with random gain + noise from the global numpy RNG."""
    x = np.stack([it["signal"] for it in items]).astype(np.float32)
    # The legacy global RNG on purpose: it is what the engine seeds per batch.
    gain = np.random.uniform(0.8, 1.2, size=(2, len(items), 1, 1))  # noqa: NPY002
    noise = np.random.normal(0, 0.05, size=(2,) + x.shape)  # noqa: NPY002
    gain, noise = gain.astype(np.float32), noise.astype(np.float32)
    views = gain * x[None] + noise
    return {"signal": torch.from_numpy(x), "view1": torch.from_numpy(views[0]),
            "view2": torch.from_numpy(views[1]),
            "index": torch.tensor([int(it["index"]) for it in items])}


class ToyMethod(SSLMethod):
    """Predict the EMA target's pooled features of view 2 from masked view 1."""

    name = "toy"

    def __init__(self, n_leads: int = 2, width: int = 8, mask_seed: int = 123):
        super().__init__(ToyEncoder(n_leads, width))
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)
        self.predictor = nn.Sequential(nn.Linear(width, width), nn.Dropout(0.2),
                                       nn.Linear(width, width))
        self.mask_gen = torch.Generator().manual_seed(mask_seed)
        self.momenta: list[float] = []

    def make_collate(self):
        return toy_collate

    def training_step_loss(self, batch, step, max_steps):
        x1 = batch["view1"]
        keep = (torch.rand(x1.shape[-1], generator=self.mask_gen) > 0.3).to(x1.dtype)
        z = self.predictor(self.encoder(x1 * keep))
        with torch.no_grad():
            t = self.target(batch["view2"])
        loss = torch.nn.functional.smooth_l1_loss(z, t) + 0.1 * (z.std(0) - 1).abs().mean()
        return loss, {"keep": float(keep.mean())}

    @torch.no_grad()
    def after_optimizer_step(self, step, max_steps):
        m = ema_momentum(step, max_steps, 0.9, 1.0)
        self.momenta.append(m)
        for p_t, p_o in zip(self.target.parameters(), self.encoder.parameters()):
            p_t.mul_(m).add_(p_o.detach(), alpha=1 - m)

    def state_for_resume(self):
        return {"mask_gen": self.mask_gen.get_state()}

    def load_state_for_resume(self, state):
        self.mask_gen.set_state(state["mask_gen"])


class ToyDataset(torch.utils.data.Dataset):
    """``n`` items ``{"signal": float32 (L, T), "index": i, "labels": (2,) uint8}``, made from
    the index on demand (nothing stored, so it pickles small)."""

    def __init__(self, n: int = 40, n_leads: int = 2, n_samples: int = 64):
        self.n, self.n_leads, self.n_samples = n, n_leads, n_samples

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng(1000 + i)
        t = np.linspace(0, 1, self.n_samples, dtype=np.float32)
        freq = 2 + (i % 4)
        sig = np.stack([np.sin(2 * np.pi * freq * t + k) for k in range(self.n_leads)])
        sig = sig + 0.1 * rng.standard_normal(sig.shape)
        labels = np.array([i % 4 >= 2, i % 2], dtype=np.uint8)
        return {"signal": sig.astype(np.float32), "index": i, "labels": labels}


class Recorder(pl.Callback):
    """Records, per optimiser step, the loss and the dataset indices of the batch."""

    def __init__(self):
        self.losses: dict[int, float] = {}
        self.indices: dict[int, list[int]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step  # already incremented: 1-based step just taken
        self.losses[step] = float(outputs["loss"])
        self.indices[step] = batch["index"].tolist()


def toy_recipe(**train):
    base = {"method": {"name": "toy"}, "encoder": {"name": "toy_conv"},
            "data": {"num_workers": 0},
            "train": {"max_epochs": 3, "batch_size": 8, "lr": 1e-2, "min_lr": 1e-4,
                      "warmup_steps": 2,
                      "accelerator": "cpu", "devices": 1, "progress_bar": False,
                      "tensorboard": False, "log_every_n_steps": 1,
                      "checkpoint_every_n_steps": 1}}
    for key, value in train.items():
        section, name = key.split("__")
        base.setdefault(section, {})[name] = value
    return base
