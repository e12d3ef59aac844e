"""Benchmark: preparing a store. Records/s on LUDB and peak memory on a synthetic set 10x LUDB.

Run:  python benchmarks/prepare_store.py [--ludb data/ludb] [--workers 2] [--synthetic 2000]
Writes benchmarks/results/prepare_store.json and prints a Markdown table.

Peak memory is the maximum resident set size of the parent and of the worker processes, measured
in a fresh subprocess per case (``resource.getrusage``), so one case does not inherit another's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASE = r"""
import json, resource, sys, time
sys.path.insert(0, {tests!r})
from ecgssl.data.preprocess import PreprocessConfig
from ecgssl.data.store import prepare_store
kind, path, out, workers, beats, n = {kind!r}, {path!r}, {out!r}, {workers}, {beats}, {n}
detector = {detector!r}
if kind == "synthetic":
    from tests.data.synthetic import SyntheticSource
    source = SyntheticSource(n)
else:
    from ecgssl.io import open_source
    source = open_source(path)
t0 = time.perf_counter()
cfg = PreprocessConfig(beats=beats, **({{"rpeak_detector": detector}} if detector else {{}}))
report = prepare_store(source, out, cfg, workers=workers, progress=False)
wall = time.perf_counter() - t0
self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({{"records": report["n_records_read"], "windows": report["n_windows"],
                  "wall_s": wall, "records_per_s": report["n_records_read"] / wall,
                  "peak_rss_parent_mb": self_mb, "peak_rss_worker_mb": child_mb}}))
"""


def run_case(kind, path, workers, beats, n=0, detector=None):
    """One prepare in a fresh process; ``detector``: the R-peak detector (None: the default)."""
    with tempfile.TemporaryDirectory() as tmp:
        code = CASE.format(tests=str(ROOT), kind=kind, path=str(path), out=f"{tmp}/store",
                           workers=workers, beats=beats, n=n, detector=detector)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ludb", default=str(ROOT / "data" / "ludb"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--synthetic", type=int, default=2000, help="records (LUDB has 200)")
    args = parser.parse_args()
    rows = []
    from ecgssl.delineation.rpeaks import PREPARE_DETECTOR

    res = run_case("ludb", args.ludb, args.workers, False)
    rows.append({"case": "LUDB 200 records, beats=False", **res})
    for detector in dict.fromkeys((PREPARE_DETECTOR, "ecgssl")):  # the default first
        res = run_case("ludb", args.ludb, args.workers, True, detector=detector)
        rows.append({"case": f"LUDB 200 records, beats=True, rpeak_detector={detector}", **res})
    res = run_case("synthetic", "", args.workers, False, args.synthetic)
    rows.append({"case": f"synthetic {args.synthetic} records (10x LUDB), beats=False", **res})
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "workers": args.workers,
              "command": "python benchmarks/prepare_store.py", "rows": rows}
    out = ROOT / "benchmarks" / "results" / "prepare_store.json"
    out.write_text(json.dumps(result, indent=1))
    print("| case | records/s | wall s | peak RSS parent MB | peak RSS worker MB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['records_per_s']:.0f} | {r['wall_s']:.1f} | "
              f"{r['peak_rss_parent_mb']:.0f} | {r['peak_rss_worker_mb']:.0f} |")


if __name__ == "__main__":
    main()
