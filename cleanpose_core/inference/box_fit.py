"""A non-learned baseline: an oriented box fitted to an object's back-projected depth points.

Used in the results table to show what the learned model adds. For each segmented object:
1. robustly trim the points (drop the 5 % farthest from the median, which removes mask-edge flying pixels);
2. principal axes of the points (numpy SVD); each object axis is assigned the principal direction whose
   variance rank matches the rank of that axis in the category's mean size (the longest object axis gets
   the direction of largest spread), so a tall bottle's y axis follows its long side;
3. signs: object y points up in the image (towards camera -y), z towards the camera, x completes a right-handed frame;
4. size = the category's mean metric size; the centre is the middle of the points' extent in that frame,
   pushed away from the camera along the viewing ray by half of the size the camera cannot see (depth only
   samples the front surface).
"""

from __future__ import annotations

import numpy as np


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
