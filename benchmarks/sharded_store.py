"""Benchmark: a corpus-sized store. Shard-wise prepare, merge, and loader throughput; peak memory.

On a synthetic corpus of ``--windows`` 12-lead 10 s records at 250 Hz (one window each):

1. ``--shards`` shards prepared by ``prepare_shard`` as separate jobs (``--jobs`` at a time, each
   a fresh process with one worker, as N machines would), float16 signals;
2. ``merge_stores`` of the shards (signal files linked, the rest streamed);
3. reading: ``StoreDataset`` -> ``DataLoader`` (``--workers`` workers) through a
   ``DistributedSampler`` as rank 0 of 2 would read it, ``--loader-windows`` windows;

with wall time, windows/s, disk size, and the peak resident memory of every process
(``resource.getrusage``), next to the size of the store: memory that does not grow with the
store is what "flat" means here.

    python benchmarks/sharded_store.py                      # 100 k windows
    python benchmarks/sharded_store.py --windows 20000      # a smaller corpus (say so)

Writes ``benchmarks/results/sharded_store.json`` and ``.md``. Timings on a shared machine are
noisy; the memory figures are not.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LEADS_12 = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


class SyntheticCorpus:
    """A picklable source of ``n`` synthetic 12-lead records (10 s at 250 Hz, mV): a P-QRS-T
    template repeated at a per-record rate with per-lead gains, plus noise."""

    name = "synthetic_corpus"
    path = "synthetic://corpus"

    def __init__(self, n: int, fs: float = 250.0, seconds: float = 10.0):
        self.n, self.fs, self.seconds = int(n), float(fs), float(seconds)

    def record_ids(self) -> list[str]:
        return [f"c{i:07d}" for i in range(self.n)]

    def read(self, record_id: str):
        from ecgssl.data.record import Record

        i = int(record_id[1:])
        rng = np.random.default_rng(i)
        t = np.arange(int(self.fs * self.seconds)) / self.fs
        rr = 60.0 / (55 + i % 50)
        phase = (t - rng.uniform(0, rr)) % rr
        beat = np.zeros_like(t)
        for dt, width, amp in ((0.1, 0.025, 0.15), (0.26, 0.012, 1.0), (0.51, 0.05, 0.3)):
            beat += amp * np.exp(-0.5 * ((phase - dt) / width) ** 2)
        gains = rng.uniform(-1.0, 1.5, size=(12, 1))
        signal = gains * beat + 0.01 * rng.standard_normal((12, t.size))
        return Record(signal=signal.astype(np.float32), fs=self.fs, leads=list(LEADS_12),
                      record_id=record_id, patient_id=f"p{i}", labels=[f"L{i % 5}"],
                      source="synthetic")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss(pid: int | str = "self") -> dict[str, float]:
    """Current resident memory (MB) of a process: total, anonymous (heap: what must stay flat)
    and file-backed (memory-mapped store pages: page cache the kernel can drop)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _child(args) -> dict:
    """One job in this process: ``prepare`` a shard, ``merge``, or ``load``."""
    from ecgssl.data.preprocess import PreprocessConfig

    cfg = PreprocessConfig(fs=250, beats=False)
    t0 = time.perf_counter()
    if args.job == "prepare":
        from ecgssl.data.shards import SignalLayout, prepare_shard

        report = prepare_shard(SyntheticCorpus(args.windows), args.out, args.index, args.shards,
                               cfg, workers=0, progress=False,
                               signal_layout=SignalLayout(args.dtype))
        out = {"windows": report["n_windows"]}
    elif args.job == "merge":
        from ecgssl.data.shards import merge_stores

        report = merge_stores(args.inputs, args.out)
        out = {"windows": report["n_windows"], "signals": report["signals"]}
    else:  # load
        import torch
        from torch.utils.data import DataLoader, DistributedSampler

        from ecgssl.data.dataset import StoreDataset, default_collate

        torch.set_num_threads(1)
        dataset = StoreDataset(args.out)
        sampler = DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=True, seed=0)
        loader = DataLoader(dataset, batch_size=args.batch, sampler=sampler,
                            num_workers=args.workers, collate_fn=default_collate,
                            persistent_workers=False)
        n, first, at_first = 0, None, {}
        it = iter(loader)
        for batch in it:
            if first is None:  # exclude worker start-up
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                at_first = {"main": _rss(), **{f"worker{k}": _rss(w.pid)
                                               for k, w in enumerate(it._workers)}}
                continue
            n += int(batch["signal"].shape[0])
            if n >= args.loader_windows:
                break
        at_end = {"main": _rss(), **{f"worker{k}": _rss(w.pid)
                                     for k, w in enumerate(it._workers)}}
        out = {"windows": n, "startup_s": first, "rss_at_first_batch_mb": at_first,
               "rss_at_end_mb": at_end}
    wall = time.perf_counter() - t0
    out.update({"wall_s": wall, "windows_per_s": out["windows"] / wall if wall > 0 else None,
                "peak_rss_mb": _peak_mb(),
                "peak_rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                / 1024})
    return out


def _run(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1",
                                 "PATH": "/usr/bin:/bin"})


def _result(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"job failed: {stderr.strip().splitlines()[-3:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def _disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _markdown(res: dict) -> str:
    """The results table (also ``--render results/sharded_store.json``)."""
    lines = [
        f"# Sharded store: {res['windows']} windows, {res['shards']} shards "
        f"({res['dtype']})", "",
        f"12 leads x 2500 samples per window. Store {res['store_mb']:.0f} MB, signals "
        f"{res['signals_mb']:.0f} MB ({res['signals_float32_mb']:.0f} MB in float32).", "",
        "| step | windows | wall (s) | windows/s | peak RSS (MB) | peak RSS of workers (MB) |",
        "|---|---|---|---|---|---|"]
    for i, r in enumerate(res['prepare_shards']):
        lines.append(f"| prepare shard {i}/{res['shards']} | {r['windows']} | "
                     f"{r['wall_s']:.0f} | {r['windows_per_s']:.0f} | {r['peak_rss_mb']:.0f} "
                     "| - |")
    lines.append(f"| prepare, all shards ({res['jobs']} jobs at a time) | {res['windows']} | "
                 f"{res['prepare_wall_s']:.0f} | {res['prepare_windows_per_s']:.0f} | | |")
    m, ld = res['merge'], res['load_merged']
    rss_lines = []
    for proc in ld["rss_at_end_mb"]:
        a, b = ld["rss_at_first_batch_mb"][proc], ld["rss_at_end_mb"][proc]
        rss_lines.append(f"- {proc}: anonymous {a['RssAnon']:.0f} -> {b['RssAnon']:.0f} MB, "
                         f"file-backed (mapped store pages) {a['RssFile']:.0f} -> "
                         f"{b['RssFile']:.0f} MB")
    lines.append(f"| merge ({m['signals']}) | {m['windows']} | {m['wall_s']:.1f} | "
                 f"{m['windows_per_s']:.0f} | {m['peak_rss_mb']:.0f} | - |")
    workers = [v["VmRSS"] for k, v in ld["rss_at_end_mb"].items() if k != "main"]
    lines.append(f"| load (rank 0 of 2, {res['loader_workers']} workers, batch "
                 f"{res['loader_batch']}) | {ld['windows']} | {ld['wall_s']:.1f} | "
                 f"{ld['windows_per_s']:.0f} | {ld['peak_rss_mb']:.0f} | "
                 f"{max(workers, default=0):.0f} (at the end; see below) |")
    lines += ["", f"Resident memory while loading, after the first batch -> after {ld['windows']} "
              "windows (anonymous memory is the heap and must stay flat; file-backed pages are "
              "the memory-mapped store in the page cache, which the kernel drops under "
              "pressure):", "", *rss_lines]
    if res['float16_error']:
        e = res['float16_error']
        lines += ["", f"float16 error over {e['n_values']:.3g} values: max |h - x| = "
                  f"{e['max_abs'] * 1000:.3f} uV, max relative {e['max_rel']:.2e} "
                  f"(bound {e['bound']})."]
    lines += ["", f"Command: `{res['command']}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2, help="shards prepared at the same time")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--loader-windows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tmp", default=None, help="where the stores go (default: a temp dir)")
    parser.add_argument("--render", type=Path, help="rewrite the .md of a results JSON")
    parser.add_argument("--job", choices=["prepare", "merge", "load"], help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(_child(args)))
        return
    if args.render:
        res = json.loads(args.render.read_text())
        res.setdefault("loader_workers", args.workers)
        res.setdefault("loader_batch", args.batch)
        args.render.write_text(json.dumps(res, indent=2))
        args.render.with_suffix(".md").write_text(_markdown(res))
        return

    tmp = Path(tempfile.mkdtemp(prefix="ecgssl_shards_", dir=args.tmp))
    res = {"windows": args.windows, "shards": args.shards, "jobs": args.jobs, "dtype": args.dtype,
           "loader_workers": args.workers, "loader_batch": args.batch,
           "machine": platform.processor() or platform.machine(),
           "command": "python benchmarks/sharded_store.py " + " ".join(sys.argv[1:])}
    try:
        common = ["--windows", str(args.windows), "--shards", str(args.shards),
                  "--dtype", args.dtype]
        t0 = time.perf_counter()
        pending = list(range(args.shards))
        running, done = [], {}
        while pending or running:
            while pending and len(running) < args.jobs:
                i = pending.pop(0)
                running.append((i, _run("--job", "prepare", "--index", str(i), "--out",
                                        str(tmp / f"shard{i}"), *common)))
            i, proc = running.pop(0)
            done[i] = _result(proc)
            print(f"shard {i}: {done[i]}", flush=True)
        res["prepare_wall_s"] = time.perf_counter() - t0
        res["prepare_windows_per_s"] = args.windows / res["prepare_wall_s"]
        res["prepare_shards"] = [done[i] for i in range(args.shards)]
        res["merge"] = _result(_run("--job", "merge", "--out", str(tmp / "merged"), "--inputs",
                                    *[str(tmp / f"shard{i}") for i in range(args.shards)]))
        print("merge", res["merge"], flush=True)
        index = json.loads((tmp / "merged" / "signals_index.json").read_text())
        res["store_mb"] = _disk_mb(tmp / "merged")
        res["signals_mb"] = sum((tmp / "merged" / s["file"]).stat().st_size
                                for s in index["shards"]) / 2**20
        res["signals_float32_mb"] = args.windows * 12 * 2500 * 4 / 2**20
        res["float16_error"] = index.get("float16_error")
        load = ["--loader-windows", str(args.loader_windows), "--workers", str(args.workers),
                "--batch", str(args.batch)]
        res["load_merged"] = _result(_run("--job", "load", "--out", str(tmp / "merged"), *load))
        print("load", res["load_merged"], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sharded_store.json").write_text(json.dumps(res, indent=2))
    (RESULTS / "sharded_store.md").write_text(_markdown(res))
    print(_markdown(res))


if __name__ == "__main__":
    main()
