"""Benchmark: structured Cross-Pattern Attention vs the dense -inf-mask reference (and plain full
attention for scale), forward and forward+backward time and peak memory.

Each (size, implementation, pass) runs in a fresh subprocess so that peak memory is clean:
CPU peak = max RSS during the run minus RSS after the inputs were made (``resource``);
CUDA peak = ``torch.cuda.max_memory_allocated`` minus the inputs.

    python benchmarks/cropa_attention.py                 # CPU, writes benchmarks/results/...
    python benchmarks/cropa_attention.py --device cuda   # adds CUDA rows
    python benchmarks/cropa_attention.py --repeats 20 --batch 8 --heads 12 --head-dim 64

Timings on a shared machine are noisy: re-run on a quiet one for final numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "cropa_attention.json"
SIZES = [(8, 50), (12, 100)]
IMPLS = ["cropa", "dense", "full"]


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def worker(args) -> dict:
    import torch

    from ecgssl.models.cropa import (
        cropa_attention,
        cropa_mask,
        dense_cropa_attention,
        full_attention,
    )

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n = args.leads * args.patches
    shape = (args.batch, args.heads, n, args.head_dim)
    q, k, v = (torch.randn(shape, device=device, requires_grad=args.backward) for _ in range(3))
    allowed = cropa_mask(args.leads, args.patches, device=device)
    fns = {
        "cropa": lambda: cropa_attention(q, k, v, args.leads),
        "dense": lambda: dense_cropa_attention(q, k, v, args.leads, allowed),
        "full": lambda: full_attention(q, k, v),
    }
    fn = fns[args.impl]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run():
        if args.backward:
            out = fn()
            out.sum().backward()
            q.grad = k.grad = v.grad = None
        else:
            with torch.no_grad():
                fn()
        sync()

    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = _rss_mib()
    run()  # warm-up; also the memory peak
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_rss
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_ms": 1e3 * times[len(times) // 2], "min_ms": 1e3 * times[0],
            "peak_mib": max(peak, 0.0), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda also runs cpu)")
    parser.add_argument("--cuda-only", action="store_true", help="with --device cuda: no CPU rows")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="cropa", help=argparse.SUPPRESS)
    parser.add_argument("--leads", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--patches", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--backward", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    devices = ([] if args.cuda_only else ["cpu"]) + (["cuda"] if args.device == "cuda" else [])
    rows = []
    for device in devices:
        for leads, patches in SIZES:
            for impl in IMPLS:
                for backward in (False, True):
                    cmd = [sys.executable, __file__, "--worker", "--device", device,
                           "--impl", impl, "--leads", str(leads), "--patches", str(patches),
                           "--batch", str(args.batch), "--heads", str(args.heads),
                           "--head-dim", str(args.head_dim), "--repeats", str(args.repeats),
                           "--threads", str(args.threads)] + (["--backward"] if backward else [])
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    if done.returncode:
                        result = {"error": done.stderr.strip().splitlines()[-1]}
                    else:
                        result = json.loads(done.stdout.strip().splitlines()[-1])
                    rows.append({"device": device, "leads": leads, "patches": patches,
                                 "tokens": leads * patches, "impl": impl,
                                 "pass": "fwd+bwd" if backward else "fwd", **result})
                    print(f"  {device} {leads}x{patches} {impl:5s} {rows[-1]['pass']:7s} "
                          f"{result}", file=sys.stderr)
    meta = {"batch": args.batch, "heads": args.heads, "head_dim": args.head_dim,
            "repeats": args.repeats, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor(),
            "note": "subprocess per row; CPU peak = max RSS minus RSS after inputs"}
    try:
        import torch

        meta["torch"] = torch.__version__
        if args.device == "cuda" and torch.cuda.is_available():
            meta["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))

    print(f"B={args.batch} H={args.heads} d={args.head_dim}, median of {args.repeats}\n")
    print("| device | grid (L x P) | pass | impl | median ms | peak MiB | speed-up vs dense |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['device']} | {row['leads']} x {row['patches']} | {row['pass']} | "
                  f"{row['impl']} | error: {row['error'][:40]} | | |")
            continue
        dense = next(r for r in rows if r["impl"] == "dense" and r["device"] == row["device"]
                     and r["leads"] == row["leads"] and r["pass"] == row["pass"])
        speed = dense.get("median_ms", float("nan")) / row["median_ms"]
        print(f"| {row['device']} | {row['leads']} x {row['patches']} | {row['pass']} | "
              f"{row['impl']} | {row['median_ms']:.1f} | {row['peak_mib']:.0f} | {speed:.1f}x |")


if __name__ == "__main__":
    main()
