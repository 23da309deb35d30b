"""What the NOCS and HouseCat6D readers share: one training sample's tensors, test images, skip counting.

A training sample ([CP provider/nocs_dataset.py `TrainingDataset.__getitem__`], architecture-facts §1.2) is
the per-instance input of `instance.prepare_instance` (with colour augmentation) plus point noise and the
targets: `translation_label` (3,) metres, `rotation_label` (3, 3) object -> camera (canonicalised about y for
symmetric categories), `size_label` (3,) metric box size, and, when the object's model point cloud is known
(NOCS), `model` (M, 3) NOCS points, `qo` (N, 3) = Rᵀ(p − t)/‖size‖ of every observed point and `pc_mask` (N,)
= 1 where `qo` lies within `outlier_th` of the model (the reconstruction loss ignores the others).

A test image (§1.4) is every usable instance of one image stacked into a batch, plus the result-file fields
the evaluation needs (`TestImage`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_core.geometry.symmetry import canonicalize_y_symmetric

from .augment import ColorAugmentConfig, augment_rgb, point_noise
from .files import SampleError
from .instance import InstanceInput, prepare_instance

log = logging.getLogger(__name__)

__all__ = ["SkipCounter", "TestImage", "check_label", "observed_nocs", "inlier_mask", "build_training_sample",
           "stack_instances"]


class SkipCounter:
    """Counts skipped samples by reason and logs the first few of each reason.

    With DataLoader workers each worker process holds its own copy; the counts seen in the main process are
    those of samples loaded there (workers log their skips to stderr).
    """

    def __init__(self, name: str, log_first: int = 5) -> None:
        self.name, self.log_first = name, log_first
        self.counts: Counter[str] = Counter()

    def add(self, error: SampleError | str, detail: str = "") -> None:
        reason = error.reason if isinstance(error, SampleError) else str(error)
        self.counts[reason] += 1
        if self.counts[reason] <= self.log_first:
            log.warning("%s: skipped a sample (%s)%s", self.name, error, f" [{detail}]" if detail else "")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


def check_label(gts: Any, shapes: dict[str, tuple[int, ...]], where: str) -> dict[str, Any]:
    """A label dict whose per-instance entries have the given trailing shapes, with at least one instance.

    Args:
        gts: the unpickled label.
        shapes: key -> trailing shape of one instance's entry, e.g. {"rotations": (3, 3), "class_ids": ()}.
        where: the file, for messages.
    Returns:
        `gts` with every listed key converted to a numpy array of shape (n, *shape).
    Raises:
        SampleError: 'bad label' (not a dict, missing key, wrong shape, lengths differ) or 'no labelled
        instance'.
    """
    if not isinstance(gts, dict):
        raise SampleError("bad label", f"{where}: expected a dict, got {type(gts).__name__}")
    missing = [k for k in shapes if k not in gts]
    if missing:
        raise SampleError("bad label", f"{where}: missing keys {missing}")
    n = len(gts["instance_ids"])
    out = dict(gts)
    for key, tail in shapes.items():
        value = np.asarray(gts[key])
        if value.shape != (n, *tail):
            raise SampleError("bad label", f"{where}: {key} has shape {value.shape}, expected {(n, *tail)}")
        out[key] = value
    if n == 0:
        raise SampleError("no labelled instance", where)
    return out


def observed_nocs(pts: np.ndarray, R: np.ndarray, t: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points (m) -> (N, 3) NOCS coordinates Rᵀ(p − t) / (‖size‖ + 1e-8) (official
    `qo`)."""
    return ((pts - t[None, :]) / (np.linalg.norm(size) + 1e-8) @ R).astype(np.float32)


def inlier_mask(qo: np.ndarray, model: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) float32: 1 where the nearest of the (M, 3) model points is closer than `threshold` (NOCS
    units)."""
    dist, _ = cKDTree(model).query(qo, k=1)
    return (dist < threshold).astype(np.float32)


def build_training_sample(
    rgb: np.ndarray,
    depth_m: np.ndarray,
    inst_mask: np.ndarray,
    bbox: Any,
    K: Intrinsics,
    rng: np.random.Generator,
    *,
    cat_id: int,
    rotation: np.ndarray,
    translation: np.ndarray,
    size: np.ndarray,
    symmetric: bool,
    n_points: int,
    image_size: int,
    color: ColorAugmentConfig,
    add_point_noise: bool,
    min_valid_pixels: int = 0,
    model: np.ndarray | None = None,
    outlier_th: float = 0.1,
) -> dict[str, torch.Tensor]:
    """One training instance -> the official sample dict of tensors; raises SampleError when it is unusable.

    Args:
        rgb (H, W, 3) uint8 RGB; depth_m (H, W) metres (already completed); inst_mask (H, W) bool; bbox (y1,
        x1, y2, x2); K intrinsics; rng the sample's generator; cat_id 0-based category; rotation (3, 3),
        translation (3,) metres, size (3,) metric box size (the label's pose); symmetric whether to
        canonicalise the rotation about y; model (M, 3) NOCS model points or None.
    Returns:
        pts (N, 3), rgb (3, S, S), choose (N,) int64, category_label (1,) int64, translation_label (3,),
        rotation_label (3, 3), size_label (3,), and with a model also model (M, 3), qo (N, 3), pc_mask (N,).
    """
    rotation = np.asarray(rotation, dtype=np.float32).reshape(3, 3)
    translation = np.asarray(translation, dtype=np.float32).reshape(3)
    size = np.asarray(size, dtype=np.float32).reshape(3)
    if not (np.isfinite(rotation).all() and np.isfinite(translation).all() and np.isfinite(size).all()):
        raise SampleError("non-finite label", "rotation, translation or size is not finite")
    if not np.all(size > 0):
        raise SampleError("bad label", f"box size must be positive, got {size.tolist()}")

    def augment(crop: np.ndarray) -> np.ndarray:
        return augment_rgb(crop, rng, color)

    inst, reason = prepare_instance(rgb, depth_m, inst_mask, K, rng, bbox=bbox, n_points=n_points,
                                    image_size=image_size, min_valid_pixels=min_valid_pixels,
                                    rgb_augment=augment if color.enabled else None)
    if inst is None:
        raise SampleError(reason.split(":")[0], reason)
    pts = inst.pts + point_noise(n_points, rng) if add_point_noise else inst.pts
    if symmetric:
        rotation = canonicalize_y_symmetric(rotation)
    sample = {
        "pts": torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32)),
        "rgb": torch.from_numpy(inst.rgb),
        "choose": torch.from_numpy(inst.choose),
        "category_label": torch.tensor([cat_id], dtype=torch.int64),
        "translation_label": torch.from_numpy(translation),
        "rotation_label": torch.from_numpy(np.ascontiguousarray(rotation, dtype=np.float32)),
        "size_label": torch.from_numpy(size),
    }
    if model is not None:
        qo = observed_nocs(pts, rotation, translation, size)
        sample["model"] = torch.from_numpy(np.ascontiguousarray(model, dtype=np.float32))
        sample["qo"] = torch.from_numpy(qo)
        sample["pc_mask"] = torch.from_numpy(inlier_mask(qo, model, outlier_th))
    return sample


def stack_instances(instances: list[InstanceInput], cat_ids: list[int], n_points: int,
                    image_size: int) -> dict[str, torch.Tensor]:
    """Kept instances of one image -> the model's batch: pts (B, N, 3), rgb (B, 3, S, S), choose (B, N),
    category_label (B,) int64 (0-based). B may be 0 (empty tensors of the right trailing shapes)."""
    if not instances:
        return {"pts": torch.zeros(0, n_points, 3), "rgb": torch.zeros(0, 3, image_size, image_size),
                "choose": torch.zeros(0, n_points, dtype=torch.int64),
                "category_label": torch.zeros(0, dtype=torch.int64)}
    return {
        "pts": torch.from_numpy(np.stack([i.pts for i in instances])),
        "rgb": torch.from_numpy(np.stack([i.rgb for i in instances])),
        "choose": torch.from_numpy(np.stack([i.choose for i in instances])),
        "category_label": torch.tensor(cat_ids, dtype=torch.int64),
    }


@dataclass
class TestImage:
    """One test image: the network batch of its usable instances and the fields of its result file.

    Attributes:
        source: the file the image came from (segmentation-result pickle or label pickle).
        inputs: pts (B, N, 3), rgb (B, 3, S, S), choose (B, N), category_label (B,) for the B kept instances.
        result: result-file fields except the predicted poses: gt_class_ids (G,), gt_bboxes (G, 4), gt_RTs
            (G, 4, 4), gt_scales (G, 3), gt_handle_visibility (G,), pred_class_ids (B,) 1-based, pred_bboxes
            (B, 4), pred_scores (B,), image_path. Add pred_RTs (B, 4, 4) and pred_scales (B, 3) to write it.
        kept: (P,) bool over the candidate instances (predictions), True where it is in `inputs`.
        dropped: reason for every candidate that was dropped.
        error: why the whole image is unusable (unreadable files), else None; then B = 0.
    """

    source: str
    inputs: dict[str, torch.Tensor]
    result: dict[str, Any]
    kept: np.ndarray
    dropped: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def num_instances(self) -> int:
        return int(self.inputs["pts"].shape[0])
