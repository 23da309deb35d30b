"""Caller-supplied masks: for users who already run a detector (YOLO-seg, SAM, their own Mask R-CNN).

The caller hands over masks, categories and optionally scores; this backend checks them thoroughly (shapes,
dtypes, category names or ids, scores in range) and applies the same post-filter as every other backend, so
the Estimator treats them exactly like Mask R-CNN output. Problems become an empty result with a reason, never
an exception (DESIGN.md §4).

Accepted forms:
- masks: (M, H, W) bool or integer 0/1 (any non-zero counts as inside), or an (H, W) integer instance-id map
  through `masks_from_instance_map`;
- categories: 0-based indices into `NOCS_CATEGORIES`, or their names ('mug'), or -1 / 'unknown';
- scores: (M,) in [0, 1]; omitted means 1 (a detector that does not report confidences).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.segmentation.base import UNKNOWN_CLASS, InstanceMasks, SegmentationFilter, Segmenter

__all__ = ["external_instances", "masks_from_instance_map", "ExternalSegmenter"]


def _class_ids(categories: object, n: int) -> tuple[np.ndarray | None, str | None]:
    """(M,) int64 0-based ids from ids or names, or (None, reason)."""
    if isinstance(categories, (str, bytes)):
        return None, "class_ids must be a sequence, not a single string"
    try:
        items = (
            list(np.asarray(categories).reshape(-1))
            if isinstance(categories, np.ndarray)
            else list(categories)
        )
    except TypeError:
        return None, f"class_ids must be a sequence of ids or names, got {type(categories).__name__}"
    if len(items) != n:
        return None, f"{len(items)} class ids given for {n} masks"
    out = np.empty(n, np.int64)
    for i, c in enumerate(items):
        if isinstance(c, (str, np.str_)):
            name = str(c).lower()
            if name == "unknown":
                out[i] = UNKNOWN_CLASS
            elif name in NOCS_CATEGORIES:
                out[i] = NOCS_CATEGORIES.index(name)
            else:
                return None, f"unknown category name {c!r}; valid: {list(NOCS_CATEGORIES)} or 'unknown'"
        elif isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)):
            if not UNKNOWN_CLASS <= int(c) < len(NOCS_CATEGORIES):
                return None, (
                    f"class id {int(c)} is out of range: 0-based ids are 0..{len(NOCS_CATEGORIES) - 1} "
                    f"({', '.join(NOCS_CATEGORIES)}), -1 = unknown"
                )
            out[i] = int(c)
        else:
            return None, f"class id {c!r} at index {i} is neither an integer nor a category name"
    return out, None


def external_instances(masks: object, class_ids: object, scores: object = None, boxes: object = None,
                       image_size: tuple[int, int] | None = None) -> InstanceMasks:
    """Check caller-supplied instances and pack them as InstanceMasks (unfiltered); never raises.

    Args:
        masks: (M, H, W) bool or integer array (non-zero = inside the object).
        class_ids: M category ids (0-based, -1 unknown) or names.
        scores: (M,) floats in [0, 1], or None for all ones.
        boxes: (M, 4) (x1, y1, x2, y2) pixels, or None to use the masks' tight boxes.
        image_size: (H, W) the masks must have, or None to accept any size.
    Returns:
        InstanceMasks, or an empty one whose `reason` names what is wrong.
    """
    if not isinstance(masks, np.ndarray):
        return InstanceMasks.empty(f"masks must be a numpy array, got {type(masks).__name__}")
    if masks.ndim != 3:
        return InstanceMasks.empty(f"masks must have shape (M, H, W), got {masks.shape} (use "
                                   f"masks_from_instance_map for an (H, W) id image)")
    if masks.dtype != bool and not np.issubdtype(masks.dtype, np.integer):
        return InstanceMasks.empty(f"masks must be bool or integer, got {masks.dtype}")
    n, h, w = masks.shape
    if image_size is not None and (h, w) != tuple(image_size):
        return InstanceMasks.empty(f"mask size {(h, w)} does not match the image size {tuple(image_size)}")
    ids, reason = _class_ids(class_ids, n)
    if reason is not None:
        return InstanceMasks.empty(reason, h, w)
    if scores is None:
        score_arr = np.ones(n, np.float32)
    else:
        try:
            score_arr = np.asarray(scores, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            return InstanceMasks.empty(f"scores must be numbers, got {type(scores).__name__}", h, w)
        if score_arr.shape != (n,):
            return InstanceMasks.empty(f"{score_arr.size} scores given for {n} masks", h, w)
        if not np.all(np.isfinite(score_arr)) or (score_arr < 0).any() or (score_arr > 1).any():
            return InstanceMasks.empty(f"scores must be finite and in [0, 1], got {score_arr.tolist()}", h, w)
    box_arr = None
    if boxes is not None:
        try:
            box_arr = np.asarray(boxes, dtype=np.float32).reshape(n, 4)
        except (TypeError, ValueError):
            return InstanceMasks.empty(f"boxes must be an (M, 4) array for {n} masks", h, w)
        if not np.all(np.isfinite(box_arr)):
            return InstanceMasks.empty("boxes must be finite", h, w)
    return InstanceMasks(masks.astype(bool, copy=masks.dtype != bool), ids, score_arr, box_arr)


def masks_from_instance_map(
    instance_map: np.ndarray, background: Sequence[int] = (0, 255)
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) integer instance-id image -> ((M, H, W) bool masks, (M,) the ids, ascending).

    `background` lists the ids that are not objects (0 and NOCS's 255 by default).
    """
    instance_map = np.asarray(instance_map)
    if instance_map.ndim != 2 or not np.issubdtype(instance_map.dtype, np.integer):
        raise ValueError(f"instance map must be an (H, W) integer image, got {_shape_dtype(instance_map)}")
    ids = np.setdiff1d(np.unique(instance_map), np.asarray(background))
    return instance_map[None] == ids[:, None, None], ids


def _shape_dtype(a: np.ndarray) -> str:
    return f"shape {a.shape}, dtype {a.dtype}"


class ExternalSegmenter(Segmenter):
    """Serves the masks the caller set for the current frame, checked and filtered like any backend.

    Usage: `seg.set_instances(masks, class_ids, scores)` then `seg.segment(rgb, depth_m)`, or both at once
    with `seg.segment_with(rgb, depth_m, masks, class_ids, scores)`. The instances stay until replaced, so a
    caller that segments at a lower rate than it estimates poses can reuse them.
    """

    name = "external"

    def __init__(self, post_filter: SegmentationFilter | None = None):
        super().__init__(post_filter)
        self._instances: InstanceMasks | None = None

    def set_instances(
        self, masks: object, class_ids: object, scores: object = None, boxes: object = None
    ) -> str | None:
        """Store the next frame's instances; returns the reason they are unusable, or None when they are
        fine."""
        self._instances = external_instances(masks, class_ids, scores, boxes)
        return self._instances.reason

    def segment_with(self, rgb: np.ndarray, depth_m: np.ndarray | None, masks: object, class_ids: object,
                     scores: object = None, boxes: object = None) -> InstanceMasks:
        """`set_instances` + `segment` in one call."""
        self.set_instances(masks, class_ids, scores, boxes)
        return self.segment(rgb, depth_m)

    def _predict(self, rgb: np.ndarray, depth_m: np.ndarray | None) -> InstanceMasks:
        if self._instances is None:
            return InstanceMasks.empty("no masks were supplied (call set_instances first)")
        if self._instances.reason is None and self._instances.masks.shape[1:] != rgb.shape[:2]:
            return InstanceMasks.empty(
                f"mask size {self._instances.masks.shape[1:]} does not match the image size {rgb.shape[:2]}"
            )
        return self._instances
