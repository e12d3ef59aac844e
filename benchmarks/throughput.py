"""Benchmark: training throughput, achieved FLOP/s and MFU, data loading, peak memory.

One run measures, on this machine:

(a) the float32 matrix-product peak (best of several n x n sgemm, GFLOP/s, measured before and
    after the cases, best kept): the MFU denominator;
(b) ECG-JEPA training steps (forward + backward + AdamW + EMA update) at ViT-Small size
    (width 384, depth 8, predictor 384 x 6) for 8 leads x 50 patches and 12 leads x 100 patches,
    structured CroPA side by side with the same model using CroPA as a dense -inf mask;
    ViT-B (paper scale) with 1-2 steps;
(c) Beat-SSL training steps (ResNet-1d encoder, 12 leads, 3KG views, beat contrast);
(d) data loading (prepared store -> StoreDataset -> method collate in worker processes), samples/s,
    against what the model consumes;
(e) peak memory of each case (CPU: max RSS growth; CUDA: max allocated).

FLOPs are counted analytically as the work the model needs (multiply-add = 2 FLOPs): patch
embedding, qkv, attention scores and weighted sum over the ALLOWED pairs only (CroPA: per head-dim
L*P^2 + P*L^2 pairs, not (L*P)^2; the dense-mask implementation does more work than this count,
which is the point of comparing them), output projection, MLP, the predictor (per-lead sequences
of P tokens, full attention within a lead), input/output projections. Trained parts count x3
(forward + backward), the EMA target encoder x1 (forward only). The realised mask ratio of each
step is used. MFU = achieved FLOP/s / measured float32 matmul peak.

Each case runs in a fresh subprocess so that peak memory is its own.

    python benchmarks/throughput.py                  # full CPU run -> results/throughput_cpu.*
    python benchmarks/throughput.py --quick          # smoke run -> throughput_cpu_quick.*
    python benchmarks/throughput.py --device cuda    # -> results/throughput_cuda.* (bf16 autocast)
    python benchmarks/throughput.py --compile        # eager vs train.compile only
                                                     # -> results/throughput_compile_cpu.*

``--compile`` times, for ECG-JEPA and Beat-SSL, two copies of the same model (same seed) in one
process with interleaved steps: eager, and compiled the way ``train.compile`` compiles it
(``SSLMethod.compile_training``: the paths the step runs). The compiled model's warm-up steps
(compilation, and recompilation for the varying number of masked columns until dynamo marks the
shape dynamic) are reported apart as ``compile_s``.

Timings on a shared machine are noisy: final numbers need a re-run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LEADS_8 = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
LEADS_12 = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
VIT = {"vit_small": (384, 8, 6), "vit_base": (768, 12, 16), "vit_tiny": (64, 2, 4)}


# --------------------------------------------------------------------------- FLOP counting
def vit_block_flops(tokens: int, width: int, mlp_ratio: float = 4.0) -> int:
    """Per-sample FLOPs of one block's matmuls outside attention: qkv, proj, MLP."""
    return int(2 * tokens * width * (3 * width + width + 2 * mlp_ratio * width))


def attention_flops(width: int, pairs: int) -> int:
    """QK^T and AV over ``pairs`` (query, key) pairs, summed over heads (= width)."""
    return 4 * width * pairs


def cropa_pairs(n_leads: int, n_cols: int) -> int:
    """Allowed (query, key) pairs: same lead (L*P^2) plus same time (P*L^2)."""
    return n_leads * n_cols**2 + n_cols * n_leads**2


def encoder_flops(n_leads: int, n_cols: int, width: int, depth: int, patch: int) -> int:
    """Per-sample forward FLOPs of the ViT encoder with CroPA over n_leads x n_cols tokens."""
    tokens = n_leads * n_cols
    per_block = vit_block_flops(tokens, width) + attention_flops(width, cropa_pairs(n_leads,
                                                                                    n_cols))
    return 2 * tokens * patch * width + depth * per_block


def predictor_flops(n_leads: int, n_cols: int, n_visible: int, width: int, pwidth: int,
                    pdepth: int) -> int:
    """Per-sample forward FLOPs of the JEPA predictor: each lead a sequence of n_cols tokens."""
    tokens = n_leads * n_cols
    embed = 2 * n_leads * n_visible * width * pwidth
    blocks = pdepth * (vit_block_flops(tokens, pwidth)
                       + attention_flops(pwidth, n_leads * n_cols**2))
    out = 2 * tokens * pwidth * width
    return embed + blocks + out


def jepa_step_flops(batch: int, n_leads: int, n_cols: int, n_visible: int, width: int,
                    depth: int, patch: int, pwidth: int, pdepth: int) -> int:
    """Training-step FLOPs: context encoder and predictor x3, target encoder x1."""
    context = encoder_flops(n_leads, n_visible, width, depth, patch)
    target = encoder_flops(n_leads, n_cols, width, depth, patch)
    pred = predictor_flops(n_leads, n_cols, n_visible, width, pwidth, pdepth)
    return batch * (3 * (context + pred) + target)


def conv_encoder_flops(encoder, n_leads: int, n_samples: int) -> int:
    """Per-sample forward FLOPs of Conv1d / Linear layers, by tracing output lengths."""
    import torch

    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv1d):
            k = module.kernel_size[0] * module.in_channels // module.groups
            total += 2 * k * module.out_channels * output.shape[-1]
        elif isinstance(module, torch.nn.Linear):
            total += 2 * module.in_features * module.out_features * \
                (output.numel() // output.shape[-1])

    handles = [m.register_forward_hook(hook) for m in encoder.modules()
               if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear))]
    with torch.no_grad():
        encoder(torch.zeros(1, n_leads, n_samples))
    for h in handles:
        h.remove()
    return total


# --------------------------------------------------------------------------- measurements
def matmul_peak(device: str, sizes=(2048, 4096), repeats: int = 8,
                precision: str = "fp32") -> dict:
    """Best n x n matmul rate (GFLOP/s) over ``repeats`` per size, in the dtype the training
    steps run their matmuls in (bf16 under bf16 autocast on GPU, else float32)."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    best = {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        torch.matmul(a, b)  # warm-up
        times = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            torch.matmul(a, b)
            _sync(device)
            times.append(time.perf_counter() - t0)
        best[n] = 2 * n**3 / min(times) / 1e9
    return {"gflops_by_size": best, "peak_gflops": max(best.values()),
            "threads": torch.get_num_threads(), "dtype": str(dtype).replace("torch.", "")}


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _autocast(precision: str):
    """bf16 autocast on CUDA for precision "bf16"; a disabled context otherwise."""
    import torch

    if precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed_steps(method, batches, device: str, steps: int, warmup: int, precision: str):
    """Run ``warmup + steps`` optimiser steps; returns per-step seconds and mask ratios."""
    import torch

    opt = torch.optim.AdamW(method.param_groups(0.05), lr=1e-4)
    times, ratios = [], []
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        _sync(device)
        t0 = time.perf_counter()
        with _autocast(precision):
            loss, metrics = method.training_step_loss(batch, i, warmup + steps)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        method.after_optimizer_step(i, warmup + steps)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            ratios.append(metrics.get("mask_ratio"))
    return times, ratios


def _to(batch: dict, device: str) -> dict:
    import torch

    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device)
        elif isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            out[k] = [t.to(device) for t in v]
        else:
            out[k] = v
    return out


def _predictor_size(encoder: str) -> tuple[int, int]:
    """(width, depth) of the benchmark's JEPA predictor: tiny for smoke runs, else 384 x 6."""
    return (32, 1) if encoder == "vit_tiny" else (384, 6)


def _bench_jepa(args, leads: list[str], attention: str):
    """The benchmarked ECG-JEPA (seeded), on ``args.device`` in training mode."""
    import torch

    from ecgssl.methods.jepa import build_jepa

    pwidth, pdepth = _predictor_size(args.encoder)
    torch.manual_seed(0)
    return build_jepa(
        {"leads": leads, "predictor_embed_dim": pwidth, "predictor_depth": pdepth,
         "predictor_num_heads": 4 if pwidth == 32 else 12,
         "mask": {"type": "block", "seed": 0}},
        {"name": args.encoder, "n_patches": args.patches, "patch_size": 50,
         "attention": attention}).to(args.device).train()


def _jepa_flops(args, n_leads: int, mask_ratios: list[float]) -> list[int]:
    """Training-step FLOPs of each measured step, from its realised mask ratio."""
    width, depth, _ = VIT[args.encoder]
    pwidth, pdepth = _predictor_size(args.encoder)
    return [jepa_step_flops(args.batch, n_leads, args.patches,
                            args.patches - int(round(r * args.patches)), width, depth, 50,
                            pwidth, pdepth) for r in mask_ratios]


def case_jepa(args) -> dict:
    import torch

    leads = LEADS_8 if args.leads == 8 else LEADS_12
    method = _bench_jepa(args, leads, args.attention)
    rss0 = _rss_mb()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        mem0 = torch.cuda.memory_allocated()
    gen = torch.Generator().manual_seed(0)
    batches = [{"signal": torch.randn(args.batch, len(leads), args.patches * 50,
                                      generator=gen).to(args.device)} for _ in range(2)]
    times, ratios = _timed_steps(method, batches, args.device, args.steps, args.warmup,
                                 args.precision)
    out = _summary(times, _jepa_flops(args, len(leads), ratios), args.batch)
    out["mask_ratio_mean"] = sum(ratios) / len(ratios)
    out["peak_mem_mb"] = (torch.cuda.max_memory_allocated() - mem0) / 2**20 \
        if args.device == "cuda" else _rss_mb() - rss0
    return out


def _attention_free(q, k, v, n_leads):
    """Stand-in for CroPA that costs nothing (returns v): the step's attention-free floor."""
    return v


def case_jepa_side_by_side(args) -> dict:
    """One model, its CroPA switched per step: structured, dense mask, attention-free floor.

    Steps interleave (round r runs one step of each mode on the same batch and the same mask:
    the mask generator is rewound before each mode), so machine noise hits all modes alike.
    The attention-free floor bounds any attention implementation: dense / floor is the largest
    speed-up over the dense mask that attention alone can give.
    """
    import statistics

    import torch

    import ecgssl.models.vit as vit_module

    leads = LEADS_8 if args.leads == 8 else LEADS_12
    method = _bench_jepa(args, leads, "cropa")
    opt = torch.optim.AdamW(method.param_groups(0.05), lr=1e-4)
    batch = {"signal": torch.randn(args.batch, len(leads), args.patches * 50,
                                   generator=torch.Generator().manual_seed(0)).to(args.device)}
    structured = vit_module.cropa_attention
    modes = ("cropa", "dense", "floor")
    times = {mode: [] for mode in modes}
    ratios = []
    for rnd in range(args.warmup + args.steps):
        mask_state = method.masker.state_dict()
        for mode in modes:
            vit_module.cropa_attention = _attention_free if mode == "floor" else structured
            for encoder in (method.encoder, method.target_encoder):
                encoder.set_attention("dense" if mode == "dense" else "cropa")
            method.masker.load_state_dict(mask_state)
            _sync(args.device)
            t0 = time.perf_counter()
            with _autocast(args.precision):
                loss, metrics = method.training_step_loss(batch, rnd, 1000)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            method.after_optimizer_step(rnd, 1000)
            _sync(args.device)
            if rnd >= args.warmup:
                times[mode].append(time.perf_counter() - t0)
        if rnd >= args.warmup:
            ratios.append(metrics["mask_ratio"])
    vit_module.cropa_attention = structured
    flops = _jepa_flops(args, len(leads), ratios)
    out = {"mask_ratio_mean": sum(ratios) / len(ratios), "rounds": len(ratios)}
    for mode in modes:
        out[mode] = _summary(times[mode], flops, args.batch)
    per_round = [d / c for d, c in zip(times["dense"], times["cropa"])]
    bound = [d / f for d, f in zip(times["dense"], times["floor"])]
    out["speedup_vs_dense"] = {"median": statistics.median(per_round), "min": min(per_round),
                               "max": max(per_round)}
    out["attention_free_bound"] = {"median": statistics.median(bound), "min": min(bound),
                                   "max": max(bound)}
    # CPU op times only mean something on CPU (on GPU the kernels run asynchronously).
    out["breakdown"] = _step_breakdown(method, batch) if args.device == "cpu" else {}
    return out


# Profiler op name -> category, for "where the time goes".
_CATEGORIES = (
    ("linear (mm, addmm)", ("aten::mm", "aten::addmm", "aten::linear")),
    ("attention matmuls (bmm)", ("aten::bmm", "aten::baddbmm")),
    ("fused attention kernels", ("flash_attention", "scaled_dot_product")),
    ("copies and layout", ("aten::copy_", "aten::cat", "aten::clone", "aten::contiguous",
                           "aten::gather", "aten::index")),
    ("GELU / LayerNorm / softmax", ("gelu", "layer_norm", "softmax", "aten::exp")),
    ("optimizer and EMA", ("foreach", "addcdiv", "lerp", "sqrt", "adamw")),
)


def _step_breakdown(method, batch) -> dict:
    """Self CPU time of one structured-CroPA step by op category (torch.profiler), seconds."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    opt = torch.optim.AdamW(method.param_groups(0.05), lr=1e-4)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss, _ = method.training_step_loss(batch, 0, 1000)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        method.after_optimizer_step(0, 1000)
    totals = {name: 0.0 for name, _ in _CATEGORIES}
    totals["other elementwise"] = 0.0
    for event in prof.key_averages():
        key = event.key.lower()
        seconds = event.self_cpu_time_total / 1e6
        for name, needles in _CATEGORIES:
            if any(needle.lower() in key for needle in needles):
                totals[name] += seconds
                break
        else:
            if key.startswith("aten::"):
                totals["other elementwise"] += seconds
    return totals


def _summary(times: list[float], flops: list[int], batch: int) -> dict:
    import statistics

    median = statistics.median(times)
    gflop = sum(flops) / len(flops) / 1e9
    # Median-based, like samples/s: one step disturbed by another process must not move it.
    return {"steps": len(times), "step_s_median": median, "step_s_all": times,
            "samples_per_s": batch / median, "gflop_per_step": gflop,
            "achieved_gflops": gflop / median}


def _prepare_store(path: Path, n: int, beats: bool) -> None:
    sys.path.insert(0, str(ROOT))
    from ecgssl.data.preprocess import PreprocessConfig
    from ecgssl.data.store import prepare_store
    from tests.data.synthetic import SyntheticSource

    prepare_store(SyntheticSource(n), path, PreprocessConfig(beats=beats), workers=0,
                  progress=False)


def _beat_method(store_path: str, device: str):
    import yaml

    from ecgssl.methods.beat_ssl import build_beat_ssl

    recipe = yaml.safe_load((ROOT / "configs" / "beatssl_cpu.yaml").read_text())
    return build_beat_ssl(recipe["method"], recipe["encoder"],
                          {"leads": LEADS_12, "fs": 250}).to(device).train(), recipe


def case_beat_ssl(args) -> dict:
    import torch

    from ecgssl.data.dataset import StoreDataset

    torch.manual_seed(0)
    method, recipe = _beat_method(args.store, args.device)
    dataset = StoreDataset(args.store)
    collate = method.make_collate()
    batches = [_to(collate([dataset[(k * args.batch + i) % len(dataset)]
                            for i in range(args.batch)]), args.device) for k in range(2)]
    rss0 = _rss_mb()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        mem0 = torch.cuda.memory_allocated()
    times, _ = _timed_steps(method, batches, args.device, args.steps, args.warmup,
                            args.precision)
    # Two views through the encoder, forward + backward; projectors are negligible.
    enc = conv_encoder_flops(method.encoder, 12, 2500)
    out = _summary(times, [3 * 2 * enc * args.batch] * len(times), args.batch)
    out["encoder"] = recipe["encoder"]
    out["peak_mem_mb"] = (torch.cuda.max_memory_allocated() - mem0) / 2**20 \
        if args.device == "cuda" else _rss_mb() - rss0
    return out


def case_loader(args) -> dict:
    import torch

    from ecgssl.data.dataset import StoreDataset
    from ecgssl.train.datamodule import PretrainDataModule

    method, _ = _beat_method(args.store, "cpu")
    dataset = StoreDataset(args.store)
    rows = {}
    for workers in sorted({0, args.workers}):
        dm = PretrainDataModule(dataset, method.make_collate(), args.batch, num_workers=workers,
                                persistent_workers=True, pin_memory=False, seed=0)
        loader = dm.train_dataloader()
        n, t0, first = 0, time.perf_counter(), None
        for epoch in range(args.loader_epochs):
            dm.sampler.set_epoch(epoch)
            for batch in loader:
                if first is None:
                    first = time.perf_counter() - t0
                    t0 = time.perf_counter()  # exclude worker start-up
                    continue
                n += batch["signal"].shape[0]
        dt = time.perf_counter() - t0
        rows[f"workers={workers}"] = {"samples_per_s": n / dt if dt > 0 else float("nan"),
                                      "startup_s": first, "samples": n,
                                      "threads": torch.get_num_threads()}
    return rows


def case_compile(args) -> dict:
    """Eager vs compiled training steps of one method (see the module docstring)."""
    import copy
    import statistics

    import torch
    from torch._dynamo.utils import counters

    if args.method == "jepa":
        leads = LEADS_8 if args.leads == 8 else LEADS_12
        eager = _bench_jepa(args, leads, "cropa")
        batch = {"signal": torch.randn(args.batch, len(leads), args.patches * 50,
                                       generator=torch.Generator().manual_seed(0)).to(args.device)}
    else:
        from ecgssl.data.dataset import StoreDataset

        torch.manual_seed(0)
        eager, _ = _beat_method(args.store, args.device)
        dataset = StoreDataset(args.store)
        batch = _to(eager.make_collate()([dataset[i % len(dataset)] for i in range(args.batch)]),
                    args.device)
    compiled = copy.deepcopy(eager)
    names = compiled.compile_training()
    models = {"eager": eager, "compiled": compiled}
    opts = {k: torch.optim.AdamW(m.param_groups(0.05), lr=1e-4) for k, m in models.items()}

    def step(mode: str, i: int) -> float:
        method = models[mode]
        _sync(args.device)
        t0 = time.perf_counter()
        with _autocast(args.precision):
            loss, _ = method.training_step_loss(batch, i, 1000)
        loss.backward()
        opts[mode].step()
        opts[mode].zero_grad(set_to_none=True)
        method.after_optimizer_step(i, 1000)
        _sync(args.device)
        return time.perf_counter() - t0

    warm = [step("compiled", i) for i in range(args.warmup)]
    step("eager", 0)
    times = {"eager": [], "compiled": []}
    for rnd in range(args.steps):
        for mode in ("eager", "compiled"):
            times[mode].append(step(mode, args.warmup + rnd))
    ratio = [e / c for e, c in zip(times["eager"], times["compiled"])]
    return {"method": args.method, "compiled": names, "compile_s": sum(warm),
            "warmup_steps": args.warmup, "rounds": args.steps,
            "graphs": int(counters["stats"]["unique_graphs"]),
            "eager_step_s_median": statistics.median(times["eager"]),
            "compiled_step_s_median": statistics.median(times["compiled"]),
            "speedup": {"median": statistics.median(ratio), "min": min(ratio),
                        "max": max(ratio)},
            "samples_per_s": {k: args.batch / statistics.median(v) for k, v in times.items()}}


def compile_main(args) -> None:
    """``--compile``: eager vs compiled steps of ECG-JEPA and Beat-SSL -> throughput_compile_*."""
    import torch

    precision = "bf16" if args.device == "cuda" else "fp32"
    vit = "vit_tiny" if args.quick else args.encoder
    res = {"device": args.device, "torch": torch.__version__, "precision": precision,
           "machine": platform.processor() or platform.machine(), "threads": args.threads,
           "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]), "cases": {}}
    common = {"device": args.device, "precision": precision, "batch": args.batch,
              "steps": 1 if args.quick else args.steps, "warmup": args.compile_warmup}
    name = f"jepa_{vit}_8x50"
    res["cases"][name] = run_case("compile", method="jepa", encoder=vit, leads=8, patches=50,
                                  **common)
    print(name, res["cases"][name], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        _prepare_store(store, max(args.batch, 8), beats=True)
        res["cases"]["beat_ssl_resnet_12lead"] = run_case("compile", method="beat_ssl",
                                                          store=store, **common)
    print("beat_ssl", res["cases"]["beat_ssl_resnet_12lead"], flush=True)
    stem = f"throughput_compile_{args.device}{'_quick' if args.quick else ''}"
    lines = [f"# train.compile: eager vs compiled training steps ({args.device})", "",
             f"torch {res['torch']}, {precision}, batch {args.batch}, threads "
             f"{args.threads or 'default'}; interleaved rounds; compile_s = the compiled model's "
             f"{args.compile_warmup} warm-up steps (compilation included).", "",
             "| case | compiled | compile_s | eager s/step | compiled s/step | speed-up "
             "(min-max) |", "|---|---|---|---|---|---|"]
    for case, r in res["cases"].items():
        if "error" in r:
            lines.append(f"| {case} | error: {' '.join(r['error'])} | | | | |")
            continue
        sp = r["speedup"]
        lines.append(f"| {case} | {', '.join(r['compiled'])} | {r['compile_s']:.0f} | "
                     f"{r['eager_step_s_median']:.3f} | {r['compiled_step_s_median']:.3f} | "
                     f"{sp['median']:.2f}x ({sp['min']:.2f}-{sp['max']:.2f}) |")
    lines += ["", f"Command: `{res['command']}`"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


CASES = {"compile": case_compile, "jepa": case_jepa, "jepa_side_by_side": case_jepa_side_by_side,
         "beat_ssl": case_beat_ssl, "loader": case_loader}


THREADS = 0  # --threads of the parent run, passed on to every case


def run_case(kind: str, **kw) -> dict:
    """Run one case in a fresh interpreter; returns its JSON result (or the error)."""
    cmd = [sys.executable, __file__, "--case", kind, "--threads", str(THREADS)]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"],
                "wall_s": time.perf_counter() - t0}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    return result


def _markdown(res: dict) -> str:
    peak = res["matmul"]["peak_gflops"]
    lines = [f"# Training throughput ({res['device']}{', quick' if res['quick'] else ''})", "",
             f"Machine: {res['machine']}; torch {res['torch']}, {res['matmul']['threads']} threads."
             f" {res['matmul'].get('dtype', 'float32')} matmul peak: **{peak:.0f} GFLOP/s** "
             f"({', '.join(f'{n}: {g:.0f}' for n, g in res['matmul']['gflops_by_size'].items())})."
             " Timings on a shared machine are noisy; re-run on a quiet machine for final numbers.",
             "", "Each case alone in a fresh process (for its peak memory; the ECG-JEPA ViT-S "
             "cases time one step after one warm-up, so compare speeds in the side-by-side "
             "table below):",
             "", "| case | batch | step (s, median) | samples/s | GFLOP/step | achieved GFLOP/s "
             "| MFU | peak mem (MB) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in res["cases"].items():
        if "error" in r:
            lines.append(f"| {name} | | error: {' '.join(r['error'])} | | | | | |")
            continue
        if "step_s_median" not in r:
            continue
        lines.append(f"| {name} | {r['batch']} | {r['step_s_median']:.3f} | "
                     f"{r['samples_per_s']:.1f} | {r['gflop_per_step']:.1f} | "
                     f"{r['achieved_gflops']:.1f} | {r['achieved_gflops'] / peak:.1%} | "
                     f"{r['peak_mem_mb']:.0f} |")
    side = {name: r for name, r in res["cases"].items() if name.endswith("_side_by_side")}
    if side:
        lines += ["", "Side by side in one process (interleaved steps, same batch and mask): "
                  "structured CroPA, the dense -inf mask, and an attention-free floor (attention "
                  "replaced by a no-op: what no attention implementation can beat). Speed-ups are "
                  "medians over rounds of per-round ratios (min-max).", "",
                  "| grid | rounds | structured s/step (samples/s, MFU) | dense s/step "
                  "(samples/s) | floor s/step | speed-up vs dense | attention-free bound |",
                  "|---|---|---|---|---|---|---|"]
        for name, r in side.items():
            if "error" in r:
                lines.append(f"| {name} | error: {' '.join(r['error'])} | | | | | |")
                continue
            c, d, f = r["cropa"], r["dense"], r["floor"]
            sp, bd = r["speedup_vs_dense"], r["attention_free_bound"]
            lines.append(
                f"| {name.split('_')[-4]} | {r['rounds']} | {c['step_s_median']:.2f} "
                f"({c['samples_per_s']:.2f}, {c['achieved_gflops'] / peak:.0%}) | "
                f"{d['step_s_median']:.2f} ({d['samples_per_s']:.2f}) | "
                f"{f['step_s_median']:.2f} | {sp['median']:.2f}x ({sp['min']:.2f}-{sp['max']:.2f}) "
                f"| {bd['median']:.2f}x ({bd['min']:.2f}-{bd['max']:.2f}) |")
        broken = {name: r["breakdown"] for name, r in side.items() if r.get("breakdown")}
        if broken:
            columns = list(next(iter(broken.values())))
            lines += ["", "Where the time of one structured-CroPA step goes (torch.profiler, "
                      "self CPU seconds by op category):", "",
                      "| grid | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
            for name, row in broken.items():
                lines.append(f"| {name.split('_')[-4]} | "
                             + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    loader = res["cases"].get("data_loader", {})
    if loader and "error" not in loader:
        lines += ["", "Data loading (store -> StoreDataset -> Beat-SSL collate, 3KG views):",
                  ""]
        for k, v in loader.items():
            if isinstance(v, dict):
                lines.append(f"- {k}: {v['samples_per_s']:.0f} samples/s "
                             f"(start-up {v['startup_s']:.2f} s)")
        beat = res["cases"].get("beat_ssl_resnet_12lead", {})
        if "samples_per_s" in beat:
            lines.append(f"- Beat-SSL model consumption: {beat['samples_per_s']:.1f} samples/s")
    lines += ["", "FLOPs: analytic, see the module docstring of benchmarks/throughput.py "
              "(CroPA counted over allowed pairs only, also for the dense-mask implementation, "
              "so its MFU shows the work it wastes).", "",
              f"Command: `{res['command']}`"]
    return "\n".join(lines) + "\n"


def _render(path: Path) -> None:
    """Recompute samples/s, achieved GFLOP/s and MFU from stored step times; rewrite the .md."""
    res = json.loads(path.read_text())
    peak = res["matmul"]["peak_gflops"]

    def fix(r: dict) -> None:
        if "step_s_median" in r:
            r["samples_per_s"] = r.get("batch", res.get("batch", 16)) / r["step_s_median"]
            r["achieved_gflops"] = r["gflop_per_step"] / r["step_s_median"]
            r["mfu"] = r["achieved_gflops"] / peak

    for r in res["cases"].values():
        fix(r)
        for mode in ("cropa", "dense", "floor"):
            if isinstance(r.get(mode), dict):
                r[mode]["batch"] = r.get("batch", 16)
                fix(r[mode])
    path.write_text(json.dumps(res, indent=2, default=str))
    path.with_suffix(".md").write_text(_markdown(res))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads in every case and in the matmul peak (0: default)")
    parser.add_argument("--rounds", type=int, default=6,
                        help="interleaved rounds at 8x50 (half as many at 12x100)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--store-windows", type=int, default=48)
    # one case (internal)
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--encoder", default="vit_small")
    parser.add_argument("--leads", type=int, default=8)
    parser.add_argument("--patches", type=int, default=50)
    parser.add_argument("--attention", default="cropa")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--store", default="")
    parser.add_argument("--loader-epochs", type=int, default=2)
    parser.add_argument("--compile", action="store_true",
                        help="only compare eager and train.compile steps (compile_main)")
    parser.add_argument("--compile-warmup", type=int, default=4,
                        help="compiled warm-up steps (compilation) before timing")
    parser.add_argument("--method", default="jepa", choices=["jepa", "beat_ssl"])
    parser.add_argument("--render", type=Path,
                        help="re-derive rates from a results JSON's step times and rewrite its "
                             "Markdown (no new measurement)")
    args = parser.parse_args()
    if args.render:
        _render(args.render)
        return

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.case:
        import torch

        torch.manual_seed(0)
        result = CASES[args.case](args)
        result.update({"batch": args.batch} if args.case != "loader" else {})
        print(json.dumps(result))
        return
    if args.compile:
        global THREADS
        THREADS = args.threads
        compile_main(args)
        return

    import torch

    THREADS = args.threads
    precision = "bf16" if args.device == "cuda" else "fp32"  # never bf16 on CPU: very slow
    steps, batch = (1, 2) if args.quick else (args.steps, args.batch)
    res = {"device": args.device, "quick": args.quick, "machine": platform.processor() or
           platform.machine(), "torch": torch.__version__, "precision": precision,
           "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]),
           "matmul": matmul_peak(args.device, (512, 1024) if args.quick else (2048, 4096),
                                 precision=precision),
           "cases": {}}
    print(f"matmul peak {res['matmul']['peak_gflops']:.0f} GFLOP/s", flush=True)
    vit = "vit_tiny" if args.quick else "vit_small"
    common = {"device": args.device, "precision": precision, "steps": steps, "batch": batch}
    for leads, patches in [(8, 50), (12, 100)]:
        grid = f"{leads}x{patches}"
        # Timing: the three modes interleaved in one process (see case_jepa_side_by_side).
        rounds = 1 if args.quick else (args.rounds if patches == 50 else max(2, args.rounds // 2))
        name = f"jepa_{vit}_{grid}_side_by_side"
        res["cases"][name] = run_case("jepa_side_by_side", encoder=vit, leads=leads,
                                      patches=patches, **{**common, "steps": rounds})
        print(name, {k: v for k, v in res["cases"][name].items() if "speedup" in k or
                     "bound" in k or k == "error"}, flush=True)
        # Peak memory: each implementation alone in a fresh process, one warm-up + one step.
        for attention in ("cropa", "dense"):
            name = f"jepa_{vit}_{grid}_{attention}"
            res["cases"][name] = run_case("jepa", encoder=vit, leads=leads, patches=patches,
                                          attention=attention, **{**common, "steps": 1})
            print(name, res["cases"][name].get("peak_mem_mb", res["cases"][name]), flush=True)
    if not args.quick:  # paper scale: 1 measured step after 1 warm-up step, small batch on CPU
        vitb = {**common, "steps": 1, "batch": 4 if args.device == "cpu" else batch}
        name = "jepa_vit_base_8x50_cropa"
        res["cases"][name] = run_case("jepa", encoder="vit_base", leads=8, patches=50,
                                      attention="cropa", **vitb)
        print(name, res["cases"][name].get("samples_per_s", res["cases"][name]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        t0 = time.perf_counter()
        _prepare_store(store, 8 if args.quick else args.store_windows, beats=True)
        res["store_prepare_s"] = time.perf_counter() - t0
        res["cases"]["beat_ssl_resnet_12lead"] = run_case("beat_ssl", store=store, **common)
        print("beat_ssl", res["cases"]["beat_ssl_resnet_12lead"].get("samples_per_s"), flush=True)
        res["cases"]["data_loader"] = run_case("loader", store=store, batch=batch,
                                               workers=args.workers,
                                               loader_epochs=1 if args.quick else 3)
    # Peak again at the end: on a shared machine the best of the two is the better estimate.
    again = matmul_peak(args.device, (512, 1024) if args.quick else (2048, 4096),
                        precision=precision)
    res["matmul_end"] = again
    if again["peak_gflops"] > res["matmul"]["peak_gflops"]:
        res["matmul"], res["matmul_end"] = again, res["matmul"]
    for r in res["cases"].values():
        if "achieved_gflops" in r:
            r["mfu"] = r["achieved_gflops"] / res["matmul"]["peak_gflops"]
    stem = f"throughput_{args.device}{'_quick' if args.quick else ''}" + \
        (f"_{args.threads}thread" if args.threads else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / f"{stem}.md").write_text(_markdown(res))
    print(_markdown(res))


if __name__ == "__main__":
    main()
