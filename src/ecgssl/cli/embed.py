"""``ecgssl embed``: records or a store -> a feature file (.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgssl.cli.common import _lead_options
from ecgssl.errors import ECGDataError, SpecMismatchError


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


def register(sub, fmt) -> None:
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
