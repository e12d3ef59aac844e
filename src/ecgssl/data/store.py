"""The prepared store: a source read once into a memory-mapped array plus a manifest.

Layout (see docs/architecture.md): ``signals.npy`` (N, L, T) float32, ``lead_mask.npy``,
``labels.npy`` + ``config.json["label_names"]``, ``manifest.csv``, optional wave ``masks.npy`` /
``spans.npy``, beat extras (``rpeaks.npy`` ...), ``report.json``.

Writing is crash-safe: records are processed in fixed chunks written to ``<out>.partial/chunks``;
a rerun skips the chunks already written (resume), and the final store appears only by an atomic
rename of the finished directory, so a half-written store never loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgssl import __version__
from ecgssl.data.leads import resolve_leads
from ecgssl.data.preprocess import PreprocessConfig, preprocess_window
from ecgssl.data.record import Record
from ecgssl.data.shards import INDEX_FILE, ShardedSignals, write_signals
from ecgssl.data.windowing import plan_windows, window_wave_masks
from ecgssl.errors import ECGDataError
from ecgssl.safety import (
    file_digests,
    guard_output_dir,
    output_lock,
    read_json_file,
    verify_digests,
    write_marker,
)

log = logging.getLogger(__name__)

STORE_VERSION = 1
CHUNK_RECORDS = 128  # records per chunk file: the unit of resume and of peak memory


# --------------------------------------------------------------------------------------------
# Per-record work (runs in worker processes)
# --------------------------------------------------------------------------------------------


@dataclass
class Window:
    """One processed window, ready to be written."""

    signal: np.ndarray  # (L, T) float32
    lead_mask: np.ndarray  # (L,) bool
    row: dict[str, Any]  # manifest row
    labels: list[str]
    masks: np.ndarray | None = None  # (L, T) int8
    spans: np.ndarray | None = None  # (L, 2) int32
    rpeaks: np.ndarray | None = None
    beat_features: np.ndarray | None = None
    beat_classes: np.ndarray | None = None
    rhythm_features: np.ndarray | None = None
    valid_span: np.ndarray | None = None  # (2,) int32 [start, end) of real signal


def _scalar_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool)) or v is None}


def process_record(record: Record, cfg: PreprocessConfig) -> tuple[list[Window], list[dict]]:
    """All windows of one record, by the window policy of ``cfg`` (``ecgssl.data.windowing``).

    Every window carries the record's labels (rhythm-episode labels refined per window), its
    parent record and patient id, and manifest columns ``n_windows_record`` (windows cut from
    the record), ``window_in_record``, ``record_s``, ``padded_s`` (zeros appended to this
    window), ``dropped_s`` (seconds of the record in no window, on every window of it),
    ``lead_aliases`` (``NAME=LEAD`` applied) and ``leads_dropped`` (unknown leads dropped).

    Returns:
        (windows, notes): ``notes`` lists ``{"record_id", "problem"}`` for windows of a long
        record (longer than ``cfg.long_record_s``) that fail the checks and are skipped, and
        ``{"record_id", "problem", "policy": "short_records"}`` for a record dropped by the
        policy (then ``windows`` is empty). A bad window of a shorter record raises
        ``ECGDataError`` for the record.
    """
    # Lead names are a property of the record, not of a window: refuse it once, by name.
    resolve_leads(record.leads, cfg.lead_aliases, cfg.allow_unknown_leads, record.record_id,
                  use_table=cfg.lead_alias_table)
    plan = plan_windows(record, cfg.window_s, cfg.stride_s, cfg.short_records,
                        cfg.long_records, cfg.last_window, cfg.crop)
    if plan.dropped is not None:
        return [], [{"record_id": record.record_id, "problem": plan.dropped,
                     "policy": "short_records"}]
    parts = plan.parts
    tolerant = record.duration_s > cfg.long_record_s and len(parts) > 1
    windows, bad_windows = [], []
    for part in parts:
        try:
            out = preprocess_window(part, cfg)
        except ECGDataError as err:
            if not tolerant:
                raise ECGDataError(record.record_id, err.problem) from None
            # One artefact-ridden window of a long recording must not cost the whole recording.
            bad_windows.append({"record_id": part.record_id, "problem": err.problem})
            continue
        signal, present, offset = out.signal, out.present, out.offset
        masks, spans = window_wave_masks(part.annotations.get("waves"), cfg.leads,
                                         cfg.n_samples, cfg.fs / record.fs, offset,
                                         out.valid[1])
        start = int(part.meta.get("start_sample", 0)) + offset
        row = {
            "record_id": part.record_id,
            "parent_id": part.meta.get("parent_id", record.record_id),
            # Windows of one record share its patient (or, without one, its record id), so a
            # split never puts one record on both sides.
            "patient_id": part.patient_id if part.patient_id is not None else record.record_id,
            "source": part.source or record.source,
            "start_sample": int(round(start * cfg.fs / record.fs)),
            "start_s": start / record.fs,
            "labels": ";".join(part.labels),
            "source_fs": record.fs,
            "record_s": round(record.duration_s, 6),
            "padded_s": round((cfg.n_samples - out.valid[1]) / cfg.fs, 6),
            "dropped_s": round(plan.dropped_s, 6),
            "lead_aliases": ";".join(f"{k}={v}" for k, v in out.aliases.items()),
            "leads_dropped": ";".join(out.dropped),
        }
        for key, value in _scalar_meta(part.meta).items():
            row.setdefault(key, value)
        if masks is not None:
            # Expert interval targets (HR, QRS, PR, QT) at the source's own rate, for the
            # feature-prediction task; NaN where not measurable (no P in AF).
            from ecgssl.data.intervals import INTERVAL_TARGETS, ludb_interval_targets

            measures = ludb_interval_targets(part.annotations["waves"], part.fs)
            row.update({f"target_{name}": measures[name] for name in INTERVAL_TARGETS})
        window = Window(signal, present, row, list(part.labels), masks, spans,
                        valid_span=np.asarray(out.valid, dtype=np.int32))
        if cfg.beats:
            from ecgssl.data.beats import annotate_beats

            ann = annotate_beats(signal, cfg.fs, cfg.leads, record_id=part.record_id,
                                 detector=cfg.rpeak_detector)
            window.rpeaks = np.asarray(ann.rpeaks, dtype=np.int32)
            window.beat_features = np.asarray(ann.beat_features, dtype=np.float32)
            window.beat_classes = np.asarray(ann.beat_classes, dtype=np.int8)
            window.rhythm_features = np.asarray(ann.rhythm_features, dtype=np.float32)
        windows.append(window)
    if not windows:
        raise ECGDataError(record.record_id, f"no usable window ({bad_windows[0]['problem']} ...)")
    for k, window in enumerate(windows):
        window.row["n_windows_record"] = len(windows)
        window.row["window_in_record"] = k
    return windows, bad_windows


_WORKER: dict[str, Any] = {}


def _init_worker(source, cfg: PreprocessConfig) -> None:
    _WORKER["source"], _WORKER["cfg"] = source, cfg
    # One BLAS thread per worker process: parallelism comes from the processes.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _init_pool_worker(source, cfg: PreprocessConfig) -> None:
    from ecgssl.safety import die_with_parent

    die_with_parent()  # a killed prepare leaves no orphan workers
    _init_worker(source, cfg)
    if cfg.beats and cfg.rpeak_detector == "delineator":
        # The delineator's network runs in every worker: one torch thread each, or N workers
        # x N threads oversubscribe the cores (OMP_NUM_THREADS is too late when the parent had
        # imported torch before the fork).
        import torch

        torch.set_num_threads(1)


def _work(record_id: str):
    """Worker entry: (record_id, windows, None) or (record_id, None, problem)."""
    source, cfg = _WORKER["source"], _WORKER["cfg"]
    try:
        return record_id, process_record(source.read(record_id), cfg), None
    except ECGDataError as err:
        return record_id, None, err.problem
    except (OSError, ValueError, EOFError, IndexError) as err:
        # Unreadable or malformed files (wfdb/scipy raise these): a bad record, reported by name.
        # Anything else is a bug and propagates.
        log.debug("record %s failed:\n%s", record_id, traceback.format_exc())
        return record_id, None, f"{type(err).__name__}: {err}"


# --------------------------------------------------------------------------------------------
# Chunk files and the final store
# --------------------------------------------------------------------------------------------


def _write_chunk(path: Path, record_ids: list[str], windows: list[Window], bad: list[dict]):
    """Write one chunk atomically (temp dir + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta = {"record_ids": record_ids, "bad": bad, "n_windows": len(windows)}
    if windows:
        np.save(tmp / "signals.npy", np.stack([w.signal for w in windows]))
        np.save(tmp / "lead_mask.npy", np.stack([w.lead_mask for w in windows]))
        np.save(tmp / "valid_spans.npy", np.stack([_valid_span(w) for w in windows]))
        pd.DataFrame([w.row for w in windows]).to_pickle(tmp / "rows.pkl")
        meta["labels"] = [w.labels for w in windows]
        if any(w.masks is not None for w in windows):
            shape_l, shape_t = windows[0].signal.shape
            masks = np.stack([w.masks if w.masks is not None
                              else np.zeros((shape_l, shape_t), np.int8) for w in windows])
            spans = np.stack([w.spans if w.spans is not None
                              else np.zeros((shape_l, 2), np.int32) for w in windows])
            np.save(tmp / "masks.npy", masks)
            np.save(tmp / "spans.npy", spans)
        if windows[0].rpeaks is not None:
            np.save(tmp / "rpeak_counts.npy", np.array([len(w.rpeaks) for w in windows], np.int64))
            np.save(tmp / "rpeaks.npy", np.concatenate([w.rpeaks for w in windows]))
            np.save(tmp / "beat_features.npy", np.concatenate([w.beat_features for w in windows]))
            np.save(tmp / "beat_classes.npy", np.concatenate([w.beat_classes for w in windows]))
            np.save(tmp / "features.npy", np.stack([w.rhythm_features for w in windows]))
    (tmp / "meta.json").write_text(json.dumps(meta))
    os.replace(tmp, path)


def _valid_span(window: Window) -> np.ndarray:
    if window.valid_span is None:
        return np.array([0, window.signal.shape[-1]], dtype=np.int32)
    return np.asarray(window.valid_span, dtype=np.int32)


def _window_policy_report(metas: list[dict], manifest: pd.DataFrame, window_s: float) -> dict:
    """What the window policy did, for report.json and the prepare summary."""
    dropped = [b for m in metas for b in m["bad"] if b.get("policy")]
    per_record = manifest.groupby("parent_id", sort=False).agg(
        n=("window", "size"), padded=("padded_s", "max"), dropped=("dropped_s", "max"),
        seconds=("record_s", "max"))
    counts = per_record["n"].to_numpy()
    aliases = manifest.loc[manifest["lead_aliases"].astype(str).str.len() > 0, "parent_id"]
    unknown = manifest.loc[manifest["leads_dropped"].astype(str).str.len() > 0]
    return {
        "n_records": int(len(per_record)),
        "windows_per_record": {"min": int(counts.min()), "median": float(np.median(counts)),
                               "max": int(counts.max())} if len(counts) else {},
        # Records shorter than a window (short_records=pad); last_window=pad windows apart.
        "n_records_padded": int(((per_record["padded"] > 0)
                                 & (per_record["seconds"] < window_s)).sum()),
        "n_windows_padded": int((manifest["padded_s"] > 0).sum()),
        "n_records_dropped_short": len(dropped),
        "records_dropped_short": dropped,
        "seconds_not_in_any_window": round(float(per_record["dropped"].sum()), 3),
        "n_records_with_lead_aliases": int(aliases.nunique()),
        "n_records_with_unknown_leads_dropped": int(unknown["parent_id"].nunique()),
        "unknown_leads_dropped": sorted({x for v in unknown["leads_dropped"].astype(str)
                                         for x in v.split(";") if x}),
        "n_windows_unlabelled": int((manifest["labels"].fillna("").astype(str) == "").sum()),
        "n_windows": int(len(manifest)),
    }


def _chunk_dirs(chunks: Path) -> list[Path]:
    return sorted(p for p in chunks.iterdir() if p.is_dir() and not p.name.endswith(".tmp"))


def _standardise(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Standardise columns over the store; unmeasurable (NaN) values become the mean (0)."""
    with np.errstate(all="ignore"):
        mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
        std = np.nanstd(x, axis=0) if len(x) else np.ones(x.shape[1])
    mean = np.nan_to_num(mean)
    std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
    z = (x - mean) / std
    stats = {"mean": mean.tolist(), "std": std.tolist()}
    return np.nan_to_num(z, nan=0.0).astype(np.float32), stats


def _concat_to_npy(path: Path, parts: list[Path], name: str, shape_tail, dtype, total: int):
    """Stream chunk arrays into one .npy file, one chunk in memory at a time.

    Plain writes rather than a writable memmap: dirty mapped pages would count against the
    process's resident memory and grow with the store.
    """
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": (total, *shape_tail)}
    written = 0
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for part in parts:
            arr = np.ascontiguousarray(np.load(part / name), dtype=dtype)
            f.write(arr.tobytes())
            written += len(arr)
    if written != total:
        raise RuntimeError(f"{path}: wrote {written} rows, expected {total}")


def _finalise(partial: Path, cfg: PreprocessConfig, source_info: dict, timings: dict,
              signal_layout=None) -> dict:
    chunks = _chunk_dirs(partial / "chunks")
    metas = [json.loads((c / "meta.json").read_text()) for c in chunks]
    bad = [b for m in metas for b in m["bad"] if not b.get("policy")]
    all_ids = {rid for m in metas for rid in m["record_ids"]}
    bad_records = [b for b in bad if b["record_id"] in all_ids]
    with_windows = [c for c, m in zip(chunks, metas) if m["n_windows"] > 0]
    n = sum(m["n_windows"] for m in metas)
    if n == 0:
        raise ECGDataError(source_info.get("path", "?"), f"no usable records ({len(bad)} bad)")
    n_leads, n_samples = len(cfg.leads), cfg.n_samples
    # Signals: signals.npy, or shards + index (float16 optional): ecgssl.data.shards.
    write_signals(partial, (np.load(c / "signals.npy") for c in with_windows), n,
                  (n_leads, n_samples), signal_layout)
    _concat_to_npy(partial / "lead_mask.npy", with_windows, "lead_mask.npy",
                      (n_leads,), bool, n)
    _concat_to_npy(partial / "valid_spans.npy", with_windows, "valid_spans.npy", (2,),
                   np.int32, n)
    labels = [lab for m in metas for lab in m.get("labels", [])]
    label_names = sorted({lab for labs in labels for lab in labs})
    index = {name: k for k, name in enumerate(label_names)}
    multi_hot = np.zeros((n, len(label_names)), dtype=np.uint8)
    for i, labs in enumerate(labels):
        multi_hot[i, [index[lab] for lab in labs]] = 1
    np.save(partial / "labels.npy", multi_hot)
    manifest = pd.concat([pd.read_pickle(c / "rows.pkl") for c in with_windows], ignore_index=True)
    manifest.insert(0, "window", np.arange(n))
    manifest.to_csv(partial / "manifest.csv", index=False)
    extras = []
    if all((c / "masks.npy").exists() for c in with_windows):
        _concat_to_npy(partial / "masks.npy", with_windows, "masks.npy",
                          (n_leads, n_samples), np.int8, n)
        _concat_to_npy(partial / "spans.npy", with_windows, "spans.npy", (n_leads, 2),
                          np.int32, n)
        extras.append("waves")
    beat_info = {}
    if cfg.beats:
        from ecgssl.data.beats import BEAT_FEATURE_NAMES, RHYTHM_FEATURE_NAMES

        counts = np.concatenate([np.load(c / "rpeak_counts.npy") for c in with_windows])
        offsets = np.zeros(n + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(counts)
        np.save(partial / "rpeak_offsets.npy", offsets)
        np.save(partial / "rpeaks.npy",
                np.concatenate([np.load(c / "rpeaks.npy") for c in with_windows]).astype(np.int32))
        beat_raw = np.concatenate([np.load(c / "beat_features.npy") for c in with_windows])
        beat_z, beat_stats = _standardise(beat_raw.reshape(len(beat_raw), -1))
        np.save(partial / "beat_features.npy", beat_z)
        np.save(partial / "beat_features_raw.npy", beat_raw)  # merge re-standardises from it
        np.save(partial / "beat_classes.npy",
                np.concatenate([np.load(c / "beat_classes.npy") for c in with_windows]))
        rhythm_raw = np.concatenate([np.load(c / "features.npy") for c in with_windows])
        rhythm_z, rhythm_stats = _standardise(rhythm_raw)
        np.save(partial / "features.npy", rhythm_z)
        np.save(partial / "features_raw.npy", rhythm_raw)
        extras.append("beats")
        beat_info = {
            "feature_names": list(RHYTHM_FEATURE_NAMES),
            "beat_feature_names": list(BEAT_FEATURE_NAMES),
            "feature_standardisation": rhythm_stats,
            "beat_feature_standardisation": beat_stats,
        }
    report = {
        "n_records_read": sum(len(m["record_ids"]) for m in metas) - len(bad_records)
        - sum(1 for m in metas for b in m["bad"] if b.get("policy")),
        "n_records_bad": len(bad_records),
        "n_windows_bad": len(bad) - len(bad_records),
        "n_windows": n,
        "bad_records": bad,
        "windowing": _window_policy_report(metas, manifest, cfg.window_s),
        **timings,
    }
    (partial / "report.json").write_text(json.dumps(report, indent=1))
    config = {
        "store_version": STORE_VERSION,
        "ecgssl_version": __version__,
        "fs": cfg.fs,
        "leads": cfg.leads,
        "n_samples": n_samples,
        "units": "z-score" if cfg.normalize else "mV",
        "preprocess": cfg.to_dict(),
        "hash": cfg.hash(),
        "label_names": label_names,
        "n_windows": n,
        "extras": extras,
        "source": source_info,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **beat_info,
    }
    # A unique id of this store's content (the preprocessing hash alone is shared by every
    # store made with the same config): caches of features key on it.
    ident = hashlib.sha256(json.dumps([config["hash"], source_info, n, config["created"],
                                       manifest["record_id"].tolist()]).encode())
    config["store_id"] = ident.hexdigest()[:16]
    write_marker(partial, "store")
    # sha256 of every array: ECGStore checks them on open (ecgssl.safety.artefacts).
    config["files"] = file_digests(partial, exclude=("config.json", ".ecgssl.json", "chunks"))
    # config.json is written last (atomically): its presence marks a finished store.
    (partial / "config.json.tmp").write_text(json.dumps(config, indent=1))
    os.replace(partial / "config.json.tmp", partial / "config.json")
    shutil.rmtree(partial / "chunks")
    return report


def _chunk_ok(chunk: Path) -> bool:
    """A chunk directory is complete: its meta.json reads and the arrays it lists exist."""
    try:
        meta = json.loads((chunk / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    need = ("signals.npy", "lead_mask.npy", "rows.pkl") if meta.get("n_windows") else ()
    return all((chunk / name).is_file() for name in need)


def _source_fingerprint(source, max_records: int | None) -> str:
    """sha256 of what a store was read from beyond its preprocessing: the source's name and path,
    its record ids, its labels (files given with ``--labels``, REFERENCE.csv) and options."""
    ids = list(source.record_ids())
    if max_records is not None:
        ids = ids[:max_records]
    parts = {"name": getattr(source, "name", type(source).__name__),
             "path": str(getattr(source, "path", "")), "ids": ids,
             "labels": getattr(source, "label_summaries", None),
             "options": getattr(source, "options", None)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _recover(out: Path, partial: Path, cfg: PreprocessConfig, overwrite: bool,
             fingerprint: str | None = None) -> None:
    """Bring whatever a killed prepare left at ``out`` back to a state this run continues from.

    Phases a crash can interrupt, and what is done here (all of it inside ecgssl's own dirs):
    chunk writing (a ``.tmp`` chunk, or a half-removed one: removed, redone), finalising (no
    ``config.json`` in ``.partial``: redone from the chunks), chunk cleanup after ``config.json``
    (finished: cleanup completed) and the final swap (``<out>.old`` + finished ``.partial``:
    swap completed; ``<out>.old`` without a finished ``.partial``: the old store restored).
    """
    old = out.with_name(out.name + ".old")
    finished = False
    if partial.exists():
        guard_output_dir(partial, "store", overwrite=True, option="--out's .partial")
        stamp = partial / "preprocess.json"
        stamped = read_json_file(stamp) if stamp.is_file() else {}
        # Chunks of another configuration or another source / labels file are not resumed.
        same = stamped.get("hash") == cfg.hash() and \
            stamped.get("source_fingerprint", fingerprint) == fingerprint
        if not same or overwrite:
            shutil.rmtree(partial)  # another configuration's (or replaced) unfinished run
        else:
            try:
                finished = read_json_file(partial / "config.json").get("hash") == cfg.hash()
            except (FileNotFoundError, ValueError):
                finished = False
            chunks = partial / "chunks"
            if finished:
                shutil.rmtree(chunks, ignore_errors=True)
            elif chunks.is_dir():
                for chunk in chunks.iterdir():
                    if chunk.is_dir() and (chunk.name.endswith(".tmp") or not _chunk_ok(chunk)):
                        log.warning("removing incomplete chunk %s (a killed run's)", chunk)
                        shutil.rmtree(chunk)
    if old.exists():
        guard_output_dir(old, "store", overwrite=True, option="--out's .old")
        if not out.exists() and not finished:
            os.replace(old, out)  # the new store never got finished: the old one stays
        elif not out.exists():
            os.replace(partial, out)
            shutil.rmtree(old)
        else:
            shutil.rmtree(old)
    elif finished:
        _swap_in(partial, out)


def _swap_in(partial: Path, out: Path) -> None:
    """Replace ``out`` (if any) by the finished ``partial``; at every instant one of them, or
    ``<out>.old``, is a complete store (``_recover`` finishes an interrupted swap)."""
    old = out.with_name(out.name + ".old")
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    if old.exists():
        shutil.rmtree(old)


def prepare_store(
    source,
    out: str | os.PathLike,
    cfg: PreprocessConfig | None = None,
    *,
    workers: int | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
    max_records: int | None = None,
    progress: bool = True,
    signal_layout=None,
) -> dict:
    """Read ``source`` once and write a prepared store at ``out`` (safely).

    ``out`` must not exist, be empty, or be an ecgssl store (replaced only with ``overwrite``);
    anything else is refused before a file is touched (``ecgssl.safety.outputs``). One process
    at a time writes ``out`` (lock file ``<out>.lock``); what a killed run left is resumed or
    cleaned first (``_recover``). Arguments and return value as ``_prepare_store``.

    Raises:
        OutputDirError: ``out`` holds something else than an ecgssl store.
        LockedError: another prepare is writing ``out`` (the message names its PID).
    """
    cfg = cfg or PreprocessConfig()
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    guard_output_dir(out, "store", overwrite=overwrite, existing_ok=True)
    with output_lock(out.with_name(out.name + ".lock"), out):
        # Listing a corpus's record ids can be slow: fingerprint it once for every check.
        fingerprint = _source_fingerprint(source, max_records)
        _recover(out, partial, cfg, overwrite, fingerprint)
        return _prepare_store(source, out, cfg, workers=workers, skip_bad=skip_bad,
                              overwrite=overwrite, max_records=max_records, progress=progress,
                              signal_layout=signal_layout, fingerprint=fingerprint)


def _prepare_store(
    source,
    out: str | os.PathLike,
    cfg: PreprocessConfig | None = None,
    *,
    workers: int | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
    max_records: int | None = None,
    progress: bool = True,
    signal_layout=None,
    fingerprint: str | None = None,
) -> dict:
    """Read ``source`` once and write a prepared store at ``out``.

    Args:
        source: an ``ecgssl.io`` source (``record_ids()``, ``read(record_id)``, picklable).
        out: store directory to create.
        cfg: preprocessing configuration (default ``PreprocessConfig()``).
        workers: worker processes (default: CPU count; 0 = in this process).
        skip_bad: skip records that fail with a clear reason (listed in ``report.json``)
            instead of stopping at the first.
        overwrite: replace an existing store at ``out``.
        max_records: only the first N record ids (quick runs).
        signal_layout: a ``shards.SignalLayout`` (shards, float16); None = ``signals.npy``.
        fingerprint: ``_source_fingerprint(source, max_records)`` (computed here when None).
    Returns:
        The report dict (counts, bad records, timings); also written to ``out/report.json``.
    Raises:
        ECGDataError: a bad record when ``skip_bad`` is False (names the record and the problem).
        FileExistsError: ``out`` holds a store made with another configuration.
    """
    from tqdm.auto import tqdm

    cfg = cfg or PreprocessConfig()
    out = Path(out)
    if fingerprint is None:
        fingerprint = _source_fingerprint(source, max_records)
    if (out / "config.json").exists() and not overwrite:
        existing = read_json_file(out / "config.json", "store config")
        if existing.get("hash") == cfg.hash():
            if existing.get("source", {}).get("fingerprint", fingerprint) != fingerprint:
                # Same preprocessing, other input (another --labels file, other records, other
                # source options): reusing the store would silently keep the old labels.
                raise FileExistsError(
                    f"{out} holds a store of the same preprocessing but another source, labels "
                    f"or record list; use --overwrite to rebuild it or another --out")
            log.info("store %s already prepared with this configuration", out)
            return json.loads((out / "report.json").read_text())
        raise FileExistsError(
            f"{out} holds a store with another preprocessing config (hash {existing.get('hash')} "
            f"!= {cfg.hash()}); use overwrite=True / --overwrite or another --out"
        )
    partial = out.with_name(out.name + ".partial")
    chunks = partial / "chunks"
    stamp = partial / "preprocess.json"
    write_marker(partial, "store-partial")  # before anything else: this directory is ecgssl's
    chunks.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"hash": cfg.hash(), "config": cfg.to_dict(),
                                 "source_fingerprint": fingerprint}))

    t0 = time.perf_counter()
    record_ids = list(source.record_ids())
    if max_records is not None:
        record_ids = record_ids[:max_records]
    if not record_ids:
        raise ECGDataError(getattr(source, "name", str(source)), "source holds no records")
    groups = [record_ids[i : i + CHUNK_RECORDS] for i in range(0, len(record_ids), CHUNK_RECORDS)]
    done = {p.name for p in _chunk_dirs(chunks)}
    todo = [(k, g) for k, g in enumerate(groups) if f"{k:06d}" not in done]
    n_done = sum(len(g) for k, g in enumerate(groups) if f"{k:06d}" in done)
    if n_done:
        log.info("resuming: %d of %d records already prepared", n_done, len(record_ids))
    workers = (os.cpu_count() or 1) if workers is None else workers
    bar = tqdm(total=len(record_ids), initial=n_done, desc=f"prepare {out.name}", unit="rec",
               disable=not progress)

    def consume(results_iter) -> None:
        """Collect results in record order and write each finished group as one chunk."""
        groups_left = iter(todo)
        k, group = next(groups_left, (None, None))
        windows, bad = [], []
        for rid, result, problem in results_iter:
            bar.update(1)
            if problem is not None:
                if not skip_bad:
                    raise ECGDataError(rid, problem)
                bad.append({"record_id": rid, "problem": problem})
                bar.set_postfix(bad=len(bad))
            else:
                windows.extend(result[0])
                bad.extend(result[1])
            if rid == group[-1]:
                _write_chunk(chunks / f"{k:06d}", group, windows, bad)
                windows, bad = [], []
                k, group = next(groups_left, (None, None))

    pending = [rid for _, group in todo for rid in group]
    # Import what the workers use once, here, so forked workers do not each import it.
    from ecgssl.data import intervals  # noqa: F401

    if cfg.beats:
        from ecgssl.data import beats  # noqa: F401

        if cfg.rpeak_detector == "delineator" and pending:
            # Load the bundled network once (forked workers share it; a missing model fails
            # here, before any worker starts).
            from ecgssl.delineation.infer import get_delineator

            get_delineator()
    try:
        if workers and workers > 1 and len(pending) > 1:
            # imap streams results in order while workers run ahead: no barrier per chunk.
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(workers, initializer=_init_pool_worker, initargs=(source, cfg)) as pool:
                consume(pool.imap(_work, pending, chunksize=4))
        else:
            _init_worker(source, cfg)
            consume(map(_work, pending))
    finally:
        bar.close()
    t_read = time.perf_counter() - t0
    source_info = {"name": getattr(source, "name", type(source).__name__),
                   "path": str(getattr(source, "path", "")), "n_record_ids": len(record_ids),
                   "fingerprint": fingerprint}
    if getattr(source, "label_summaries", None):
        source_info["labels"] = source.label_summaries  # ecgssl.io.labels: which records got labels
    report = _finalise(partial, cfg, source_info,
                       {"seconds_read": round(t_read, 3),
                        "seconds_total": round(time.perf_counter() - t0, 3),
                        "records_per_s": round(len(record_ids) / max(t_read, 1e-9), 1),
                        "workers": workers}, signal_layout)
    _swap_in(partial, out)
    return report


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class ECGStore:
    """A prepared store opened for reading; arrays are memory-mapped, never read whole.

    Attributes:
        path: the store directory.
        config: ``config.json`` (fs, leads, n_samples, preprocess, hash, label_names, ...).
        manifest: one row per window (pandas DataFrame).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        cfg_path = self.path / "config.json"
        if not cfg_path.exists():
            hint = ""
            if self.path.with_name(self.path.name + ".partial").exists():
                hint = " (an unfinished run left a .partial directory: rerun prepare to resume)"
            raise FileNotFoundError(f"{self.path} is not a prepared store: no config.json{hint}")
        self.config = read_json_file(cfg_path, "store config", "prepare the store again")
        verify_digests(self.path, self.config.get("files"), "config.json")
        self._manifest: pd.DataFrame | None = None
        self._arrays: dict[str, np.ndarray] = {}

    @property
    def manifest(self) -> pd.DataFrame:
        """One row per window (read on first use: DataLoader workers never need it)."""
        if self._manifest is None:
            self._manifest = pd.read_csv(self.path / "manifest.csv",
                                         dtype={"record_id": str, "patient_id": str,
                                                "parent_id": str})
        return self._manifest

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            file = self.path / f"{name}.npy"
            if not file.exists():
                raise KeyError(f"store {self.path} has no {name!r} (extras: {self.extras})")
            self._arrays[name] = np.load(file, mmap_mode="r")
        return self._arrays[name]

    def __getstate__(self):
        # Pickled into DataLoader workers without the memmaps; each worker reopens lazily.
        state = dict(self.__dict__)
        state["_arrays"], state["_manifest"] = {}, None
        return state

    def __len__(self) -> int:
        return int(self.config["n_windows"])

    @property
    def fs(self) -> float:
        return float(self.config["fs"])

    @property
    def leads(self) -> list[str]:
        return list(self.config["leads"])

    @property
    def n_samples(self) -> int:
        return int(self.config["n_samples"])

    @property
    def label_names(self) -> list[str]:
        return list(self.config["label_names"])

    @property
    def extras(self) -> list[str]:
        return list(self.config.get("extras", []))

    @property
    def signals(self) -> np.ndarray:
        """(N, L, T) float32: a memmap of ``signals.npy``, or for sharded stores a
        ``ShardedSignals`` (float32 rows from float32/float16 shards, ``ecgssl.data.shards``)."""
        if "signals" not in self._arrays and (self.path / INDEX_FILE).is_file():
            self._arrays["signals"] = ShardedSignals(self.path)
        return self._array("signals")

    @property
    def lead_mask(self) -> np.ndarray:
        return self._array("lead_mask")

    @property
    def valid_spans(self) -> np.ndarray:
        """(N, 2) int32 [start, end) window samples of real (not padded) signal; stores older
        than ``valid_spans.npy`` are all (0, T)."""
        if "valid_spans" not in self._arrays and not (self.path / "valid_spans.npy").exists():
            full = np.zeros((len(self), 2), dtype=np.int32)
            full[:, 1] = self.n_samples
            self._arrays["valid_spans"] = full
        return self._array("valid_spans")

    @property
    def labels(self) -> np.ndarray:
        """(N, K) uint8 multi-hot over ``label_names``."""
        return self._array("labels")

    @property
    def masks(self) -> np.ndarray:
        """(N, L, T) int8 wave codes (0 none, 1 P, 2 QRS, 3 T)."""
        return self._array("masks")

    @property
    def spans(self) -> np.ndarray:
        """(N, L, 2) int32 annotated span [start, end) per lead."""
        return self._array("spans")

    @property
    def features(self) -> np.ndarray:
        """(N, F) standardised rhythm features (beats extra)."""
        return self._array("features")

    def rpeaks(self, i: int) -> np.ndarray:
        """R-peak sample indices of window ``i`` (beats extra)."""
        return np.asarray(self._array("rpeaks")[self.beat_slice(i)])

    def beat_slice(self, i: int) -> slice:
        off = self._array("rpeak_offsets")
        return slice(int(off[i]), int(off[i + 1]))

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One window as a dict of numpy arrays (signal (L, T), labels (K,), ...)."""
        i = int(i)
        item: dict[str, Any] = {
            "index": i,
            "signal": np.array(self.signals[i]),
            "lead_mask": np.array(self.lead_mask[i]),
            "labels": np.array(self.labels[i]),
            "valid_span": np.asarray(self.valid_spans[i], dtype=np.int64),
        }
        if "waves" in self.extras:
            item["masks"] = np.array(self.masks[i])
            item["spans"] = np.array(self.spans[i])
        if "beats" in self.extras:
            sl = self.beat_slice(i)
            item["rpeaks"] = np.asarray(self._array("rpeaks")[sl], dtype=np.int64)
            item["beat_features"] = np.array(self._array("beat_features")[sl])
            item["beat_classes"] = np.array(self._array("beat_classes")[sl])
            item["features"] = np.array(self.features[i])
        return item

    def describe(self) -> str:
        """Human-readable summary (used by ``ecgssl info``)."""
        c = self.config
        lines = [
            f"store {self.path}",
            f"  windows: {len(self)}  leads: {', '.join(c['leads'])}",
            f"  fs: {c['fs']:g} Hz  samples: {c['n_samples']} ({c['n_samples'] / c['fs']:g} s)"
            f"  units: {c.get('units', 'mV')}",
            f"  records: {self.manifest['parent_id'].nunique()}  patients: "
            f"{self.manifest['patient_id'].nunique()}  source: {c['source'].get('name')}",
            f"  labels: {len(c['label_names'])}  extras: {', '.join(self.extras) or 'none'}",
            f"  preprocessing hash: {c['hash']}",
        ]
        if self.rpeak_detector is not None:
            lines.append(f"  R-peaks (beats) by: {self.rpeak_detector}")
        return "\n".join(lines)

    @property
    def rpeak_detector(self) -> str | None:
        """The R-peak detector that made the beats extra (``rpeaks.DETECTORS`` name), None
        without beats; a store from before the choice was recorded says ``"ecgssl"`` (ours,
        ``preprocess.LEGACY_FIELDS``)."""
        if "beats" not in self.extras:
            return None
        from ecgssl.data.preprocess import with_legacy_fields

        return with_legacy_fields(self.config.get("preprocess") or {})["rpeak_detector"]
