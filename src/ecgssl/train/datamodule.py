"""Data loading for pretraining: a resumable, rank-sharded batch order and seeded augmentation.

What is guaranteed (see also ``docs`` in ``ecgssl.train``):

- The order of samples is a pure function of ``(seed, epoch)``: every rank computes the same
  permutation and takes its own disjoint slice, so no sample is seen twice in an epoch across ranks.
- Every batch gets its own augmentation seed, a pure function of ``(seed, epoch, rank, batch
  number)``. The collate (run in worker processes) seeds ``random``, ``numpy`` and ``torch`` with it
  before calling the method's collate, so random views / masks drawn there from the global RNGs do
  not depend on the number of workers, on which worker got the batch, or on a restart.
- Resuming: the sampler can skip the batches of an epoch that were already consumed, so a run
  resumed from a mid-epoch checkpoint sees exactly the batches it would have seen.

Memory stays flat with the store size: the loader only handles indices, and the dataset object is
pickled to the workers, so it must not carry arrays (``check_dataset_picklable``).
"""

from __future__ import annotations

import io
import pickle
import random
from collections.abc import Callable, Iterator
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

# A dataset that pickles to more than this is carrying data instead of a path (memmaps pickle as
# full copies), and would be copied into every worker.
MAX_DATASET_PICKLE_BYTES = 64 * 2**20


def batch_seed(seed: int, epoch: int, rank: int, batch: int) -> int:
    """The augmentation seed of one batch (a 32-bit int), independent of workers and restarts."""
    return int(np.random.SeedSequence([seed, epoch, rank, batch]).generate_state(1)[0])


class ResumableBatchSampler:
    """Batches of ``(dataset index, batch seed)`` for one rank; epoch-seeded and resumable.

    Args:
        n: dataset length.
        batch_size: samples per batch on this rank.
        shuffle: permute each epoch (seeded by ``(seed, epoch)``) or keep index order.
        drop_last: drop the last incomplete batch; otherwise the per-rank share is padded by
            wrapping around (as ``DistributedSampler`` does) so every rank has as many batches.
        seed: base seed, shared by all ranks.
        rank, world_size: this process's slice of each epoch (disjoint across ranks).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, drop_last: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if n <= 0:
            raise ValueError(f"the dataset is empty (n={n})")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"bad rank {rank} for world_size {world_size}")
        per_rank = n // world_size if drop_last else -(-n // world_size)
        if drop_last and per_rank < batch_size:
            raise ValueError(
                f"{n} samples over {world_size} rank(s) give {per_rank} per rank, fewer than one "
                f"batch of {batch_size} with drop_last=True: lower batch_size or add data")
        self.n, self.batch_size = int(n), int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.per_rank = per_rank
        self.epoch = 0
        # Lightning calls set_epoch on ``batch_sampler.sampler`` (not on the batch sampler).
        self.sampler = _EpochProxy(self)
        # Resume point: skip this many batches when iterating this epoch.
        self._skip_epoch: int | None = None
        self._skip_batches = 0

    def __len__(self) -> int:
        """Batches in a full epoch on this rank (also when resuming mid-epoch: the training loop
        counts the already consumed ones)."""
        if self.drop_last:
            return self.per_rank // self.batch_size
        return -(-self.per_rank // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = int(epoch)

    def resume(self, epoch: int, batches_consumed: int) -> None:
        """Make the next iteration be over ``epoch``, starting after ``batches_consumed`` batches.

        The epoch is set here too, not only by a later ``set_epoch``: with worker processes the
        DataLoader draws its first batches from the sampler as soon as the iterator is created,
        which Lightning does before it calls ``set_epoch`` on a restart.
        """
        if batches_consumed < 0:
            raise ValueError(f"batches_consumed must be >= 0, got {batches_consumed}")
        if batches_consumed >= len(self):  # the epoch was complete: start the next one
            epoch, batches_consumed = epoch + 1, 0
        self.epoch = int(epoch)
        self._skip_epoch, self._skip_batches = int(epoch), int(batches_consumed)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """This rank's dataset indices of ``epoch`` in order (int64, length ``per_rank``)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        total = self.per_rank * self.world_size
        if total > self.n:  # pad by wrapping (drop_last=False)
            order = np.concatenate([order, order[: total - self.n]])
        # Strided slices of one shared permutation: disjoint across ranks.
        return order[:total][self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        skip = self._skip_batches if self._skip_epoch == epoch else 0
        self._skip_epoch, self._skip_batches = None, 0  # a resume point is used once
        indices = self.epoch_indices(epoch)
        for b in range(skip, len(self)):
            chunk = indices[b * self.batch_size:(b + 1) * self.batch_size]
            seed = batch_seed(self.seed, epoch, self.rank, b)
            yield [(int(i), seed) for i in chunk]


class _EpochProxy:
    """What Lightning finds as ``batch_sampler.sampler``: forwards ``set_epoch``."""

    def __init__(self, owner: ResumableBatchSampler):
        self._owner = owner

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)

    def __len__(self) -> int:
        return self._owner.per_rank


class SeededItems(Dataset):
    """Wraps a map-style dataset so that items are fetched by ``(index, batch seed)`` pairs.

    The seed travels with the sample to the collate (key ``"_batch_seed"``, removed there).
    """

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        item = self.dataset[index]
        if not isinstance(item, dict):
            raise TypeError(f"dataset items must be dicts, got {type(item).__name__} at {index}")
        item = dict(item)
        item.setdefault("index", index)
        item["_batch_seed"] = seed
        return item


class SeededCollate:
    """Seeds ``random``/``numpy``/``torch`` with the batch seed, then runs the method's collate.

    In the main process (``num_workers=0``) the global RNG states are restored afterwards, so data
    loading never perturbs the training RNG stream (which matters for exact resume).
    """

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, Any]]):
        self.collate = collate

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        seeds = {item.pop("_batch_seed") for item in items}
        if len(seeds) != 1:
            raise RuntimeError(f"a batch mixes samples of different batches (seeds {seeds})")
        seed = seeds.pop()
        in_worker = torch.utils.data.get_worker_info() is not None
        # The legacy global numpy RNG on purpose: it is what collates draw from.
        saved = None if in_worker else (random.getstate(), np.random.get_state(),  # noqa: NPY002
                                        torch.random.get_rng_state())
        try:
            random.seed(seed)
            np.random.seed(seed)  # noqa: NPY002
            torch.manual_seed(seed)
            return self.collate(items)
        finally:
            if saved is not None:
                random.setstate(saved[0])
                np.random.set_state(saved[1])  # noqa: NPY002
                torch.random.set_rng_state(saved[2])


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: derive numpy/random seeds from torch's per-worker seed.

    Torch seeds each worker from the loader's generator (seeded per rank), so these are
    reproducible; per-batch seeding in ``SeededCollate`` then takes over for augmentations.
    """
    from ecgssl.safety import die_with_parent

    die_with_parent()  # a killed training run leaves no orphan loader workers
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)


class _ByteLimit(io.RawIOBase):
    def __init__(self, limit: int):
        self.limit, self.count = limit, 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        n = memoryview(b).nbytes  # b may be bytes or a PickleBuffer (protocol 5)
        self.count += n
        if self.count > self.limit:
            raise OverflowError
        return n


def check_dataset_picklable(dataset: Any, limit_bytes: int = MAX_DATASET_PICKLE_BYTES) -> int:
    """Check that ``dataset`` pickles (for worker processes) to less than ``limit_bytes``.

    Stops pickling as soon as the limit is passed, so a dataset that carries a whole store costs
    nothing to reject. Returns the pickled size in bytes.

    Raises:
        ValueError: not picklable, or too large (it carries arrays: open memmaps lazily instead).
    """
    sink = _ByteLimit(limit_bytes)
    try:
        pickle.Pickler(sink, protocol=pickle.HIGHEST_PROTOCOL).dump(dataset)
    except OverflowError:
        raise ValueError(
            f"{type(dataset).__name__} pickles to more than {limit_bytes / 2**20:.0f} MiB: it "
            "carries data into every worker; keep a path and open memmaps lazily in the worker"
        ) from None
    except Exception as err:  # pickling errors have many types
        raise ValueError(f"{type(dataset).__name__} cannot be pickled for worker processes: "
                         f"{err}") from err
    return sink.count


class PretrainDataModule(pl.LightningDataModule):
    """Training batches from any map-style dataset of dicts through the method's collate.

    Args:
        dataset: map-style, items are dicts with at least ``"signal"``; never materialised.
        collate: the method's picklable collate (``SSLMethod.make_collate()``).
        batch_size: per-rank batch size.
        num_workers: loader worker processes (0: load in the main process).
        persistent_workers: keep workers across epochs (only with ``num_workers > 0``).
        pin_memory: ``"auto"`` pins when CUDA is available.
        prefetch_factor: batches prefetched per worker.
        shuffle, drop_last, seed: see ``ResumableBatchSampler``.

    The data position (epoch, batches consumed) is part of Lightning's checkpoint through
    ``state_dict``; it is read from the LightningModule's ``data_position()`` when it has one.
    """

    def __init__(self, dataset: Any, collate: Callable, batch_size: int, *, num_workers: int = 0,
                 persistent_workers: bool = True, pin_memory: bool | str = "auto",
                 prefetch_factor: int = 2, shuffle: bool = True, drop_last: bool = True,
                 seed: int = 0):
        super().__init__()
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be >= 1, got {prefetch_factor}")
        if pin_memory not in (True, False, "auto"):
            raise ValueError(f"pin_memory must be true, false or 'auto', got {pin_memory!r}")
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"{type(dataset).__name__} is not a map-style dataset")
        if num_workers > 0:
            check_dataset_picklable(dataset)
        self.dataset, self.collate = dataset, collate
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.persistent_workers = bool(persistent_workers) and num_workers > 0
        self.pin_memory = pin_memory
        self.prefetch_factor = int(prefetch_factor)
        self.shuffle, self.drop_last, self.seed = bool(shuffle), bool(drop_last), int(seed)
        self.sampler: ResumableBatchSampler | None = None
        self._resume: dict[str, int] | None = None

    def make_sampler(self, rank: int = 0, world_size: int = 1) -> ResumableBatchSampler:
        return ResumableBatchSampler(len(self.dataset), self.batch_size, shuffle=self.shuffle,
                                     drop_last=self.drop_last, seed=self.seed, rank=rank,
                                     world_size=world_size)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        self.sampler = self.make_sampler(rank, world)
        if self._resume is not None:
            self.sampler.resume(self._resume["epoch"], self._resume["batches_consumed"])
            self._resume = None
        pin = self.pin_memory
        if pin == "auto":
            on_gpu = trainer is not None and trainer.strategy.root_device.type == "cuda"
            pin = on_gpu or (trainer is None and torch.cuda.is_available())
        # A private generator: creating the iterator must not draw from the global torch RNG
        # (that would shift the training RNG stream at every epoch and on restart).
        generator = torch.Generator().manual_seed(self.seed * 1000 + rank)
        extra = {}
        if self.num_workers > 0:
            extra = {"persistent_workers": self.persistent_workers,
                     "prefetch_factor": self.prefetch_factor, "worker_init_fn": seed_worker}
        return DataLoader(SeededItems(self.dataset), batch_sampler=self.sampler,
                          collate_fn=SeededCollate(self.collate), num_workers=self.num_workers,
                          pin_memory=bool(pin), generator=generator, **extra)

    def state_dict(self) -> dict[str, Any]:
        """Data position for exact resume: ``{"epoch", "batches_consumed", "seed"}``."""
        trainer = self.trainer
        if trainer is None:
            return {}
        module = trainer.lightning_module
        if hasattr(module, "data_position"):
            epoch, consumed = module.data_position()
        else:  # fall back to Lightning's own counters
            epoch = trainer.current_epoch
            consumed = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": int(epoch), "batches_consumed": int(consumed), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"checkpoint was trained with data seed {state['seed']}, this run "
                             f"has {self.seed}: the data order would not resume")
        self._resume = {"epoch": int(state["epoch"]),
                        "batches_consumed": int(state["batches_consumed"])}
