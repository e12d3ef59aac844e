"""Rebuild the bundled delineator: train on LUDB leads one at a time, with augmentation.

Command::

    nice -n 10 python -m ecgssl.delineation.train --ludb ../shared/data/ludb

Budget: 1200 steps of 24 crops of 1280 samples (5.1 s at 250 Hz), one torch thread: the bundled
model took 1110 s (the fold-0 model 1134 s) on the shared 2-core development machine with the
two stages run side by side (``--stage fold`` and ``--stage final`` as two processes, then
``--stage select``); run in one process, ``all`` takes about twice as long. The seconds are
recorded in the JSON (``training.seconds``).

Stages (``--stage``, default ``all``):

1. ``fold``: a model trained on the training part of fold ``--fold`` K (default 0) of
   ``patient_kfold(5, seed=0)`` (LUDB records are one patient each), written to
   ``--work``/fold{K}. Its validation part chooses its post-processing (``select``); its test
   part is what ``benchmarks/delineation_unseen.py`` scores (the five fold models together: the
   LUDB 5-fold CV by patient, every record tested once). The test part is never looked at here.
2. ``select``: every post-processing candidate of ``ecgssl.delineation.rules.CANDIDATES`` on fold
   K's validation records; the best mean onset/offset F1 (P, QRS, T) wins. For fold 0 the
   choice is also written into the bundled model's JSON when ``--out`` exists (the bundled
   model takes fold 0's choice); to reproduce the benchmark's fold models without touching the
   bundled model, pass ``--out runs/delineation/final_unused``::

       for k in 0 1 2 3 4; do
         python -m ecgssl.delineation.train --stage fold --fold $k
         python -m ecgssl.delineation.train --stage select --fold $k \
             --out runs/delineation/final_unused
       done
3. ``lead_groups`` (for the benchmark's leave-lead-group-out protocol, not part of ``all``): two
   models on the fold-0 training records, one on the limb leads only (``--work``/leads_limb),
   one on the chest leads only (``--work``/leads_chest).
4. ``final``: the same recipe on all 200 records, written to ``--out`` (default: the package's
   ``resources/delineator_ludb``) with the choice and the validation numbers of stage 2.

Training: every (record, lead) with an annotated span is one single-channel sample; a batch
draws random leads, a random crop (``time_stretch`` included, ``ecgssl.delineation.augment``),
the amplitude augmentations, then ``normalise_window``. Loss: cross-entropy over the samples
inside the lead's annotated span only (outside it the expert said nothing). AdamW, cosine decay,
a fixed number of steps (no early stopping: nothing is selected on test data).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ecgssl.delineation.augment import AUGMENTATIONS, augment_lead, stretch_crop
from ecgssl.delineation.model import (
    DEFAULT_INPUT,
    DEFAULT_MODEL,
    DEFAULT_NETWORK,
    build_network,
    load_delineator,
    n_parameters,
    normalise_window,
    save_delineator,
    to_tensor,
)

LICENCE = {
    "training_data": "LUDB v1.0.1 (Lobachevsky University Electrocardiography Database), "
                     "all 200 records, all 12 leads, expert P/QRS/T annotations",
    "data_licence": "Open Data Commons Attribution License v1.0 (ODC-By 1.0)",
    "attribution": "Kalyakulina AI, Yusipov II, Moskalenko VA, Nikolskiy AV, Kosonogov KA, "
                   "Osipov GV, Zolotykh NY, Ivanchenko MV. LUDB: A New Open-Access Validation "
                   "Tool for Electrocardiogram Delineation Algorithms. IEEE Access 8 (2020) "
                   "186181-186190. doi:10.1109/ACCESS.2020.3029211. PhysioNet: "
                   "doi:10.13026/eegm-h675 (Goldberger et al., Circulation 101(23) 2000).",
    "model_licence": "MIT (as ecgssl); derived from ODC-By data: keep this attribution",
}


def load_ludb_leads(root: str | Path, numbers, fs: float = DEFAULT_INPUT["fs"]):
    """All leads of the given LUDB records at ``fs``.

    Returns:
        dict with ``signals`` float32 (R, 12, T), ``masks`` int8 (R, 12, T), ``spans`` int64
        (R, 12, 2) (annotated span, samples at ``fs``), ``records`` list of record ids.
    """
    from ecgssl.data.preprocess import resample
    from ecgssl.io.ludb import ludb_masks, read_ludb

    sigs, masks, spans, rids = [], [], [], []
    for number in numbers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unmapped-diagnosis warnings are irrelevant here
            rec = read_ludb(root, number)
        m, s = ludb_masks(rec)
        step = rec.fs / fs
        if step != int(step):
            raise ValueError(f"{rec.record_id}: {rec.fs} Hz is not a multiple of {fs} Hz")
        sig = resample(rec.signal.astype(np.float32), rec.fs, fs)
        sigs.append(sig)
        masks.append(m[:, ::int(step)][:, :sig.shape[1]])
        spans.append(np.ceil(np.asarray(s, dtype=np.float64) / step).astype(np.int64))
        rids.append(rec.record_id)
    return {"signals": np.stack(sigs), "masks": np.stack(masks), "spans": np.stack(spans),
            "records": rids}


def fit(data: dict, steps: int, batch_size: int = 32, crop: int = 1280, lr: float = 2e-3,
        seed: int = 0, log_every: int = 50, network: dict | None = None):
    """Train a fresh delineator on ``data`` (``load_ludb_leads``); returns (model, history)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fs = DEFAULT_INPUT["fs"]
    model = build_network(network)
    spans = data["spans"]
    pairs = np.argwhere(spans[..., 1] - spans[..., 0] > 0)  # (record, lead) with annotations
    if len(pairs) == 0:
        raise ValueError("no annotated leads to train on")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    history, losses, t0 = [], [], time.perf_counter()
    model.train()
    for step in range(steps):
        xs, ys, valid = [], [], []
        for r, lead in pairs[rng.integers(0, len(pairs), batch_size)]:
            factor = rng.uniform(0.85, 1.15) if rng.random() < AUGMENTATIONS["time_stretch"] \
                else 1.0
            x, y, span = stretch_crop(data["signals"][r, lead], data["masks"][r, lead],
                                      tuple(spans[r, lead]), crop, factor, rng)
            xs.append(augment_lead(x, fs, rng))
            ys.append(y)
            v = np.zeros(crop, dtype=bool)
            v[span[0]:span[1]] = True
            valid.append(v)
        xb = to_tensor(normalise_window(np.stack(xs)))
        yb = torch.from_numpy(np.stack(ys).astype(np.int64))
        vb = torch.from_numpy(np.stack(valid))
        logits = model(xb)[:, 0]  # (B, 4, T)
        if not vb.any():
            continue
        loss = F.cross_entropy(logits.movedim(1, -1)[vb], yb[vb])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % log_every == 0 or step + 1 == steps:
            entry = {"step": step + 1, "loss": float(np.mean(losses)),
                     "seconds": round(time.perf_counter() - t0, 1)}
            history.append(entry)
            print(json.dumps(entry), flush=True)
            losses = []
    return model.eval(), history


#: Folds of the LUDB cross-validation by patient (``patient_kfold(N_FOLDS, seed=0)``).
N_FOLDS = 5


def ludb_folds(root: str | Path):
    """All LUDB record numbers, and each fold's (train, val, test) record numbers of
    ``patient_kfold(N_FOLDS, seed=0)`` (LUDB records are one patient each): the one split the
    fold models are trained on and ``benchmarks/delineation_unseen.py`` checks them against."""
    from ecgssl.eval.splits import patient_kfold
    from ecgssl.io.ludb import ludb_record_numbers

    numbers = ludb_record_numbers(root)
    return numbers, [[[numbers[i] for i in idx] for idx in (split.train, split.val, split.test)]
                     for split in patient_kfold(N_FOLDS, n_records=len(numbers), seed=0)]


def ludb_fold_split(root: str | Path, fold: int = 0):
    """All LUDB record numbers and fold ``fold``'s (train, val, test) numbers (``ludb_folds``)."""
    if not 0 <= fold < N_FOLDS:
        raise ValueError(f"fold must be 0..{N_FOLDS - 1} ({N_FOLDS}-fold CV by patient), "
                         f"got {fold}")
    numbers, folds = ludb_folds(root)
    return numbers, folds[fold]


def _train_spec(args, data, history, seconds, stage) -> dict:
    return {"stage": stage, "records": data["records"], "n_records": len(data["records"]),
            "steps": args.steps, "batch_size": args.batch_size, "crop": args.crop,
            "lr": args.lr, "seed": args.seed, "augmentations": AUGMENTATIONS,
            "threads": args.threads, "seconds": round(seconds, 1), "history": history,
            "torch": torch.__version__, "python": platform.python_version(),
            "command": "python -m ecgssl.delineation.train " + " ".join(sys.argv[1:])}


def stage_fit(args, stage: str) -> Path:
    numbers, (train, val, test) = ludb_fold_split(args.ludb, args.fold)
    chosen = train if stage == "fold" else numbers
    data = load_ludb_leads(args.ludb, chosen)
    t0 = time.perf_counter()
    model, history = fit(data, args.steps, args.batch_size, args.crop, args.lr, args.seed)
    spec = {"network": DEFAULT_NETWORK, "input": DEFAULT_INPUT,
            "n_parameters": n_parameters(model),
            "training": _train_spec(args, data, history, time.perf_counter() - t0, stage),
            "licence": LICENCE}
    if stage == "fold":
        spec["split"] = {"protocol": f"patient_kfold(5, seed=0) fold {args.fold} of LUDB",
                         "fold": args.fold, "train": train, "val": val, "test": test}
        out = Path(args.work) / f"fold{args.fold}"
    else:
        out = Path(args.out)
    path = save_delineator(model, out, spec)
    print(f"wrote {path}")
    return path


LIMB_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF")
CHEST_LEADS = ("V1", "V2", "V3", "V4", "V5", "V6")


def stage_lead_groups(args) -> list[Path]:
    """Limb-only and chest-only models on the fold-0 training records."""
    from ecgssl.data.leads import LEADS_12

    _, (train, val, test) = ludb_fold_split(args.ludb)
    data = load_ludb_leads(args.ludb, train)
    paths = []
    for tag, group in (("limb", LIMB_LEADS), ("chest", CHEST_LEADS)):
        keep = [LEADS_12.index(n) for n in group]
        sub = {**data, "signals": data["signals"][:, keep], "masks": data["masks"][:, keep],
               "spans": data["spans"][:, keep]}
        t0 = time.perf_counter()
        model, history = fit(sub, args.steps, args.batch_size, args.crop, args.lr, args.seed)
        training = _train_spec(args, data, history, time.perf_counter() - t0, f"leads_{tag}")
        training["leads"] = list(group)
        spec = {"network": DEFAULT_NETWORK, "input": DEFAULT_INPUT, "training": training,
                "licence": LICENCE, "split": {"protocol": "patient_kfold(5, seed=0) fold 0 "
                                              "of LUDB", "train": train, "val": val,
                                              "test": test}}
        paths.append(save_delineator(model, Path(args.work) / f"leads_{tag}", spec))
        print(f"wrote {paths[-1]}")
    return paths


def stage_select(args) -> dict:
    """Choose the post-processing on fold ``--fold``'s validation records; write it into the
    fold model's JSON, and (fold 0 only) into the bundled model's."""
    from ecgssl.delineation.rules import select_postprocess

    fold_json = Path(args.work) / f"fold{args.fold}.json"
    _, spec = load_delineator(fold_json)
    result = select_postprocess(fold_json, args.ludb, spec["split"]["val"])
    print(json.dumps({k: v for k, v in result.items() if k != "candidates"}, indent=1))
    final_json = Path(args.out).with_suffix(".json")
    # The bundled model takes fold 0's choice: one fixed protocol, whatever other folds say.
    targets = [fold_json] + ([final_json] if args.fold == 0 and final_json.is_file() else [])
    for target in targets:
        meta = json.loads(target.read_text())
        meta["postprocess"] = result["chosen"]
        meta["validation"] = result
        target.write_text(json.dumps(meta, indent=1, default=float) + "\n")
        print(f"updated {target}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ludb", default=str(Path("..") / "shared" / "data" / "ludb"))
    parser.add_argument("--out", default=str(DEFAULT_MODEL), help="final model stem")
    parser.add_argument("--work", default="runs/delineation", help="fold-0 model folder")
    parser.add_argument("--stage", default="all", choices=["all", "fold", "select", "final",
                                                            "lead_groups"])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--crop", type=int, default=1280, help="training crop (samples, 250 Hz)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fold", type=int, default=0,
                        help="fold of patient_kfold(5, seed=0) for --stage fold / select "
                             "(0: the fold whose validation part chooses the bundled model's "
                             "post-processing; 1-4: the rest of the benchmark's LUDB CV)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.stage in ("all", "fold"):
        stage_fit(args, "fold")
    if args.stage in ("all", "final"):
        stage_fit(args, "final")
    if args.stage == "lead_groups":
        stage_lead_groups(args)
    if args.stage in ("all", "select"):
        stage_select(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
