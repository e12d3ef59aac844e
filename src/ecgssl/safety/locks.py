"""One writer per output: a lock file that names the process holding it.

``output_lock(lock_path, target)`` creates ``lock_path`` and holds an exclusive ``flock`` on it
for the duration of the ``with`` block; the file holds the writer's PID, host, start time and
command. A second writer gets ``LockedError("<target>: in use by PID ...")``. The kernel drops
the ``flock`` when its holder dies, so a lock left by a killed process (its PID no longer
running) is taken over with a warning instead of blocking forever. Where ``fcntl`` is missing
the lock is ``O_CREAT | O_EXCL`` alone, and a lock whose PID is not running is stale.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ecgssl.errors import LockedError, OutputDirError

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

log = logging.getLogger(__name__)


def _holder(path: Path) -> dict:
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pid_running(pid: int) -> bool:
    """Whether a process with this PID exists (on this host)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OSError, ValueError):
        return False
    return True


def _busy(target, path: Path, holder: dict) -> LockedError:
    pid = holder.get("pid", "?")
    since = f" since {holder['started']}" if holder.get("started") else ""
    host = f" on {holder['host']}" if holder.get("host") else ""
    what = f" ({holder['command']})" if holder.get("command") else ""
    return LockedError(target, f"in use by PID {pid}{host}{since}{what}",
                       f"wait for it to finish or stop it; if that process is gone, delete {path}")


def _stamp(fd: int) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": " ".join(os.path.basename(a) if i == 0 else a
                                for i, a in enumerate(sys.argv))[:200]}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(info).encode())
    os.fsync(fd)


def _acquire_flock(path: Path, target) -> int:
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(target, path, _holder(path)) from None
        # The holder before us may have unlinked the file after we opened it: then we lock a
        # name nobody else can see. Retry on the file that is there now.
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    previous = _holder(path)
    if not previous and os.fstat(fd).st_size:
        os.close(fd)
        raise OutputDirError(path, "exists and is not an ecgssl lock file",
                             "move it away: ecgssl does not write over it")
    if previous.get("pid") and previous.get("pid") != os.getpid():
        log.warning("%s: taking over the lock of PID %s, which is no longer running (it was "
                    "killed or crashed; what it left is resumed or cleaned)", target,
                    previous["pid"])
    return fd


def _acquire_excl(path: Path, target) -> int:
    for _ in range(3):
        try:
            return os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder.get("pid") and pid_running(holder["pid"]):
                raise _busy(target, path, holder) from None
            log.warning("%s: taking over the stale lock of PID %s (no longer running)", target,
                        holder.get("pid", "?"))
            path.unlink(missing_ok=True)
    raise _busy(target, path, _holder(path))


def check_free(lock_path: str | os.PathLike, target: str | os.PathLike | None = None) -> None:
    """Raise ``LockedError`` if a running process holds ``lock_path``; touches nothing."""
    path = Path(lock_path)
    target = target if target is not None else path.parent
    if not path.is_file():
        return
    if fcntl is None:
        holder = _holder(path)
        if holder.get("pid") and pid_running(holder["pid"]):
            raise _busy(target, path, holder)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(target, path, _holder(path)) from None
    finally:
        os.close(fd)  # closing drops the probe's lock


@contextmanager
def output_lock(lock_path: str | os.PathLike, target: str | os.PathLike | None = None
                ) -> Iterator[Path]:
    """Hold the lock file ``lock_path`` while writing ``target`` (default: the lock's folder).

    Raises:
        LockedError: another running process holds it (the message names its PID).
    """
    path = Path(lock_path)
    target = target if target is not None else path.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire_flock(path, target) if fcntl is not None else _acquire_excl(path, target)
    try:
        _stamp(fd)
        yield path
    finally:
        # Unlink before unlocking: a waiter that opened the old file sees the inode change.
        try:
            if _holder(path).get("pid") == os.getpid():
                path.unlink()
        except OSError:
            pass
        os.close(fd)
