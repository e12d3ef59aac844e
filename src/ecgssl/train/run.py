"""``pretrain``: one call from a recipe and a prepared store to a run directory.

Run directory layout::

    <out_dir>/config.yaml          resolved recipe (load_recipe reads it back)
    <out_dir>/run.json             store, resume point, versions, world size, timings
    <out_dir>/metrics.csv          per-step metrics (CSV logger)
    <out_dir>/tensorboard/         TensorBoard events (when train.tensorboard)
    <out_dir>/checkpoints/last.ckpt  (+ stepNNNNNNN.ckpt periodic) full resumable state
    <out_dir>/encoder.safetensors + encoder.json   exported encoder (ecgssl.train.export)

What resumes exactly (tests/train/test_train_resume.py): from any checkpoint written by this
engine, epoch boundary or mid-epoch, on the same number of ranks and the same recipe, the
parameters (online and EMA), optimiser, lr schedule, data order and augmentation / mask random
streams continue as if never interrupted — bit for bit on CPU with ``num_workers`` of any value.
Not guaranteed: a different world size or batch size (the data order is then different but still
disjoint across ranks), GPU kernels that are non-deterministic unless ``train.deterministic``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

import ecgssl
from ecgssl.errors import IntegrityError, OutputDirError, SpecMismatchError
from ecgssl.methods.base import SSLMethod
from ecgssl.safety import guard_output_dir, output_lock, read_json_file, write_marker
from ecgssl.safety.outputs import remove_own_entries
from ecgssl.train.callbacks import CollapseMonitor, OnlineLinearProbe, ThroughputMeter
from ecgssl.train.datamodule import PretrainDataModule
from ecgssl.train.export import export_encoder
from ecgssl.train.module import OptimConfig, PretrainModule
from ecgssl.train.recipes import RecipeError, load_recipe, save_recipe

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a pretraining run produced (paths are None where nothing was written)."""

    run_dir: Path
    config_path: Path
    checkpoint: Path | None
    encoder_weights: Path | None
    encoder_meta: Path | None
    metrics_csv: Path | None
    global_step: int
    epochs: int
    final_loss: float
    samples_per_s: float
    wall_s: float
    reused: bool = False  # an earlier identical run returned by pretrain(reuse=True)

    def describe(self) -> str:
        lines = [f"run directory: {self.run_dir}"]
        for label, path in [("resolved recipe", self.config_path), ("last checkpoint",
                            self.checkpoint), ("metrics", self.metrics_csv),
                            ("encoder weights", self.encoder_weights),
                            ("encoder spec", self.encoder_meta)]:
            if path is not None:
                lines.append(f"  {label:<16} {path}")
        lines.append(f"  {self.global_step} optimiser steps, {self.epochs} epoch(s), final loss "
                     f"{self.final_loss:.4g}, {self.samples_per_s:.1f} samples/s, "
                     f"{self.wall_s:.1f} s")
        return "\n".join(lines)


def build_method(recipe: dict[str, Any], data_info: dict[str, Any] | None = None) -> SSLMethod:
    """The method named by ``recipe["method"]["name"]`` from ``ecgssl.methods.registry``.

    ``data_info`` is ``{"leads", "fs", "n_samples"}`` of the store (``{}`` without one).
    """
    from ecgssl.methods.registry import MethodUnavailableError, create_method

    name = recipe["method"]["name"]
    method_cfg = {k: v for k, v in recipe["method"].items() if k != "name"}
    try:
        return create_method(name, method_cfg, dict(recipe["encoder"]), dict(data_info or {}))
    except KeyError as err:
        raise RecipeError(err.args[0]) from err
    except MethodUnavailableError as err:
        raise RecipeError(str(err)) from err


def _gpu_requested(accelerator: str) -> bool:
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` -> ``bf16-mixed`` on a GPU with bf16 support, else ``32-true``.

    Raises:
        RecipeError: a half precision on CPU (very slow on CPU here, and not what runs on GPU).
    """
    on_gpu = _gpu_requested(accelerator)
    if precision == "auto":
        return "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"
    if precision == "32":
        return "32-true"
    if not on_gpu and precision != "32-true":
        raise RecipeError(f"train.precision={precision} on CPU: use 32-true (or auto); half "
                          "precision is much slower than float32 on CPU")
    return precision


def resolve_strategy(strategy: str, devices: Any, num_nodes: int) -> str:
    """``auto`` becomes ``ddp`` when more than one process trains."""
    if strategy != "auto":
        return strategy
    many = num_nodes > 1 or (isinstance(devices, int) and devices > 1) or \
        (isinstance(devices, list) and len(devices) > 1) or \
        (devices in ("auto", -1, "-1") and torch.cuda.device_count() > 1)
    return "ddp" if many else "auto"


def _checkpoint_callback(ckpt_dir: Path, train: dict[str, Any]) -> ModelCheckpoint:
    every_steps = train["checkpoint_every_n_steps"]
    every_epochs = train["checkpoint_every_n_epochs"]
    periodic = every_steps > 0 or every_epochs > 0
    kwargs: dict[str, Any] = {"every_n_train_steps": every_steps} if every_steps > 0 else \
        {"every_n_epochs": max(1, every_epochs)}
    # save_top_k=-1 keeps every periodic file; 0 keeps only last.ckpt.
    return ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", save_last=True,
                           save_top_k=-1 if periodic else 0, auto_insert_metric_name=False,
                           save_on_train_epoch_end=True, **kwargs)


def _optim_config(train: dict[str, Any]) -> OptimConfig:
    return OptimConfig(lr=float(train["lr"]), min_lr=float(train["min_lr"]),
                       weight_decay=float(train["weight_decay"]),
                       betas=tuple(float(b) for b in train["betas"]), eps=float(train["eps"]),
                       warmup_steps=train["warmup_steps"],
                       warmup_epochs=float(train["warmup_epochs"]))


def _is_rank_zero() -> bool:
    """True in the process that owns the run directory (DDP children have a rank > 0)."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        if os.environ.get(key, "0") not in ("0", ""):
            return False
    return True


def _claim_run_dir(out: Path, resume: Any, overwrite: bool) -> None:
    """Refuse a run directory that would lose something; mark it as ecgssl's.

    New or empty: fine. An ecgssl run: continued with ``resume``, replaced with ``overwrite``
    (only ecgssl's own files are removed), else refused when it holds checkpoints or an
    exported encoder. Anything else: refused (``ecgssl.safety.outputs``).
    """
    state = guard_output_dir(out, "run", overwrite=overwrite, existing_ok=True)
    if state == "ours" and overwrite and resume is None:
        removed = remove_own_entries(out, "run")
        if removed:
            print(f"--overwrite: removed the previous run's {', '.join(removed)} from {out}",
                  flush=True)
    elif state == "ours" and resume is None:
        finished = (out / "encoder.json").is_file()
        checkpoints = sorted((out / "checkpoints").glob("*.ckpt"))
        if finished or checkpoints:
            what = "a finished run (encoder.json)" if finished else \
                f"an unfinished run ({len(checkpoints)} checkpoints)"
            raise OutputDirError(out, f"holds {what}",
                                 "continue it with --resume last, start over with --overwrite, "
                                 "or choose a new --out")
    write_marker(out, "run")


def _intact(path: Path) -> str | None:
    """None if ``path`` is a complete checkpoint archive, else what is wrong with it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    return f"damaged member {bad}" if bad else None


def resolve_resume(resume: str | Path | None, ckpt_dir: Path) -> Path | None:
    """The checkpoint to resume from: ``"last"`` is ``last.ckpt``, or, when that one is
    truncated or damaged, the newest intact ``checkpoints/*.ckpt`` (with a warning).

    Raises:
        FileNotFoundError: no such checkpoint. IntegrityError: it is damaged (an explicit path),
        or no intact checkpoint is left (``"last"``).
    """
    if resume is None:
        return None
    if resume != "last":
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
        problem = _intact(path)
        if problem:
            raise IntegrityError(path, f"is not a complete checkpoint ({problem})",
                                 "resume from another one (--resume PATH) or --resume last")
        return path
    last = ckpt_dir / "last.ckpt"
    problem = _intact(last) if last.is_file() else "missing"
    if problem is None:
        return last
    others = sorted((p for p in ckpt_dir.glob("*.ckpt") if p.name != "last.ckpt"),
                    key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    for candidate in others:
        if _intact(candidate) is None:
            log.warning("%s is unusable (%s): resuming from %s, the newest intact checkpoint",
                        last, problem, candidate.name)
            print(f"warning: {last} is unusable ({problem}); resuming from {candidate}",
                  flush=True)
            return candidate
    if problem == "missing" and not others:
        raise FileNotFoundError(f"checkpoint to resume from not found: {last}")
    raise IntegrityError(last, f"is unusable ({problem}) and no other intact checkpoint is in "
                         f"{ckpt_dir}", "start over with --overwrite (or a new --out)")


def fit(recipe: dict[str, Any], method: SSLMethod, dataset: Any, out_dir: str | Path, *,
        resume: str | Path | None = None, overwrite: bool = False, **kwargs) -> RunResult:
    """Train ``method`` on ``dataset`` into the run directory ``out_dir`` (safely).

    ``out_dir`` must be new, empty or an ecgssl run (continued with ``resume``, replaced with
    ``overwrite``); one process writes it at a time (``.ecgssl.lock``). ``resume="last"`` falls
    back to the newest intact checkpoint when ``last.ckpt`` is truncated. Other arguments as
    ``_fit``.

    Raises:
        OutputDirError: ``out_dir`` holds something else, or a run to keep.
        LockedError: another process trains into ``out_dir``.
    """
    out = Path(out_dir)
    if not _is_rank_zero():  # rank 0 checked and locked the directory
        return _fit(recipe, method, dataset, out,
                    resume=resolve_resume(resume, out / "checkpoints"), **kwargs)
    _claim_run_dir(out, resume, overwrite)
    with output_lock(out / ".ecgssl.lock", out):
        return _fit(recipe, method, dataset, out,
                    resume=resolve_resume(resume, out / "checkpoints"), **kwargs)


def _fit(recipe: dict[str, Any], method: SSLMethod, dataset: Any, out_dir: str | Path, *,
         store_config: dict[str, Any] | None = None,
         training_summary: dict[str, Any] | None = None, resume: str | Path | None = None,
         probe_dataset: Any = None, callbacks: list[pl.Callback] | None = None) -> RunResult:
    """Train ``method`` on ``dataset`` as ``recipe`` (already resolved by ``load_recipe``) says.

    The lower-level entry point of ``pretrain``: any map-style dataset of dicts, any
    ``SSLMethod``. The encoder is exported at the end when ``store_config`` is given.

    Args:
        resume: a checkpoint path, or ``"last"`` for ``<out_dir>/checkpoints/last.ckpt``.
        callbacks: extra Lightning callbacks (e.g. for tests).
    """
    t0 = time.perf_counter()
    train, data = recipe["train"], recipe["data"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    torch.set_float32_matmul_precision(train["matmul_precision"])
    precision = resolve_precision(train["precision"], train["accelerator"])
    strategy = resolve_strategy(train["strategy"], train["devices"], train["num_nodes"])
    # train.compile: the paths the training step really runs (SSLMethod.training_entry_points),
    # in place: parameter names (and checkpoints) stay the same. Listed in run.json.
    compiled = method.compile_training() if train["compile"] else []

    pl.seed_everything(train["seed"], workers=False, verbose=False)
    datamodule = PretrainDataModule(
        dataset, method.make_collate(), train["batch_size"], num_workers=data["num_workers"],
        persistent_workers=data["persistent_workers"], pin_memory=data["pin_memory"],
        prefetch_factor=data["prefetch_factor"], shuffle=data["shuffle"],
        drop_last=data["drop_last"], seed=train["seed"])
    module = PretrainModule(method, _optim_config(train))

    meter = ThroughputMeter()
    cbs: list[pl.Callback] = [_checkpoint_callback(ckpt_dir, train), meter]
    if train["progress_bar"]:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, train["log_every_n_steps"] // 2)))
    if train["collapse_every_n_steps"] > 0:
        cbs.append(CollapseMonitor(train["collapse_every_n_steps"]))
    probe_cfg = recipe.get("probe", {})
    if probe_dataset is not None and probe_cfg.get("every_n_epochs", 0) > 0:
        cbs.append(OnlineLinearProbe(probe_dataset, probe_cfg["every_n_epochs"],
                                     probe_cfg["val_fraction"], probe_cfg["max_samples"],
                                     probe_cfg["batch_size"], probe_cfg["seed"]))
    cbs.extend(callbacks or [])
    loggers: list[Any] = [CSVLogger(save_dir=str(out), name="", version="")]
    if train["tensorboard"]:
        loggers.append(TensorBoardLogger(save_dir=str(out), name="tensorboard", version=""))

    trainer = pl.Trainer(
        accelerator=train["accelerator"], devices=train["devices"], num_nodes=train["num_nodes"],
        strategy=strategy, precision=precision,
        max_epochs=train["max_epochs"] if train["max_epochs"] is not None else -1,
        max_steps=train["max_steps"] if train["max_steps"] is not None else -1,
        accumulate_grad_batches=train["accumulate_grad_batches"],
        gradient_clip_val=train["gradient_clip_val"], logger=loggers, callbacks=cbs,
        enable_progress_bar=train["progress_bar"],
        # A run shorter than the logging interval still logs (every step then).
        log_every_n_steps=min(train["log_every_n_steps"], train["max_steps"] or 10**9),
        default_root_dir=str(out), use_distributed_sampler=False, num_sanity_val_steps=0,
        deterministic=train["deterministic"], enable_model_summary=train["progress_bar"])

    if trainer.is_global_zero:
        save_recipe(recipe, out / "config.yaml")
    # Lightning's CSV logger deletes an existing metrics.csv: keep the history of a resumed run.
    previous = _read_metrics(out / "metrics.csv") if resume and trainer.is_global_zero else None
    # weights_only=False: the checkpoint carries RNG states and the method's resume state (not
    # only tensors). Resume only from checkpoints you trust (your own runs).
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None,
                weights_only=False)
    last = ckpt_dir / "last.ckpt"
    if trainer.interrupted:
        # Ctrl-C: Lightning returns normally, possibly mid-step. Keep the last checkpoint written
        # at a step boundary (exact resume) and do not export a half-trained encoder.
        print(f"training interrupted at step {trainer.global_step}; resume with "
              f"resume={last if last.exists() else 'a checkpoint'}", flush=True)
        store_config = None
    else:
        # The periodic callback may not have fired at the final step (step-based periods).
        trainer.save_checkpoint(last)
    if previous is not None:
        _merge_metrics(out / "metrics.csv", previous)

    weights = meta = None
    summary = dict(training_summary or {})
    summary.update({"method": recipe["method"],
                    # What train.collapse.training_summary reads beside the collapse/* stats.
                    "spread_metrics": list(method.spread_metrics),
                    "global_step": trainer.global_step,
                    "epochs_completed": trainer.current_epoch,
                    "batch_size": train["batch_size"] * trainer.world_size
                    * train["accumulate_grad_batches"],
                    "samples_seen": trainer.global_step * train["batch_size"] * trainer.world_size
                    * train["accumulate_grad_batches"]})
    if trainer.is_global_zero and store_config is not None:
        weights, meta = export_encoder(method.encoder, out / "encoder", store_config, summary,
                                       leads=recipe["data"]["leads"])
    loss = trainer.callback_metrics.get("train/loss")
    result = RunResult(
        run_dir=out, config_path=out / "config.yaml", checkpoint=last if last.exists() else None,
        encoder_weights=weights, encoder_meta=meta,
        metrics_csv=out / "metrics.csv" if (out / "metrics.csv").exists() else None,
        global_step=trainer.global_step, epochs=trainer.current_epoch,
        final_loss=float(loss) if loss is not None else float("nan"),
        samples_per_s=meter.samples_per_s, wall_s=time.perf_counter() - t0)
    if trainer.is_global_zero:
        info = {"ecgssl_version": ecgssl.__version__, "torch": torch.__version__,
                "lightning": lightning.__version__, "python": platform.python_version(),
                "precision": precision, "strategy": strategy, "world_size": trainer.world_size,
                "compiled": compiled, "resumed_from": str(resume) if resume else None,
                "training": summary,
                "result": {k: (str(v) if isinstance(v, Path) else v)
                           for k, v in asdict(result).items()}}
        (out / "run.json").write_text(json.dumps(info, indent=2, default=str))
        print(result.describe(), flush=True)
    return result


def _read_metrics(path: Path):
    import pandas as pd

    return pd.read_csv(path) if path.is_file() and path.stat().st_size else None


def _merge_metrics(path: Path, previous) -> None:
    """Prepend the rows of the interrupted run that precede the resumed steps."""
    import pandas as pd

    new = _read_metrics(path)
    if new is None or "step" not in new or "step" not in previous:
        return
    kept = previous[previous["step"] < new["step"].min()]
    pd.concat([kept, new], ignore_index=True).to_csv(path, index=False)


def _store_summary(store_path: Path, config: dict[str, Any], n_used: int) -> dict[str, Any]:
    summary: dict[str, Any] = {"store": str(store_path), "store_hash": config.get("hash"),
                               "n_windows": config.get("n_windows"), "n_windows_used": n_used}
    manifest = store_path / "manifest.csv"
    if manifest.is_file():
        import pandas as pd

        cols = pd.read_csv(manifest, usecols=lambda c: c in ("source", "patient_id",
                                                              "record_id"), dtype=str)
        if "source" in cols:
            summary["sources"] = {str(k): int(v) for k, v in
                                  cols["source"].value_counts().items()}
        if "patient_id" in cols:
            summary["n_patients"] = int(cols["patient_id"].nunique())
        if "record_id" in cols:  # for eval.overlap: which records the encoder has seen
            summary["record_ids"] = sorted(cols["record_id"].unique().tolist())
    return summary


def check_store(data: dict[str, Any], store_config: dict[str, Any], store_path: Path) -> None:
    """Refuse a store that does not have what the recipe's ``data`` section asks for.

    Raises:
        SpecMismatchError: rate, length, leads, extras or preprocessing settings differ (the
            message says which).
    """
    problems = []
    if data["fs"] is not None and float(data["fs"]) != float(store_config["fs"]):
        problems.append(f"fs {store_config['fs']} Hz, recipe wants {data['fs']}")
    if data["n_samples"] is not None and int(data["n_samples"]) != int(store_config["n_samples"]):
        problems.append(f"{store_config['n_samples']} samples per window, recipe wants "
                        f"{data['n_samples']}")
    missing = [x for x in (data["leads"] or []) if x not in store_config["leads"]]
    if missing:
        problems.append(f"no leads {missing} (has {store_config['leads']})")
    extras = store_config.get("extras") or []
    missing_extras = [x for x in (data["extras"] or []) if x not in extras]
    if missing_extras:
        problems.append(f"no extras {missing_extras} (has {extras}); prepare it with them")
    # data.preprocess: settings the store must have been prepared with (e.g. a paper recipe's
    # resample_method: fft, short_records: drop); a store without the key does not qualify.
    prepared = store_config.get("preprocess") or {}
    if prepared:
        from ecgssl.data.preprocess import with_legacy_fields

        # A store from before a field existed was made at its legacy value (rpeak_detector:
        # "ecgssl"), so a recipe asking for that value still qualifies it.
        prepared = with_legacy_fields(prepared)
    for key, wanted in (data.get("preprocess") or {}).items():
        if key not in prepared:
            problems.append(f"preprocess.{key}: the store does not record it, recipe wants "
                            f"{wanted!r} (prepare the store with that setting)")
        elif prepared[key] != wanted:
            problems.append(f"preprocess.{key} {prepared[key]!r}, recipe wants {wanted!r}")
    if problems:
        raise SpecMismatchError(f"store {store_path}: " + "; ".join(problems))


def reusable_run(out_dir: str | Path, resolved: dict[str, Any],
                 store_path: str | Path) -> RunResult | None:
    """The finished run in ``out_dir`` if it was trained with exactly the ``resolved`` recipe on
    a store with the same preprocessing hash, window count and sources as ``store_path``'s,
    else None. (Not the store's creation time: a re-prepared identical store still matches.)

    A run is finished when it exported its encoder (an interrupted run does not).
    """
    import yaml

    from ecgssl.data.store import ECGStore

    out = Path(out_dir)
    files = [out / "config.yaml", out / "run.json", out / "encoder.safetensors",
             out / "encoder.json"]
    if not all(f.is_file() for f in files):
        return None
    if yaml.safe_load((out / "config.yaml").read_text()) != resolved:
        return None
    info = json.loads((out / "run.json").read_text())
    trained = info.get("training", {})
    store = ECGStore(store_path)
    now = {"store_hash": store.config.get("hash"), "n_windows": len(store),
           "sources": {str(k): int(v) for k, v in
                       store.manifest["source"].value_counts().items()}}
    if any(trained.get(k) != v for k, v in now.items()):
        return None
    r = info["result"]
    paths = {k: (Path(r[k]) if r.get(k) not in (None, "None") else None)
             for k in ("checkpoint", "encoder_weights", "encoder_meta", "metrics_csv")}
    return RunResult(run_dir=out, config_path=out / "config.yaml", **paths,
                     global_step=int(r["global_step"]), epochs=int(r["epochs"]),
                     final_loss=float(r["final_loss"]), samples_per_s=float(r["samples_per_s"]),
                     wall_s=float(r["wall_s"]), reused=True)


def pretrain(recipe: dict[str, Any] | str | Path, store_path: str | Path, out_dir: str | Path,
             overrides: list[str] | None = None, resume: str | Path | None = None,
             overwrite: bool = False, reuse: bool = False) -> RunResult:
    """Pretrain the recipe's method on a prepared store; writes a run directory (module doc).

    Args:
        recipe: a recipe dict or YAML path (``ecgssl.train.recipes``).
        store_path: a directory written by ``ecgssl.data.store.prepare_store``.
        out_dir: the run directory (created).
        overrides: dotted overrides, e.g. ``["train.lr=1e-4", "data.batch_size=32"]``.
        resume: checkpoint path or ``"last"``; the recipe must match the checkpoint's run.
        overwrite: replace an ecgssl run already in ``out_dir`` (its files only).
        reuse: return the finished run already in ``out_dir`` when ``reusable_run`` accepts it
            (same recipe and store), without training; says so on stdout.
    """
    from ecgssl.data.dataset import StoreDataset
    from ecgssl.data.store import ECGStore

    resolved = load_recipe(recipe, overrides)
    if reuse and resume is None:
        found = reusable_run(out_dir, resolved, store_path)
        if found is not None:
            print(f"reusing the finished run in {out_dir} (same recipe and store)", flush=True)
            return found
    store_path = Path(store_path)
    config_file = store_path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{store_path} is not a prepared store (no config.json)")
    store_config = read_json_file(config_file, "store config", "prepare the store again")
    check_store(resolved["data"], store_config, store_path)
    store = ECGStore(store_path)
    n_max = resolved["data"]["max_samples"]
    indices = None if n_max is None or n_max >= len(store) else list(range(n_max))
    leads = resolved["data"]["leads"]
    data_info = {"leads": list(leads or store_config["leads"]), "fs": float(store_config["fs"]),
                 "n_samples": int(store_config["n_samples"])}
    pl.seed_everything(resolved["train"]["seed"], workers=False, verbose=False)
    method = build_method(resolved, data_info)
    # Methods that contrast windows of one patient / record (CMSC) ask for their codes.
    dataset = StoreDataset(store, indices=indices, leads=leads,
                           ids=getattr(method, "needs_ids", False))
    if dataset.ids_report.get("windows_without_patient_id"):
        print(f"note: {dataset.ids_report['windows_without_patient_id']} windows have no "
              f"patient id; their record stands for the patient")

    probe_dataset = None
    if resolved["probe"]["every_n_epochs"] > 0:
        if not resolved["probe"]["store"]:
            raise RecipeError("probe.every_n_epochs > 0 needs probe.store (a labelled store)")
        probe_dataset = StoreDataset(ECGStore(resolved["probe"]["store"]))
    return fit(resolved, method, dataset, out_dir, store_config=store_config,
               training_summary=_store_summary(store_path, store_config, len(dataset)),
               resume=resume, overwrite=overwrite, probe_dataset=probe_dataset)
