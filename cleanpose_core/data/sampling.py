"""Deterministic randomness for the readers: which images an epoch uses, and each sample's own generator.

The trainer needs exact resume, so the data a run sees must be a function of (seed, epoch, index) only, never of
worker processes, load order or how many samples came before:
- `epoch_draw(n_images, num_per_epoch, seed, epoch)` is the epoch's list of image indices (the official
  `reset()`: `num_per_epoch` draws, with replacement when the list is not longer than that, else without; −1 =
  a permutation of every image);
- `sample_rng(seed, epoch, index, attempt)` is the generator for sample `index` of that epoch (instance choice,
  point choice, point noise, colour augmentation); `attempt` > 0 gives the streams used after a bad sample was
  skipped, so a replacement is deterministic too.
Both hash their integers with numpy's `SeedSequence`, so nearby seeds give unrelated streams.

A training reader offers `reset(epoch, seed)` and `__getitem__(index)`; `cleanpose_core.train.loader.SourceStream`
calls `reset` at each epoch start and feeds indices in order (sharded over ranks), which makes the whole data
order a function of (seed, epoch). The official code draws from numpy's global state in `reset()` and in every
worker, which only reproduces an uninterrupted run with the same worker count.
"""

from __future__ import annotations

import numpy as np

__all__ = ["epoch_draw", "sample_rng"]

_DRAW_STREAM = 0x5EED  # separates the epoch-draw stream from per-sample streams with the same integers
_SAMPLE_STREAM = 0x5A3


def epoch_draw(n_images: int, num_per_epoch: int, seed: int, epoch: int) -> np.ndarray:
    """(num_per_epoch,) int64 image indices for one epoch (or (n_images,) when num_per_epoch is −1).

    Args:
        n_images: size of the image list (> 0).
        num_per_epoch: images per epoch (official: CAMERA 120 000 without replacement, REAL 40 000 with
            replacement); −1 = every image once, shuffled.
        seed, epoch: the run seed and the epoch number (>= 0).
    """
    if n_images < 1:
        raise ValueError("epoch_draw needs a non-empty image list")
    if num_per_epoch == 0 or num_per_epoch < -1:
        raise ValueError(f"num_per_epoch must be -1 or >= 1, got {num_per_epoch}")
    rng = np.random.default_rng([_DRAW_STREAM, int(seed), int(epoch)])
    if num_per_epoch == -1:
        return rng.permutation(n_images).astype(np.int64)
    return rng.choice(n_images, num_per_epoch, replace=n_images <= num_per_epoch).astype(np.int64)


def sample_rng(seed: int, epoch: int, index: int, attempt: int = 0) -> np.random.Generator:
    """The generator of sample `index` of `epoch` (and of its `attempt`-th replacement after a bad sample)."""
    return np.random.default_rng([_SAMPLE_STREAM, int(seed), int(epoch), int(index), int(attempt)])
