"""Synthetic ECG-like records and a picklable in-memory source for store tests."""

from __future__ import annotations

import numpy as np

from ecgssl.data.leads import LEADS_12
from ecgssl.data.record import Record
from ecgssl.errors import ECGDataError


def synthetic_ecg(n_leads: int = 12, fs: float = 500.0, seconds: float = 10.0, hr: float = 72.0,
                  seed: int = 0) -> np.ndarray:
    """Gaussian-bump P/QRS/T beats plus noise, (n_leads, samples) in mV."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    rr = 60.0 / hr
    x = np.zeros((n_leads, t.size), dtype=np.float64)
    gains = rng.uniform(0.5, 1.5, size=(n_leads, 3))
    for beat in np.arange(0.3, seconds, rr):
        for k, (dt, width, amp) in enumerate([(-0.16, 0.025, 0.15), (0.0, 0.012, 1.0),
                                              (0.25, 0.05, 0.3)]):
            x += gains[:, k : k + 1] * amp * np.exp(-0.5 * ((t - beat - dt) / width) ** 2)
    x += 0.01 * rng.standard_normal(x.shape)
    return x.astype(np.float32)


class SyntheticSource:
    """A picklable source of synthetic records; ids listed in ``bad`` raise ECGDataError."""

    name = "synthetic"
    path = "synthetic://"

    def __init__(self, n: int = 10, fs: float = 500.0, seconds: float = 10.0,
                 bad: tuple[str, ...] = (), leads: list[str] | None = None):
        self.n, self.fs, self.seconds, self.bad = n, fs, seconds, set(bad)
        self.leads = leads or list(LEADS_12)

    def record_ids(self) -> list[str]:
        return [f"syn{i:05d}" for i in range(self.n)]

    def read(self, record_id: str) -> Record:
        if record_id in self.bad:
            raise ECGDataError(record_id, "deliberately bad")
        i = int(record_id[3:])
        signal = synthetic_ecg(len(self.leads), self.fs, self.seconds, hr=60 + i % 40, seed=i)
        return Record(signal=signal, fs=self.fs, leads=list(self.leads), record_id=record_id,
                      patient_id=f"p{i // 2}", labels=["A"] if i % 2 else ["B"],
                      source="synthetic", meta={"fold": i % 10 + 1})

    def __iter__(self):
        for rid in self.record_ids():
            yield self.read(rid)
