"""A non-learned baseline: an oriented box fitted to an object's back-projected depth points.

Used in the results table to show what the learned model adds. For each segmented object:
1. robustly trim the points (drop the 5 % farthest from the median, which removes mask-edge flying pixels);
2. principal axes of the points (numpy SVD); each object axis is assigned the principal direction whose
   variance rank matches the rank of that axis in the category's mean size (the longest object axis gets the
   direction of largest spread), so a tall bottle's y axis follows its long side;
3. signs: object y points up in the image (towards camera -y), z towards the camera, x completes a
right-handed frame;
4. size = the category's mean metric size; the centre is the middle of the points' extent in that frame,
   pushed away from the camera along the viewing ray by half of the size the camera cannot see (depth only
   samples the front surface).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from cleanpose_core import NOCS_CATEGORIES


def fit_oriented_box(points: np.ndarray, mean_size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) camera-frame points (m), (3,) category mean size (m) -> (R (3, 3), t (3,), size (3,)).

    Raises ValueError for fewer than 4 finite points.
    """
    points = np.asarray(points, float)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 4:
        raise ValueError(f"need at least 4 finite points to fit a box, got {len(points)}")
    median = np.median(points, axis=0)
    dist = np.linalg.norm(points - median, axis=1)
    points = points[dist <= np.quantile(dist, 0.95)]
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # rows: directions by decreasing spread
    mean_size = np.asarray(mean_size, float)
    axes = np.empty((3, 3))
    for rank, obj_axis in enumerate(np.argsort(-mean_size, kind="stable")):
        axes[:, obj_axis] = vt[rank]
    if axes[1, 1] > 0:  # object y up = camera -y
        axes[:, 1] *= -1
    if axes[2, 2] > 0:  # object z faces the camera
        axes[:, 2] *= -1
    axes[:, 0] = np.cross(axes[:, 1], axes[:, 2])  # right-handed
    local = (points - points.mean(axis=0)) @ axes
    centre = points.mean(axis=0) + axes @ ((local.max(axis=0) + local.min(axis=0)) / 2)
    view = centre / np.linalg.norm(centre)
    seen_depth = np.ptp(points @ view)
    full_depth = np.abs(axes.T @ view) @ mean_size  # box extent along the viewing ray
    centre = centre + view * max(full_depth - seen_depth, 0.0) / 2
    return axes, centre, mean_size.copy()


def category_mean_sizes(label_files: list[Path]) -> dict[str, list[float]]:
    """Mean metric extents per category (m) over NOCS/DPDN `_label.pkl` files (metric size = scales * sizes).

    This is the only thing the baseline learns from training data. Categories absent from the files are left
    out.
    """
    per_category: dict[str, list[np.ndarray]] = {c: [] for c in NOCS_CATEGORIES}
    for path in label_files:
        with open(path, "rb") as f:
            label = pickle.load(f)
        scales = np.asarray(label["scales"], float).reshape(-1)
        sizes = np.asarray(label["sizes"], float).reshape(-1, 3)
        for class_id, scale, size in zip(label["class_ids"], scales, sizes):
            per_category[NOCS_CATEGORIES[int(class_id) - 1]].append(scale * size)
    return {c: np.mean(v, axis=0).round(5).tolist() for c, v in per_category.items() if v}
