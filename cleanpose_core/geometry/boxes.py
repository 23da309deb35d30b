"""3D boxes of NOCS objects: the 8 corners of a box given its extents, transformed by a result-file RT.

Conventions: column vectors, RT (4, 4) = [[s·R, t], [0, 0, 0, 1]] maps the NOCS canonical frame (box centred
at the origin, y up, extents `scales` normalised to unit diagonal) to the camera frame in metres, so a box's
metric size is s·scales. Points are rows: (..., N, 3).

The corner order is the one of the official NOCS `get_3d_bbox` (x varies slowest within each y half, z
fastest): (+x,+y,+z), (+x,+y,-z), (-x,+y,+z), (-x,+y,-z), (+x,-y,+z), (+x,-y,-z), (-x,-y,+z), (-x,-y,-z).
It matters: the official "NOCS-style" IoU compares boxes corner by corner (see `iou.py`), so another order
gives other numbers.
"""

from __future__ import annotations

import numpy as np

# (8, 3) signs of the corners of a box centred at the origin, in the official NOCS order.
CORNER_SIGNS = np.array(
    [
        [+1, +1, +1],
        [+1, +1, -1],
        [-1, +1, +1],
        [-1, +1, -1],
        [+1, -1, +1],
        [+1, -1, -1],
        [-1, -1, +1],
        [-1, -1, -1],
    ],
    dtype=np.float64,
)


# The 12 edges of a box as pairs of corner indices: corners whose signs differ in exactly one axis.
BOX_EDGES = tuple((a, b) for a in range(8) for b in range(a + 1, 8)
                  if int((CORNER_SIGNS[a] != CORNER_SIGNS[b]).sum()) == 1)


def box_corners(scales: np.ndarray) -> np.ndarray:
    """(..., 3) box extents (x, y, z) -> (..., 8, 3) corners ±extent/2 about the origin, in NOCS order."""
    scales = np.asarray(scales, dtype=np.float64)
    return CORNER_SIGNS * (scales[..., None, :] / 2.0)


def transform_points(points: np.ndarray, rt: np.ndarray) -> np.ndarray:
    """(..., N, 3) points, (..., 4, 4) similarity/rigid RT -> (..., N, 3) RT·[p; 1] (last row assumed [0, 0,
    0, 1])."""
    points = np.asarray(points, dtype=np.float64)
    rt = np.asarray(rt, dtype=np.float64)
    return points @ np.swapaxes(rt[..., :3, :3], -1, -2) + rt[..., None, :3, 3]


def transformed_box_corners(rt: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(..., 4, 4) RT, (..., 3) extents -> (..., 8, 3) camera-frame corners of the box (metres)."""
    return transform_points(box_corners(scales), rt)


def axis_aligned_extents(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., N, 3) points -> (min (..., 3), max (..., 3)): the axis-aligned box that encloses them."""
    points = np.asarray(points, dtype=np.float64)
    return points.min(axis=-2), points.max(axis=-2)


def metric_size(rt: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(..., 4, 4) RT, (..., 3) normalised extents -> (..., 3) metric box size s·scales, s =
    cbrt(det(s·R))."""
    rt = np.asarray(rt, dtype=np.float64)
    return np.cbrt(np.linalg.det(rt[..., :3, :3]))[..., None] * np.asarray(scales, dtype=np.float64)
