"""A store for corpora: signals in shards with one index, float16 storage, shard-wise prepare.

Signal layouts of a store directory:

- ``signals.npy`` (N, L, T) float32: one memory-mapped file (the default, every older store);
- sharded: ``signals/000000.npy``, ``signals/000001.npy`` ... each (n_k, L, T) float32 or
  float16 and memory-mapped on its own, listed in ``signals_index.json``::

      {"format": 1, "dtype": "float16", "shape": [N, L, T],
       "shards": [{"file": "signals/000000.npy", "n": n_0}, ...],
       "float16_error": {"max_abs": ..., "max_rel": ..., "n_values": ...}}

  No single file grows with the corpus (10 M 12-lead 10 s windows at 250 Hz are 1.2 TB in
  float32, 0.6 TB in float16, in shards of ``shard_windows`` windows each).

``open_signals(store_dir)`` gives either layout as an (N, L, T) array-like that returns float32
rows (``ShardedSignals``); reading a window touches one shard's pages only, so DataLoader workers
and distributed samplers read the store without loading it.

float16 (10-bit mantissa, round to nearest): every stored value ``h`` of a float32 value ``x``
with ``|x| <= 65504`` satisfies ``|h - x| <= 2^-11 |x| + 2^-25`` (relative half-ulp for normal
numbers, half the subnormal spacing 2^-24 below 2^-14); for ECGs in mV (``|x|`` < 25 after the
store's amplitude check) that is at most 12 uV, and 0.5 uV for ``|x|`` < 1 mV. The realised
maximum errors are measured while writing and recorded in the index; values beyond the float16
range are an error (never stored as inf).

Parallel preparation: ``ecgssl prepare ... --shard I/N`` prepares the I-th of N contiguous blocks
of the source's record ids into its own store (``ShardSource``) and writes ``shard.json`` beside
it; ``ecgssl merge SHARD ... --out STORE`` (``merge_stores``) checks that the N shards are one
corpus prepared alike, and joins them: the same windows, in the same order, with the same
arrays as one ``prepare`` of the whole source (beat and rhythm features are standardised again
over the merged store from the raw features each shard keeps). Shard signal files are linked
(or copied) into the merged store, not rewritten, unless a new dtype or shard size is asked for.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INDEX_FILE = "signals_index.json"
SHARD_FILE = "shard.json"
SIGNAL_DTYPES = ("float32", "float16")
FLOAT16_MAX = float(np.finfo(np.float16).max)
FLOAT16_MIN_NORMAL = 2.0 ** -14
ROWS_PER_WRITE = 1024  # windows converted / copied per step: the unit of peak memory


def float16_bound(x: np.ndarray) -> np.ndarray:
    """The documented float16 error bound ``2^-11 |x| + 2^-25`` for float32 values ``x``."""
    return np.abs(x.astype(np.float64)) * 2.0 ** -11 + 2.0 ** -25


@dataclass
class SignalLayout:
    """How a store writes its signals.

    Attributes:
        dtype: ``"float32"`` or ``"float16"`` (half the disk and I/O; error bound above).
        shard_windows: windows per shard file (None: one shard for the whole store).
    """

    dtype: str = "float32"
    shard_windows: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in SIGNAL_DTYPES:
            raise ValueError(f"signal dtype must be one of {SIGNAL_DTYPES}, got {self.dtype!r}")
        if self.shard_windows is not None and int(self.shard_windows) < 1:
            raise ValueError(f"shard_windows must be >= 1, got {self.shard_windows}")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class ShardWriter:
    """Streams float32 rows (n, L, T) into the shard files of ``layout`` under ``store_dir``.

    Rows are written with plain file writes (no writable memmap: dirty mapped pages would count
    against resident memory). float16 conversion errors are measured as rows pass; a value
    outside the float16 range raises ``OverflowError`` naming the window.
    """

    def __init__(self, store_dir: Path, total: int, shape_tail: tuple[int, ...],
                 layout: SignalLayout):
        self.dir = Path(store_dir)
        self.total, self.tail, self.layout = int(total), tuple(shape_tail), layout
        self.dtype = np.dtype(layout.dtype)
        self.per_shard = int(layout.shard_windows or max(total, 1))
        (self.dir / "signals").mkdir(parents=True, exist_ok=True)
        self.shards: list[dict[str, Any]] = []
        self._file = None
        self._left = 0  # rows still to write into the open shard
        self.written = 0
        self.max_abs = 0.0
        self.max_rel = 0.0

    def _open_next(self) -> None:
        if self._file is not None:
            self._file.close()
        n = min(self.per_shard, self.total - self.written)
        name = f"signals/{len(self.shards):06d}.npy"
        self._file = open(self.dir / name, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (n, *self.tail)}
        np.lib.format.write_array_header_1_0(self._file, header)
        self.shards.append({"file": name, "n": n})
        self._left = n

    def write(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        if rows.shape[1:] != self.tail:
            raise ValueError(f"rows of shape {rows.shape[1:]}, store windows are {self.tail}")
        if self.written + len(rows) > self.total:
            raise ValueError(f"more than the {self.total} windows announced")
        stored = self._convert(rows)
        start = 0
        while start < len(stored):
            if self._left == 0:
                self._open_next()
            take = min(self._left, len(stored) - start)
            self._file.write(np.ascontiguousarray(stored[start:start + take]).tobytes())
            start += take
            self._left -= take
            self.written += take

    def _convert(self, rows: np.ndarray) -> np.ndarray:
        if self.dtype == rows.dtype:
            return rows
        if self.dtype == np.float16:
            x = rows.astype(np.float32, copy=False)
            big = np.abs(x) > FLOAT16_MAX
            if bool(big.any()):
                window = self.written + int(np.argwhere(big)[0][0])
                raise OverflowError(f"window {window}: |value| {float(np.abs(x).max()):g} exceeds "
                                    f"the float16 range ({FLOAT16_MAX:g}); store float32")
            h = x.astype(np.float16)
            err = np.abs(h.astype(np.float64) - x.astype(np.float64))
            if err.size:
                self.max_abs = max(self.max_abs, float(err.max()))
                # Relative error over float16's normal range (below 2^-14 the absolute
                # term of the bound applies: subnormals have fewer significant bits).
                nz = np.abs(x) >= FLOAT16_MIN_NORMAL
                if bool(nz.any()):
                    self.max_rel = max(self.max_rel,
                                       float((err[nz] / np.abs(x[nz].astype(np.float64))).max()))
            return h
        return rows.astype(self.dtype)

    def close(self) -> dict[str, Any]:
        """Finish the files and write the index; returns it."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.written != self.total:
            raise RuntimeError(f"{self.dir}: wrote {self.written} windows, expected {self.total}")
        index = {"format": 1, "dtype": self.layout.dtype, "shape": [self.total, *self.tail],
                 "shards": self.shards}
        if self.dtype == np.float16:
            index["float16_error"] = {
                "max_abs": self.max_abs, "max_rel": self.max_rel,  # rel: |x| >= 2^-14
                "n_values": int(self.total * int(np.prod(self.tail))),
                "bound": "|h - x| <= 2^-11 |x| + 2^-25"}
        (self.dir / INDEX_FILE).write_text(json.dumps(index, indent=1))
        return index


def write_signals(store_dir: Path, blocks: Iterable[np.ndarray], total: int,
                  shape_tail: tuple[int, ...], layout: SignalLayout | None) -> None:
    """Write the store's signals from float32 row blocks, in ``layout`` (None: ``signals.npy``
    float32, the classic layout)."""
    if layout is None:
        dtype = np.dtype(np.float32)
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (total, *shape_tail)}
        written = 0
        with open(Path(store_dir) / "signals.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            for block in blocks:
                f.write(np.ascontiguousarray(block, dtype=dtype).tobytes())
                written += len(block)
        if written != total:
            raise RuntimeError(f"{store_dir}/signals.npy: wrote {written} rows, expected {total}")
        return
    writer = ShardWriter(store_dir, total, shape_tail, layout)
    for block in blocks:
        writer.write(block)
    writer.close()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class ShardedSignals:
    """(N, L, T) read-only view of a store's signals in either layout; rows come back float32.

    Supports ``len``, ``shape``, ``ndim``, ``dtype`` (float32, what reads return),
    ``stored_dtype``, and indexing by an int, a slice or an integer array (a copy, float32).
    Shards are memory-mapped when first touched; pickling drops the maps (workers reopen).
    """

    def __init__(self, store_dir: str | os.PathLike):
        self.dir = Path(store_dir)
        index_file = self.dir / INDEX_FILE
        if index_file.is_file():
            index = json.loads(index_file.read_text())
            self.files = [self.dir / s["file"] for s in index["shards"]]
            counts = [int(s["n"]) for s in index["shards"]]
            self.shape = tuple(int(v) for v in index["shape"])
            self.stored_dtype = np.dtype(index["dtype"])
            self.index = index
        elif (self.dir / "signals.npy").is_file():
            arr = np.load(self.dir / "signals.npy", mmap_mode="r")
            self.files, counts = [self.dir / "signals.npy"], [int(arr.shape[0])]
            self.shape, self.stored_dtype = tuple(arr.shape), arr.dtype
            self.index = {"format": 0, "dtype": str(arr.dtype), "shape": list(arr.shape),
                          "shards": [{"file": "signals.npy", "n": counts[0]}]}
        else:
            raise FileNotFoundError(f"store {self.dir} has neither signals.npy nor {INDEX_FILE}")
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if int(self.starts[-1]) != self.shape[0]:
            raise ValueError(f"{self.dir}/{INDEX_FILE}: shards hold {int(self.starts[-1])} "
                             f"windows, the index says {self.shape[0]}")
        self._maps: dict[int, np.ndarray] = {}

    dtype = np.dtype(np.float32)
    ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def shard(self, k: int) -> np.ndarray:
        """Shard ``k`` as a read-only memmap in its stored dtype."""
        if k not in self._maps:
            arr = np.load(self.files[k], mmap_mode="r")
            expected = (int(self.starts[k + 1] - self.starts[k]), *self.shape[1:])
            if tuple(arr.shape) != expected:
                raise ValueError(f"{self.files[k]}: shape {arr.shape}, the index says {expected}")
            self._maps[k] = arr
        return self._maps[k]

    def _locate(self, i: int) -> tuple[int, int]:
        n = self.shape[0]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"window {i} out of range for {n} windows")
        k = bisect.bisect_right(self.starts, i) - 1
        return k, i - int(self.starts[k])

    def __getitem__(self, key):
        if isinstance(key, tuple):  # e.g. signals[i, :, a:b]: the window first, then the rest
            return self[key[0]][(slice(None), *key[1:])] if not np.isscalar(key[0]) \
                else self[key[0]][key[1:]]
        if isinstance(key, (int, np.integer)):
            k, j = self._locate(int(key))
            return np.asarray(self.shard(k)[j], dtype=np.float32)
        if isinstance(key, slice):
            rows = np.arange(*key.indices(self.shape[0]))
        else:
            rows = np.asarray(key)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
            rows = rows.astype(np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        if len(rows) == 0:
            return out
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise IndexError(f"windows out of range for {self.shape[0]} windows")
        shard_of = np.searchsorted(self.starts, rows, side="right") - 1
        for k in np.unique(shard_of):
            sel = shard_of == k
            local = rows[sel] - self.starts[k]
            block = self.shard(int(k))
            if len(local) > 1 and np.all(np.diff(local) == 1):  # contiguous: one slice read
                out[sel] = block[int(local[0]):int(local[-1]) + 1]
            else:
                out[sel] = block[local]
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def iter_blocks(self, rows: int = ROWS_PER_WRITE):
        """float32 blocks of up to ``rows`` windows, in order (for streaming copies)."""
        for start in range(0, self.shape[0], rows):
            yield self[start:min(start + rows, self.shape[0])]


def open_signals(store_dir: str | os.PathLike) -> ShardedSignals:
    """A store's signals (either layout) as a float32 array-like."""
    return ShardedSignals(store_dir)


def has_signals(store_dir: str | os.PathLike) -> bool:
    """True when ``store_dir`` holds signals in either layout."""
    d = Path(store_dir)
    return (d / "signals.npy").is_file() or (d / INDEX_FILE).is_file()


# --------------------------------------------------------------------------------------------
# Shard-wise preparation and merging
# --------------------------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), 0 <= I < N (``--shard 0/4`` is the first of four)."""
    try:
        index, count = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= I < N")
    return index, count


def shard_bounds(n_records: int, index: int, count: int) -> tuple[int, int]:
    """[start, end) of shard ``index`` of ``count`` contiguous blocks of ``n_records`` ids."""
    return n_records * index // count, n_records * (index + 1) // count


class ShardSource:
    """The records of one shard of a source: a contiguous block of its record ids, in order.

    Picklable when the source is (the workers of ``prepare_store`` receive it).
    ``max_records`` limits the corpus (its first N ids) before it is split.
    """

    def __init__(self, source, index: int, count: int, max_records: int | None = None):
        self.source, self.index, self.count = source, int(index), int(count)
        ids = list(source.record_ids())
        if max_records is not None:
            ids = ids[:max_records]
        self.n_total = len(ids)
        self.start, self.end = shard_bounds(len(ids), self.index, self.count)
        self._ids = ids[self.start:self.end]
        self.name = getattr(source, "name", type(source).__name__)
        self.path = getattr(source, "path", "")

    def record_ids(self) -> list[str]:
        return list(self._ids)

    def read(self, record_id: str):
        return self.source.read(record_id)

    def info(self) -> dict[str, Any]:
        """What ``shard.json`` records (merge checks it)."""
        return {"index": self.index, "count": self.count, "n_record_ids_total": self.n_total,
                "record_range": [self.start, self.end], "source": self.name,
                "source_path": str(self.path),
                "first_record": self._ids[0] if self._ids else None,
                "last_record": self._ids[-1] if self._ids else None}

    def __getattr__(self, name):
        # Anything else a source offers (kind, options ...) is the wrapped source's.
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)


def prepare_shard(source, out: str | os.PathLike, index: int, count: int, cfg=None,
                  **kwargs) -> dict:
    """``prepare_store`` of shard ``index`` of ``count`` into ``out``; writes ``shard.json``.

    Returns the report (with ``"shard"``). kwargs go to ``prepare_store``; ``max_records``
    limits the whole corpus before it is split (every shard must be given the same).
    """
    from ecgssl.data.store import prepare_store

    max_records = kwargs.pop("max_records", None)
    shard = ShardSource(source, index, count, max_records)
    if not shard.record_ids():
        raise ValueError(f"shard {index}/{count} of {shard.n_total} records is empty; use fewer "
                         "shards")
    from ecgssl.data.store import _source_fingerprint

    report = prepare_store(shard, out, cfg, **kwargs)
    # The whole corpus's fingerprint (what one prepare of it records): the merged store's.
    info = {**shard.info(), "corpus_fingerprint": _source_fingerprint(source, max_records)}
    (Path(out) / SHARD_FILE).write_text(json.dumps(info, indent=1))
    return {**report, "shard": info}


def _load_shards(dirs: list[Path]) -> list[tuple[Path, dict, dict]]:
    """(dir, config, shard info) sorted by shard index, after every consistency check."""
    from ecgssl.errors import SpecMismatchError

    found = []
    for d in dirs:
        if not (d / "config.json").is_file() or not has_signals(d):
            raise FileNotFoundError(f"{d} is not a prepared store (no config.json / signals)")
        if not (d / SHARD_FILE).is_file():
            raise SpecMismatchError(f"{d} is not a shard (no {SHARD_FILE}): prepare it with "
                                    "`ecgssl prepare ... --shard I/N`")
        found.append((d, json.loads((d / "config.json").read_text()),
                      json.loads((d / SHARD_FILE).read_text())))
    found.sort(key=lambda t: t[2]["index"])
    count = found[0][2]["count"]
    indices = [info["index"] for _, _, info in found]
    if any(info["count"] != count for _, _, info in found) or indices != list(range(count)):
        raise SpecMismatchError(f"shards {indices} of {[i['count'] for _, _, i in found]}: merge "
                                f"needs each of 0..N-1 exactly once (N={count})")
    ref_dir, ref, ref_info = found[0]
    for d, cfg, info in found[1:]:
        for key in ("hash", "fs", "leads", "n_samples", "extras"):
            if cfg.get(key) != ref.get(key):
                raise SpecMismatchError(f"{d}: {key} {cfg.get(key)!r} differs from {ref_dir} "
                                        f"({ref.get(key)!r}); prepare every shard alike")
        for key in ("n_record_ids_total", "source"):
            if info.get(key) != ref_info.get(key):
                raise SpecMismatchError(f"{d}: {key} {info.get(key)!r} differs from {ref_dir} "
                                        f"({ref_info.get(key)!r}): shards of different corpora")
    for (d, _, a), (_, _, b) in zip(found, found[1:]):
        if a["record_range"][1] != b["record_range"][0]:
            raise SpecMismatchError(f"{d}: record ranges {a['record_range']} and "
                                    f"{b['record_range']} do not join")
    return found


def _stream_concat(path: Path, arrays: list[np.ndarray], dtype) -> None:
    """Concatenate (memory-mapped) arrays along axis 0 into one .npy, a block at a time."""
    dtype = np.dtype(dtype)
    tail = arrays[0].shape[1:]
    total = sum(len(a) for a in arrays)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": (total, *tail)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for a in arrays:
            for s in range(0, len(a), ROWS_PER_WRITE * 8):
                f.write(np.ascontiguousarray(a[s:s + ROWS_PER_WRITE * 8], dtype=dtype).tobytes())


def _link_or_copy(src: Path, dst: Path) -> str:
    try:
        os.link(src, dst)
        return "linked"
    except OSError:
        shutil.copyfile(src, dst)
        return "copied"


def _merge_signals(out: Path, shards: list[Path], layout: SignalLayout | None) -> dict:
    readers = [ShardedSignals(d) for d in shards]
    dtypes = {str(r.stored_dtype) for r in readers}
    target = layout.dtype if layout is not None else (dtypes.pop() if len(dtypes) == 1 else None)
    if target is None:
        raise ValueError(f"shards store signals as {sorted(dtypes)}: give --signal-dtype")
    total = sum(len(r) for r in readers)
    tail = readers[0].shape[1:]
    reuse = (layout is None or layout.shard_windows is None) and \
        all(str(r.stored_dtype) == target for r in readers)
    if not reuse:
        writer = ShardWriter(out, total, tail, layout or SignalLayout(target))
        for r in readers:
            for block in r.iter_blocks():
                writer.write(block)
        writer.close()
        return {"signals": "rewritten"}
    (out / "signals").mkdir(parents=True, exist_ok=True)
    entries, how, f16 = [], set(), []
    for r in readers:
        if "float16_error" in r.index:
            f16.append(r.index["float16_error"])
        for k, src in enumerate(r.files):
            name = f"signals/{len(entries):06d}.npy"
            how.add(_link_or_copy(src, out / name))
            entries.append({"file": name, "n": int(r.starts[k + 1] - r.starts[k])})
    index = {"format": 1, "dtype": target, "shape": [total, *tail], "shards": entries}
    if f16:
        index["float16_error"] = {
            "max_abs": max(e["max_abs"] for e in f16), "max_rel": max(e["max_rel"] for e in f16),
            "n_values": sum(e["n_values"] for e in f16), "bound": f16[0]["bound"]}
    (out / INDEX_FILE).write_text(json.dumps(index, indent=1))
    return {"signals": "+".join(sorted(how))}


def merge_stores(shard_dirs: list[str | os.PathLike], out: str | os.PathLike,
                 layout: SignalLayout | None = None) -> dict:
    """Join the N shard stores of one corpus into one store at ``out`` (module docstring).

    Args:
        shard_dirs: the shards' store directories (any order; each of 0..N-1 exactly once).
        out: the merged store to create; it must not exist (nothing is overwritten).
        layout: signal dtype / shard size of the merged store (None: keep the shards' files).
    Returns:
        The merged report (also ``out/report.json``).
    Raises:
        SpecMismatchError: the shards are not one corpus prepared alike (names the shard).
        FileExistsError: ``out`` (or ``out.partial``) exists.
    """
    import pandas as pd

    from ecgssl.data.store import STORE_VERSION, _standardise

    t0 = time.perf_counter()
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    for path in (out, partial):
        if path.exists():
            raise FileExistsError(f"{path} exists; merge writes a new store: choose another "
                                  "--out or remove it yourself")
    found = _load_shards([Path(d) for d in shard_dirs])
    dirs = [d for d, _, _ in found]
    configs = [c for _, c, _ in found]
    partial.mkdir(parents=True)
    maps = {name: [np.load(d / f"{name}.npy", mmap_mode="r") for d in dirs]
            for name in ("lead_mask",)}
    n = sum(int(c["n_windows"]) for c in configs)
    sig = _merge_signals(partial, dirs, layout)
    _stream_concat(partial / "lead_mask.npy", maps["lead_mask"], bool)
    # Labels: multi-hot over the union of the shards' label names (sorted, as prepare does).
    label_names = sorted({name for c in configs for name in c["label_names"]})
    col = {name: k for k, name in enumerate(label_names)}
    multi_hot = np.zeros((n, len(label_names)), dtype=np.uint8)
    row = 0
    for d, c in zip(dirs, configs):
        lab = np.load(d / "labels.npy", mmap_mode="r")
        multi_hot[row:row + len(lab), [col[name] for name in c["label_names"]]] = lab
        row += len(lab)
    np.save(partial / "labels.npy", multi_hot)
    extras = list(configs[0].get("extras", []))
    for name, dtype in (("masks", np.int8), ("spans", np.int32), ("valid_spans", np.int32)):
        if all((d / f"{name}.npy").is_file() for d in dirs):
            _stream_concat(partial / f"{name}.npy",
                           [np.load(d / f"{name}.npy", mmap_mode="r") for d in dirs], dtype)
    beat_info = {}
    if "beats" in extras:
        missing = [str(d) for d in dirs if not (d / "beat_features_raw.npy").is_file()]
        if missing:
            from ecgssl.errors import SpecMismatchError

            raise SpecMismatchError(f"shards {missing} lack beat_features_raw.npy (prepared by an "
                                    "older ecgssl): prepare them again to merge")
        offsets = [np.load(d / "rpeak_offsets.npy") for d in dirs]
        counts = np.concatenate([np.diff(o) for o in offsets])
        merged_offsets = np.zeros(n + 1, dtype=np.int64)
        merged_offsets[1:] = np.cumsum(counts)
        np.save(partial / "rpeak_offsets.npy", merged_offsets)
        np.save(partial / "rpeaks.npy", np.concatenate([np.load(d / "rpeaks.npy") for d in dirs]))
        beat_raw = np.concatenate([np.load(d / "beat_features_raw.npy") for d in dirs])
        beat_z, beat_stats = _standardise(beat_raw.reshape(len(beat_raw), -1))
        np.save(partial / "beat_features.npy", beat_z)
        np.save(partial / "beat_features_raw.npy", beat_raw)
        np.save(partial / "beat_classes.npy",
                np.concatenate([np.load(d / "beat_classes.npy") for d in dirs]))
        rhythm_raw = np.concatenate([np.load(d / "features_raw.npy") for d in dirs])
        rhythm_z, rhythm_stats = _standardise(rhythm_raw)
        np.save(partial / "features.npy", rhythm_z)
        np.save(partial / "features_raw.npy", rhythm_raw)
        beat_info = {"feature_standardisation": rhythm_stats,
                     "beat_feature_standardisation": beat_stats}
    dtypes = {"record_id": str, "patient_id": str, "parent_id": str}
    manifest = pd.concat([pd.read_csv(d / "manifest.csv", dtype=dtypes) for d in dirs],
                         ignore_index=True)
    manifest["window"] = np.arange(n)
    manifest.to_csv(partial / "manifest.csv", index=False)
    reports = [json.loads((d / "report.json").read_text()) for d in dirs]
    report = {key: sum(r.get(key, 0) for r in reports)
              for key in ("n_records_read", "n_records_bad", "n_windows_bad", "n_windows")}
    report["bad_records"] = [b for r in reports for b in r.get("bad_records", [])]
    report["shards"] = [{"dir": str(d), "seconds_total": r.get("seconds_total")}
                        for d, r in zip(dirs, reports)]
    report["seconds_merge"] = round(time.perf_counter() - t0, 3)
    report.update(sig)
    (partial / "report.json").write_text(json.dumps(report, indent=1))
    config = {**configs[0], **beat_info, "store_version": STORE_VERSION, "n_windows": n,
              "label_names": label_names, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "merged_from": [str(d) for d in dirs]}
    config["source"] = {**configs[0]["source"],
                        "n_record_ids": found[0][2]["n_record_ids_total"]}
    if found[0][2].get("corpus_fingerprint"):
        config["source"]["fingerprint"] = found[0][2]["corpus_fingerprint"]
    import hashlib

    ident = hashlib.sha256(json.dumps([config["hash"], config["source"], n, config["created"],
                                       manifest["record_id"].tolist()]).encode())
    config["store_id"] = ident.hexdigest()[:16]
    from ecgssl.safety.artefacts import file_digests
    from ecgssl.safety.outputs import write_marker

    write_marker(partial, "store")
    # The merged store's own files (shard 0's digests came along in configs[0]).
    config["files"] = file_digests(partial, exclude=("config.json", ".ecgssl.json"))
    (partial / "config.json").write_text(json.dumps(config, indent=1))  # last: marks it done
    os.replace(partial, out)
    return report
