"""Subcommands beyond ``prepare``/``info``: pretrain, evaluate, embed, delineate, report, demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ecgssl.errors import ECGDataError, SpecMismatchError


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


# --------------------------------------------------------------------------------- pretrain


def cmd_pretrain(args) -> int:
    from ecgssl.train.run import pretrain

    _threads(args.threads)
    # pretrain() prints where it wrote what (run directory, checkpoints, encoder export).
    pretrain(args.recipe, args.data, args.out, overrides=args.overrides, resume=args.resume,
             overwrite=args.overwrite)
    return 0


# --------------------------------------------------------------------------------- evaluate


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
    from ecgssl.cli import _load_yaml
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


# --------------------------------------------------------------------------------- embed


def cmd_embed(args) -> int:
    """Records (any length) or a store -> features; ``--aggregate mean`` gives one row per
    record (the mean over its windows), ``none`` one row per window."""
    from ecgssl.api import embed_store, load_encoder
    from ecgssl.data.leads import parse_lead_aliases
    from ecgssl.data.shards import has_signals

    enc = load_encoder(args.checkpoint, pool=args.pool)
    source = Path(args.source)
    options = {"lead_aliases": parse_lead_aliases(args.lead_alias) or None,
               "allow_unknown_leads": args.allow_unknown_leads,
               "max_pad_fraction": args.max_pad_fraction}
    bad = []
    if (source / "config.json").exists() and has_signals(source):
        from ecgssl.data.store import ECGStore

        store = ECGStore(source)
        if args.lead_alias or args.allow_unknown_leads:
            raise ValueError("--lead-alias / --allow-unknown-leads apply to raw records; a "
                             "store's leads were mapped when it was prepared")
        z = embed_store(enc, store, missing_leads=args.missing_leads)
        manifest = store.manifest
        window_rec = manifest["parent_id"].astype(str).tolist()
        starts = manifest["start_s"].to_numpy(dtype=np.float64)
    else:
        from tqdm.auto import tqdm

        from ecgssl.io import open_source

        src = open_source(source, kind=args.kind)
        parts, window_rec, starts = [], [], []
        for rid in tqdm(src.record_ids(), desc="embed", unit="rec", disable=args.no_progress):
            try:
                rec = src.read(rid)
                e = enc.embed_windows(rec.signal, rec.fs, rec.leads,
                                      missing_leads=args.missing_leads, record_id=rid, **options)
            except (ECGDataError, SpecMismatchError) as err:
                if not args.skip_bad:
                    raise
                bad.append({"record_id": rid, "problem": str(err)})
                continue
            parts.append(e.windows)
            window_rec += [rid] * e.n_windows
            starts += e.starts_s.tolist()
        z = np.concatenate(parts) if parts else np.zeros((0, enc.pooled_dim), np.float32)
        starts = np.asarray(starts, dtype=np.float64)
    ids, counts = _record_order(window_rec)
    if args.aggregate == "mean":
        rank = {rid: k for k, rid in enumerate(ids)}
        feats = np.zeros((len(ids), z.shape[1]), np.float32)
        np.add.at(feats, np.asarray([rank[r] for r in window_rec], dtype=np.int64), z)
        feats /= np.maximum(counts, 1)[:, None]
        extra = {"n_windows": counts}
    else:
        feats, ids = z, np.asarray(window_rec)
        extra = {"start_s": starts}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, features=feats.astype(np.float32), record_id=np.asarray(ids),
             checkpoint=str(args.checkpoint), aggregate=args.aggregate, **extra)
    print(f"wrote {out}: {len(ids)} x {feats.shape[1]} features from {len(z)} windows of "
          f"{len(counts)} records (aggregate {args.aggregate})"
          + (f"; skipped {len(bad)} bad records" if bad else ""))
    for b in bad[:10]:
        print(f"  {b['record_id']}: {b['problem']}")
    return 0


def _record_order(window_rec: list[str]) -> tuple[list[str], np.ndarray]:
    """Records in order of first appearance and their window counts."""
    ids: dict[str, int] = {}
    for rid in window_rec:
        ids[rid] = ids.get(rid, 0) + 1
    return list(ids), np.asarray(list(ids.values()), dtype=np.int64)


# --------------------------------------------------------------------------------- delineate


def read_one_record(path: str | Path, kind: str | None = None, fs: float | None = None,
                    leads: list[str] | None = None):
    """One record from a path without extension (``data/ludb/data/1``) or a ``.npy`` file."""
    from ecgssl.data.record import Record
    from ecgssl.io import detect_source_kind, open_source

    path = Path(path)
    if path.suffix == ".npy":
        if fs is None or leads is None:
            raise ValueError("a .npy signal needs --fs and --leads")
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        return Record(signal=np.load(path), fs=fs, leads=list(leads), record_id=path.stem)
    stem = path.with_suffix("") if path.suffix in (".hea", ".dat", ".mat") else path
    if not stem.with_suffix(".hea").exists():
        raise FileNotFoundError(f"no WFDB header {stem.with_suffix('.hea')}")
    # The record's database decides how it is read (LUDB's gains, CinC's .mat ...).
    for root in (stem.parent, stem.parent.parent):
        try:
            root_kind = kind or detect_source_kind(root)
        except (ValueError, FileNotFoundError):
            continue
        source = open_source(root, kind=root_kind)
        for rid in source.record_ids():
            if rid.split("/")[-1] == stem.name:
                return source.read(rid)
    raise FileNotFoundError(f"could not find record {stem.name} in {stem.parent}")


def cmd_delineate(args) -> int:
    from ecgssl.api import delineate, load_segmentation_model

    rec = read_one_record(args.record, args.kind, args.fs,
                          args.leads.split(",") if args.leads else None)
    waves = delineate(rec.signal, rec.fs, rec.leads, args.model,
                      missing_leads=args.missing_leads)
    print(f"{rec.record_id}: {rec.fs:g} Hz, {rec.duration_s:.1f} s")
    print(f"{'lead':<5} {'wave':<4} {'onset s':>8} {'offset s':>9} {'ms':>5}")
    for lead, items in waves.items():
        for w in items:
            dur = 1000 * (w["offset_s"] - w["onset_s"])
            print(f"{lead:<5} {w['wave']:<4} {w['onset_s']:8.3f} {w['offset_s']:9.3f} {dur:5.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"record_id": rec.record_id, "waves": waves},
                                              indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        from ecgssl.api import Encoder
        from ecgssl.eval.segmentation import predict_classes
        from ecgssl.plots import plot_ecg

        model, spec = load_segmentation_model(args.model)
        x, out_leads = Encoder(model, spec).prepare(rec.signal, rec.fs, rec.leads,
                                                    args.missing_leads)
        classes = predict_classes(model, x, out_leads)
        keep = [k for k, lead in enumerate(out_leads) if lead in spec["scored_leads"]]
        plot_ecg(x[keep], float(spec["preprocessing"]["fs"]), [out_leads[k] for k in keep],
                 layout="rows", rhythm_lead=None, predicted_waves=classes[keep],
                 title=f"{rec.record_id}: predicted waves", path=args.plot)
        print(f"wrote {args.plot}")
    return 0


# --------------------------------------------------------------------------------- report


def cmd_report(args) -> int:
    """Summarise pretraining runs: a table of their final metrics and their training curves."""
    import pandas as pd

    from ecgssl.eval.report import Report, markdown_table
    from ecgssl.plots import plot_training_curves

    report = Report("ecgssl pretraining runs")
    rows = []
    for run in args.runs:
        run = Path(run)
        csv = run / "metrics.csv"
        if not csv.exists():
            raise FileNotFoundError(f"{run} has no metrics.csv (is it a pretraining run dir?)")
        df = pd.read_csv(csv)
        last = {c: df[c].dropna().iloc[-1] for c in df.columns if df[c].notna().any()}
        rows.append({"run": str(run), **{k: (round(float(v), 5) if isinstance(v, float) else v)
                                         for k, v in last.items()}})
        report.add_figure(f"curves_{run.name}", plot_training_curves(csv, title=str(run)),
                          caption=str(run))
    table = pd.DataFrame(rows)
    report.add_text("Final logged values", markdown_table(
        list(table.columns), [[str(v) for v in r] for r in table.itertuples(index=False)]))
    report.write(args.out)
    print(table.to_string(index=False))
    print(f"wrote {Path(args.out) / 'report.md'}")
    return 0


# --------------------------------------------------------------------------------- demo


def cmd_demo(args) -> int:
    from ecgssl.demo import run_demo

    run_demo(args.out, quick=args.quick, data=args.data, progress=not args.no_progress)
    return 0


# --------------------------------------------------------------------------------- parsers


def cmd_merge(args) -> int:
    from ecgssl.data.shards import SignalLayout, merge_stores

    layout = None if args.signal_dtype is None and args.shard_windows is None else \
        SignalLayout(args.signal_dtype or "float32", args.shard_windows)
    report = merge_stores(args.shards, args.out, layout)
    print(f"wrote store {args.out}: {report['n_windows']} windows from "
          f"{len(report['shards'])} shards (signals {report['signals']})")
    return 0


def register(sub, fmt) -> None:
    from ecgssl.cli import _lead_options, _parse_override

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

    p = sub.add_parser(
        "embed", help="records or a store -> a feature file (.npz)", formatter_class=fmt,
        epilog="example:\n  ecgssl embed runs/jepa/encoder.safetensors data/ludb --out "
               "feats.npz\n  ecgssl embed ecg_jepa_multiblock.pth ../cinc --out cinc.npz\n"
               "  ecgssl embed runs/jepa ../holter --out h.npz --aggregate none "
               "--lead-alias ECG1=II --missing-leads drop")
    p.add_argument("checkpoint", help="encoder (.safetensors, original .pth, run directory)")
    p.add_argument("source", help="a data folder (any supported kind) or a prepared store")
    p.add_argument("--out", required=True, help="output .npz (features, record_id)")
    p.add_argument("--kind", help="source kind (default: detected)")
    p.add_argument("--missing-leads", default="error", choices=["error", "zero", "drop"],
                   help="records lacking some of the encoder's leads")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable records")
    p.add_argument("--aggregate", default="mean", choices=["mean", "none"],
                   help="mean: one row per record (mean over its windows, n_windows saved); "
                        "none: one row per window (start_s saved)")
    _lead_options(p)
    p.add_argument("--max-pad-fraction", type=float, default=0.1,
                   help="records shorter than one window are zero-padded by at most this "
                        "fraction of it (default 0.1; 1 accepts any); longer padding is refused")
    p.add_argument("--pool", choices=["mean", "meanmax"],
                   help="feature pooling (default: the checkpoint's; meanmax = mean and max "
                        "over time, twice the features)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser(
        "delineate", help="print and plot the P/QRS/T waves of a record", formatter_class=fmt,
        epilog="example:\n  ecgssl delineate data/ludb/data/1 --model "
               "runs/demo/report/segmentation_model.safetensors --plot waves.png")
    p.add_argument("record", help="record path without extension, or a .npy (with --fs/--leads)")
    p.add_argument("--model", required=True,
                   help="segmentation model (.safetensors + .json) from evaluate/demo")
    p.add_argument("--kind", help="source kind of the record's folder (default: detected)")
    p.add_argument("--fs", type=float, help="sampling rate of a .npy input (Hz)")
    p.add_argument("--leads", help="comma-separated lead names of a .npy input")
    p.add_argument("--missing-leads", default="error", choices=["error", "zero", "drop"])
    _lead_options(p)
    p.add_argument("--plot", help="write a PNG with the waves over the ECG")
    p.add_argument("--json", help="write the waves as JSON")
    p.set_defaults(func=cmd_delineate)

    p = sub.add_parser(
        "report", help="summarise pretraining runs (final metrics, training curves)",
        formatter_class=fmt,
        epilog="example:\n  ecgssl report runs/demo/jepa runs/demo/beat_ssl --out runs/summary")
    p.add_argument("runs", nargs="+", help="pretraining run directories")
    p.add_argument("--out", required=True, help="report directory")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "demo", help="the quick start: prepare bundled LUDB, pretrain both methods, evaluate",
        formatter_class=fmt,
        epilog="example:\n  ecgssl demo            # about 10 minutes on 2 CPU cores\n"
               "  ecgssl demo --quick    # a smaller run")
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--data", help="LUDB folder (default: the bundled data/ludb)")
    p.add_argument("--quick", action="store_true", help="smaller models and budgets")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
