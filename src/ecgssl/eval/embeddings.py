"""Frozen-encoder features of a store, computed once and cached on disk.

The cache file is ``<cache_dir>/<checkpoint_hash>_<store_hash>.npy`` (float32 (N, D)) with a
``.json`` sidecar (shapes, hashes, time). The signals are read in chunks from the memmap and the
features are written into a memmapped ``.npy`` as they come, so memory stays flat whatever N is.
A partially written file never becomes visible: it is written under a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ecgssl.models.pooling import output_dim

__all__ = [
    "module_hash",
    "file_hash",
    "open_store_signals",
    "compute_embeddings",
    "cached_embeddings",
]


def module_hash(module: nn.Module, length: int = 16) -> str:
    """SHA-256 (hex prefix) of a module's parameters and buffers (names, shapes, dtypes, bytes).

    Two encoders with identical weights get the same hash whatever object they live in.
    """
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        arr = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(arr.shape)).encode())
        h.update(str(arr.dtype).encode())
        h.update(arr.view(torch.uint8).numpy().tobytes() if arr.numel() else b"")
    return h.hexdigest()[:length]


def file_hash(path: str | os.PathLike, length: int = 16) -> str:
    """SHA-256 (hex prefix) of a file's bytes (e.g. a ``.safetensors`` checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def open_store_signals(store_dir: str | os.PathLike) -> tuple[np.ndarray, str]:
    """(signals memmap (N, L, T), store hash) of a prepared store directory.

    The hash is ``config.json["store_id"]`` when present (unique per prepared store), otherwise a
    hash of ``config.json`` plus the signals file size and modification time.
    """
    from ecgssl.data.shards import INDEX_FILE, open_signals

    store_dir = Path(store_dir)
    sig_path = store_dir / "signals.npy"
    if (store_dir / INDEX_FILE).is_file():  # sharded store: float32 rows from its shards
        signals, sig_path = open_signals(store_dir), store_dir / INDEX_FILE
    elif sig_path.is_file():
        signals = np.load(sig_path, mmap_mode="r")
    else:
        raise FileNotFoundError(f"store {store_dir} has no signals.npy")
    cfg_path = store_dir / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    store_hash = cfg.get("store_id")
    if not store_hash:
        st = sig_path.stat()
        h = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode())
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        store_hash = h.hexdigest()[:16]
    return signals, str(store_hash)


def _forward(encoder: nn.Module, x: torch.Tensor, leads: Sequence[str] | None) -> torch.Tensor:
    out = encoder(x) if leads is None else encoder(x, leads=list(leads))
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"encoder must return (B, D), got {tuple(out.shape)} for input "
                         f"{tuple(x.shape)}")
    return out


@torch.no_grad()
def compute_embeddings(
    encoder: nn.Module,
    signals: np.ndarray,
    *,
    batch_size: int = 64,
    leads: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Pooled encoder features of every window.

    Args:
        encoder: module with ``forward(x[, leads]) -> (B, D)``; put in eval mode here (dropout
            off, batch-norm statistics frozen) and restored to its previous mode afterwards.
        signals: (N, L, T) array or memmap in mV; read ``batch_size`` rows at a time.
        leads: lead names passed to the encoder (ViT lead embeddings), or None.
        out: optional preallocated (N, D) float32 array (e.g. a memmap) to write into.
    Returns:
        (N, D) float32 features (``out`` when given).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if signals.ndim != 3:
        raise ValueError(f"signals must be (N, L, T), got shape {signals.shape}")
    n = signals.shape[0]
    was_training = encoder.training
    encoder.eval()
    device = torch.device(device)
    try:
        iterator = range(0, n, batch_size)
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, total=(n + batch_size - 1) // batch_size,
                            desc="embeddings", unit="batch")
        for start in iterator:
            # A copy: memmap slices are read-only, torch wants writable memory.
            chunk = np.array(signals[start:start + batch_size], dtype=np.float32)
            feats = _forward(encoder, torch.from_numpy(chunk).to(device), leads)
            feats = feats.float().cpu().numpy()
            if out is None:
                out = np.empty((n, feats.shape[1]), dtype=np.float32)
            out[start:start + len(feats)] = feats
    finally:
        encoder.train(was_training)
    if out is None:  # N == 0
        raise ValueError("no windows to embed (N = 0)")
    return out


def _embed_dim(encoder: nn.Module, signals: np.ndarray, leads, device) -> int:
    dim = output_dim(encoder)
    if isinstance(dim, int):
        return dim
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(signals[:1], dtype=np.float32)).to(device)
        d = int(_forward(encoder, x, leads).shape[1])
    encoder.train(was_training)
    return d


def cached_embeddings(
    encoder: nn.Module,
    store: str | os.PathLike | np.ndarray,
    cache_dir: str | os.PathLike,
    *,
    checkpoint_hash: str | None = None,
    store_hash: str | None = None,
    batch_size: int = 64,
    leads: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """Features of a store, from the cache when present, else computed and cached.

    Args:
        store: a store directory (signals memmap + hash read from it) or an (N, L, T) array
            or array-like view, e.g. the suite's ``LeadView.signals`` (then ``store_hash`` is
            required and must identify exactly these signals, leads included).
        checkpoint_hash: identifies the weights (e.g. ``file_hash`` of the ``.safetensors``);
            default ``module_hash(encoder)``.
    Returns:
        (N, D) float32 array, memory-mapped read-only from the cache file.
    """
    if not isinstance(store, (str, os.PathLike)):  # an (N, L, T) array or array-like view
        signals = store
        if not store_hash:
            raise ValueError("store_hash is required when signals are given as an array")
    else:
        signals, own_hash = open_store_signals(store)
        store_hash = store_hash or own_hash
    checkpoint_hash = checkpoint_hash or module_hash(encoder)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # The same weights pooled another way are other features (and another width).
    pool = getattr(encoder, "pool", "mean")
    suffix = "" if pool == "mean" else f"_{pool}"
    path = cache_dir / f"{checkpoint_hash}_{store_hash}{suffix}.npy"
    if path.is_file():
        feats = np.load(path, mmap_mode="r")
        if feats.shape[0] == signals.shape[0]:
            return feats
        path.unlink()  # stale (store rewritten under the same hash): recompute
    dim = _embed_dim(encoder, signals, leads, device)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    t0 = time.perf_counter()
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                        shape=(signals.shape[0], dim))
        compute_embeddings(encoder, signals, batch_size=batch_size, leads=leads, device=device,
                           progress=progress, out=out)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    meta = {"checkpoint_hash": checkpoint_hash, "store_hash": store_hash,
            "shape": [int(signals.shape[0]), dim], "seconds": time.perf_counter() - t0,
            "leads": list(leads) if leads is not None else None}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return np.load(path, mmap_mode="r")
