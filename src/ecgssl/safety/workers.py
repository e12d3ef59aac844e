"""Worker processes (DataLoader workers, prepare's pool) die with the process that started them.

On Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` makes the kernel kill the worker when its parent
dies, even by SIGKILL (where no Python cleanup runs). Elsewhere, and in case the parent died
before the call, a daemon thread polls the parent PID once a second and exits the worker.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def _prctl_deathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, period_s: float) -> None:
    while True:
        time.sleep(period_s)
        if os.getppid() != parent:
            os._exit(1)  # the parent is gone (we were re-parented): nothing left to work for


def die_with_parent(parent: int | None = None, period_s: float = 1.0) -> None:
    """Call in a freshly started worker process: it exits when its parent dies.

    Args:
        parent: the parent's PID (default ``os.getppid()`` now).
    """
    parent = os.getppid() if parent is None else parent
    armed = _prctl_deathsig()
    if os.getppid() != parent:
        os._exit(1)  # the parent died before the signal was armed
    if not armed:
        threading.Thread(target=_watch, args=(parent, period_s), daemon=True,
                         name="ecgssl-parent-watch").start()


def worker_init(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn`` that only makes the worker die with its parent."""
    die_with_parent()
