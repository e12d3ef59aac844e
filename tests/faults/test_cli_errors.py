"""One error style: every failure is one line (file/record, problem, fix); -v for tracebacks."""

from __future__ import annotations

import errno
import json
import zipfile

import pytest

from ecgssl.cli import main
from ecgssl.errors import IntegrityError, format_error


@pytest.mark.parametrize("err,expect", [
    (OSError(errno.ENOSPC, "No space left on device", "/o/signals.npy"), "no space left"),
    (OSError(errno.EROFS, "Read-only file system", "/o"), "read-only"),
    (PermissionError(errno.EACCES, "Permission denied", "/o"), "permission denied"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/o/x"), "no such file"),
    (RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central "
                  "directory"), "corrupt checkpoint"),
    (json.JSONDecodeError("Expecting value", "{", 1), "invalid JSON"),
], ids=["ENOSPC", "EROFS", "EACCES", "ENOENT", "zip", "json"])
def test_each_system_error_has_its_sentence(err, expect, seen):
    """OS and file errors (disk full, read-only, permissions, missing, corrupt checkpoint,
    broken JSON) -> one sentence each, with the file where known."""
    line = format_error(err)
    assert expect in line and "\n" not in line
    if getattr(err, "filename", None):
        assert err.filename in line
    seen(line)


def test_cli_prints_one_line_and_v_gives_the_traceback(tmp_path, capsys, seen):
    """A failing command prints one line and exits 2; with -v the traceback is shown."""
    bad = tmp_path / "enc.json"
    bad.write_text('{"format": "ecgssl-enc')
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "Traceback" not in err
    with pytest.raises(IntegrityError):
        main(["-v", "info", str(bad)])
    seen(err)


def test_unexpected_errors_are_one_line_too(monkeypatch, capsys, seen):
    """A bug (an unexpected exception) -> one line pointing to -v, exit 1."""
    from ecgssl import cli

    def boom(args):
        raise ZeroDivisionError("division by zero")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), boom))
    assert main(["info", "x"]) == 1
    err = capsys.readouterr().err.strip()
    assert "-v" in err and len(err.splitlines()) == 1
    seen(err)


def _with_func(parser, func):
    parser.set_defaults(func=func)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser


@pytest.mark.parametrize("state", ["truncated_last_only", "all_truncated", "explicit"])
def test_truncated_checkpoints(tmp_path, state, seen):
    """--resume with a truncated last.ckpt and no intact checkpoint, all truncated, or an
    explicit damaged path -> one line saying there is none / which file is damaged."""
    from ecgssl.train.run import resolve_resume

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    with zipfile.ZipFile(ckpts / "good.zip", "w") as z:
        z.writestr("data.pkl", b"x" * 1000)
    data = (ckpts / "good.zip").read_bytes()
    (ckpts / "good.zip").unlink()
    (ckpts / "last.ckpt").write_bytes(data[:300])
    if state == "all_truncated":
        (ckpts / "step0000003.ckpt").write_bytes(data[:200])
    resume = ckpts / "last.ckpt" if state == "explicit" else "last"
    with pytest.raises(IntegrityError) as info:
        resolve_resume(resume, ckpts)
    line = format_error(info.value)
    assert "last.ckpt" in line and ("no other intact" in line or state == "explicit")
    seen(line)
