"""Shared pieces of the fault suite: tree digests, small WFDB folders, subprocess drivers."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "drivers.py"


def tree_digest(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (directories as ``<dir>``)."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def user_folder(root: Path) -> Path:
    """A folder of the user's: files and a subfolder ecgssl must never touch."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "thesis.tex").write_text("months of work\n")
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "a.txt").write_text("keep me\n")
    (root / "data.npy").write_bytes(b"\x93NUMPY not really")
    return root


def wfdb_folder(shared_data: Path, dest: Path, n: int = 6) -> Path:
    """``n`` LUDB records copied as a plain WFDB folder (``.hea`` + ``.dat``)."""
    dest.mkdir(parents=True, exist_ok=True)
    for k in range(1, n + 1):
        for ext in (".hea", ".dat"):
            target = dest / f"{k}{ext}"
            shutil.copyfile(shared_data / "ludb" / "data" / f"{k}{ext}", target)
            os.chmod(target, 0o644)
    return dest


def store_digest(store: Path) -> dict[str, str]:
    """sha256 of a store's content files (not config.json/report.json: they hold timings)."""
    import json

    config = json.loads((store / "config.json").read_text())
    return {name: rec["sha256"] for name, rec in config["files"].items()
            if name != "report.json"}


def run_driver(*args: str, timeout: float = 120, env: dict | None = None
               ) -> subprocess.CompletedProcess:
    """Run ``drivers.py`` in a fresh Python (``PYTHONPATH`` = this checkout's src)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    full_env.setdefault("OMP_NUM_THREADS", "1")
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(DRIVER), *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=str(REPO))


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m ecgssl.cli ARGS`` in a fresh process (what a user runs)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    return subprocess.run([sys.executable, "-m", "ecgssl.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(REPO))
