"""Output directories: ecgssl writes only into new, empty or its own directories.

Every directory ecgssl creates (a store, its ``.partial``, a run directory, a report directory)
gets a marker file ``.ecgssl.json`` (``{"kind", "ecgssl_version", "created"}``). Directories
written before the marker existed are recognised by their contents (a store's ``config.json``
with ecgssl's keys, a run's ``config.yaml`` + ``run.json`` / ``checkpoints/``, a report's
``report.json`` with ``title`` and ``sections``).

``guard_output_dir`` is called before anything is written: a non-empty directory that is not
ecgssl's is refused, with or without ``--overwrite``, and nothing in it is touched.
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
from pathlib import Path

from ecgssl.errors import OutputDirError

MARKER = ".ecgssl.json"
LOCK_NAME = ".ecgssl.lock"  # lock file of run and report directories (ecgssl.safety.locks)
KINDS = ("store", "store-partial", "run", "report")

# What ecgssl itself writes in each kind of directory (names or glob patterns): with
# ``overwrite``, anything else in the directory is a file of the user's and stops the overwrite.
OWN_ENTRIES = {
    "store": ("*.npy", "*.tmp", "manifest.csv", "config.json", "report.json", "chunks",
              "preprocess.json", MARKER),
    "store-partial": ("*.npy", "*.tmp", "manifest.csv", "config.json", "report.json", "chunks",
                      "preprocess.json", MARKER),
    "run": ("config.yaml", "run.json", "metrics.csv", "hparams.yaml", "tensorboard",
            "checkpoints", "encoder.safetensors", "encoder.json", "lightning_logs", MARKER,
            ".ecgssl.lock"),
    "report": ("report.md", "report.json", "figures", "segmentation_model.*", MARKER,
               ".ecgssl.lock"),
}


def write_marker(path: str | os.PathLike, kind: str) -> Path:
    """Create ``path`` if needed and mark it as an ecgssl ``kind`` directory."""
    from ecgssl import __version__

    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r} (one of {KINDS})")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER
    marker.write_text(json.dumps({"kind": kind, "ecgssl_version": __version__,
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    return marker


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ecgssl_kind(path: str | os.PathLike) -> str | None:
    """The kind of ecgssl directory ``path`` is (``KINDS``), or None if ecgssl did not write it."""
    path = Path(path)
    marker = _json(path / MARKER)
    if marker is not None and marker.get("kind") in KINDS:
        return str(marker["kind"])
    # Directories written before the marker existed.
    config = _json(path / "config.json")
    if config is not None and ("store_version" in config
                               or {"hash", "n_windows", "leads"} <= set(config)):
        return "store"
    stamp = _json(path / "preprocess.json")
    if stamp is not None and "hash" in stamp and (path / "chunks").is_dir():
        return "store-partial"
    if (path / "config.yaml").is_file() and ((path / "run.json").is_file()
                                             or (path / "checkpoints").is_dir()):
        return "run"
    report = _json(path / "report.json")
    if report is not None and {"title", "sections"} <= set(report):
        return "report"
    return None


def foreign_entries(path: str | os.PathLike, kind: str) -> list[str]:
    """Entries of an ecgssl ``kind`` directory that ecgssl does not write there."""
    patterns = OWN_ENTRIES[kind]
    return sorted(e.name for e in Path(path).iterdir()
                  if not any(fnmatch.fnmatch(e.name, p) for p in patterns))


def _examples(names: list[str], k: int = 3) -> str:
    shown = ", ".join(names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")


def guard_output_dir(path: str | os.PathLike, kind: str, overwrite: bool = False,
                     existing_ok: bool = False, option: str = "--out") -> str:
    """Decide whether ecgssl may write a ``kind`` directory at ``path``; touches nothing.

    Args:
        kind: ``"store"``, ``"run"`` or ``"report"``.
        overwrite: the user asked to replace an existing ecgssl ``kind`` directory.
        existing_ok: an existing ecgssl ``kind`` directory is fine without ``overwrite`` (the
            caller reuses or resumes it).
        option: how the user named the path (for the messages).
    Returns:
        ``"new"`` (does not exist), ``"empty"`` (an empty directory) or ``"ours"`` (an ecgssl
        ``kind`` directory that may be reused, or replaced when ``overwrite``).
    Raises:
        OutputDirError: a file; a non-empty directory ecgssl did not write; an ecgssl directory
            of another kind; an existing one without ``overwrite`` / ``existing_ok``; with
            ``overwrite``, one that also holds files ecgssl did not write. The message says why
            and what to do.
    """
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise OutputDirError(path, "is a dangling symbolic link",
                                 f"remove it or choose another {option}")
        return "new"
    if not path.is_dir():
        raise OutputDirError(path, "exists and is a file, not a directory",
                             f"choose a new {option}")
    from ecgssl.safety.locks import check_free

    check_free(path / LOCK_NAME, path)  # a writer at work: say so rather than guess
    entries = sorted(e.name for e in path.iterdir())
    if not entries:
        return "empty"
    found = ecgssl_kind(path)
    if found is None:
        raise OutputDirError(
            path, f"exists and holds {len(entries)} entries that ecgssl did not write "
            f"({_examples(entries)})",
            f"ecgssl never deletes or writes over them, with or without --overwrite: choose a "
            f"new or empty {option}")
    if found.split("-")[0] != kind:
        raise OutputDirError(path, f"is an ecgssl {found} directory, not a {kind} directory",
                             f"choose another {option}")
    if overwrite:
        foreign = foreign_entries(path, found)
        if foreign:
            raise OutputDirError(
                path, f"is an ecgssl {kind} but also holds entries ecgssl did not write "
                f"({_examples(foreign)})",
                f"move them out before --overwrite, or choose another {option}")
        return "ours"
    if not existing_ok:
        raise OutputDirError(path, f"already holds an ecgssl {kind}",
                             f"pass --overwrite to replace it, or choose a new {option}")
    return "ours"


def claim_output_dir(path: str | os.PathLike, kind: str, overwrite: bool = False,
                     existing_ok: bool = False, option: str = "--out") -> str:
    """``guard_output_dir``, then create the directory and mark it; returns the guard's state."""
    state = guard_output_dir(path, kind, overwrite, existing_ok, option)
    write_marker(path, kind)
    return state


def remove_own_entries(path: str | os.PathLike, kind: str) -> list[str]:
    """Delete what ecgssl writes in a ``kind`` directory (after ``guard_output_dir(...,
    overwrite=True)``); anything else stays. Returns the names removed."""
    import shutil

    path = Path(path)
    removed = []
    for entry in sorted(path.iterdir()):
        if entry.name in (MARKER, LOCK_NAME):
            continue
        if any(fnmatch.fnmatch(entry.name, p) for p in OWN_ENTRIES[kind]):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry.name)
    return removed
