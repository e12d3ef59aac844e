"""Classical delineation baselines on LUDB: neurokit2 ``dwt`` and ``prominence``.

Scores every method with ``ecgssl.eval.segmentation_metrics.SegmentationScorer`` (the same code
that scores the networks): Dice over the annotated span, onset/offset Se, PPV, F1 within
+-150 ms, signed error mean +- SD (ms), bootstrap 95 % intervals over records.

Usage (from the repository root)::

    python benchmarks/delineation_baselines.py                       # 200 records, lead II
    python benchmarks/delineation_baselines.py --leads all           # all 12 leads (~12x longer)
    python benchmarks/delineation_baselines.py --max-records 20 --methods prominence

Writes ``benchmarks/results/delineation_baselines_<leads>.json`` and ``.md``.
Anchor (docs/evaluation.md): neurokit2 ``prominence`` on lead II, F1 about 97 % QRS/T.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ecgssl.eval.delineation_baselines import (  # noqa: E402
    NK_METHODS,
    evaluate_nk_baseline,
    ludb_annotated_leads,
    rescore,
)
from ecgssl.io.ludb import ludb_record_numbers  # noqa: E402


def _clean(obj):
    """JSON cannot hold NaN: write null instead."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ludb", default=str(REPO.parent / "shared" / "data" / "ludb"),
                        help="LUDB folder (holding data/ and RECORDS)")
    parser.add_argument("--leads", default="II", help="comma-separated lead names, or 'all'")
    parser.add_argument("--methods", default="dwt,prominence",
                        help=f"comma-separated, from {NK_METHODS}")
    parser.add_argument("--max-records", type=int, default=None)
    parser.add_argument("--tolerance-ms", type=float, default=150.0)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    leads = ["all"] if args.leads.lower() == "all" else [x.strip() for x in args.leads.split(",")]
    methods = [m.strip() for m in args.methods.split(",")]
    records = ludb_record_numbers(args.ludb)
    if args.max_records:
        records = records[: args.max_records]
    t0 = time.perf_counter()
    items = list(ludb_annotated_leads(args.ludb, records, leads))
    read_s = time.perf_counter() - t0
    print(f"read {len(records)} records, {len(items)} leads in {read_s:.1f} s", flush=True)

    tag = "all" if leads == ["all"] else "-".join(leads)
    report = {"benchmark": "delineation_baselines", "dataset": "LUDB v1.0.1", "leads": leads,
              "n_records": len(records), "n_leads": len(items),
              "tolerance_ms": args.tolerance_ms, "read_seconds": read_s,
              "machine": {"python": platform.python_version(), "platform": platform.platform()},
              "command": " ".join(["python", "benchmarks/delineation_baselines.py"] +
                                  (argv if argv is not None else sys.argv[1:])),
              "note": "timings taken on a shared machine are noisy; re-run on a quiet one",
              "methods": {}}
    md = [f"# neurokit2 delineation baselines on LUDB ({len(records)} records, leads {tag})", "",
          f"Tolerance +-{args.tolerance_ms:g} ms, annotated span only, P scored only on leads "
          "with expert P waves (AF/flutter leads skipped), errors predicted - expert (ms, "
          "mean +- SD). Command: `" + report["command"] + "`.", ""]
    for method in methods:
        res = evaluate_nk_baseline(items, method, tolerance_ms=args.tolerance_ms)
        entry = res.to_dict()
        entry["bootstrap_95ci"] = res.scorer.bootstrap(n_boot=args.n_boot)
        report["methods"][method] = entry
        print(f"{method}: {res.n_leads} leads, {len(res.failures)} failed, "
              f"{res.seconds:.1f} s ({1000 * res.seconds / max(res.n_leads, 1):.0f} ms/lead)",
              flush=True)
        # The other P convention: predicted P waves in leads without expert P (AF/flutter)
        # count as false positives.
        strict = rescore(res, items, skip_absent=())
        entry["metrics_p_scored_everywhere"] = strict.summary()
        table = res.scorer.to_markdown(f"neurokit2 {method}")
        p = strict.summary()["P"]
        table += ("\n\nP scored on every lead (AF/flutter P detections count as false positives):"
                  f" onset F1 {100 * p['onset']['f1']:.1f} %, offset F1 "
                  f"{100 * p['offset']['f1']:.1f} %, Dice {100 * p['dice']:.1f} %.")
        # Failed leads scored as "nothing detected" instead of skipped.
        misses = rescore(res, items, failures_as_misses=True).summary()
        entry["metrics_failures_as_misses"] = misses
        f1 = {w: (100 * misses[w]["onset"]["f1"], 100 * misses[w]["offset"]["f1"])
              for w in ("P", "QRS", "T")}
        table += ("\n\nFailed leads scored as misses instead of skipped: F1 on/off "
                  + ", ".join(f"{w} {a:.1f}/{b:.1f} %" for w, (a, b) in f1.items()) + ".")
        print(table, flush=True)
        md += [table, "", f"{len(res.failures)} leads failed (skipped): "
               + ", ".join(f"{f['record_id']}/{f['lead']}" for f in res.failures[:20]), "",
               f"Time: {res.seconds:.1f} s, {1000 * res.seconds / max(res.n_leads, 1):.0f} ms "
               "per lead (noisy shared machine).", ""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"delineation_baselines_{tag}"
    stem.with_suffix(".json").write_text(json.dumps(_clean(report), indent=2))
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
