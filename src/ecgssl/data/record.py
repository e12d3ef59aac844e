"""The canonical record type that every reader yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgssl.errors import ECGDataError

# Integer codes of the per-sample wave masks (segmentation targets).
WAVE_NONE, WAVE_P, WAVE_QRS, WAVE_T = 0, 1, 2, 3
WAVE_NAMES = ("none", "P", "QRS", "T")


@dataclass
class Record:
    """One ECG recording, in physical units, as every reader returns it.

    Attributes:
        signal: float32 array (leads, samples) in millivolts.
        fs: sampling rate in Hz.
        leads: canonical lead names, one per row of ``signal`` (see ``ecgssl.data.leads``).
        record_id: unique id within its source (e.g. ``"ludb/1"``).
        patient_id: patient identifier where the source gives one (for patient-wise splits).
        labels: label codes (SNOMED CT codes, SCP codes, LUDB diagnosis strings, ...).
        source: short name of the source ("ludb", "cinc", "ptbxl", "wfdb", "mitdb", ...).
        annotations: source-specific annotations, by convention:
            ``"waves"``: dict lead -> int array (n, 4) of (wave code 1..3, onset, peak, offset)
            in samples of this record; ``"beats"``: dict with ``"samples"`` (int array) and
            ``"symbols"`` (list of str); ``"rhythm"``: list of (start_sample, end_sample, label).
        meta: anything else worth keeping (age, sex, label aggregations, fold, ...).
    """

    signal: np.ndarray
    fs: float
    leads: list[str]
    record_id: str
    patient_id: str | None = None
    labels: list[str] = field(default_factory=list)
    source: str = ""
    annotations: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signal = np.asarray(self.signal, dtype=np.float32)
        if self.signal.ndim != 2:
            raise ECGDataError(
                self.record_id,
                f"signal must be 2-D (leads, samples), got shape {self.signal.shape}",
            )
        if self.signal.shape[0] != len(self.leads):
            raise ECGDataError(
                self.record_id,
                f"{self.signal.shape[0]} signal rows but {len(self.leads)} lead names {self.leads}",
            )
        if not self.fs or self.fs <= 0:
            raise ECGDataError(self.record_id, f"invalid sampling rate {self.fs!r}")
        self.fs = float(self.fs)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        """The samples (mV) of one lead, by canonical name."""
        try:
            return self.signal[self.leads.index(name)]
        except ValueError:
            raise ECGDataError(
                self.record_id, f"has no lead {name!r} (leads: {self.leads})"
            ) from None
