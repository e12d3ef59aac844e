"""Time-column masks for ECG-JEPA: whole time patches masked in every lead at once.

A mask is a bool tensor, True = masked (hidden from the context encoder, predicted):
``(P,)`` when one mask is shared by the batch (the original), ``(B, P)`` per sample.

Per-sample masks must keep the same number of visible columns in every row so the context
tokens stay a rectangular (B, L * P_vis, D) tensor. We draw each row independently, then bring
every row to the batch's smallest visible count by masking extra visible columns chosen at random
(with the same generator). Rows therefore contain their drawn blocks plus a few random columns;
the realised ratio is slightly above the per-row draw (by the spread of the draws in the batch).
"""

from __future__ import annotations

from typing import Any

import torch

MASK_TYPES = ("block", "random")


class TimeColumnMasker:
    """Draws time-column masks with its own seeded ``torch.Generator``.

    Args:
        n_patches: P, time columns (50 in the original).
        mask_type: "block" (union of ``n_blocks`` contiguous blocks, each a fraction uniform in
            ``block_scale`` of the columns; the paper's multi-block) or "random" (a fraction uniform
            in ``ratio`` of the columns, scattered).
        ratio: (low, high) masked fraction for "random" (paper: 0.6-0.7).
        block_scale: (low, high) fraction per block for "block" (paper: 0.175-0.225).
        n_blocks: blocks in the union (paper: 4).
        per_sample: one mask per sample instead of one per batch (see module doc).
        seed: generator seed.

    The count is ``int(P * fraction)`` (floor) as in the original. A block's start is uniform over
    all ``P - n + 1`` positions; the original draws from ``P - n`` (so it never masks the last
    column), a quirk we do not copy.
    """

    def __init__(self, n_patches: int = 50, mask_type: str = "block",
                 ratio: tuple[float, float] = (0.6, 0.7),
                 block_scale: tuple[float, float] = (0.175, 0.225), n_blocks: int = 4,
                 per_sample: bool = False, seed: int = 0):
        if mask_type not in MASK_TYPES:
            raise ValueError(f"unknown mask_type {mask_type!r}; known: {MASK_TYPES}")
        if int(n_patches) != n_patches or n_patches < 2:
            raise ValueError(f"n_patches must be an integer >= 2, got {n_patches!r}")
        for name, (low, high) in (("ratio", ratio), ("block_scale", block_scale)):
            if not 0.0 < low <= high < 1.0:
                raise ValueError(f"{name} must satisfy 0 < low <= high < 1, got {(low, high)}")
        if mask_type == "random":
            if int(n_patches * ratio[0]) < 1 or int(n_patches * ratio[1]) > n_patches - 1:
                raise ValueError(f"ratio {ratio} of {n_patches} columns must mask at least one "
                                 "and leave at least one visible")
        else:
            if n_blocks < 1:
                raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
            if int(n_patches * block_scale[0]) < 1:
                raise ValueError(f"block_scale {block_scale} gives empty blocks of {n_patches}")
            if n_blocks * int(n_patches * block_scale[1]) >= n_patches:
                raise ValueError(f"{n_blocks} blocks of up to {block_scale[1]} could mask all "
                                 f"{n_patches} columns")
        self.n_patches = int(n_patches)
        self.mask_type = mask_type
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.block_scale = (float(block_scale[0]), float(block_scale[1]))
        self.n_blocks = int(n_blocks)
        self.per_sample = bool(per_sample)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def _uniform(self, low: float, high: float) -> float:
        return low + (high - low) * torch.rand(1, generator=self.generator).item()

    def _one(self) -> torch.Tensor:
        """One (P,) mask."""
        mask = torch.zeros(self.n_patches, dtype=torch.bool)
        if self.mask_type == "random":
            n_mask = int(self.n_patches * self._uniform(*self.ratio))
            mask[torch.randperm(self.n_patches, generator=self.generator)[:n_mask]] = True
            return mask
        for _ in range(self.n_blocks):
            n_mask = int(self.n_patches * self._uniform(*self.block_scale))
            start = int(torch.randint(0, self.n_patches - n_mask + 1, (1,),
                                      generator=self.generator))
            mask[start:start + n_mask] = True
        return mask

    def __call__(self, batch_size: int = 1) -> torch.Tensor:
        """A (P,) mask (shared) or a (batch_size, P) mask (per sample, equal counts per row)."""
        if not self.per_sample:
            return self._one()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        masks = torch.stack([self._one() for _ in range(batch_size)])
        n_visible = int((~masks).sum(1).min())
        for row in masks:
            visible = (~row).nonzero(as_tuple=True)[0]
            extra = len(visible) - n_visible
            if extra > 0:
                pick = torch.randperm(len(visible), generator=self.generator)[:extra]
                row[visible[pick]] = True
        return masks

    # -- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def config(self) -> dict[str, Any]:
        return {"n_patches": self.n_patches, "mask_type": self.mask_type,
                "ratio": list(self.ratio), "block_scale": list(self.block_scale),
                "n_blocks": self.n_blocks, "per_sample": self.per_sample, "seed": self.seed}


def split_columns(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Visible and masked column indices, each ascending.

    Args:
        mask: (P,) or (B, P) bool, True = masked; rows of a (B, P) mask must have equal counts.
    Returns:
        (visible (P_vis,) or (B, P_vis), masked (P_mask,) or (B, P_mask)) int64.
    """
    if mask.dtype != torch.bool or mask.ndim not in (1, 2):
        raise ValueError(f"mask must be a (P,) or (B, P) bool tensor, got {mask.dtype} "
                         f"{tuple(mask.shape)}")
    counts = mask.sum(-1)
    if mask.ndim == 2 and not bool((counts == counts[0]).all()):
        raise ValueError(f"per-sample masks must mask equal counts per row, got {counts.tolist()}")
    n_mask = int(counts.reshape(-1)[0])
    if n_mask == 0 or n_mask == mask.shape[-1]:
        raise ValueError(f"mask hides {n_mask} of {mask.shape[-1]} columns; need 1..P-1")
    # Stable sort on the mask value: visible (False) columns first, each group ascending.
    order = torch.sort(mask.to(torch.uint8), dim=-1, stable=True).indices
    n_vis = mask.shape[-1] - n_mask
    return order[..., :n_vis], order[..., n_vis:]
