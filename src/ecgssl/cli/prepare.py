"""``ecgssl prepare``: read a data source once into a memory-mapped store."""

from __future__ import annotations

from ecgssl.cli.common import _lead_options, _load_yaml, _parse_override


def _route_options(options: dict, kinds: list[str]) -> tuple[dict, dict]:
    """Split ``--set`` / ``--config`` options into preprocessing and source options.

    ``source.KEY`` goes to the source; a plain key to the preprocessing when it is a
    ``PreprocessConfig`` field (``fs`` is the output rate), else to the source when every source
    kind takes it (``ecgssl.io.source_options``); anything else is an error naming both lists.
    """
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.io import source_options

    prep_keys = set(PreprocessConfig.__dataclass_fields__)
    accepted = set.intersection(*(set(source_options(k)) for k in kinds))
    prep, source = {}, {}
    for key, value in options.items():
        if key.startswith("source."):
            name = key[len("source."):]
            if name not in accepted:
                raise ValueError(f"source option {name!r} is not taken by source kind "
                                 f"{'/'.join(kinds)} (it takes {sorted(accepted)})")
            source[name] = value
        elif key in prep_keys:
            prep[key] = value
        elif key in accepted:
            source[key] = value
        else:
            raise ValueError(f"unknown option {key!r}: not a preprocessing option "
                             f"({sorted(prep_keys)}) nor an option of source kind "
                             f"{'/'.join(kinds)} ({sorted(accepted)})")
    return prep, source


def cmd_prepare(args) -> int:
    from ecgssl.data.leads import parse_lead_aliases
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.data.store import prepare_store
    from ecgssl.io import detect_source_kind, open_sources
    from ecgssl.io.labels import describe_labels

    kinds = [args.kind or detect_source_kind(p) for p in args.source]
    options = _load_yaml(args.config)
    if "preprocess" in options or "source" in options:
        unknown = set(options) - {"preprocess", "source"}
        if unknown:
            raise ValueError(f"config {args.config}: top-level keys are 'preprocess' and "
                             f"'source', got {sorted(unknown)}")
        flat = dict(options.get("preprocess") or {})
        flat.update({f"source.{k}": v for k, v in (options.get("source") or {}).items()})
    else:
        flat = dict(options)
    for key, value in args.set or []:
        flat[key] = value
    prep, source_options = _route_options(flat, kinds)
    aliases = parse_lead_aliases(args.lead_alias)
    if aliases:
        prep["lead_aliases"] = {**(prep.get("lead_aliases") or {}), **aliases}
    if args.allow_unknown_leads:
        prep["allow_unknown_leads"] = True
    cfg = PreprocessConfig.from_dict(prep)
    # Signal-value checks (NaN, flat, absurd amplitude) are the store's, per its config; the
    # reader still rejects structural problems (missing, truncated, mismatched files).
    source_options.setdefault("checks", None)
    if args.labels:
        source_options["labels"] = args.labels
    source = open_sources(args.source, kind=args.kind, **source_options)
    for line in describe_labels(getattr(source, "label_summaries", [])):
        print(line)
    kwargs = dict(workers=args.workers, skip_bad=args.skip_bad, overwrite=args.overwrite,
                  max_records=args.max_records, progress=not args.no_progress,
                  signal_layout=_signal_layout(args))
    if args.shard:
        from ecgssl.data.shards import parse_shard, prepare_shard

        report = prepare_shard(source, args.out, *parse_shard(args.shard), cfg, **kwargs)
        print(f"shard {args.shard}: records {report['shard']['record_range']} of "
              f"{report['shard']['n_record_ids_total']}; join the shards with `ecgssl merge`")
    else:
        report = prepare_store(source, args.out, cfg, **kwargs)
    print(f"wrote store {args.out}: {report['n_windows']} windows from "
          f"{report['n_records_read']} records ({report.get('records_per_s', '?')} records/s)")
    for line in _window_summary(report.get("windowing") or {}, cfg):
        print(line)
    if report["n_records_bad"]:
        print(f"skipped {report['n_records_bad']} bad records; reasons in {args.out}/report.json")
        for bad in report["bad_records"][:10]:
            print(f"  {bad['record_id']}: {bad['problem']}")
    return 0


def _window_summary(win: dict, cfg) -> list[str]:
    """The prepare summary's lines on windows, padding, dropped signal, leads and labels."""
    if not win:
        return []
    per = win.get("windows_per_record") or {}
    lines = [f"  windows per record: min {per.get('min')}, median {per.get('median'):g}, max "
             f"{per.get('max')} ({cfg.window_s:g} s, stride {cfg.stride_s or cfg.window_s:g} s, "
             f"last window {cfg.last_window})"] if per else []
    if win.get("n_records_padded"):
        lines.append(f"  {win['n_records_padded']} records shorter than {cfg.window_s:g} s "
                     "zero-padded (valid_spans.npy says where the signal ends)")
    extra = win.get("n_windows_padded", 0) - win.get("n_records_padded", 0)
    if extra > 0:
        lines.append(f"  {extra} last windows of longer records zero-padded (last_window=pad)")
    if win.get("n_records_dropped_short"):
        names = [d["record_id"] for d in win["records_dropped_short"]]
        lines.append(f"  {len(names)} records shorter than {cfg.window_s:g} s dropped "
                     f"(short_records=drop): {', '.join(names[:10])}"
                     + (" ..." if len(names) > 10 else ""))
    if win.get("seconds_not_in_any_window"):
        lines.append(f"  {win['seconds_not_in_any_window']:g} s of signal in no window "
                     f"(long_records={cfg.long_records}, last_window={cfg.last_window})")
    if win.get("n_records_with_lead_aliases"):
        lines.append(f"  lead aliases applied in {win['n_records_with_lead_aliases']} records "
                     "(manifest column lead_aliases)")
    if win.get("n_records_with_unknown_leads_dropped"):
        lines.append(f"  unknown leads {win['unknown_leads_dropped']} dropped in "
                     f"{win['n_records_with_unknown_leads_dropped']} records "
                     "(allow_unknown_leads)")
    n_unlabelled = win.get("n_windows_unlabelled", 0)
    n_windows = win.get("n_windows", n_unlabelled + 1)
    if n_unlabelled and n_unlabelled >= n_windows:
        lines.append("  no window carries a label (fine for pretraining; classification needs "
                     "labels: --labels FILE)")
    elif n_unlabelled:
        lines.append(f"  {n_unlabelled} windows carry no label (evaluate refuses a labelled "
                     "store with unlabelled windows unless told otherwise)")
    return lines


def _signal_layout(args):
    """--signal-dtype / --shard-windows -> a SignalLayout (None: the classic signals.npy)."""
    if args.signal_dtype == "float32" and args.shard_windows is None:
        return None
    from ecgssl.data.shards import SignalLayout

    return SignalLayout(args.signal_dtype, args.shard_windows)


def register(sub, fmt) -> None:
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
                   help="one preprocessing option (e.g. --set fs=500 --set stride_s=5) or "
                        "source option (e.g. --set scored_year=2020, --set source.fs=300)")
    p.add_argument("--labels", metavar="FILE",
                   help="CSV of record id + labels, with or without a header (default: a "
                        "REFERENCE.csv beside the records); replaces the listed records' labels")
    _lead_options(p)
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip bad records and list them in report.json instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--max-records", type=int, help="only the first N records (quick runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--shard", metavar="I/N",
                   help="prepare only the I-th of N blocks of records (0-based); join with merge")
    p.add_argument("--signal-dtype", choices=["float32", "float16"], default="float32",
                   help="stored signal precision (float16: half the disk, error <= 2^-11 |x|)")
    p.add_argument("--shard-windows", type=int,
                   help="windows per signal file (sharded layout; default one file)")
    p.set_defaults(func=cmd_prepare)
