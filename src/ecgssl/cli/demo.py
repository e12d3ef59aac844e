"""``ecgssl demo``: the quick start (prepare bundled LUDB, pretrain both methods, evaluate)."""

from __future__ import annotations


def cmd_demo(args) -> int:
    from ecgssl.demo import run_demo

    run_demo(args.out, quick=args.quick, data=args.data, progress=not args.no_progress,
             supervised=args.supervised)
    return 0


def register(sub, fmt) -> None:
    p = sub.add_parser(
        "demo", help="the quick start: prepare bundled LUDB, pretrain both methods, evaluate",
        formatter_class=fmt,
        epilog="example:\n  ecgssl demo            # about 10 CPU-minutes (5.6 min on 2 cores)\n"
               "  ecgssl demo --quick    # a smaller run")
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--data", help="LUDB folder (default: the bundled data/ludb)")
    p.add_argument("--quick", action="store_true", help="smaller models and budgets")
    p.add_argument("--supervised", action="store_true",
                   help="also the supervised-from-scratch rows (about 5 more minutes on 2 "
                        "cores; the CPU benchmarks always have them)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
