"""R-peak detectors behind ``ecgssl.detect_rpeaks``: ours and neurokit2's, by name.

``DETECTORS`` maps a name to a function ``(x (T,) mV, fs) -> (n,) int64 samples`` of one lead:

* ``ecgssl``: ``ecgssl.data.beats.detect_rpeaks`` (multi-lead slope energy, Pan-Tompkins-like),
  over 10 s windows (``windowed``) as ``prepare`` uses it.
* ``delineator``: the R-peak of every QRS of the bundled delineator: the sample of largest
  |deflection| from the QRS's own onset level inside the QRS.
* ``nk_<method>``: ``neurokit2.ecg_peaks(ecg_clean(x, method="neurokit"), method=<method>)`` for
  the methods of ``NK_PEAK_METHODS``.

``DEFAULT_DETECTOR`` is the one ``detect_rpeaks`` uses when none is named: the detector with
the best mean F1 over the record sets of ``benchmarks/delineation_unseen.py --parts rpeaks``
(full run, ``results/delineation_unseen_long.md``): the delineator's, 99.3 % mean F1, ahead of
the best neurokit2 detector on every set (``nk_neurokit`` 98.2 % mean; ours 98.6 %).

``PREPARE_DETECTOR`` is the default of ``PreprocessConfig.rpeak_detector``: the detector whose
R-peaks ``prepare`` stores (``data.beats.annotate_beats``), i.e. Beat-SSL's beat boxes and
targets. The issue's rule: where a library detector is better, use it rather than ours, and
never be below the best neurokit2 detector on any benchmark set. Ours breaks that on the CPSC
2021 sample at 6 dB SNR (95.5 % against ``nk_kalidas2017`` 97.1 %, ``nk_neurokit`` 96.5 %); the
delineator's is at or above every neurokit2 detector on every set (97.8 % there; mean 99.3 %),
so it is the prepare default too. A store records its detector in its config (``preprocess``,
part of the hash); a store from before the field was made with ours (``"ecgssl"``,
``data.preprocess.LEGACY_FIELDS``). ``--set rpeak_detector=ecgssl`` keeps the fast classical one.

Measured on a shared 2-core machine (``nice -n 10``, one torch thread):

* ``annotate_beats`` per 10 s 12-lead 250 Hz window, the 200 LUDB records
  (``python benchmarks/rpeak_accuracy.py --detector ecgssl`` / ``--detector delineator``):
  ours 113 windows/s (8.6 ms median), the delineator 55 windows/s (17.3 ms): 2.0x slower.
* ``prepare`` of data/ludb end to end (200 records, beats on; ``OMP_NUM_THREADS=1 ecgssl prepare
  data/ludb --out OUT --set rpeak_detector=NAME --workers 0 --no-progress``, two runs each):
  ours 5.7-6.1 s wall (52-58 records/s), the delineator 9.1-10.3 s (27-30 records/s): 1.7x the
  wall time. ``--workers 2`` (one torch thread per worker): 4.5 s against 9.1 s.
* Agreement with LUDB's expert QRS peaks (lead ii; the delineator was trained on LUDB, so this
  is in-sample for it) in those prepare windows: at +-75 ms ours 99.5 / 99.5 % Se / PPV, the
  delineator 98.8 / 98.8 %, ``nk_kalidas2017`` 98.7 / 98.8 %, ``nk_neurokit`` 98.4 / 99.1 %
  (``--detector nk_...``). At +-150 ms (``--tolerance-s 0.15``) the delineator finds all 1831
  beats with no false one, ours 1830 with 3 false: its +-75 ms misses are peak placement on wide
  complexes (record 104, QRS ~145 ms: it takes the complex's largest deflection, 116 ms after
  the annotated peak), not missed beats. MIT-BIH 100 (180 windows, 2 leads): both 100 % Se,
  PPV 99.9 % (ours) / 99.96 % (delineator).

Multi-lead input: the reference lead is II (or MLII) when present and not flat, else the lead
with the most QRS slope energy (``ecgssl.data.beats.reference_lead``); single-lead detectors run
on it. ``ecgssl`` uses all leads.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ecgssl.errors import ECGDataError

NK_PEAK_METHODS = ("neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzee2012",
                   "kalidas2017", "promac")
DEFAULT_DETECTOR = "delineator"
PREPARE_DETECTOR = "delineator"
#: Lowest sampling rate (Hz) a detector accepts, where it has one (``delineation.infer.MIN_FS``;
#: ours: ``data.beats``' 50 Hz), so a config can refuse a rate before any record is read.
MIN_FS = {"delineator": 100.0, "ecgssl": 50.0}


def _nk(method: str) -> Callable:
    def detect(x: np.ndarray, fs: float) -> np.ndarray:
        import neurokit2 as nk

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clean = nk.ecg_clean(np.asarray(x, dtype=np.float64), sampling_rate=fs,
                                 method="neurokit")
            _, info = nk.ecg_peaks(clean, sampling_rate=fs, method=method)
        return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    detect.__doc__ = f"neurokit2 ecg_peaks method={method!r} after ecg_clean (neurokit)."
    return detect


#: Window and overlap (s) of ``windowed``: the length ``data.beats`` was designed for.
WINDOW_S, OVERLAP_S = 10.0, 2.0


def windowed(detect: Callable, x: np.ndarray, fs: float) -> np.ndarray:
    """Run a per-window detector ``detect(x_window, fs)`` over a long (..., T) signal.

    Windows of ``WINDOW_S`` every ``WINDOW_S - OVERLAP_S`` seconds (the last aligned to the
    end); window k keeps the peaks between the middles of its overlaps with its neighbours, so
    every stretch is owned by exactly one window and no beat is counted twice. A detector whose
    thresholds adapt to its whole input (ours: a typical beat energy) would otherwise lose the
    small beats of a long record whose amplitude changes.
    """
    n = x.shape[-1]
    win, step = int(WINDOW_S * fs), int((WINDOW_S - OVERLAP_S) * fs)
    if n <= win + step // 2:
        return detect(x, fs)
    starts = list(range(0, n - win, step)) + [n - win]
    # Boundary between window k and k + 1: the middle of their overlap.
    cuts = [0] + [(a + b + win) // 2 for a, b in zip(starts, starts[1:])] + [n]
    out = []
    for k, s in enumerate(starts):
        peaks = np.asarray(detect(x[..., s:s + win], fs), dtype=np.int64) + s
        out.append(peaks[(peaks >= cuts[k]) & (peaks < cuts[k + 1])])
    return np.unique(np.concatenate(out)).astype(np.int64)


def _ours_window(x: np.ndarray, fs: float) -> np.ndarray:
    from ecgssl.data.beats import detect_rpeaks as ours

    return ours(np.asarray(x, dtype=np.float64)[None], fs)


def _ours(x: np.ndarray, fs: float) -> np.ndarray:
    return windowed(_ours_window, np.asarray(x, dtype=np.float64), fs)


def _delineator(x: np.ndarray, fs: float) -> np.ndarray:
    from ecgssl.data.record import WAVE_QRS
    from ecgssl.delineation.infer import get_delineator

    x = np.asarray(x, dtype=np.float64)
    waves = get_delineator().waves(x, fs, ["x"])["x"]
    peaks = []
    for code, on, off in waves:
        if code != WAVE_QRS or off < on:
            continue
        seg = x[on:off + 1] - x[on]
        peaks.append(on + int(np.argmax(np.abs(seg))))
    return np.unique(np.asarray(peaks, dtype=np.int64))


DETECTORS: dict[str, Callable] = {"ecgssl": _ours, "delineator": _delineator,
                                  **{f"nk_{m}": _nk(m) for m in NK_PEAK_METHODS}}


def detect_lead(x: np.ndarray, fs: float, method: str | None = None,
                record_id: str = "?") -> np.ndarray:
    """R-peaks (n,) int64 of one lead (T,) mV with the named detector (default
    ``DEFAULT_DETECTOR``). Raises ECGDataError when the detector fails on this lead."""
    name = DEFAULT_DETECTOR if method is None else method
    if name not in DETECTORS:
        raise ValueError(f"unknown R-peak detector {name!r}; choose from {sorted(DETECTORS)}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise ECGDataError(record_id, "lead must be 1-D and finite for R-peak detection")
    try:
        return DETECTORS[name](x, float(fs))
    except ECGDataError:
        raise
    except Exception as exc:  # library detectors raise many kinds of errors on odd signals
        raise ECGDataError(record_id, f"R-peak detector {name} failed: {type(exc).__name__}: "
                                      f"{exc}") from exc


def detect_rpeaks(signal, fs: float, leads: Sequence[str] | str | None = None,
                  method: str | None = None, record_id: str = "?") -> np.ndarray:
    """R-peak sample indices (n,) int64 of a (T,) or (L, T) mV ECG.

    Args:
        signal: one lead (T,) or several (L, T), millivolts at ``fs`` Hz.
        leads: names of the rows (picks the reference lead: II / MLII first).
        method: a ``DETECTORS`` name; default ``DEFAULT_DETECTOR`` (benchmark-chosen).
    """
    from ecgssl.data.beats import clean_signal, reference_lead

    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ECGDataError(record_id, f"signal must be (T,) or (L, T), got shape {x.shape}")
    names = [leads] if isinstance(leads, str) else (list(leads) if leads is not None else None)
    if names is not None and len(names) != len(x):
        raise ECGDataError(record_id, f"{len(x)} leads but {len(names)} names ({names})")
    name = DEFAULT_DETECTOR if method is None else method
    if name == "ecgssl":
        from ecgssl.data.beats import detect_rpeaks as ours

        return windowed(lambda w, rate: ours(w, rate, names, record_id=record_id), x, fs)
    ref = reference_lead(clean_signal(x, fs), names) if len(x) > 1 else 0
    return detect_lead(x[ref], fs, name, record_id)
