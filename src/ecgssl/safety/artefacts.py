"""Verified artefacts: sha256 of every weights / array file, recorded in its JSON and checked on
load; friendly errors for truncated, garbage or mismatched files.

A model file is ``<stem>.safetensors`` (tensors only: loading runs no code) + ``<stem>.json``
whose ``"weights"`` entry is ``{"file", "sha256", "bytes"}`` (``weights_record``). Encoders
(``ecgssl.train.export``), segmentation models and fine-tuned models (``ecgssl.api``) use it;
a store's ``config.json`` lists its arrays the same way under ``"files"``.

Files written before sha256 was recorded load with a warning (their integrity cannot be
checked), never refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from ecgssl.errors import IntegrityError, SpecMismatchError

log = logging.getLogger(__name__)

# Store files up to this size are hashed in full whenever a store is opened; larger ones (a
# large signals.npy) are checked by size on open and hashed by ``verify_digests(full=True)``.
VERIFY_ON_OPEN_BYTES = 256 * 2**20


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def weights_record(path: str | os.PathLike) -> dict[str, Any]:
    """``{"file": name, "sha256": hex, "bytes": size}`` of a written file."""
    path = Path(path)
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def file_digests(directory: str | os.PathLike, exclude: tuple[str, ...] = ()) -> dict[str, dict]:
    """``{name: {"sha256", "bytes"}}`` of every regular file in ``directory`` and its
    subfolders (a sharded store's ``signals/``); names are relative POSIX paths, ``exclude``
    names top-level entries."""
    root = Path(directory)
    out = {}
    for entry in sorted(root.rglob("*")):
        rel = entry.relative_to(root)
        if entry.is_file() and rel.parts[0] not in exclude:
            rec = weights_record(entry)
            out[rel.as_posix()] = {"sha256": rec["sha256"], "bytes": rec["bytes"]}
    return out


def _damaged(path: Path, problem: str, fix: str) -> IntegrityError:
    return IntegrityError(path, problem, fix)


def verify_digests(directory: str | os.PathLike, digests: dict[str, dict] | None,
                   recorded_in: str,
                   full: bool = False, fix: str = "prepare the store again (--overwrite)"
                   ) -> None:
    """Check files against recorded ``{name: {"sha256", "bytes"}}``.

    Sizes always; sha256 of files up to ``VERIFY_ON_OPEN_BYTES``, of all with ``full``.
    ``digests`` None (written by an older ecgssl): a warning, nothing checked.

    Raises:
        IntegrityError: a file is missing, has another size or another sha256 (names the file).
    """
    directory = Path(directory)
    if digests is None:
        log.warning("%s: no sha256 recorded in %s (written by an older ecgssl): its files "
                    "cannot be verified; %s to add them", directory, recorded_in, fix)
        return
    for name, rec in digests.items():
        path = directory / name
        if not path.is_file():
            raise _damaged(path, f"missing (listed in {recorded_in})", fix)
        size = path.stat().st_size
        if "bytes" in rec and size != int(rec["bytes"]):
            raise _damaged(path, f"is {size} bytes, {recorded_in} records {rec['bytes']} "
                           "(truncated or replaced)", fix)
        if "sha256" in rec and (full or size <= VERIFY_ON_OPEN_BYTES):
            got = sha256_file(path)
            if got != rec["sha256"]:
                raise _damaged(path, f"sha256 {got[:12]}... differs from {rec['sha256'][:12]}... "
                               f"recorded in {recorded_in} (the file is damaged or was "
                               "replaced)", fix)


def read_json_file(path: str | os.PathLike, what: str = "file",
                   fix: str = "restore or re-create it") -> dict[str, Any]:
    """A JSON object from ``path``, or a one-line error naming the file (missing, truncated,
    not JSON, not an object)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise _damaged(path, f"{what} is not text (binary garbage)", fix) from None
    except json.JSONDecodeError as err:
        raise _damaged(path, f"{what} is not valid JSON (line {err.lineno}, column {err.colno}: "
                       f"{err.msg}; truncated?)", fix) from None
    if not isinstance(data, dict):
        raise _damaged(path, f"{what} holds a JSON {type(data).__name__}, not an object", fix)
    return data


def save_model_file(state: dict, stem: str | os.PathLike, meta: dict[str, Any]
                    ) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` (``state``) and ``<stem>.json`` (``meta`` + ``"weights"``).

    Tensors are copied to contiguous CPU tensors first (safetensors refuses shared storage).
    The JSON is written last, after the weights' sha256 is known.
    """
    from safetensors.torch import save_file

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}
    weights_path, json_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    # One metadata key only: safetensors orders several in hash order, which would make the
    # bytes (and the sha256) of identical weights differ from one process to the next.
    save_file(weights, str(weights_path), metadata={"format": "pt"})
    full = dict(meta)
    full["weights"] = weights_record(weights_path)
    json_path.write_text(json.dumps(full, indent=2))
    return weights_path, json_path


def load_model_file(stem: str | os.PathLike, meta: dict[str, Any], device: str = "cpu",
                    fix: str = "re-export it or copy it again") -> dict:
    """The tensors of ``<stem>.safetensors``, verified against ``meta["weights"]["sha256"]``.

    Raises:
        FileNotFoundError: no weights file.
        IntegrityError: sha256 or size differs, or the file is not a readable safetensors file
            (truncated, garbage); the message names the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    stem = Path(stem)
    weights_path, json_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if not weights_path.is_file():
        raise FileNotFoundError(f"weights not found: {weights_path} (beside {json_path.name})")
    record = meta.get("weights")
    if isinstance(record, dict) and record.get("sha256"):
        verify_digests(weights_path.parent, {weights_path.name: record}, json_path.name,
                       full=True, fix=fix)
    else:
        log.warning("%s: no sha256 recorded in %s (written by an older ecgssl): its weights "
                    "cannot be verified; re-export it to add one", weights_path, json_path.name)
    try:
        return load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _damaged(weights_path, f"not a readable safetensors file ({err}; truncated or "
                       "garbage)", fix) from None


def check_state_fits(module, state: dict, weights_path: str | os.PathLike,
                     spec_path: str | os.PathLike, what: str) -> None:
    """Refuse weights that do not fit the module built from the spec, naming the first key.

    Raises:
        SpecMismatchError: missing / unexpected keys, or a key whose shape differs.
    """
    want = module.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    shapes = [(k, tuple(state[k].shape), tuple(want[k].shape)) for k in sorted(want)
              if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if shapes:
        k, got, exp = shapes[0]
        more = f" (+{len(shapes) - 1} more keys)" if len(shapes) > 1 else ""
        parts.append(f"key {k!r} has shape {list(got)} in the weights but {list(exp)} in the "
                     f"{what} built from the spec{more}")
    if missing:
        parts.append(f"missing keys {missing[:3]}" + (f" (+{len(missing) - 3})"
                                                      if len(missing) > 3 else ""))
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:3]}" + (f" (+{len(unexpected) - 3})"
                                                            if len(unexpected) > 3 else ""))
    raise SpecMismatchError(f"{weights_path} does not fit the {what} described by {spec_path}: "
                            + "; ".join(parts) + "; the JSON describes another architecture: "
                            "export the pair again")
