"""Reader timings: ``python -m ecgssl.io.bench [--data /work/shared/data] [--out io_bench.json]``.

Measures the per-record read time of LUDB (signal + 12 annotation files + labels), a CinC record,
``wfdb.rdann`` against our annotation reader, and LUDB throughput with 2 worker processes (the
``prepare`` target is >= 150 records/s on 2 cores). Prints and writes JSON. The CPU may be shared:
re-run on a quiet machine for final numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from multiprocessing import get_context
from pathlib import Path


def _per_call(fn, n):
    fn()  # warm caches
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def _read_ids(args):
    src, ids = args
    for rid in ids:
        src.read(rid)
    return len(ids)


def run(data: Path, repeats: int = 3) -> dict:
    import wfdb

    from ecgssl.io import open_source
    from ecgssl.io.cinc import read_cinc
    from ecgssl.io.ludb import LUDB_LEAD_EXTENSIONS, read_ludb
    from ecgssl.io.mitann import read_annotations

    ludb = data / "ludb"
    out: dict = {}
    out["ludb_record_ms"] = 1e3 * _per_call(lambda: read_ludb(ludb, 1), 50)
    out["ludb_record_no_annotations_ms"] = 1e3 * _per_call(
        lambda: read_ludb(ludb, 1, annotations=False), 50)
    out["cinc_record_ms"] = 1e3 * _per_call(
        lambda: read_cinc(data / "cinc2021-sample" / "E07500"), 100)
    base = str(ludb / "data" / "1")
    out["wfdb_rdann_12_files_ms"] = 1e3 * _per_call(
        lambda: [wfdb.rdann(base, e) for e in LUDB_LEAD_EXTENSIONS], 10)
    out["ours_12_files_ms"] = 1e3 * _per_call(
        lambda: [read_annotations(f"{base}.{e}") for e in LUDB_LEAD_EXTENSIONS], 50)
    src = open_source(ludb)
    ids = src.record_ids()
    best_1, best_2 = 0.0, 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        _read_ids((src, ids))
        best_1 = max(best_1, len(ids) / (time.perf_counter() - t))
    with get_context("spawn").Pool(2) as pool:
        pool.map(_read_ids, [(src, ids[:2]), (src, ids[2:4])])  # start-up not counted
        for _ in range(repeats):
            t = time.perf_counter()
            pool.map(_read_ids, [(src, ids[0::2]), (src, ids[1::2])])
            best_2 = max(best_2, len(ids) / (time.perf_counter() - t))
    out["ludb_records_per_s_1_process"] = best_1
    out["ludb_records_per_s_2_processes"] = best_2
    return {k: round(v, 3) for k, v in out.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    result = run(args.data, args.repeats)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
