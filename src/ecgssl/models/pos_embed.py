"""Fixed sine-cosine positional embeddings, numerically identical to the original ECG-JEPA.

The original computes the tables in float64 (numpy) and stores them as float32; we do the same
in torch float64 so that released checkpoints' ``pos_embed`` rows are reproduced bit for bit.
"""

from __future__ import annotations

import torch

_BASE = 10000.0


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """1-D sin-cos code of integer (or real) positions.

    Args:
        dim: even embedding width.
        positions: (N,) positions (any numeric dtype).
    Returns:
        (N, dim) float64: ``[sin(pos * w_k) for k] ++ [cos(pos * w_k) for k]`` with
        ``w_k = 10000 ** (-k / (dim / 2))``, ``k = 0 .. dim/2 - 1``.
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"sin-cos embedding width must be a positive even number, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / _BASE**omega
    angles = positions.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, n_leads: int, n_patches: int) -> torch.Tensor:
    """2-D (lead, time) sin-cos embedding for a lead-major token grid.

    Row ``lead * n_patches + patch`` is ``sincos_1d(dim/2, patch) ++ sincos_1d(dim/2, lead)``:
    the FIRST half of the channels codes the time patch index and the SECOND half the lead index
    (this is what the original's ``get_2d_sincos_pos_embed(dim, c, p)`` produces).

    Returns:
        (n_leads * n_patches, dim) float32.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding width must be divisible by 4, got {dim}")
    if n_leads < 1 or n_patches < 1:
        raise ValueError(f"need n_leads >= 1 and n_patches >= 1, got {n_leads}, {n_patches}")
    lead = torch.arange(n_leads).repeat_interleave(n_patches)
    time = torch.arange(n_patches).repeat(n_leads)
    table = torch.cat([sincos_1d(dim // 2, time), sincos_1d(dim // 2, lead)], dim=1)
    return table.to(torch.float32)


def time_sincos(dim: int, n_patches: int) -> torch.Tensor:
    """The JEPA predictor's time embedding, (n_patches, dim) float32.

    The original builds it as a 2-D embedding over a grid of ONE lead, so the second half of the
    channels is the constant code of lead 0 (zeros then ones); we keep that for compatibility.
    """
    return sincos_2d(dim, 1, n_patches)
