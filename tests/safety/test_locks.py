"""Locks: one holder; the holder's PID in the message; a foreign file is never taken."""

import json

import pytest

from ecgssl.errors import LockedError, OutputDirError
from ecgssl.safety.locks import check_free, output_lock, pid_running


def test_second_holder_is_refused_and_the_lock_is_removed(tmp_path):
    lock = tmp_path / "a.lock"
    with output_lock(lock, "thing") as held:
        info = json.loads(held.read_text())
        assert pid_running(info["pid"])
        with pytest.raises(LockedError, match=f"thing: in use by PID {info['pid']}"):
            with output_lock(lock, "thing"):
                pass
        with pytest.raises(LockedError):
            check_free(lock)
    assert not lock.exists()
    check_free(lock)


def test_a_file_that_is_not_a_lock_is_left_alone(tmp_path):
    lock = tmp_path / "a.lock"
    lock.write_text("my shopping list")
    with pytest.raises(OutputDirError):
        with output_lock(lock):
            pass
    assert lock.read_text() == "my shopping list"
