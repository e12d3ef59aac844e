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
        ids: add ``patient_code`` and ``record_code`` (int64) to every item: the codes of the
            manifest's ``patient_id`` and ``parent_id`` (the source record a window was cut
            from), numbered over the whole store, so windows of one patient / record share a code
            (CLOCS-style patient-specific contrast needs them in the batch). The manifest is read
            once here, in the main process; a window without a patient id gets its record's id
            as its patient (counted in ``ids_report``).
    """

    def __init__(self, store: ECGStore | str | os.PathLike, indices: Sequence[int] | None = None,
                 leads: Sequence[str] | None = None, fields: Sequence[str] | None = None,
                 ids: bool = False):
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
        self.patient_codes = self.record_codes = None
        self.ids_report: dict[str, int] = {}
        if ids:
            self.fields = None if self.fields is None else \
                self.fields | {"patient_code", "record_code"}
            self._load_ids()

    def _load_ids(self) -> None:
        import pandas as pd

        manifest = self.store.manifest
        record = manifest["parent_id"] if "parent_id" in manifest else manifest["record_id"]
        record = record.astype(str)
        patient = manifest["patient_id"] if "patient_id" in manifest else \
            pd.Series([None] * len(manifest))
        missing = patient.isna() | (patient.astype(str).str.strip() == "")
        patient = patient.astype(str).where(~missing, "record:" + record)
        self.record_codes = pd.factorize(record)[0].astype(np.int64)
        self.patient_codes = pd.factorize(patient)[0].astype(np.int64)
        self.ids_report = {"windows_without_patient_id": int(missing.sum()),
                           "patients": int(self.patient_codes.max(initial=-1) + 1),
                           "records": int(self.record_codes.max(initial=-1) + 1)}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.store[int(self.indices[i])]
        if self.lead_rows is not None:
            for key in ("signal", "lead_mask", "masks", "spans"):
                if key in item:
                    item[key] = item[key][self.lead_rows]
        if self.patient_codes is not None:
            j = int(self.indices[i])
            item["patient_code"] = np.int64(self.patient_codes[j])
            item["record_code"] = np.int64(self.record_codes[j])
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
