"""die_with_parent: a worker exits when the process that started it is killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
SCRIPT = """
import multiprocessing as mp, os, sys, time
from ecgssl.safety import die_with_parent

def work():
    die_with_parent()
    time.sleep(60)

if __name__ == "__main__":
    p = mp.get_context("fork").Process(target=work)
    p.start()
    print(p.pid, flush=True)
    time.sleep(60)
"""


def test_worker_dies_when_its_parent_is_sigkilled():
    env = dict(os.environ, PYTHONPATH=str(SRC))
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True,
                              env=env)
    child = int(parent.stdout.readline())
    time.sleep(0.3)  # let the child arm its death signal
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        state = Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0]
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the worker outlived its parent")
