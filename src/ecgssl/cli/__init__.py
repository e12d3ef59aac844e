"""The ``ecgssl`` command line: one entry point with a subcommand per step of the life cycle.

One module per subcommand (``ecgssl.cli.prepare``, ``.info``, ...), each with its ``cmd_*``
function and a ``register(subparsers, fmt)`` that adds its parser; ``ecgssl.cli.common`` holds
the helpers they share. The command modules import only ``common`` (never this package's
``__init__``), and keep their heavy imports (torch, lightning) inside the command functions.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ecgssl.errors import ECGSSLError, format_error

# Failures caused by inputs, files or the system (exit 2); anything else is a bug (exit 1).
_USER_ERRORS = (ECGSSLError, OSError, ValueError, KeyError)

# The subcommand modules, in the order ``ecgssl --help`` lists them.
COMMANDS = ("prepare", "info", "merge", "pretrain", "evaluate", "embed", "delineate", "report",
            "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecgssl",
        description="Self-supervised representation learning for ECGs (ECG-JEPA, Beat-SSL).",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter
    # A broken command module fails here, loudly (an ImportError naming it), rather than
    # leaving a parser that lacks its subcommand.
    for name in COMMANDS:
        importlib.import_module(f"ecgssl.cli.{name}").register(sub, fmt)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"ecgssl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # every failure is one line (ecgssl.errors.format_error)
        if args.verbose:
            raise
        print(f"ecgssl {args.command}: error: {format_error(err)}", file=sys.stderr)
        return 2 if isinstance(err, _USER_ERRORS) else 1


__all__ = ["main", "build_parser"]
