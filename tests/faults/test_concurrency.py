"""Concurrent writers: a second writer of the same output is told which PID holds it; a lock
left by a killed process is taken over."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ecgssl.cli import main
from ecgssl.errors import LockedError
from tests.faults.helpers import REPO, run_driver, store_digest, wfdb_folder

HOLD = """
import sys, time
from ecgssl.safety.locks import output_lock
with output_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(lock, seconds=30.0):
    """A separate process holding ``lock`` until killed."""
    import os

    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), str(seconds)],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _prepare(src, out):
    return main(["prepare", str(src), "--out", str(out), "--kind", "wfdb", "--workers", "0",
                 "--no-progress", "--set", "beats=false"])


def test_two_prepares_into_one_out(shared_data, tmp_path, capsys, seen):
    """A second prepare into an --out that another prepare is writing -> "in use by PID
    <pid>" (one line); the first one's store is complete and correct."""
    src = wfdb_folder(shared_data, tmp_path / "src", n=4)
    out = tmp_path / "store"
    first = subprocess.Popen([sys.executable, str(REPO / "tests" / "faults" / "drivers.py"),
                              "prepare", "slow", str(src), str(out)], cwd=str(REPO),
                             env=dict(__import__("os").environ,
                                      PYTHONPATH=f"{REPO / 'src'}:{REPO}"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "locked"
    assert _prepare(src, out) == 2
    err = capsys.readouterr().err.strip()
    (tmp_path / "go").touch()
    assert f"in use by PID {first.pid}" in err and len(err.splitlines()) == 1
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr[-2000:]
    assert _prepare(src, tmp_path / "reference") == 0
    assert store_digest(out) == store_digest(tmp_path / "reference")
    seen(err, nothing_lost=True)


def test_stale_lock_of_a_killed_process_is_taken_over(shared_data, tmp_path, caplog, seen):
    """A lock file left by a process that no longer runs -> taken over with a warning."""
    src = wfdb_folder(shared_data, tmp_path / "src", n=2)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / "store.lock").write_text(json.dumps({"pid": int(dead), "host": "x"}))
    assert _prepare(src, tmp_path / "store") == 0
    assert "taking over the lock of PID" in caplog.text
    assert not (tmp_path / "store.lock").exists()
    seen(caplog.records[0].getMessage() if caplog.records else "")


@pytest.mark.parametrize("what", ["run", "report"])
def test_second_writer_of_a_run_or_report_dir(tmp_path, what, seen):
    """Another process is training into the run dir / writing the report -> refused with
    "in use by PID <pid>"."""
    out = tmp_path / what
    out.mkdir()
    holder = _holder(out / ".ecgssl.lock")
    try:
        with pytest.raises(LockedError, match=f"in use by PID {holder.pid}") as info:
            if what == "run":
                from tests.faults import drivers

                drivers.toy_fit(str(out))
            else:
                from ecgssl.eval.report import Report

                Report("t").write(out)
    finally:
        holder.kill()
        holder.wait()
    seen(str(info.value))


def test_lock_holder_killed_releases_the_lock(tmp_path, seen):
    """A writer SIGKILLed while holding a lock -> the next writer gets the lock at once."""
    from ecgssl.safety.locks import output_lock

    lock = tmp_path / "x.lock"
    holder = _holder(lock)
    holder.kill()
    holder.wait()
    with output_lock(lock) as held:
        assert json.loads(held.read_text())["pid"] != holder.pid
    assert not lock.exists()
    proc = run_driver("prepare", "none", str(tmp_path / "nonexistent"), str(tmp_path / "s"))
    assert proc.returncode != 0 and "does not exist" in proc.stderr
    seen("lock taken over after the holder's SIGKILL")
