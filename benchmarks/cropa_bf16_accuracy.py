"""Benchmark: accuracy of CroPA in bf16 against a float64 reference, structured vs dense mask.

For each token grid, q, k, v (scaled as attention inputs of a trained model might be) and an
output gradient are drawn in float64; the float64 dense-mask CroPA is the truth. Each
implementation then runs forward + backward in two settings: bf16 inputs, and float32 inputs
under bf16 autocast (what bf16-mixed training does). Reported: relative Frobenius error of the
output and of the q / k / v gradients.

    python benchmarks/cropa_bf16_accuracy.py                 # CPU bf16
    python benchmarks/cropa_bf16_accuracy.py --device cuda   # the GPU kernels (needs a GPU)

The same script against an older ``cropa.py`` (for example the one before bf16 kept float32
statistics, commit d02ae78) records how that one did, failures included::

    git worktree add /tmp/old d02ae78 && PYTHONPATH=/tmp/old/src \
        python benchmarks/cropa_bf16_accuracy.py \
        --out benchmarks/results/cropa_bf16_accuracy_d02ae78.json

Writes ``benchmarks/results/cropa_bf16_accuracy[_cuda].json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from ecgssl.models.cropa import cropa_attention, dense_cropa_attention

RESULTS = Path(__file__).resolve().parent / "results"
GRIDS = [(8, 50), (12, 100)]


def errors(fn, q, k, v, grad, n_leads: int, dtype, autocast: bool, device: str) -> list[float]:
    """Relative errors [output, dq, dk, dv] of ``fn`` against float64 dense CroPA."""
    def run(f, dt, ac):
        leaves = [t.detach().to(device, dt).requires_grad_(True) for t in (q, k, v)]
        with torch.autocast(device, dtype=torch.bfloat16, enabled=ac):
            out = f(*leaves, n_leads)
        out.backward(grad.to(device, out.dtype))
        return [out.detach().double().cpu()] + [t.grad.double().cpu() for t in leaves]

    truth = run(dense_cropa_attention, torch.float64, False)
    got = run(fn, dtype, autocast)
    return [float((a - b).norm() / b.norm()) for a, b in zip(got, truth)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--out", type=Path, help="results JSON (default: results/...)")
    args = parser.parse_args(argv)
    impls = {"structured": lambda q, k, v, n: cropa_attention(q, k, v, n, lead_kernel="plain"),
             "dense mask": dense_cropa_attention}
    rows = []
    for n_leads, n_patches in GRIDS:
        gen = torch.Generator().manual_seed(0)
        shape = (args.batch, args.heads, n_leads * n_patches, args.head_dim)
        q, k, v, grad = (torch.randn(*shape, generator=gen, dtype=torch.float64) * s
                         for s in (2.0, 2.0, 1.0, 1.0))
        for setting, dtype, autocast in (("bf16 inputs", torch.bfloat16, False),
                                         ("fp32 under bf16 autocast", torch.float32, True)):
            for name, fn in impls.items():
                row = {"grid": f"{n_leads}x{n_patches}", "setting": setting, "impl": name}
                try:
                    row |= dict(zip(("out", "dq", "dk", "dv"),
                                    errors(fn, q, k, v, grad, n_leads, dtype, autocast,
                                           args.device)))
                    shown = "  ".join(f"{key} {row[key]:.2e}" for key in ("out", "dq", "dk", "dv"))
                except RuntimeError as err:  # a failing implementation is a result too
                    row["error"] = str(err).splitlines()[0]
                    shown = f"FAILED: {row['error']}"
                rows.append(row)
                print(f"{n_leads}x{n_patches:<4} {setting:<25} {name:<11} {shown}", flush=True)
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    out = args.out or RESULTS / f"cropa_bf16_accuracy{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python benchmarks/cropa_bf16_accuracy.py"
                   + (f" --device {args.device}" if args.device != "cpu" else ""),
        "machine": f"{platform.machine()}, torch {torch.__version__}", "device": args.device,
        "shape": {"batch": args.batch, "heads": args.heads, "head_dim": args.head_dim},
        "rows": rows}, indent=2))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
