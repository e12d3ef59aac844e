"""Pretraining engine: Lightning loop, schedules, exact resume, DDP, export.

Modules (import what you need; this package imports nothing eagerly so that
``ecgssl.train.export`` stays cheap for evaluation code):

- ``run``: ``pretrain(recipe, store_path, out_dir, overrides, resume) -> RunResult`` and the
  lower-level ``fit(recipe, method, dataset, out_dir, ...)``; the run directory layout.
- ``recipes``: YAML recipes, dotted overrides, validation (``load_recipe``).
- ``module``: ``PretrainModule`` (AdamW over the method's groups, warm-up + cosine per step,
  EMA hook, RNG / method state in checkpoints).
- ``datamodule``: ``PretrainDataModule`` and ``ResumableBatchSampler`` (rank-disjoint,
  epoch-seeded, resumable mid-epoch; per-batch augmentation seeds).
- ``schedules``: ``warmup_cosine_lr``, ``ema_momentum``.
- ``callbacks``: collapse diagnostics, online linear probe, throughput meter.
- ``export``: ``export_encoder``, ``load_encoder`` (inference input: ``ecgssl.data.inference``).

Resume guarantee: from any checkpoint this engine writes (epoch boundary or mid-epoch), with the
same recipe and world size, training continues bit-identically on CPU: weights (incl. the EMA
target), optimiser, schedule, data order, augmentations drawn in the collate from the global
``random`` / ``numpy`` / ``torch`` RNGs (seeded per batch), the training RNG stream and the
method's ``state_for_resume``. Not covered: changing world size, batch size or the number of
steps (refused), and non-deterministic GPU kernels.
"""
