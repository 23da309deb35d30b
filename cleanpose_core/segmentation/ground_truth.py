"""Ground-truth instance masks from NOCS-format data, for evaluating the pose model without segmentation
error.

Two sources, both in the DPDN/NOCS layout (design/architecture-facts.md §1.1, §1.4):
- an image prefix: `<prefix>_mask.png` (instance ids read from channel 2 of a colour PNG, or the grey value
  of a single-channel one; 255 = background) plus `<prefix>_label.pkl` (DPDN's dict: 1-based `class_ids`,
  `instance_ids`, `bboxes` [y1, x1, y2, x2], ...). Only the instances the label lists are returned: DPDN
  labels an instance only when it has enough valid depth, and the pose targets exist only for those;
- a NOCS segmentation-results pickle: `pred_masks` (H, W, n) bool, `pred_class_ids` (1-based),
  `pred_scores`, `pred_bboxes` [y1, x1, y2, x2]. The synthetic engine writes these with ground-truth masks;
  the official REAL275/CAMERA25 ones hold Mask R-CNN predictions, and this reader serves both.

The readers convert to this package's conventions at the boundary: 0-based class ids, (M, H, W) masks, (x1,
y1, x2, y2) boxes. Unlike the official loaders, which take `image_path[5:]` to strip a hard-coded 'data/'
prefix, `resolve_prefix` strips any leading folder that is not under the data root.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.segmentation.base import InstanceMasks, SegmentationFilter, Segmenter

__all__ = ["NOCS_BACKGROUND_ID", "read_instance_map", "read_label", "instances_from_label",
           "instances_from_segmentation_result", "resolve_prefix", "GroundTruthSegmenter"]

NOCS_BACKGROUND_ID = 255  # value of background pixels in NOCS `_mask.png` files


def read_instance_map(path: str | Path) -> np.ndarray:
    """(H, W) integer instance-id image from a NOCS `_mask.png` (channel 2 if it has colour channels).

    Raises:
        FileNotFoundError / ValueError with the path when the file is missing or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask image not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot decode mask image {path}")
    if img.ndim == 3:
        # OpenCV's BGR(A) order: channel 2 is the PNG's red channel, where NOCS stores the ids.
        img = img[:, :, 2]
    return img


def read_label(path: str | Path) -> dict[str, Any]:
    """The DPDN `_label.pkl` dict, checked for the keys segmentation needs (class_ids, instance_ids)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    try:
        with open(path, "rb") as f:
            label = pickle.load(f)  # dataset files are trusted like the official loaders trust them
    except Exception as exc:
        raise ValueError(f"cannot read label pickle {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(label, dict) or not {"class_ids", "instance_ids"} <= set(label):
        found = sorted(label) if isinstance(label, dict) else type(label).__name__
        raise ValueError(f"{path} is not a DPDN label dict with class_ids and instance_ids (found {found})")
    if len(label["class_ids"]) != len(label["instance_ids"]):
        raise ValueError(
            f"{path}: {len(label['class_ids'])} class_ids but {len(label['instance_ids'])} instance_ids"
        )
    return label


def instances_from_label(instance_map: np.ndarray, label: dict[str, Any]) -> InstanceMasks:
    """Masks and categories of the labelled instances of one image (scores 1, boxes from the masks).

    Args:
        instance_map: (H, W) integer ids (255 background).
        label: DPDN label dict with 1-based `class_ids` and `instance_ids`.
    """
    class_ids = np.asarray(label["class_ids"], dtype=np.int64).reshape(-1) - 1
    inst_ids = np.asarray(label["instance_ids"], dtype=np.int64).reshape(-1)
    if ((class_ids < 0) | (class_ids >= len(NOCS_CATEGORIES))).any():
        raise ValueError(f"label class ids must be 1..{len(NOCS_CATEGORIES)}, got {(class_ids + 1).tolist()}")
    masks = instance_map[None] == inst_ids[:, None, None]
    return InstanceMasks(masks, class_ids, np.ones(len(inst_ids), np.float32))


def instances_from_segmentation_result(result: dict[str, Any] | str | Path) -> InstanceMasks:
    """The predicted instances stored in a NOCS segmentation-results pickle (or its loaded dict)."""
    if not isinstance(result, dict):
        path = Path(result)
        if not path.is_file():
            raise FileNotFoundError(f"segmentation-results pickle not found: {path}")
        with open(path, "rb") as f:
            result = pickle.load(f)
        if not isinstance(result, dict):
            raise ValueError(f"{path} does not hold a segmentation-results dict")
    missing = [k for k in ("pred_masks", "pred_class_ids") if k not in result]
    if missing:
        raise ValueError(f"segmentation result lacks {missing} (found {sorted(result)})")
    masks = np.asarray(result["pred_masks"])
    if masks.ndim != 3:
        raise ValueError(f"pred_masks must be (H, W, n), got shape {masks.shape}")
    masks = np.ascontiguousarray(np.moveaxis(masks, -1, 0)).astype(bool)  # (n, H, W)
    n = masks.shape[0]
    class_ids = np.asarray(result["pred_class_ids"], dtype=np.int64).reshape(-1) - 1
    scores = np.asarray(result.get("pred_scores", np.ones(n)), dtype=np.float32).reshape(-1)
    boxes = None
    if result.get("pred_bboxes") is not None and len(result["pred_bboxes"]) == n:
        yxyx = np.asarray(result["pred_bboxes"], dtype=np.float32).reshape(n, 4)
        boxes = yxyx[:, [1, 0, 3, 2]]
    if class_ids.shape != (n,) or scores.shape != (n,):
        raise ValueError(
            f"segmentation result has {n} masks but {class_ids.size} class ids and {scores.size} scores"
        )
    return InstanceMasks(masks, class_ids, scores, boxes)


def resolve_prefix(data_root: str | Path | None, prefix: str | Path) -> Path:
    """The file prefix on disk for an image prefix such as 'test/scene_0001/0000' or 'data/test/...'.

    Absolute prefixes and ones that exist relative to the working directory are used as they are; otherwise
    the prefix is looked up under `data_root`, dropping leading folders until its `_mask.png` exists there.
    """
    prefix = Path(prefix)
    if prefix.is_absolute() or data_root is None:
        return prefix
    root = Path(data_root)
    parts = prefix.parts
    for k in range(len(parts)):
        candidate = root.joinpath(*parts[k:])
        if candidate.with_name(candidate.name + "_mask.png").is_file():
            return candidate
    return root / prefix


class GroundTruthSegmenter(Segmenter):
    """Serves the ground-truth (or stored) instances of the frame chosen with `use_frame` / `use_result`.

    Args:
        data_root: the dataset folder image prefixes are relative to (None: prefixes are paths).
        post_filter: the shared post-filter; by default it only requires a non-empty mask (scores are all 1
        and
            the official evaluation keeps every ground-truth instance).
    """

    name = "ground_truth"

    def __init__(self, data_root: str | Path | None = None, post_filter: SegmentationFilter | None = None):
        super().__init__(
            post_filter
            if post_filter is not None
            else SegmentationFilter(score_threshold=0.0, max_objects=100, min_mask_area=1, min_points=0)
        )
        self.data_root = None if data_root is None else Path(data_root)
        self._instances: InstanceMasks | None = None

    def use_frame(self, prefix: str | Path) -> str | None:
        """Load `<prefix>_mask.png` + `<prefix>_label.pkl`; returns why that failed, or None."""
        base = resolve_prefix(self.data_root, prefix)
        try:
            inst_map = read_instance_map(base.with_name(base.name + "_mask.png"))
            self._instances = instances_from_label(
                inst_map, read_label(base.with_name(base.name + "_label.pkl"))
            )
        except (OSError, ValueError) as exc:
            self._instances = InstanceMasks.empty(str(exc))
        return self._instances.reason

    def use_result(self, result: dict[str, Any] | str | Path) -> str | None:
        """Load a segmentation-results pickle (path or dict); returns why that failed, or None."""
        try:
            self._instances = instances_from_segmentation_result(result)
        except (OSError, ValueError, pickle.UnpicklingError) as exc:
            self._instances = InstanceMasks.empty(str(exc))
        return self._instances.reason

    def _predict(self, rgb: np.ndarray, depth_m: np.ndarray | None) -> InstanceMasks:
        if self._instances is None:
            return InstanceMasks.empty("no frame selected (call use_frame or use_result first)")
        if self._instances.reason is None and self._instances.masks.shape[1:] != rgb.shape[:2]:
            return InstanceMasks.empty(
                f"ground-truth mask size {self._instances.masks.shape[1:]} does not match "
                f"the image size {rgb.shape[:2]}"
            )
        return self._instances
