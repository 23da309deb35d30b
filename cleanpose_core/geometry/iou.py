"""3D IoU of NOCS boxes, in the two variants the category-level pose literature reports.

Boxes are given as in result files: RT (4, 4) = [[s·R, t], [0, 0, 0, 1]] and extents `scales` (3,), so a box's
camera-frame corners are RT·(±scales/2) (see `boxes.py`). Column vectors; the NOCS canonical frame has y up.

* method "nocs" (the official NOCS `compute_3d_iou_new`, used for every "IoU25/50/75" in NOCS, SPD, DPDN,
  AG-Pose, CleanPose): it takes `amax/amin(axis=0)` of the (3, 8) corner array, i.e. for each of the 8 corners
  the max/min over its x, y, z coordinates, and treats those 8-vectors as box bounds: "volumes" are products
  over 8 per-corner ranges. It is not a geometric IoU, and it depends on the corner order, but it is what the
  published numbers mean, so it is reproduced exactly.
* method "catre" (CATRE's fix, the numbers the CleanPose paper marks with '*'): the same with `axis=1`, i.e.
the
  IoU of the two camera-frame axis-aligned boxes enclosing the transformed corners.

For y-symmetric objects both rotate the FIRST box (the prediction) about its own y axis by 2πk/20, k = 0..19,
and keep the largest IoU (floored at 0, as the official loop starts from `max_iou = 0`).

`iou_3d` is vectorised over pairs (numpy, chunked). `iou_3d_single` repeats the official per-pair arithmetic
step by step (dtypes, matrix products, homogeneous division) and is meant only for settling values that lie
within rounding distance of a threshold, where the last bit decides a match.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from cleanpose_core.geometry.boxes import CORNER_SIGNS
from cleanpose_core.geometry.rotations import rotation_about_y

IoUMethod = Literal["nocs", "catre"]

# Rotations tried about the y axis of a symmetric prediction (the official n = 20).
SYMMETRY_STEPS = 20
_CHUNK = 2048  # pairs per vectorised block: 2048 x 20 x 8 x 3 doubles ~ 8 MB per array


def _bounds(corners: np.ndarray, method: IoUMethod) -> tuple[np.ndarray, np.ndarray]:
    """(..., 8, 3) corners -> (min, max): (..., 8) per-corner over xyz for "nocs", (..., 3) per-axis for
    "catre"."""
    axis = -1 if method == "nocs" else -2
    return corners.min(axis=axis), corners.max(axis=axis)


def _iou_from_bounds(min_1, max_1, min_2, max_2) -> np.ndarray:
    """Bounds (..., K) of two "boxes" -> (...,) intersection over union, intersection 0 when any range is <
    0."""
    overlap = np.minimum(max_1, max_2) - np.maximum(min_1, min_2)
    inter = np.where(overlap.min(-1) < 0, 0.0, np.prod(overlap, axis=-1))
    union = np.prod(max_1 - min_1, axis=-1) + np.prod(max_2 - min_2, axis=-1) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def iou_3d(
    rt_1: np.ndarray,
    rt_2: np.ndarray,
    scales_1: np.ndarray,
    scales_2: np.ndarray,
    symmetric: np.ndarray | bool = False,
    method: IoUMethod = "nocs",
) -> np.ndarray:
    """IoU of pairs of NOCS boxes.

    Args:
        rt_1, rt_2: (B, 4, 4) result-file RTs of the first (prediction) and second (ground-truth) boxes.
        scales_1, scales_2: (B, 3) box extents in the canonical frame.
        symmetric: (B,) or scalar; True sweeps box 1 about its y axis (20 steps) and keeps the maximum.
        method: "nocs" (official, per-corner extrema) or "catre" (true axis-aligned IoU).
    Returns:
        (B,) float64 IoU in [0, 1].
    """
    if method not in ("nocs", "catre"):
        raise ValueError(f"iou_3d: method must be 'nocs' or 'catre', got {method!r}")
    rt_1 = np.asarray(rt_1, dtype=np.float64).reshape(-1, 4, 4)
    rt_2 = np.asarray(rt_2, dtype=np.float64).reshape(-1, 4, 4)
    scales_1 = np.asarray(scales_1, dtype=np.float64).reshape(-1, 3)
    scales_2 = np.asarray(scales_2, dtype=np.float64).reshape(-1, 3)
    n = rt_1.shape[0]
    if not (rt_2.shape[0] == scales_1.shape[0] == scales_2.shape[0] == n):
        raise ValueError(
            f"iou_3d: pair counts differ: rt_1 {n}, rt_2 {rt_2.shape[0]}, "
            f"scales_1 {scales_1.shape[0]}, scales_2 {scales_2.shape[0]}"
        )
    symmetric = np.broadcast_to(np.asarray(symmetric, dtype=bool), (n,))
    out = np.zeros(n)
    sweep = rotation_about_y(2 * math.pi * np.arange(SYMMETRY_STEPS) / float(SYMMETRY_STEPS))  # (20, 3, 3)
    for flag, steps in ((False, np.eye(3)[None]), (True, sweep)):
        idx = np.flatnonzero(symmetric == flag)
        for start in range(0, idx.size, _CHUNK):
            sel = idx[start:start + _CHUNK]
            local_1 = CORNER_SIGNS * (scales_1[sel, None, :] / 2.0)  # (b, 8, 3)
            local_2 = CORNER_SIGNS * (scales_2[sel, None, :] / 2.0)
            # Box 1 turned about its own y axis: corners RT_1·Ry(θ)·p, i.e. (s·R·Ry(θ)) p + t.
            lin_1 = np.einsum("bij,kjl->bkil", rt_1[sel, :3, :3], steps)  # (b, K, 3, 3)
            corners_1 = np.einsum("bkij,bnj->bkni", lin_1, local_1) + rt_1[sel, None, None, :3, 3]
            corners_2 = np.einsum("bij,bnj->bni", rt_2[sel, :3, :3], local_2) + rt_2[sel, None, :3, 3]
            min_1, max_1 = _bounds(corners_1, method)  # (b, K, 8|3)
            min_2, max_2 = _bounds(corners_2[:, None], method)  # (b, 1, 8|3)
            iou = _iou_from_bounds(min_1, max_1, min_2, max_2)  # (b, K)
            # The official loop keeps max(max_iou, iou) from 0, so NaN (degenerate boxes) never wins.
            out[sel] = np.maximum(np.where(np.isnan(iou), 0.0, iou).max(axis=1), 0.0)
    return out


def iou_3d_single(
    rt_1: np.ndarray,
    rt_2: np.ndarray,
    scales_1: np.ndarray,
    scales_2: np.ndarray,
    symmetric: bool,
    method: IoUMethod = "nocs",
) -> float:
    """One pair, computed with the official code's exact sequence of numpy operations and dtypes.

    (4, 4), (4, 4), (3,), (3,) in the dtypes found in the result file; returns the IoU as a Python float. Slow
    (a Python loop over 20 rotations); use `iou_3d` except to settle a value that sits on a threshold.
    """

    def corners_homogeneous(scales):
        # Built element by element like the official get_3d_bbox, so float32 extents stay float32.
        c = np.array(
            [[sx * scales[0] / 2, sy * scales[1] / 2, sz * scales[2] / 2] for sx, sy, sz in _SIGN_TUPLES]
        )
        c = c.transpose()
        return np.vstack([c, np.ones((1, c.shape[1]), dtype=np.float32)])

    def transformed(rt, scales):
        p = rt @ corners_homogeneous(scales)
        return p[:3, :] / p[3, :]

    axis = 0 if method == "nocs" else 1

    def asymmetric(rt_a):
        box_1, box_2 = transformed(rt_a, scales_1), transformed(rt_2, scales_2)
        max_1, min_1 = np.amax(box_1, axis=axis), np.amin(box_1, axis=axis)
        max_2, min_2 = np.amax(box_2, axis=axis), np.amin(box_2, axis=axis)
        overlap_min, overlap_max = np.maximum(min_1, min_2), np.minimum(max_1, max_2)
        inter = 0 if np.amin(overlap_max - overlap_min) < 0 else np.prod(overlap_max - overlap_min)
        with np.errstate(divide="ignore", invalid="ignore"):
            return inter / (np.prod(max_1 - min_1) + np.prod(max_2 - min_2) - inter)

    if not symmetric:
        return float(asymmetric(rt_1))
    best = 0
    for k in range(SYMMETRY_STEPS):
        theta = 2 * math.pi * k / float(SYMMETRY_STEPS)
        rot = np.array(
            [
                [np.cos(theta), 0, np.sin(theta), 0],
                [0, 1, 0, 0],
                [-np.sin(theta), 0, np.cos(theta), 0],
                [0, 0, 0, 1],
            ]
        )
        best = max(best, asymmetric(rt_1 @ rot))
    return float(best)


# The corner signs as plain ints: multiplying by ±1 then halving keeps the official rounding (exact in
# binary).
_SIGN_TUPLES = [tuple(int(v) for v in row) for row in CORNER_SIGNS]
