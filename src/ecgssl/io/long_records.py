"""Long recordings (Holter-like) with beat and rhythm annotations, and fixed-length windows.

Handles e.g. MIT-BIH Arrhythmia record 100 (format 212, 360 Hz, MLII + V5, ``.atr`` reference
beats) and CPSC 2021 (200 Hz, float gains, negative baselines, rhythm changes ``(AFIB``/``(N`` as
``+`` annotations with aux text).

``annotations["beats"]``: ``{"samples": int64 (n,), "symbols": list[str]}`` for the MIT beat
symbols (``BEAT_SYMBOLS``). ``annotations["rhythm"]``: list of ``(start, end, label)`` half-open
sample ranges, one per rhythm-change annotation, each lasting until the next change or the
record end; the label is the aux text without ``(`` (``"AFIB"``, ``"N"``, ``"AFL"`` ...). A change
on the last sample (CPSC 2021's inclusive episode end) extends the previous episode to the end.

Patient ids: from a ``patient``/``subject`` header comment; CPSC 2021 names ``data_<patient>_<k>``
give the patient; otherwise the record id (MIT-BIH: one patient per record, except 201/202).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ecgssl.data.record import Record
from ecgssl.data.windowing import iter_windows, window_starts  # noqa: F401  (re-exported)
from ecgssl.errors import ECGDataError
from ecgssl.io.checks import SignalChecks
from ecgssl.io.mitann import read_annotations
from ecgssl.io.wfdb_record import read_wfdb

# MIT-BIH beat annotation symbols (non-beat annotations such as '+', '~', '|' are excluded).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
# Long records are checked for NaNs and flat leads only: one artefact spike in 30 min must not
# reject the whole recording (windows can be checked again when they are prepared).
LONG_RECORD_CHECKS = SignalChecks(max_abs_mv=None)
_CPSC_NAME = re.compile(r"^data_(\d+)_\d+$")


def rhythm_segments(samples: np.ndarray, symbols: list[str], aux: list[str],
                    n_samples: int) -> list[tuple[int, int, str]]:
    """Rhythm episodes from rhythm-change annotations (``+`` with aux ``(LABEL``)."""
    changes = []
    for s, sym, text in zip(samples.tolist(), symbols, aux):
        text = text.strip().rstrip("\x00")
        if sym == "+" and text.startswith("("):
            changes.append((int(s), text[1:].strip()))
    changes.sort(key=lambda c: c[0])
    out = []
    for k, (start, label) in enumerate(changes):
        end = changes[k + 1][0] if k + 1 < len(changes) else n_samples
        start, end = max(start, 0), min(end, n_samples)
        # CPSC 2021 closes an episode with "(N" on its last sample (inclusive end), which would
        # leave a one-sample "N" tail; changes on the last sample or later carry no rhythm.
        if end > start and start < n_samples - 1:
            out.append((start, end, label))
        elif out and start >= n_samples - 1:
            out[-1] = (out[-1][0], n_samples, out[-1][2])
    return out


def read_long_record(path: str | Path, record_id: str | None = None, source: str = "long",
                     ann_ext: str | None = "atr",
                     checks: SignalChecks | None = LONG_RECORD_CHECKS) -> Record:
    """Read a long WFDB record and its annotation file ``<path>.<ann_ext>`` when present.

    Returns:
        Record with ``annotations["beats"]`` and ``["rhythm"]`` (empty when there is no annotation
        file), labels ``"rhythm:<label>"`` for the rhythms present, meta ``comments``.
    """
    base = Path(path)
    if base.suffix in (".hea", ".dat", ".atr"):
        base = base.with_suffix("")
    rid = record_id or f"{source}/{base.name}"
    record = read_wfdb(base, record_id=rid, source=source, checks=checks)
    if record.patient_id is None:
        m = _CPSC_NAME.match(base.name)
        record.patient_id = f"{source}/patient_{m.group(1)}" if m else rid
    samples, symbols, rhythm = np.zeros(0, dtype=np.int64), [], []
    ann_path = Path(f"{base}.{ann_ext}") if ann_ext else None
    if ann_path is not None and ann_path.is_file():
        ann = read_annotations(ann_path, rid)
        sym = ann.symbol
        is_beat = np.array([s in BEAT_SYMBOLS for s in sym], dtype=bool)
        samples = ann.sample[is_beat]
        symbols = [s for s, b in zip(sym, is_beat) if b]
        rhythm = rhythm_segments(ann.sample, sym, ann.aux, record.n_samples)
        if samples.size and (samples.min() < 0 or samples.max() >= record.n_samples):
            raise ECGDataError(rid, f"beat annotations outside the record (0..{record.n_samples})")
    record.annotations = {"beats": {"samples": samples.astype(np.int64), "symbols": symbols},
                          "rhythm": rhythm}
    record.labels = sorted({f"rhythm:{lab}" for _, _, lab in rhythm})
    return record
