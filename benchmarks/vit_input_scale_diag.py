"""Diagnostic (no training): how much the pooled ViT features of real ECG windows differ across
windows at initialisation, per embedding setting.

For each setting a fresh ``vit_tiny`` w128 d4 (seed 0, the CPU-scale JEPA architecture) embeds
the same real windows of the LUDB store (high-passed at 0.5 Hz, mV) and we report:

- ``token_rms``: RMS of ``W_P(input_scale * x)`` (the patch part of a token), per entry;
- ``pos_rms``: RMS of the sin-cos position embedding, per entry;
- ``feat_std_ratio``: ``ecgssl.train.callbacks.feature_collapse_stats`` of the pooled features
  (across-batch std of the l2-normalised features x sqrt(D); ~1 well spread, ~0 identical);
- ``std_over_norm``: mean over dims of the across-batch std of the raw pooled features divided by
  their mean l2 norm (the same idea without normalising each feature first);
- ``token_input_frac``: share of the variance of the output tokens (after the final LayerNorm,
  what a JEPA target is made of) that changes with the ECG: across-batch variance at each
  (token, dim), averaged, over the mean square of the tokens. ``1 - token_input_frac`` is what
  a predictor that knows only the token's position can already explain.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/vit_input_scale_diag.py [--store DIR] [--n 64]``.
Writes ``benchmarks/results/vit_input_scale_diag.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "runs" / "pretrain_cpu_scale" / "full" / "ludb_store"
ARCH = {"width": 128, "depth": 4, "num_heads": 4}
# (label, constructor overrides). 20 ~ pos RMS / token RMS at init on this data; 5 ~ 1 / data
# std (the input in units of its own spread).
SETTINGS = [
    ("current (pos every block, scale 1)", {}),
    ("pos_every_block=False", {"pos_every_block": False}),
    ("input_scale=5", {"input_scale": 5.0}),
    ("input_scale=20", {"input_scale": 20.0}),
    ("input_scale=20, pos once", {"input_scale": 20.0, "pos_every_block": False}),
    ("input_scale=50", {"input_scale": 50.0}),
]


def load_windows(store_dir: Path, n: int) -> np.ndarray:
    """(n, 8, 2500) float32 mV: the first ``n`` windows of the store, leads I, II, V1-V6."""
    from ecgssl.data.leads import LEADS_8
    from ecgssl.data.store import ECGStore
    from ecgssl.eval.suite import LeadView

    view = LeadView(ECGStore(store_dir), list(LEADS_8))
    return np.stack([view.signals[i] for i in range(n)]).astype(np.float32)


@torch.no_grad()
def measure(overrides: dict, x: torch.Tensor, batch: int = 16) -> dict:
    """Spread statistics of a fresh encoder (seed 0) on ``x`` (N, 8, T) mV."""
    from ecgssl.models.vit import create_vit
    from ecgssl.train.callbacks import feature_collapse_stats

    torch.manual_seed(0)
    enc = create_vit("vit_tiny", **ARCH, **overrides).eval()
    scale = enc.input_scale
    patches = x.reshape(x.shape[0], x.shape[1], -1, enc.patch_size)
    token_rms = enc.W_P(patches[:batch] * scale).pow(2).mean().sqrt().item()
    tokens = torch.cat([enc.forward_tokens(x[i:i + batch]) for i in range(0, len(x), batch)])
    z = tokens.mean(dim=1)  # = enc(x): the pooled representation
    token_frac = (tokens.var(dim=0).mean() / tokens.pow(2).mean()).item()
    stats = feature_collapse_stats(z)
    return {"token_rms": token_rms, "pos_rms": enc.pos_embed.pow(2).mean().sqrt().item(),
            "feat_std_ratio": stats["feat_std_ratio"], "eff_rank": stats["eff_rank"],
            "std_over_norm": (z.std(0).mean() / z.norm(dim=1).mean()).item(),
            "token_input_frac": token_frac}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default=str(STORE))
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    x = torch.from_numpy(load_windows(Path(args.store), args.n))
    rows = {label: measure(ov, x) for label, ov in SETTINGS}
    data_rms = float(x.pow(2).mean().sqrt())
    out = {"command": "OMP_NUM_THREADS=1 python benchmarks/vit_input_scale_diag.py"
                      + (f" --n {args.n}" if args.n != 64 else ""),
           "store": str(Path(args.store).relative_to(REPO)), "n_windows": args.n,
           "input_rms_mV": data_rms, "arch": ARCH, "rows": rows}
    res = Path(args.results)
    (res / "vit_input_scale_diag.json").write_text(json.dumps(out, indent=2))
    lines = ["# ViT feature spread at initialisation, per embedding setting", "",
             f"Command: `{out['command']}`  ",
             f"{args.n} windows of `{out['store']}` (LUDB, 0.5 Hz high-pass, mV; input RMS "
             f"{data_rms:.3f} mV); vit_tiny w128 d4, seed 0, no training.", "",
             "| setting | patch-token RMS | pos-embed RMS | feat_std_ratio | std / norm | "
             "eff rank | token input-dependent variance share |", "|---|---|---|---|---|---|---|"]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['token_rms']:.3f} | {r['pos_rms']:.3f} | "
                     f"{r['feat_std_ratio']:.4f} | {r['std_over_norm']:.4f} | "
                     f"{r['eff_rank']:.2f} | {r['token_input_frac']:.3f} |")
    (res / "vit_input_scale_diag.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
