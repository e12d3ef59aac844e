"""``ecgssl merge``: join the shards of ``ecgssl prepare --shard I/N`` into one store."""

from __future__ import annotations


def cmd_merge(args) -> int:
    from ecgssl.data.shards import SignalLayout, merge_stores

    layout = None if args.signal_dtype is None and args.shard_windows is None else \
        SignalLayout(args.signal_dtype or "float32", args.shard_windows)
    report = merge_stores(args.shards, args.out, layout)
    print(f"wrote store {args.out}: {report['n_windows']} windows from "
          f"{len(report['shards'])} shards (signals {report['signals']})")
    return 0


def register(sub, fmt) -> None:
    p = sub.add_parser(
        "merge", help="join the shards of `ecgssl prepare --shard I/N` into one store",
        formatter_class=fmt,
        epilog="example:\n  ecgssl merge runs/stores/part0 runs/stores/part1 --out runs/stores/all")
    p.add_argument("shards", nargs="+", help="the N shard store directories (any order)")
    p.add_argument("--out", required=True, help="merged store directory (must not exist)")
    p.add_argument("--signal-dtype", choices=["float32", "float16"],
                   help="rewrite the signals in this precision (default: keep the shards')")
    p.add_argument("--shard-windows", type=int, help="rewrite the signals in files of N windows")
    p.set_defaults(func=cmd_merge)
