"""Classical delineation baselines (neurokit2), scored with the same metric code as the networks.

For one lead: ``nk.ecg_clean`` (neurokit method) -> R peaks by ``nk.ecg_peaks`` ->
``nk.ecg_delineate`` with ``method`` ``"dwt"`` (neurokit's default, discrete wavelet
transform), ``"prominence"`` (Emrich et al. 2023) or ``"peak"`` (derivative-based; it gives only
P onsets and T offsets, no QRS onset/offset, P offset or T onset: the missing points simply count
as undetected). The per-beat onset/offset lists become a wave array ``(code, onset, offset)``
(offset inclusive, -1 for a NaN point; see ``ecgssl.eval.postprocess``): P from
``ECG_P_Onsets/Offsets``, QRS from ``ECG_R_Onsets/Offsets``, T from ``ECG_T_Onsets/Offsets``.

A lead on which neurokit fails (too few R peaks, exceptions inside neurokit) is skipped and
reported in ``BaselineResult.failures``; it is not scored. LUDB leads are read with
``ecgssl.io.ludb`` (``ludb_annotated_leads``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgssl.data.leads import canonical_lead
from ecgssl.data.record import WAVE_P, WAVE_QRS, WAVE_T
from ecgssl.errors import ECGDataError
from ecgssl.eval.postprocess import EMPTY_WAVES
from ecgssl.eval.segmentation_metrics import SegmentationScorer

NK_METHODS = ("dwt", "prominence", "peak")
_NK_KEYS = {WAVE_P: ("ECG_P_Onsets", "ECG_P_Offsets"),
            WAVE_QRS: ("ECG_R_Onsets", "ECG_R_Offsets"),
            WAVE_T: ("ECG_T_Onsets", "ECG_T_Offsets")}


def _as_points(values, n_samples: int) -> np.ndarray:
    """neurokit point list (ints, NaN, None) -> int64 array with -1 for missing/out of range."""
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out = np.full(arr.shape, -1, dtype=np.int64)
    ok = np.isfinite(arr)
    out[ok] = np.round(arr[ok]).astype(np.int64)
    out[(out < 0) | (out >= n_samples)] = -1
    return out


def nk_waves_to_array(nk_waves: dict, n_samples: int) -> np.ndarray:
    """neurokit ``ecg_delineate`` info dict -> (n, 3) wave array sorted by onset.

    Onsets and offsets of one class are paired by beat (neurokit returns aligned per-beat lists);
    a beat with both points missing gives no wave. Keys the method does not produce are skipped.
    """
    rows = []
    for code, (on_key, off_key) in _NK_KEYS.items():
        on = _as_points(nk_waves.get(on_key, []), n_samples)
        off = _as_points(nk_waves.get(off_key, []), n_samples)
        if on.size != off.size:  # not aligned: keep each point as its own half-wave
            rows += [(code, o, -1) for o in on if o >= 0] + [(code, -1, o) for o in off if o >= 0]
            continue
        rows += [(code, a, b) for a, b in zip(on, off) if a >= 0 or b >= 0]
    if not rows:
        return EMPTY_WAVES.copy()
    arr = np.asarray(rows, dtype=np.int64)
    key = np.where(arr[:, 1] >= 0, arr[:, 1], arr[:, 2])
    return arr[np.argsort(key, kind="stable")]


def nk_delineate_lead(signal, fs: float, method: str = "prominence",
                      record_id: str = "?") -> np.ndarray:
    """Delineate one lead with neurokit2.

    Args:
        signal: (T,) float in mV.
        fs: sampling rate (Hz).
        method: ``"dwt"``, ``"prominence"`` or ``"peak"``.
    Returns:
        (n, 3) int64 wave array ``(code, onset, offset)``.
    Raises:
        ECGDataError: bad input, fewer than 2 R peaks, or neurokit failing on this lead.
    """
    import neurokit2 as nk

    if method not in NK_METHODS:
        raise ValueError(f"method must be one of {NK_METHODS}, got {method!r}")
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise ECGDataError(record_id, f"lead signal must be 1-D, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ECGDataError(record_id, "lead signal contains NaN or inf")
    if np.ptp(x) == 0:
        raise ECGDataError(record_id, "lead signal is flat")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cleaned = nk.ecg_clean(x, sampling_rate=fs, method="neurokit")
            _, info = nk.ecg_peaks(cleaned, sampling_rate=fs)
            rpeaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
            if rpeaks.size < 2:
                raise ECGDataError(record_id, f"neurokit found {rpeaks.size} R peaks (< 2)")
            _, waves = nk.ecg_delineate(cleaned, rpeaks, sampling_rate=fs, method=method)
    except ECGDataError:
        raise
    except Exception as exc:  # neurokit raises many kinds of errors on odd signals
        raise ECGDataError(record_id, f"neurokit {method} failed: {type(exc).__name__}: "
                                      f"{exc}") from exc
    return nk_waves_to_array(waves, x.size)


@dataclass
class AnnotatedLead:
    """One lead with expert waves: the unit the baselines are scored on."""

    record_id: str
    lead: str
    signal: np.ndarray  # (T,) float32 mV
    fs: float
    waves: np.ndarray  # (n, 3) expert (code, onset, offset), -1 unknown
    span: tuple[int, int]  # annotated span [start, end)


@dataclass
class BaselineResult:
    """Scores of one delineator over many leads, with failures and timing."""

    method: str
    scorer: SegmentationScorer
    failures: list[dict] = field(default_factory=list)
    n_leads: int = 0
    seconds: float = 0.0
    # (record_id, lead, predicted waves) of every lead that did not fail, for rescoring.
    predictions: list[tuple[str, str, np.ndarray]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"method": self.method, "n_leads": self.n_leads,
                "n_failed": len(self.failures), "failures": self.failures,
                "seconds": self.seconds,
                "seconds_per_lead": self.seconds / max(self.n_leads, 1),
                "metrics": self.scorer.summary()}


def evaluate_nk_baseline(leads: Iterable[AnnotatedLead], method: str = "prominence",
                         tolerance_ms: float = 150.0, **scorer_kwargs) -> BaselineResult:
    """Run a neurokit delineator on every lead and score it (``SegmentationScorer``).

    Leads with an empty span are counted by the scorer but not scored; leads where neurokit
    fails are skipped and listed in ``failures`` (record, lead, reason).
    """
    scorer = None
    result = None
    t0 = time.perf_counter()
    for item in leads:
        if scorer is None:
            scorer = SegmentationScorer(item.fs, tolerance_ms=tolerance_ms, **scorer_kwargs)
            result = BaselineResult(method, scorer)
        elif item.fs != scorer.fs:
            raise ECGDataError(item.record_id, f"fs {item.fs} differs from {scorer.fs} of the "
                                               "previous leads")
        result.n_leads += 1
        try:
            pred = nk_delineate_lead(item.signal, item.fs, method, item.record_id)
        except ECGDataError as exc:
            result.failures.append({"record_id": item.record_id, "lead": item.lead,
                                    "reason": exc.problem})
            continue
        scorer.add_lead(pred, item.waves, item.span, record_id=item.record_id,
                        n_samples=len(item.signal))
        result.predictions.append((item.record_id, item.lead, pred))
    if result is None:
        raise ValueError("no leads to evaluate")
    result.seconds = time.perf_counter() - t0
    return result


def rescore(result: BaselineResult, leads: Iterable[AnnotatedLead],
            failures_as_misses: bool = False, **scorer_kwargs) -> SegmentationScorer:
    """Score a baseline's stored predictions again with other settings, without re-running
    neurokit: e.g. ``skip_absent=()`` (predicted P waves in AF leads count as false positives)
    or ``failures_as_misses=True`` (failed leads are scored as "nothing detected", so their
    expert waves count as false negatives instead of being skipped). ``leads`` must be the leads
    the result was computed on."""
    by_key = {(it.record_id, it.lead): it for it in leads}
    scorer = SegmentationScorer(result.scorer.fs, **{"tolerance_ms": result.scorer.tolerance_ms,
                                                     **scorer_kwargs})
    todo = list(result.predictions)
    if failures_as_misses:
        todo += [(f["record_id"], f["lead"], EMPTY_WAVES) for f in result.failures]
    for record_id, lead, pred in todo:
        item = by_key.get((record_id, lead))
        if item is None:
            raise ValueError(f"record {record_id!r} lead {lead!r} not among the given leads")
        scorer.add_lead(pred, item.waves, item.span, record_id=record_id,
                        n_samples=len(item.signal))
    return scorer


def ludb_annotated_leads(root: str | Path, records: Sequence[str] | None = None,
                         leads: Sequence[str] = ("II",)) -> Iterator[AnnotatedLead]:
    """LUDB leads with expert waves and spans, read with ``ecgssl.io.ludb.read_ludb``.

    Args:
        root: the LUDB folder (holding ``data/`` and ``RECORDS``).
        records: record numbers (default: all listed in ``RECORDS``).
        leads: canonical lead names (default lead II), or ``("all",)`` for all 12.
    """
    from ecgssl.io.ludb import ludb_record_numbers, read_ludb, wave_mask

    numbers = list(records) if records is not None else ludb_record_numbers(root)
    want_all = [str(x).lower() for x in leads] == ["all"]
    for number in numbers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unmapped-diagnosis warnings are irrelevant here
            rec = read_ludb(root, number)
        names = rec.leads if want_all else [canonical_lead(x) for x in leads]
        for name in names:
            w4 = np.asarray(rec.annotations["waves"].get(name, np.zeros((0, 4))), dtype=np.int64)
            w4 = w4.reshape(-1, 4)
            _, span = wave_mask(w4, rec.n_samples)
            yield AnnotatedLead(rec.record_id, name, rec.lead(name), rec.fs,
                                w4[:, [0, 1, 3]], (int(span[0]), int(span[1])))
