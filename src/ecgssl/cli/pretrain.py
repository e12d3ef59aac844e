"""``ecgssl pretrain``: pretrain an encoder from a YAML recipe."""

from __future__ import annotations

from ecgssl.cli.common import _threads


def cmd_pretrain(args) -> int:
    from ecgssl.train.run import pretrain

    _threads(args.threads)
    # pretrain() prints where it wrote what (run directory, checkpoints, encoder export).
    pretrain(args.recipe, args.data, args.out, overrides=args.overrides, resume=args.resume,
             overwrite=args.overwrite)
    return 0


def register(sub, fmt) -> None:
    p = sub.add_parser(
        "pretrain", help="pretrain an encoder (ECG-JEPA, Beat-SSL) from a YAML recipe",
        formatter_class=fmt,
        epilog="example:\n  ecgssl pretrain --recipe configs/jepa_cpu.yaml --data runs/stores/ludb"
               " --out runs/jepa train.max_steps=200\n"
               "  ecgssl pretrain --recipe configs/jepa_cpu.yaml --data runs/stores/ludb"
               " --out runs/jepa --resume last")
    p.add_argument("--recipe", required=True, help="YAML recipe (see configs/)")
    p.add_argument("--data", required=True, help="prepared store directory")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", help="'last' or a checkpoint path: continue an interrupted run")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the ecgssl run already in --out (its own files only)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=1e-4")
    p.set_defaults(func=cmd_pretrain)
