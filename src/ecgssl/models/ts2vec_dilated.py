"""TS2Vec's encoder (Yue et al., AAAI 2022, section "Encoder"), written from the paper.

Per time step: an input projection (a linear layer from the L leads to ``hidden`` channels), the
*timestamp masking* point (latent vectors at masked time steps are set to zero during
pretraining; ``forward_features(..., timestamp_mask=...)``), then a stack of residual blocks of
two dilated 1-D convolutions (kernel 3, dilation ``2 ** i`` in block ``i``, GELU before each
convolution) and a last block to ``out_dim`` channels. The paper: 10 hidden blocks of 64 channels,
320 output channels; the receptive field doubles with every block. Stride 1: one feature vector
per input sample, ``forward_features`` (B, out_dim, T).

``forward`` pools over time (``ecgssl.models.pooling``); TS2Vec's own instance representation is
the maximum over time, which ``pool="meanmax"`` contains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ecgssl.errors import SpecMismatchError
from ecgssl.models.pooling import check_pool, pool_features, pooled_dim
from ecgssl.models.registry import register_encoder


class DilatedBlock(nn.Module):
    """GELU -> dilated conv -> GELU -> dilated conv, plus the input (1x1-projected when the
    width changes or on the last block, as in the paper's figure)."""

    def __init__(self, c_in: int, c_out: int, dilation: int, kernel: int = 3,
                 project: bool = False):
        super().__init__()
        pad = (kernel - 1) * dilation // 2  # "same" length for odd kernels
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=pad, dilation=dilation)
        self.skip = nn.Conv1d(c_in, c_out, 1) if (project or c_in != c_out) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.gelu(x))
        y = self.conv2(F.gelu(y))
        return y + self.skip(x)


class TS2VecEncoder(nn.Module):
    """TS2Vec's dilated convolutional encoder over (B, L, T) mV.

    Args:
        n_leads: L input channels.
        hidden: width of the input projection and hidden blocks (paper 64).
        depth: hidden residual blocks (paper 10); one more block maps to ``out_dim``.
        out_dim: feature channels D (paper 320).
        kernel: convolution width (paper 3; odd).
        dropout: dropout on the output features while training (paper 0.1).
        leads: names of the input rows (checked when a call names its leads).
        pool: ``forward``'s pooling ("mean" or "meanmax").
    """

    stride = 1
    takes_lead_names = False  # built for a fixed lead set, like the CNNs
    supports_timestamp_mask = True

    def __init__(self, n_leads: int = 12, hidden: int = 64, depth: int = 10, out_dim: int = 320,
                 kernel: int = 3, dropout: float = 0.1, leads: Sequence[str] | None = None,
                 pool: str = "mean"):
        super().__init__()
        self.pool = check_pool(pool)
        for name, value in (("n_leads", n_leads), ("hidden", hidden), ("depth", depth),
                            ("out_dim", out_dim)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if kernel % 2 == 0 or kernel < 1:
            raise ValueError(f"kernel must be odd, got {kernel}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if leads is not None and len(leads) != n_leads:
            raise ValueError(f"leads {list(leads)} do not match n_leads={n_leads}")
        self.n_leads = int(n_leads)
        self.leads = list(leads) if leads is not None else None
        self.embed_dim = int(out_dim)
        self.input_fc = nn.Linear(self.n_leads, int(hidden))
        widths = [int(hidden)] * int(depth) + [int(out_dim)]
        self.blocks = nn.ModuleList(
            DilatedBlock(widths[i - 1] if i else int(hidden), widths[i], 2 ** i, kernel,
                         project=i == len(widths) - 1)
            for i in range(len(widths)))
        self.dropout = nn.Dropout(dropout)
        self.spec = {"name": "ts2vec_dilated", "n_leads": self.n_leads, "hidden": int(hidden),
                     "depth": int(depth), "out_dim": int(out_dim), "kernel": int(kernel),
                     "dropout": float(dropout), "leads": self.leads, "pool": self.pool}

    def _check(self, x: torch.Tensor, leads: Sequence[str] | None) -> None:
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            raise SpecMismatchError(f"ts2vec_dilated expects (B, {self.n_leads}, T), got "
                                    f"{tuple(x.shape)}")
        if leads is not None and self.leads is not None and list(leads) != self.leads:
            raise SpecMismatchError(f"ts2vec_dilated was built for leads {self.leads}, got "
                                    f"{list(leads)}")

    def forward_features(self, x: torch.Tensor, leads: Sequence[str] | None = None,
                         timestamp_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, T) mV -> (B, D, T).

        ``timestamp_mask`` (B, T) bool, True = masked: the projected latent vectors at those time
        steps are zeroed before the convolutions (TS2Vec's timestamp masking; pretraining only).
        """
        self._check(x, leads)
        h = self.input_fc(x.transpose(1, 2))  # (B, T, hidden)
        if timestamp_mask is not None:
            if timestamp_mask.shape != h.shape[:2]:
                raise ValueError(f"timestamp_mask must be {tuple(h.shape[:2])}, got "
                                 f"{tuple(timestamp_mask.shape)}")
            h = h.masked_fill(timestamp_mask.to(h.device)[..., None], 0.0)
        h = h.transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        return self.dropout(h)

    def feature_pyramid(self, x: torch.Tensor, leads: Sequence[str] | None = None):
        """[forward_features(x)]: one map at stride 1."""
        return [self.forward_features(x, leads)]

    @property
    def pooled_dim(self) -> int:
        return pooled_dim(self.embed_dim, self.pool)

    def forward(self, x: torch.Tensor, leads: Sequence[str] | None = None) -> torch.Tensor:
        """(B, L, T) -> (B, pooled_dim)."""
        return pool_features(self.forward_features(x, leads), self.pool, dim=-1)


@register_encoder("ts2vec_dilated")
def ts2vec_dilated(**kwargs) -> TS2VecEncoder:
    """The published size by default (hidden 64, 10 blocks, 320 output channels)."""
    kwargs.pop("name", None)
    return TS2VecEncoder(**kwargs)
