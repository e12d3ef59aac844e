"""Torch datasets over prepared stores, and the default collate."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ecgssl.data.store import ECGStore
from ecgssl.errors import SpecMismatchError

# Fields that vary in length per window (beats): kept as lists, not stacked.
RAGGED_FIELDS = ("rpeaks", "beat_features", "beat_classes")


class StoreDataset(Dataset):
    """Map-style dataset over a prepared store (or a subset of its windows).

    Items are dicts of numpy arrays: ``signal`` (L, T) float32 mV for the selected leads,
    ``index`` (window index in the store), ``labels`` (K,), and the store's extras.
    The memmaps are opened lazily in each worker, so the dataset pickles small and memory stays
    flat however large the store is.

    Args:
        store: an ``ECGStore`` or its path.
        indices: windows to use (default: all).
        leads: lead names to return, in this order (default: all of the store's leads).
        fields: extra item keys to keep (default: all available); ``signal`` and ``index`` are
            always kept.
    """

    def __init__(self, store: ECGStore | str | os.PathLike, indices: Sequence[int] | None = None,
                 leads: Sequence[str] | None = None, fields: Sequence[str] | None = None):
        self.store = store if isinstance(store, ECGStore) else ECGStore(store)
        n = len(self.store)
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n):
            raise IndexError(f"indices out of range for store of {n} windows")
        store_leads = self.store.leads
        if leads is None:
            self.lead_rows = None
            self.leads = store_leads
        else:
            missing = [name for name in leads if name not in store_leads]
            if missing:
                raise SpecMismatchError(
                    f"store {self.store.path} has no leads {missing} (it has {store_leads})"
                )
            self.lead_rows = np.array([store_leads.index(name) for name in leads])
            self.leads = list(leads)
        self.fields = None if fields is None else set(fields) | {"signal", "index"}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.store[int(self.indices[i])]
        if self.lead_rows is not None:
            for key in ("signal", "lead_mask", "masks", "spans"):
                if key in item:
                    item[key] = item[key][self.lead_rows]
        if self.fields is not None:
            item = {k: v for k, v in item.items() if k in self.fields}
        return item


def default_collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack fixed-size fields into tensors; keep ragged beat fields as lists of tensors."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in RAGGED_FIELDS:
            batch[key] = [torch.as_tensor(np.asarray(v)) for v in values]
        elif key == "index":
            batch[key] = torch.as_tensor(np.asarray(values, dtype=np.int64))
        else:
            batch[key] = torch.as_tensor(np.stack(values))
    if "signal" in batch:
        batch["signal"] = batch["signal"].float()
    return batch
