"""NOCS-format instance-segmentation samples for training Mask R-CNN (synthetic, REAL275 or CAMERA25 data).

Reads the DPDN layout (design/architecture-facts.md §1.1): a list file `<root>/<split>_list.txt` of image
prefixes relative to `<root>` (e.g. `train/scene_0001/0000`), and per prefix `_color.png` (BGR on disk),
`_mask.png` (instance ids in channel 2, 255 = background) and `_label.pkl` (1-based `class_ids`,
`instance_ids`). REAL275 and CAMERA25 use the same three files, so `--data data/real` or `--data data/camera`
work as they are. Depth is not read: the segmenter is RGB-only. The files are read with the data package's
readers (`data.nocs.read_image_list`, `data.files.read_color_rgb` / `read_instance_mask`) and the labels with
the ground-truth segmenter's `read_label`, which, unlike the pose readers, accepts a frame without objects (a
negative sample for Mask R-CNN).

Targets follow torchvision's detection convention: `boxes` (n, 4) float32 (x1, y1, x2, y2), x2/y2 exclusive,
taken from the mask (not the label's `bboxes`, so that flipping and tiny-instance filtering stay consistent);
`labels` (n,) int64 in 1..6; `masks` (n, H, W) uint8.

Augmentation is light, as the brief asks: horizontal flip and colour jitter (brightness, contrast, saturation,
hue). Its randomness comes from a generator seeded by (seed, epoch, index), not from global state, so a sample
is the same whichever worker or resumed run draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.data.files import read_color_rgb, read_instance_mask
from cleanpose_core.data.nocs import read_image_list
from cleanpose_core.segmentation.ground_truth import read_label

__all__ = ["AugmentConfig", "NocsSegmentationDataset", "ConcatSegmentationDataset"]


@dataclass
class AugmentConfig:
    """Training-time augmentation; all zeros = none."""

    hflip_prob: float = 0.5     # probability of a horizontal flip
    brightness: float = 0.25    # factor drawn from [1 - b, 1 + b]
    contrast: float = 0.25      # factor drawn from [1 - c, 1 + c]
    saturation: float = 0.25    # factor drawn from [1 - s, 1 + s]
    hue: float = 0.03           # shift drawn from [-h, h] (fraction of the hue circle, <= 0.5)

    def validate(self) -> None:
        if not 0.0 <= self.hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1], got {self.hflip_prob}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")


class NocsSegmentationDataset(torch.utils.data.Dataset):
    """(image (3, H, W) float32 RGB in [0, 1], target dict) per listed image.

    Args:
        root: dataset folder holding `<split>_list.txt` and the image files.
        split: list name (train, val, test, ...).
        augment: augmentation settings, or None for none (evaluation).
        seed: seeds the augmentation together with the epoch (`set_epoch`) and the sample index.
        min_pixels: instances with fewer mask pixels are left out of the targets (torchvision needs boxes of
            positive size, and a handful of pixels teaches the mask head nothing).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        augment: AugmentConfig | None = None,
        seed: int = 0,
        min_pixels: int = 16,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {self.root}")
        self.split = split
        self.prefixes = read_image_list(self.root / f"{split}_list.txt")
        if not self.prefixes:
            raise ValueError(f"image list {self.root / f'{split}_list.txt'} is empty")
        self.augment = augment
        if augment is not None:
            augment.validate()
        self.seed = seed
        self.min_pixels = min_pixels
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of `epoch` (call before drawing that epoch's samples)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.prefixes)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Un-augmented ((H, W, 3) uint8 RGB, (n, H, W) bool masks, (n,) int64 labels 1..6) of one image."""
        base = self.root / self.prefixes[index]
        rgb = read_color_rgb(base.with_name(base.name + "_color.png"))
        inst_map = read_instance_mask(base.with_name(base.name + "_mask.png"))
        if inst_map.shape != rgb.shape[:2]:
            raise ValueError(
                f"{base}: mask size {inst_map.shape} differs from the colour image {rgb.shape[:2]}"
            )
        label = read_label(base.with_name(base.name + "_label.pkl"))
        class_ids = np.asarray(label["class_ids"], dtype=np.int64).reshape(-1)
        inst_ids = np.asarray(label["instance_ids"], dtype=np.int64).reshape(-1)
        if ((class_ids < 1) | (class_ids > len(NOCS_CATEGORIES))).any():
            raise ValueError(
                f"{base}_label.pkl: class ids must be 1..{len(NOCS_CATEGORIES)}, got {class_ids.tolist()}"
            )
        masks = inst_map[None] == inst_ids[:, None, None]
        keep = masks.reshape(len(masks), -1).sum(axis=1) >= self.min_pixels
        return rgb, masks[keep], class_ids[keep]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rgb, masks, labels = self.load(index)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)  # (3, H, W)
        masks_t = torch.from_numpy(masks)
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            image, masks_t = self._augment(image, masks_t, rng)
        return image, {"boxes": _mask_boxes(masks_t), "labels": torch.from_numpy(labels),
                       "masks": masks_t.to(torch.uint8), "image_id": torch.tensor(index)}

    def _augment(
        self, image: torch.Tensor, masks: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.augment
        # Draw every number in a fixed order, whether or not it is used, so streams stay aligned.
        flip, b, c, s, h = rng.uniform(size=5)
        if flip < a.hflip_prob:
            image, masks = image.flip(-1), masks.flip(-1)
        image = TF.adjust_brightness(image, 1.0 + a.brightness * (2 * b - 1))
        image = TF.adjust_contrast(image, 1.0 + a.contrast * (2 * c - 1))
        image = TF.adjust_saturation(image, 1.0 + a.saturation * (2 * s - 1))
        if a.hue > 0:
            image = TF.adjust_hue(image, a.hue * (2 * h - 1))
        return image.clamp_(0.0, 1.0), masks


def _mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(n, H, W) bool -> (n, 4) float32 (x1, y1, x2, y2), exclusive ends, so every box has positive size."""
    if masks.shape[0] == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (n, H), (n, W)
    h, w = masks.shape[1:]
    y1 = rows.float().argmax(dim=1)
    y2 = h - rows.flip(1).float().argmax(dim=1)
    x1 = cols.float().argmax(dim=1)
    x2 = w - cols.flip(1).float().argmax(dim=1)
    return torch.stack([x1, y1, x2, y2], dim=1).float()


class ConcatSegmentationDataset(torch.utils.data.ConcatDataset):
    """Several `NocsSegmentationDataset`s as one (e.g. one folder per sensor domain); `set_epoch` reaches
    each."""

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.datasets:
            dataset.set_epoch(epoch)
