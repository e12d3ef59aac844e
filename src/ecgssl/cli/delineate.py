"""``ecgssl delineate``: P/QRS/T waves (or R-peaks) of a record or of a folder of records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ecgssl.cli.common import _lead_options
from ecgssl.errors import ECGDataError, SpecMismatchError


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


def _lead_aliases(args) -> dict[str, str] | None:
    """``--lead-alias`` values (``NAME=LEAD`` strings, or a dict) as a dict, or None."""
    from ecgssl.data.leads import parse_lead_aliases

    raw = getattr(args, "lead_alias", None)
    if not raw:
        return None
    return dict(raw) if isinstance(raw, dict) else parse_lead_aliases(raw)


def _subset(rec, wanted: str | None, aliases):
    """The record's signal and lead names, restricted to ``--only-leads`` when given."""
    from ecgssl.delineation.infer import lead_names

    names = lead_names(rec.leads, aliases)
    if not wanted:
        return rec.signal, names
    want = lead_names([w for w in wanted.split(",") if w.strip()], aliases)
    missing = [w for w in want if w not in names]
    if missing:
        raise ECGDataError(rec.record_id, f"--only-leads {missing} not in the record's leads "
                                          f"{names}")
    return rec.signal[[names.index(w) for w in want]], want


def _rows(rec, args, aliases) -> list[dict]:
    """CSV rows of one record: waves (record_id, lead, wave, onset_s, offset_s) or R-peaks
    (record_id, lead, rpeak_s)."""
    return _result(rec, args, aliases)[0]


def _result(rec, args, aliases) -> tuple[list[dict], dict | None]:
    """(CSV rows, lead -> waves of ``delineate`` (None for R-peaks)) of one record."""
    from ecgssl.api import delineate, detect_rpeaks

    signal, names = _subset(rec, args.only_leads, aliases)
    if args.rpeaks:
        peaks = detect_rpeaks(signal, rec.fs, names, method=args.detector)
        lead = "+".join(names)
        return [{"record_id": rec.record_id, "lead": lead, "rpeak_s": float(p) / rec.fs}
                for p in peaks], None
    waves = delineate(signal, rec.fs, names, args.model, missing_leads=args.missing_leads)
    return [{"record_id": rec.record_id, "lead": lead, **w}
            for lead, items in waves.items() for w in items], waves


def _print_rows(rec, rows: list[dict], rpeaks: bool) -> None:
    print(f"{rec.record_id}: {rec.fs:g} Hz, {rec.duration_s:.1f} s")
    if rpeaks:
        print(f"{len(rows)} R-peaks (s): " + " ".join(f"{r['rpeak_s']:.3f}" for r in rows[:40])
              + (" ..." if len(rows) > 40 else ""))
        return
    print(f"{'lead':<5} {'wave':<4} {'onset s':>8} {'offset s':>9} {'ms':>5}")
    for r in rows:
        dur = 1000 * (r["offset_s"] - r["onset_s"])
        print(f"{r['lead']:<5} {r['wave']:<4} {r['onset_s']:8.3f} {r['offset_s']:9.3f} {dur:5.0f}")


def _write_csv(path: str | Path, rows: list[dict], rpeaks: bool) -> None:
    import csv

    cols = (["record_id", "lead", "rpeak_s"] if rpeaks
            else ["record_id", "lead", "wave", "onset_s", "offset_s"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)


def cmd_delineate(args) -> int:
    """One record (printed) or a folder of records (batch, one CSV), waves or R-peaks."""
    from tqdm import tqdm

    from ecgssl.io import open_source

    aliases = _lead_aliases(args)
    target = Path(args.record)
    if target.is_dir():
        if not args.out:
            raise ValueError(f"{target} is a folder: give --out FILE.csv for the batch result")
        rows, skipped, n_ok = [], [], 0
        records = open_source(target, kind=args.kind)
        for rec in tqdm(records, total=len(records), unit="record", disable=args.no_progress,
                        desc="delineate" if not args.rpeaks else "rpeaks"):
            try:
                rows += _rows(rec, args, aliases)
                n_ok += 1
            except (ECGDataError, SpecMismatchError) as exc:
                if not args.skip_bad:
                    raise
                skipped.append((rec.record_id, str(exc)))
        _write_csv(args.out, rows, args.rpeaks)
        print(f"wrote {args.out}: {len(rows)} {'R-peaks' if args.rpeaks else 'waves'} of "
              f"{n_ok} records" + (f"; skipped {len(skipped)} records:" if skipped else ""))
        for rid, why in skipped:
            print(f"  skipped {rid}: {why}")
        return 0
    rec = read_one_record(args.record, args.kind, args.fs,
                          args.leads.split(",") if args.leads else None)
    rows, waves = _result(rec, args, aliases)
    _print_rows(rec, rows, args.rpeaks)
    if args.out:
        _write_csv(args.out, rows, args.rpeaks)
        print(f"wrote {args.out}")
    if args.json:
        # Every delineated lead is a key, also one where nothing was found (an empty list).
        key, payload = ("rpeaks", rows) if args.rpeaks else ("waves", waves)
        Path(args.json).write_text(json.dumps({"record_id": rec.record_id, key: payload},
                                              indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        _plot(rec, args, aliases)
    return 0


def _plot(rec, args, aliases) -> None:
    from ecgssl.api import delineate
    from ecgssl.eval.postprocess import waves_to_mask
    from ecgssl.plots import plot_ecg

    signal, names = _subset(rec, args.only_leads, aliases)
    # At most the first 10 s: a plot of a Holter day is unreadable.
    n = min(signal.shape[-1], int(10 * rec.fs))
    waves = delineate(signal[:, :n], rec.fs, names, args.model,
                      missing_leads=args.missing_leads)
    codes = {"P": 1, "QRS": 2, "T": 3}
    keep = [k for k, lead in enumerate(names) if lead in waves]
    masks = np.stack([waves_to_mask([(codes[w["wave"]], round(w["onset_s"] * rec.fs),
                                      round(w["offset_s"] * rec.fs)) for w in waves[names[k]]],
                                    n) for k in keep])
    plot_ecg(signal[keep, :n], rec.fs, [names[k] for k in keep], layout="rows",
             rhythm_lead=None, predicted_waves=masks,
             title=f"{rec.record_id}: predicted waves (first {n / rec.fs:.0f} s)", path=args.plot)
    print(f"wrote {args.plot}")


def register(sub, fmt) -> None:
    p = sub.add_parser(
        "delineate", help="P/QRS/T waves (or R-peaks) of a record or of a folder of records",
        formatter_class=fmt,
        epilog="example:\n  ecgssl delineate data/ludb/data/1 --plot waves.png   # bundled model\n"
               "  ecgssl delineate ../mitdb/100 --only-leads MLII --out waves.csv\n"
               "  ecgssl delineate DIR --out waves.csv          # every record, progress bar\n"
               "  ecgssl delineate DIR --rpeaks --out rpeaks.csv")
    p.add_argument("record", help="record path without extension, a .npy (with --fs/--leads), "
                   "or a folder of records (batch; needs --out)")
    p.add_argument("--model", help="a delineator (.json/.safetensors) or segmentation model; "
                   "default: the bundled single-channel model (any lead, length, rate >= 100 Hz)")
    p.add_argument("--rpeaks", action="store_true", help="R-peaks instead of waves")
    p.add_argument("--detector", help="R-peak detector (ecgssl.delineation.rpeaks.DETECTORS; "
                   "default: the benchmark's best)")
    p.add_argument("--only-leads", help="comma-separated subset of the record's leads")
    p.add_argument("--kind", help="source kind of the record's folder (default: detected)")
    p.add_argument("--fs", type=float, help="sampling rate of a .npy input (Hz)")
    p.add_argument("--leads", help="comma-separated lead names of a .npy input")
    p.add_argument("--missing-leads", default="error", choices=["error", "zero", "drop"],
                   help="for a --model segmentation model that needs fixed leads")
    _lead_options(p)
    p.add_argument("--out", help="write the waves (or R-peaks) as CSV")
    p.add_argument("--skip-bad", action="store_true",
                   help="batch: skip (and list) records that cannot be delineated")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--plot", help="write a PNG with the waves over the ECG (first 10 s)")
    p.add_argument("--json", help="write the waves as JSON")
    p.set_defaults(func=cmd_delineate)
