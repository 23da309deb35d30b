"""Depth-only tabletop segmentation: the supporting plane by RANSAC, objects as connected regions above it.

An alternative to Mask R-CNN for uncluttered tabletop scenes that needs no training (30-90 ms per 640x480
frame on 2 CPU cores, before the regions are named); it does not replace Mask R-CNN, which also tells
categories and copes with clutter. Steps:

1. back-project the depth (`geometry.camera.depth_to_points`), keep z in (0, max_depth];
2. fit the dominant plane with RANSAC on a pixel-strided subsample (all hypotheses scored at once in numpy),
   then refine it by least squares (SVD) on its inliers, and orient its normal towards the camera;
3. object pixels: height above the plane in (min_height, max_height], minus depth discontinuities (a jump of
   more than `edge_jump` between neighbouring pixels), so objects that touch in the image but not in space
   come apart;
4. 4-connected components (OpenCV) of those pixels; the discontinuity pixels are then given back to the
   nearest component within `edge_jump_px` pixels (scipy's Euclidean distance transform);
5. a component counts as an object only if it stands on the table: at least `min_support` of its points,
   dropped onto the plane, fall inside the convex hull of the table (the largest connected patch of plane
   inliers in the image). This removes walls and clutter beyond the table, which are 'above' the plane too; a
   wall that the table touches lies on the hull's edge and is only partly removed.

Categories: this backend has no classifier of its own. Every instance gets class -1 (unknown) unless a
`classifier` callable is given, mapping a frame's list of instance point clouds ((N, 3) camera-frame points,
m) to a list of (0-based class id, score): all regions in one call, so a network classifies them in one batch.
The Estimator needs a category per object, so callers either supply one or use Mask R-CNN.
The largest plane is assumed to be the table; a scene dominated by a wall or the floor needs `max_depth`
lowered so the table is the largest surface left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from scipy.spatial import Delaunay, QhullError

from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics, depth_to_points
from cleanpose_core.segmentation.base import UNKNOWN_CLASS, InstanceMasks, SegmentationFilter, Segmenter

__all__ = ["TabletopConfig", "fit_plane_ransac", "DepthTabletopSegmenter"]

Classifier = Callable[[list[np.ndarray]], list[tuple[int, float]]]
_SCORE_POINTS = 2048  # points that rank the RANSAC hypotheses


@dataclass
class TabletopConfig:
    """Options of `build_segmenter('depth_tabletop', ...)` besides the shared filter ones."""

    # intrinsics (px) of the depth image; set per frame with set_intrinsics
    fx: float = REAL275_INTRINSICS[0]
    fy: float = REAL275_INTRINSICS[1]
    cx: float = REAL275_INTRINSICS[2]
    cy: float = REAL275_INTRINSICS[3]
    max_depth: float = 2.0          # m; farther points are ignored (background)
    plane_threshold: float = 0.008  # m; inlier distance for RANSAC (sensor noise at ~1 m is a few mm)
    ransac_iterations: int = 256    # hypotheses, scored in one vectorised pass
    subsample: int = 4              # pixel stride of the RANSAC subsample
    min_height: float = 0.012       # m above the plane before a point counts as object (noise margin)
    max_height: float = 0.5         # m; taller things are not tabletop objects
    edge_jump: float = 0.03         # m; neighbouring depths differing by more are a discontinuity
    edge_jump_px: int = 3           # px; discontinuity pixels within this distance rejoin their component
    min_cluster_pixels: int = 150   # px; smaller components are noise
    min_support: float = 0.5        # fraction of an object's points that must lie over the table
    seed: int = 0                   # RANSAC sampling seed (results are deterministic)

    def validate(self) -> None:
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if not 0 < self.min_height < self.max_height:
            raise ValueError(f"need 0 < min_height < max_height, got {self.min_height}, {self.max_height}")
        for name in ("max_depth", "plane_threshold", "edge_jump"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.ransac_iterations < 1 or self.subsample < 1 or self.edge_jump_px < 0:
            raise ValueError("ransac_iterations and subsample must be >= 1, edge_jump_px >= 0")
        if not 0.0 <= self.min_support <= 1.0:
            raise ValueError(f"min_support must be in [0, 1], got {self.min_support}")


def fit_plane_ransac(
    points: np.ndarray, threshold: float, iterations: int, rng: np.random.Generator
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Dominant plane of (N, 3) points: (unit normal n (3,), offset d, (N,) inlier mask) with n·p + d = 0.

    RANSAC over `iterations` random triples, scored together, then a least-squares refit on the inliers.
    The normal is oriented towards the origin (the camera): n·p + d > 0 on the camera side.
    Returns None when there are fewer than 3 points or every triple is degenerate.
    """
    n_pts = len(points)
    if n_pts < 3:
        return None
    triples = points[rng.integers(0, n_pts, size=(iterations, 3))]  # (I, 3, 3)
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])  # (I, 3)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-9
    if not ok.any():
        return None
    normals = normals[ok] / norms[ok, None]
    offsets = -np.einsum("ij,ij->i", normals, triples[ok, 0])
    # Hypotheses are ranked on a random subset: the inlier fraction of the dominant plane is estimated to
    # about 1 % from 2,048 points, at a tenth of the cost of scoring all of a 640x480 frame's subsample.
    scored = points if n_pts <= _SCORE_POINTS else points[rng.choice(n_pts, _SCORE_POINTS, replace=False)]
    counts = (np.abs(scored @ normals.T + offsets) < threshold).sum(axis=0)  # (I,)
    best = int(np.argmax(counts))
    inliers = np.abs(points @ normals[best] + offsets[best]) < threshold
    # Least-squares refit: the normal is the direction of least variance of the inliers.
    sel = points[inliers]
    centre = sel.mean(axis=0)
    normal = np.linalg.svd(sel - centre, full_matrices=False)[2][-1]
    d = -float(normal @ centre)
    if d < 0:  # camera (origin) on the positive side
        normal, d = -normal, -d
    inliers = np.abs(points @ normal + d) < threshold
    return normal, d, inliers


def _depth_jumps(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) largest absolute depth difference (m) to a valid 4-neighbour; 0 where there is none."""
    jump = np.zeros_like(depth)
    dy = np.abs(depth[1:] - depth[:-1]) * (valid[1:] & valid[:-1])
    dx = np.abs(depth[:, 1:] - depth[:, :-1]) * (valid[:, 1:] & valid[:, :-1])
    for part, grad in ((jump[1:], dy), (jump[:-1], dy), (jump[:, 1:], dx), (jump[:, :-1], dx)):
        np.maximum(part, grad, out=part)
    return jump


def _plane_basis(normal: np.ndarray) -> np.ndarray:
    """(2, 3) orthonormal in-plane axes."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    a = np.cross(normal, helper)
    a /= np.linalg.norm(a)
    return np.stack([a, np.cross(normal, a)])


class DepthTabletopSegmenter(Segmenter):
    """Plane + connected components on the depth image (see the module docstring); depth is required."""

    name = "depth_tabletop"

    def __init__(self, config: TabletopConfig | None = None, post_filter: SegmentationFilter | None = None,
                 classifier: Classifier | None = None):
        # Scores are all 1 (or the classifier's), so the default threshold only matters with a classifier.
        super().__init__(post_filter)
        self.config = config or TabletopConfig()
        self.config.validate()
        self.classifier = classifier
        self.intrinsics = Intrinsics(self.config.fx, self.config.fy, self.config.cx, self.config.cy)

    def set_intrinsics(self, K: Intrinsics) -> None:
        """Use these intrinsics from the next frame on (the Estimator calls this with each frame's K,
        checked)."""
        self.intrinsics = K

    def _predict(self, rgb: np.ndarray, depth_m: np.ndarray | None) -> InstanceMasks:
        cfg = self.config
        if depth_m is None:
            return InstanceMasks.empty("needs a depth image")
        h, w = depth_m.shape
        depth = np.where(np.isfinite(depth_m), depth_m, 0.0).astype(np.float32)
        valid = (depth > 0) & (depth <= cfg.max_depth)
        points = depth_to_points(depth, self.intrinsics)  # (H, W, 3)
        sub_valid = valid[:: cfg.subsample, :: cfg.subsample]
        sample = points[:: cfg.subsample, :: cfg.subsample][sub_valid].astype(np.float64)
        plane = fit_plane_ransac(
            sample, cfg.plane_threshold, cfg.ransac_iterations, np.random.default_rng(cfg.seed)
        )
        if plane is None:
            return InstanceMasks.empty("no plane found (too few valid depth pixels)", h, w)
        normal, d, inliers = plane
        height = points @ normal.astype(np.float32) + np.float32(d)  # (H, W), metres above the plane
        above = valid & (height > cfg.min_height) & (height <= cfg.max_height)

        core = above & (_depth_jumps(depth, valid) <= cfg.edge_jump)
        n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(core.astype(np.uint8), connectivity=4)
        big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= cfg.min_cluster_pixels)
        big = big[big != 0]
        if big.size == 0:
            return InstanceMasks.empty(None, h, w)
        keep_lut = np.zeros(n_labels, np.int32)
        keep_lut[big] = np.arange(1, big.size + 1)
        labels = keep_lut[labels]
        if cfg.edge_jump_px > 0:
            # Give discontinuity pixels back to the nearest kept component, if one is close enough.
            dist, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
            regrow = above & (labels == 0) & (dist <= cfg.edge_jump_px)
            labels[regrow] = labels[iy[regrow], ix[regrow]]

        # The table is the largest 8-connected patch of inliers in the (subsampled) image, so that other
        # surfaces at table height (a strip of wall base, a distant floor patch) do not widen its hull.
        inlier_img = np.zeros(sub_valid.shape, np.uint8)
        inlier_img[sub_valid] = inliers
        _, patch, patch_stats, _ = cv2.connectedComponentsWithStats(inlier_img, connectivity=8)
        table_patch = 1 + int(np.argmax(patch_stats[1:, cv2.CC_STAT_AREA])) if len(patch_stats) > 1 else 0
        hull = self._table_hull(sample[inliers & (patch[sub_valid] == table_patch)], normal)
        masks, clouds = [], []
        basis = _plane_basis(normal)
        for k in range(1, big.size + 1):
            mask = labels == k
            pts = points[mask]
            if hull is not None and cfg.min_support > 0:
                supported = hull.find_simplex(pts.astype(np.float64) @ basis.T) >= 0
                if supported.mean() < cfg.min_support:
                    continue
            masks.append(mask)
            clouds.append(pts)
        if not masks:
            return InstanceMasks.empty(None, h, w)
        named = [(UNKNOWN_CLASS, 1.0)] * len(masks) if self.classifier is None else self.classifier(clouds)
        class_ids = [int(cls) for cls, _ in named]
        scores = [float(score) for _, score in named]
        return InstanceMasks(np.stack(masks), np.asarray(class_ids, np.int64), np.asarray(scores, np.float32))

    @staticmethod
    def _table_hull(table_points: np.ndarray, normal: np.ndarray) -> Delaunay | None:
        """Triangulated convex hull of the table inliers in in-plane coordinates, or None if degenerate."""
        if len(table_points) < 3:
            return None
        flat = table_points @ _plane_basis(normal).T  # (N, 2)
        try:
            hull = cv2.convexHull(flat.astype(np.float32)).reshape(-1, 2).astype(np.float64)
            return Delaunay(hull)
        except (QhullError, cv2.error, ValueError):
            return None
