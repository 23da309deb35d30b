"""Endless, resumable per-source batch streams for the training loop.

The official NOCS trainer zips a CAMERA loader (30 per batch) and a REAL loader (10 per batch) whose datasets
re-draw their images at every epoch (`reset()`, 120k CAMERA images without replacement, 40k REAL with
replacement). `SourceStream` is one such loader that never ends: when its epoch is exhausted it calls
`dataset.reset(epoch, seed)` for the next one. Its state is just (epoch, batches consumed in that epoch), so a
checkpoint records the exact data position and a resumed run continues with the very next batch.

Exactness with worker processes needs every sample's randomness (instance choice, point noise, colour jitter)
to depend on what the sample is, not on which worker loaded it or on what the worker loaded before.
`SeededItems` therefore seeds Python's, numpy's and torch's global generators from (seed, epoch, index) around
every `__getitem__` and restores them afterwards; readers that already use their own per-item generators are
unaffected. The official code lets DataLoader workers inherit torch-derived seeds instead, which is
reproducible only for an uninterrupted run with the same worker count.

DataLoaders get their own `torch.Generator`, so creating one never draws from the global torch RNG that the
model's augmentation uses.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from .distributed import DistInfo, ShardedSampler

__all__ = ["TrainDataset", "SeededItems", "SourceStream", "item_seed"]


class TrainDataset(Protocol):
    """What a training reader offers: a length, indexable dict samples, optionally `reset(epoch, seed)`."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample, well mixed from (seed, epoch, index) by numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0]) >> 1


class SeededItems(Dataset):
    """Wraps a dataset so sample `index` of `epoch` always draws the same random numbers.

    Global RNG states are saved before and restored after each item, so with `num_workers=0` the main
    process's random streams (used by the model) are left exactly as they were.
    """

    def __init__(self, dataset: TrainDataset, seed: int, epoch: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = item_seed(self.seed, self.epoch, index)
        py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(s)
        np.random.seed(s % (1 << 32))
        torch.manual_seed(s)
        try:
            return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)


class SourceStream:
    """Endless batches of one data source for this rank; `state_dict()` pins the exact position.

    Args:
        name: source name, used in logs and as the checkpoint key (e.g. 'camera', 'real', 'synthetic').
        dataset: the reader; `reset(epoch, seed)` is called before each epoch when it exists.
        batch_size: samples per batch on this process.
        workers: DataLoader worker processes (0 = load in the main process).
        seed: run seed; epochs use `seed` for `reset` and the sampler's permutation.
        dist: this process's rank / world size; each rank reads its own shard of every epoch.
        shuffle: permute each epoch; set False when `reset` already draws a random order (the official
            readers do), to keep the reader's order.
    """

    def __init__(self, name: str, dataset: TrainDataset, batch_size: int, *, workers: int = 0, seed: int = 0,
                 dist: DistInfo = DistInfo(), shuffle: bool = True, pin_memory: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"source {name!r}: batch_size must be >= 1, got {batch_size}")
        self.name, self.dataset, self.batch_size = name, dataset, batch_size
        self.workers, self.seed, self.dist = workers, seed, dist
        self.shuffle, self.pin_memory = shuffle, pin_memory
        self.epoch = 0  # epochs started so far - 1 (the current epoch)
        self.consumed = 0  # batches of the current epoch already returned
        self._iterator: Iterator[dict[str, Any]] | None = None

    # The position -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
        self._iterator = None  # the next `next_batch` re-opens the epoch at this position

    @property
    def at_epoch_end(self) -> bool:
        """The batch `next_batch` returned last was the last one of its epoch."""
        return self._iterator is not None and self.consumed == self.batches_per_epoch

    # Iteration ----------------------------------------------------------------------------------------------
    def _open_epoch(self) -> None:
        reset = getattr(self.dataset, "reset", None)
        if callable(reset):
            reset(self.epoch, self.seed)
        sampler = ShardedSampler(len(self.dataset), rank=self.dist.rank, world_size=self.dist.world_size,
                                 seed=self.seed, epoch=self.epoch, shuffle=self.shuffle)
        self.batches_per_epoch = sampler.per_rank // self.batch_size  # drop_last, as the official loaders
        if self.batches_per_epoch == 0:
            raise ValueError(f"source {self.name!r}: {len(self.dataset)} samples over {self.dist.world_size} "
                             f"process(es) cannot fill one batch of {self.batch_size}")
        sampler.start = self.consumed * self.batch_size
        if sampler.start > sampler.per_rank:
            raise ValueError(f"source {self.name!r}: resume position {self.consumed} batches lies beyond "
                             f"the epoch ({self.batches_per_epoch} batches); was the dataset changed?")
        loader = DataLoader(
            SeededItems(self.dataset, self.seed, self.epoch),
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            collate_fn=default_collate,
            pin_memory=self.pin_memory,
            drop_last=True,
            generator=torch.Generator(),  # keeps the global torch RNG untouched (see module docstring)
            persistent_workers=False,  # workers must be re-forked to see the new epoch's `reset`
        )
        self._iterator = iter(loader)

    def next_batch(self) -> dict[str, Any]:
        """The next batch (a dict of (B, ...) tensors); moves on to the next epoch when this one ends."""
        for _ in range(2):
            if self._iterator is None:
                self._open_epoch()
            try:
                batch = next(self._iterator)
            except StopIteration:
                self.epoch, self.consumed, self._iterator = self.epoch + 1, 0, None
                continue
            self.consumed += 1
            return batch
        raise RuntimeError(f"source {self.name!r} produced no batch in a fresh epoch")

    def close(self) -> None:
        self._iterator = None  # releases worker processes
