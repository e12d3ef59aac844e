"""``ecgssl evaluate``: probe, regression and segmentation against baselines; writes a report."""

from __future__ import annotations

from pathlib import Path

from ecgssl.cli.common import _load_yaml, _parse_override, _threads


def _parse_encoders(items: list[str], pool: str | None = None) -> dict:
    from ecgssl.api import load_encoder

    encoders = {}
    for item in items:
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        path_obj = Path(path)
        name = name or (path_obj.parent.name if path_obj.name.startswith("encoder")
                        else path_obj.stem)
        if name in encoders:
            raise ValueError(f"two encoders named {name!r}: name them with NAME=PATH")
        encoders[name] = load_encoder(path_obj, pool=pool)
    return encoders


def _suite_config(args):
    from ecgssl.eval.suite import SuiteConfig

    options = _load_yaml(args.config)
    for key, value in args.set or []:
        options[key] = value
    if args.tasks:
        options["tasks"] = args.tasks.split(",")
    if args.folds:
        options["n_folds"] = args.folds
    known = set(SuiteConfig.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown evaluation options {sorted(unknown)}; known: {sorted(known)}")
    return SuiteConfig(**options)


def cmd_evaluate(args) -> int:
    from ecgssl.data.store import ECGStore
    from ecgssl.eval.suite import run_suite

    _threads(args.threads)
    store = ECGStore(args.data)
    encoders = _parse_encoders(args.encoders, pool=args.pool)
    cfg = _suite_config(args)
    run_suite(encoders, store, args.out, cfg, progress=not args.no_progress)
    print(f"wrote report {Path(args.out) / 'report.md'} (+ report.json, figures/)")
    return 0


def register(sub, fmt) -> None:
    p = sub.add_parser(
        "evaluate", help="probe, regression and segmentation against baselines; writes a report",
        formatter_class=fmt,
        epilog="example:\n  ecgssl evaluate --data runs/stores/ludb --out runs/eval "
               "jepa=runs/jepa/encoder.safetensors beat=runs/beat/encoder.safetensors\n"
               "  ecgssl evaluate --data runs/stores/ludb --out runs/eval --tasks probe "
               "--set seg_epochs=5 runs/jepa")
    p.add_argument("encoders", nargs="+", help="[NAME=]PATH of encoders (.safetensors, an "
                   "original ECG-JEPA .pth, or a run directory)")
    p.add_argument("--data", required=True, help="prepared store (e.g. LUDB with waves)")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--tasks", help="comma-separated subset of probe,regression,segmentation")
    p.add_argument("--folds", type=int, help="k of the k-fold CV (default 5)")
    p.add_argument("--config", help="YAML with SuiteConfig options")
    p.add_argument("--set", type=_parse_override, action="append", metavar="KEY=VALUE",
                   help="override one SuiteConfig option, e.g. --set seg_epochs=10")
    p.add_argument("--pool", choices=["mean", "meanmax"],
                   help="pool every encoder's features this way (default: each checkpoint's; "
                        "meanmax = mean and max over time); random-init twins follow")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)
