"""Deterministic randomness for the readers: which images an epoch uses, and each sample's own generator.

The trainer needs exact resume, so the data a run sees must be a function of (seed, epoch, index) only, never
of worker processes, load order or how many samples came before:
- `epoch_draw(n_images, num_per_epoch, seed, epoch)` is the epoch's list of image indices (the official
  `reset()`: `num_per_epoch` draws, with replacement when the list is not longer than that, else without; −1 =
  a permutation of every image);
- `sample_rng(seed, epoch, index, attempt)` is the generator for sample `index` of that epoch (instance
choice,
  point choice, point noise, colour augmentation); `attempt` > 0 gives the streams used after a bad sample was
  skipped, so a replacement is deterministic too.
Both hash their integers with numpy's `SeedSequence`, so nearby seeds give unrelated streams.

A training reader offers `reset(epoch, seed)` and `__getitem__(index)`;
`cleanpose_core.train.loader.SourceStream` calls `reset` at each epoch start and feeds indices in order
(sharded over ranks), which makes the whole data order a function of (seed, epoch). The official code draws
from numpy's global state in `reset()` and in every worker, which only reproduces an uninterrupted run with
the same worker count.
"""

from __future__ import annotations

import numpy as np
import torch

from .files import SampleError

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


class EpochDrawDataset(torch.utils.data.Dataset):
    """Training reader skeleton shared by the NOCS and HouseCat6D readers.

    Subclasses set `cfg` (with `num_img_per_epoch` and `max_attempts`), `skipped` (a SkipCounter) and
    implement `image_name(image)` and `load(image, rng)` (raising SampleError for an unusable image). The
    epoch's image order is a function of (seed, epoch) only; a bad image is counted and replaced by a random
    other one drawn from the sample's own generator, as the official readers move on to a random image.
    """

    def num_images(self) -> int:
        raise NotImplementedError

    def image_name(self, image: int) -> str:
        raise NotImplementedError

    def load(self, image: int, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.img_index)

    def reset(self, epoch: int, seed: int) -> None:
        """Draw the images of `epoch` (official `reset()`); deterministic in (seed, epoch)."""
        self.epoch, self.seed = int(epoch), int(seed)
        self.img_index = epoch_draw(self.num_images(), self.cfg.num_img_per_epoch, self.seed, self.epoch)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image = int(self.img_index[index])
        for attempt in range(self.cfg.max_attempts):
            rng = sample_rng(self.seed, self.epoch, index, attempt)
            if attempt > 0:
                image = int(rng.integers(self.num_images()))
            try:
                return self.load(image, rng)
            except SampleError as exc:
                self.skipped.add(exc, self.image_name(image))
        raise RuntimeError(f"{self.cfg.max_attempts} bad samples in a row around index {index}; "
                           f"skipped so far: {self.skipped.as_dict()}")
