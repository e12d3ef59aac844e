"""1-D convolutional encoders over (B, L, T) with the leads as input channels.

Two families, both with five pyramid levels at strides 1, 2, 4, 8, 16 (total stride 16, so a beat
window of 0.7 s at 250 Hz spans about 11 feature steps and can be RoI-pooled):

- ``resnet1d_*``: a stride-1 stem convolution, then four stages of residual basic blocks
  (He et al. 2016, 1-D, as in the ECG ResNets of Strodthoff et al. 2021); the first block of each
  stage halves the time axis.
- ``unet1d``: the contracting path of a 1-D U-Net (Ronneberger et al. 2015; Moskalenko et al.
  2019 for ECG delineation): double convolutions, max-pool by 2 between levels. A segmentation
  decoder can be built on ``feature_pyramid`` with ``pyramid_strides`` / ``pyramid_channels``.

Normalisation: GroupNorm by default. It does not depend on the batch, so it behaves the same for
batch 2 on a CPU and batch 512 over 8 GPUs (no SyncBatchNorm needed under DDP), and contrastive
losses cannot "cheat" through batch statistics shared by the two views (the reason SimCLR needs
global BatchNorm). ``norm="batch"`` is available (convert with SyncBatchNorm for DDP yourself).

Lengths not divisible by 16 are right-padded with zeros to the next multiple and every map is
cropped back to ``T // stride_level`` (``T' = T // stride`` as in docs/architecture.md), so
feature step ``j`` covers input samples ``[j * stride, (j + 1) * stride)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ecgssl.errors import SpecMismatchError
from ecgssl.models.pooling import check_pool, pool_features, pooled_dim
from ecgssl.models.registry import register_encoder

NORMS = ("group", "batch")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class BasicBlock1d(nn.Module):
    """Two ``k``-wide convolutions with a residual connection (projected when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: str):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad, bias=False)
        self.norm1 = _norm(norm, c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=pad, bias=False)
        self.norm2 = _norm(norm, c_out)
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            # Average-pool then 1x1 (ResNet-D): the shortcut sees every sample, not one in two.
            self.skip = nn.Sequential(
                nn.AvgPool1d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                nn.Conv1d(c_in, c_out, 1, bias=False), _norm(norm, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + self.skip(x))


class _Encoder1d(nn.Module):
    """Shared interface (docs/architecture.md): stride, embed_dim, pyramid, pooled forward."""

    stride = 16
    pyramid_strides = (1, 2, 4, 8, 16)
    # Capability (docs/architecture.md): a CNN reads the leads it was built for, in order; it
    # is called without lead names.
    takes_lead_names = False

    def __init__(self, name: str, n_leads: int, leads: Sequence[str] | None, norm: str,
                 pool: str = "mean"):
        super().__init__()
        self.pool = check_pool(pool)
        if n_leads < 1:
            raise ValueError(f"n_leads must be >= 1, got {n_leads}")
        if leads is not None and len(leads) != n_leads:
            raise ValueError(f"leads {list(leads)} do not match n_leads={n_leads}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.name = name
        self.n_leads = n_leads
        self.leads = list(leads) if leads is not None else None

    def _levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def _check(self, x: torch.Tensor, leads: Sequence[str] | None) -> None:
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            raise SpecMismatchError(f"{self.name} expects (B, {self.n_leads}, T), got "
                                    f"{tuple(x.shape)}")
        if x.shape[-1] < self.stride:
            raise SpecMismatchError(f"{self.name} needs T >= {self.stride}, got {x.shape[-1]}")
        if leads is not None and self.leads is not None and list(leads) != self.leads:
            raise SpecMismatchError(f"{self.name} was built for leads {self.leads}, got "
                                    f"{list(leads)}")

    def feature_pyramid(self, x: torch.Tensor, leads: Sequence[str] | None = None):
        """Feature maps finest to coarsest: (B, pyramid_channels[k], T // pyramid_strides[k])."""
        self._check(x, leads)
        t = x.shape[-1]
        pad = (-t) % self.stride
        if pad:
            x = F.pad(x, (0, pad))
        maps = self._levels(x)
        return [m[..., : t // s] for m, s in zip(maps, self.pyramid_strides)]

    def forward_features(self, x: torch.Tensor, leads: Sequence[str] | None = None):
        """(B, L, T) mV -> (B, embed_dim, T // stride)."""
        return self.feature_pyramid(x, leads)[-1]

    @property
    def pooled_dim(self) -> int:
        """Length of ``forward``'s output: embed_dim ("mean") or 2 embed_dim ("meanmax")."""
        return pooled_dim(self.embed_dim, self.pool)

    def forward(self, x: torch.Tensor, leads: Sequence[str] | None = None) -> torch.Tensor:
        """(B, L, T) -> (B, pooled_dim): the last feature map pooled over time (``pool``)."""
        return pool_features(self.forward_features(x, leads), self.pool, dim=-1)


class ResNet1d(_Encoder1d):
    """ResNet-style 1-D encoder; ``widths`` = channels at strides 1, 2, 4, 8, 16."""

    def __init__(self, name: str = "resnet1d", n_leads: int = 12,
                 widths: Sequence[int] = (32, 64, 96, 128, 256),
                 depths: Sequence[int] = (1, 1, 1, 1), kernel: int = 7, stem_kernel: int = 15,
                 norm: str = "group", leads: Sequence[str] | None = None, pool: str = "mean"):
        super().__init__(name, n_leads, leads, norm, pool)
        if len(widths) != 5 or len(depths) != 4 or min(widths) < 1 or min(depths) < 1:
            raise ValueError("widths needs 5 positive entries and depths 4 positive entries")
        if kernel % 2 == 0 or stem_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd (centred, 'same' padding)")
        self.stem = nn.Sequential(
            nn.Conv1d(n_leads, widths[0], stem_kernel, padding=stem_kernel // 2, bias=False),
            _norm(norm, widths[0]), nn.ReLU())
        stages = []
        for i, depth in enumerate(depths):
            blocks = [BasicBlock1d(widths[i], widths[i + 1], kernel, 2, norm)]
            blocks += [BasicBlock1d(widths[i + 1], widths[i + 1], kernel, 1, norm)
                       for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.pyramid_channels = tuple(int(w) for w in widths)
        self.embed_dim = int(widths[-1])
        self.spec = {"name": name, "n_leads": n_leads, "widths": list(self.pyramid_channels),
                     "depths": [int(d) for d in depths], "kernel": kernel,
                     "stem_kernel": stem_kernel, "norm": norm, "leads": self.leads,
                     "pool": self.pool}

    def _levels(self, x):
        maps = [self.stem(x)]
        for stage in self.stages:
            maps.append(stage(maps[-1]))
        return maps


class UNetEncoder1d(_Encoder1d):
    """Contracting path of a 1-D U-Net: double conv at each level, max-pool 2 between levels."""

    def __init__(self, name: str = "unet1d", n_leads: int = 12,
                 widths: Sequence[int] = (16, 32, 64, 128, 256), kernel: int = 9,
                 norm: str = "group", leads: Sequence[str] | None = None, pool: str = "mean"):
        super().__init__(name, n_leads, leads, norm, pool)
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError("widths needs 5 positive entries (strides 1, 2, 4, 8, 16)")
        if kernel % 2 == 0:
            raise ValueError("kernel must be odd")
        chans = [n_leads, *widths]
        self.levels = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(chans[i], chans[i + 1], kernel, padding=kernel // 2, bias=False),
                _norm(norm, chans[i + 1]), nn.ReLU(),
                nn.Conv1d(chans[i + 1], chans[i + 1], kernel, padding=kernel // 2, bias=False),
                _norm(norm, chans[i + 1]), nn.ReLU())
            for i in range(5))
        self.pyramid_channels = tuple(int(w) for w in widths)
        self.embed_dim = int(widths[-1])
        self.spec = {"name": name, "n_leads": n_leads, "widths": list(self.pyramid_channels),
                     "kernel": kernel, "norm": norm, "leads": self.leads, "pool": self.pool}

    def _levels(self, x):
        maps = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else F.max_pool1d(x, 2))
            maps.append(x)
        return maps


def _spec_kwargs(kwargs: dict) -> dict:
    kwargs.pop("name", None)  # a spec carries its own name; the registry key decides it
    return kwargs


@register_encoder("resnet1d_small")
def resnet1d_small(**kwargs) -> ResNet1d:
    """About 1.1 M parameters (12 leads): widths 32-64-96-128-256, 1 block per stage."""
    cfg = {"widths": (32, 64, 96, 128, 256), "depths": (1, 1, 1, 1), "kernel": 7}
    cfg.update(_spec_kwargs(kwargs))
    return ResNet1d(name="resnet1d_small", **cfg)


@register_encoder("resnet1d_base")
def resnet1d_base(**kwargs) -> ResNet1d:
    """About 8.7 M parameters (12 leads): widths 64-64-128-256-512, 2 blocks per stage."""
    cfg = {"widths": (64, 64, 128, 256, 512), "depths": (2, 2, 2, 2), "kernel": 7}
    cfg.update(_spec_kwargs(kwargs))
    return ResNet1d(name="resnet1d_base", **cfg)


@register_encoder("unet1d")
def unet1d(**kwargs) -> UNetEncoder1d:
    """U-Net contracting path, widths 16-32-64-128-256, kernel 9."""
    cfg = {"widths": (16, 32, 64, 128, 256), "kernel": 9}
    cfg.update(_spec_kwargs(kwargs))
    return UNetEncoder1d(name="unet1d", **cfg)
