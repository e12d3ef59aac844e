"""Exceptions with messages that name the record or file, the problem and the fix.

Every user-facing failure is one line (``format_error``): where (a record or a file), what is
wrong, and what to do about it. The command line prints that line and exits non-zero; the full
traceback only with ``ecgssl -v``.
"""

from __future__ import annotations

import errno
import json
import os


class ECGSSLError(Exception):
    """Base of ecgssl's user-facing errors: the message is already one readable line."""


class ECGDataError(ECGSSLError, ValueError):
    """A record cannot be used as it is (missing file, NaNs, flat lead, wrong rate, ...).

    The message always starts with the record id so that a long job's report is readable.
    """

    def __init__(self, record_id: str, problem: str):
        self.record_id = str(record_id)
        self.problem = problem
        super().__init__(f"record {self.record_id!r}: {problem}")


class SpecMismatchError(ECGSSLError, ValueError):
    """Input data does not match what a checkpoint or store expects (rate, leads, length, units)."""


class FileProblem(ECGSSLError):
    """A file or directory ecgssl cannot use: ``"<path>: <problem>; <fix>"``.

    Attributes:
        path: the file or directory (str); problem: what is wrong; fix: what to do.
    """

    def __init__(self, path: str | os.PathLike, problem: str, fix: str = ""):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"{self.path}: {problem}" + (f"; {fix}" if fix else ""))


class OutputDirError(FileProblem, FileExistsError):
    """An output directory ecgssl refuses to write into (it holds something ecgssl did not write,
    or a finished result that would be replaced without ``--overwrite``)."""


class LockedError(FileProblem, BlockingIOError):
    """An output directory is being written by another process (``in use by PID ...``)."""


class IntegrityError(FileProblem, ValueError):
    """A file is damaged: truncated, unreadable, or its sha256 differs from the recorded one."""


# ------------------------------------------------------------------------------ one line

_ERRNO_SENTENCES = {
    errno.ENOSPC: ("no space left on the device",
                   "free some space or write to another disk (--out), then rerun: finished "
                   "parts are kept"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write elsewhere, then rerun"),
    errno.EROFS: ("the file system is read-only", "choose a writable --out"),
    errno.EACCES: ("permission denied", "check the permissions or choose another path"),
    errno.EPERM: ("operation not permitted", "check the permissions or choose another path"),
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.ENOTDIR: ("a part of the path is not a directory", "check the path"),
    errno.EISDIR: ("is a directory, a file was expected", "pass the file inside it"),
}


def _os_error_line(err: OSError) -> str:
    where = err.filename if err.filename is not None else ""
    if err.filename2 is not None:
        where = f"{where} -> {err.filename2}"
    sentence = _ERRNO_SENTENCES.get(err.errno)
    if sentence is None:
        problem = err.strerror or str(err)
        return f"{where}: {problem}" if where else problem
    problem, fix = sentence
    if isinstance(err, FileNotFoundError) and str(err) and not err.strerror:
        return str(err)  # our own FileNotFoundError("... does not exist") messages
    return f"{where + ': ' if where else ''}{problem}; {fix}"


def format_error(err: BaseException) -> str:
    """One line for any exception: file/record, problem, fix (no traceback).

    ecgssl's own errors already are that line; OS errors (disk full, read-only, permissions,
    missing files), corrupt checkpoints (zip read errors), broken JSON and safetensors files get
    a sentence each; anything else is shown as ``Type: message`` with a pointer to ``-v``.
    """
    if isinstance(err, ECGSSLError):
        return str(err)
    if isinstance(err, json.JSONDecodeError):
        return (f"invalid JSON (line {err.lineno}, column {err.colno}: {err.msg}): the file is "
                "truncated or not JSON; restore or re-create it")
    if isinstance(err, OSError) and err.errno is not None:
        return _os_error_line(err)
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    name = type(err).__name__
    if "PytorchStreamReader failed" in text or "failed finding central directory" in text:
        return ("corrupt checkpoint (not a complete zip archive: truncated or damaged); resume "
                "from another checkpoint or retrain")
    if name == "SafetensorError" or "safetensors" in type(err).__module__:
        return f"corrupt safetensors file ({text}); re-export or re-download it"
    if isinstance(err, (ValueError, FileNotFoundError, FileExistsError)):
        return text or name
    return f"{name}: {text} (unexpected; rerun with -v for the traceback)"


def describe_os_error(err: OSError, path: str | os.PathLike | None = None) -> FileProblem:
    """An ``OSError`` as a ``FileProblem`` naming ``path`` (or the error's own file)."""
    where = path if path is not None else (err.filename or "?")
    problem, fix = _ERRNO_SENTENCES.get(err.errno, (err.strerror or str(err), ""))
    return FileProblem(where, problem, fix)
