"""``ecgssl info``: what a store or checkpoint holds."""

from __future__ import annotations

from pathlib import Path


def cmd_info(args) -> int:
    from ecgssl.data.shards import has_signals

    path = Path(args.path)
    if path.is_dir() and (path / "config.json").exists() and has_signals(path):
        from ecgssl.data.store import ECGStore

        print(ECGStore(path).describe())
        return 0
    if path.suffix in (".safetensors", ".json", ".pt", ".pth", ".ckpt") or path.is_dir():
        from ecgssl.api import describe_checkpoint

        print(describe_checkpoint(path))
        return 0
    raise FileNotFoundError(f"{path} is neither a prepared store nor a checkpoint")


def register(sub, fmt) -> None:
    p = sub.add_parser("info", help="what a store or checkpoint holds", formatter_class=fmt,
                       epilog="example:\n  ecgssl info runs/stores/ludb\n"
                              "  ecgssl info runs/demo/jepa/encoder.safetensors")
    p.add_argument("path", help="a store directory or a checkpoint file")
    p.set_defaults(func=cmd_info)
