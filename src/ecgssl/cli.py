"""The ``ecgssl`` command line: one entry point with a subcommand per step of the life cycle."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from ecgssl.errors import ECGDataError, SpecMismatchError


def _parse_override(text: str):
    """``key=value`` with a YAML-typed value (``fs=500``, ``leads=[I,II]``, ``normalize=null``)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"override {text!r} must look like key=value")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _load_yaml(path: str | None) -> dict:
    if not path:
        return {}
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"config file {p} does not exist")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a mapping, got {type(data).__name__}")
    return data


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------


def cmd_prepare(args) -> int:
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.data.store import prepare_store
    from ecgssl.io import open_sources

    options = _load_yaml(args.config)
    prep = dict(options.get("preprocess", options))
    source_options = dict(options.get("source", {})) if "preprocess" in options else {}
    for key, value in args.set or []:
        prep[key] = value
    cfg = PreprocessConfig.from_dict(prep)
    # Signal-value checks (NaN, flat, absurd amplitude) are the store's, per its config; the
    # reader still rejects structural problems (missing, truncated, mismatched files).
    source_options.setdefault("checks", None)
    source = open_sources(args.source, kind=args.kind, **source_options)
    report = prepare_store(source, args.out, cfg, workers=args.workers, skip_bad=args.skip_bad,
                           overwrite=args.overwrite, max_records=args.max_records,
                           progress=not args.no_progress)
    print(f"wrote store {args.out}: {report['n_windows']} windows from "
          f"{report['n_records_read']} records ({report.get('records_per_s', '?')} records/s)")
    if report["n_records_bad"]:
        print(f"skipped {report['n_records_bad']} bad records; reasons in {args.out}/report.json")
        for bad in report["bad_records"][:10]:
            print(f"  {bad['record_id']}: {bad['problem']}")
    return 0


def cmd_info(args) -> int:
    path = Path(args.path)
    if path.is_dir() and (path / "config.json").exists() and (path / "signals.npy").exists():
        from ecgssl.data.store import ECGStore

        print(ECGStore(path).describe())
        return 0
    if path.suffix in (".safetensors", ".json", ".pt", ".pth", ".ckpt") or path.is_dir():
        from ecgssl.api import describe_checkpoint

        print(describe_checkpoint(path))
        return 0
    raise FileNotFoundError(f"{path} is neither a prepared store nor a checkpoint")


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecgssl",
        description="Self-supervised representation learning for ECGs (ECG-JEPA, Beat-SSL).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "prepare", help="read a data source once into a memory-mapped store", formatter_class=fmt,
        epilog="example:\n  ecgssl prepare data/ludb --out runs/stores/ludb\n"
               "  ecgssl prepare ../cinc --out runs/stores/cinc --skip-bad --set fs=500\n"
               "  ecgssl prepare data/ludb ../cinc ../mitdb --out runs/stores/mix "
               "--set lead_aliases={MLII:II} --set allow_upsampling=true",
    )
    p.add_argument("source", nargs="+",
                   help="one or more folders (LUDB, PTB-XL, CinC, WFDB records, your own files)")
    p.add_argument("--out", required=True, help="store directory to write")
    p.add_argument("--kind", choices=["ludb", "cinc", "ptbxl", "wfdb", "long", "folder"],
                   help="source kind (default: detected)")
    p.add_argument("--config", help="YAML with preprocessing options (see PreprocessConfig)")
    p.add_argument("--set", type=_parse_override, action="append", metavar="KEY=VALUE",
                   help="override one preprocessing option, e.g. --set fs=500")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip bad records and list them in report.json instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--max-records", type=int, help="only the first N records (quick runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("info", help="what a store or checkpoint holds", formatter_class=fmt,
                       epilog="example:\n  ecgssl info runs/stores/ludb\n"
                              "  ecgssl info runs/demo/jepa/encoder.safetensors")
    p.add_argument("path", help="a store directory or a checkpoint file")
    p.set_defaults(func=cmd_info)

    _register_more(sub, fmt)
    return parser


def _register_more(sub, fmt) -> None:
    """Subcommands that live in their own module (its heavy imports are inside the commands).
    A broken import fails here, loudly, rather than hiding every subcommand it defines."""
    from ecgssl import cli_more

    cli_more.register(sub, fmt)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ECGDataError, SpecMismatchError, FileNotFoundError, FileExistsError, ValueError,
            KeyError) as err:
        if args.verbose:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"ecgssl {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "build_parser"]
