"""Depth tabletop backend on an analytically ray-cast scene: a table, two boxes standing on it, a wall
behind."""

import numpy as np
import pytest

from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics
from cleanpose_core.segmentation import SegmentationFilter, build_segmenter
from cleanpose_core.segmentation.depth_tabletop import (
    DepthTabletopSegmenter,
    TabletopConfig,
    fit_plane_ransac,
)

K = Intrinsics(*REAL275_INTRINSICS)
H, W = 480, 640
# World frame: table top is z = 0 (|x| <= 0.5, -0.3 <= y <= 0.5), z up. Boxes as (centre xy, size xyz) in
# metres.
BOXES = [((-0.12, 0.10), (0.08, 0.06, 0.12)), ((0.10, 0.02), (0.06, 0.07, 0.08))]
WALL_Y = 0.6  # a wall behind the table (plane y = 0.6), rising above the table height


def _look_at(C, target):
    z = target - C
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    # columns: camera x (right), y (down), z (forward) in world
    return np.stack([x, np.cross(z, x), z], axis=1)


def render_scene(noise_m=0.0, seed=0):
    """Depth (H, W) float32 metres and the (2, H, W) ground-truth box masks, by exact ray casting."""
    C = np.array([0.0, -0.55, 0.55])
    R_wc = _look_at(C, np.array([0.0, 0.1, 0.0]))
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    d_cam = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u, float)], -1)  # z = 1: s is depth
    d = d_cam @ R_wc.T  # (H, W, 3) world directions
    best = np.full((H, W), np.inf)
    hit_id = np.full((H, W), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = -C[2] / d[..., 2]  # table plane z = 0
        p = C + s[..., None] * d
        on_table = (s > 0) & (np.abs(p[..., 0]) <= 0.5) & (p[..., 1] >= -0.3) & (p[..., 1] <= 0.5)
        best = np.where(on_table, s, best)
        s = (WALL_Y - C[1]) / d[..., 1]
        p = C + s[..., None] * d
        on_wall = (s > 0) & (np.abs(p[..., 0]) <= 0.8) & (p[..., 2] >= 0) & (p[..., 2] <= 0.8) & (s < best)
        best = np.where(on_wall, s, best)
        for k, ((bx, by), (sx, sy, sz)) in enumerate(BOXES):
            lo = np.array([bx - sx / 2, by - sy / 2, 0.0])
            hi = np.array([bx + sx / 2, by + sy / 2, sz])
            t1, t2 = (lo - C) / d, (hi - C) / d
            near = np.nanmax(np.minimum(t1, t2), axis=-1)
            far = np.nanmin(np.maximum(t1, t2), axis=-1)
            hit = (near <= far) & (near > 0) & (near < best)
            best = np.where(hit, near, best)
            hit_id = np.where(hit, k, hit_id)
    # A pixel belongs to box k only if box k is the closest surface along its ray.
    masks = np.zeros((len(BOXES), H, W), bool)
    for k in range(len(BOXES)):
        masks[k] = hit_id == k
    depth = np.where(np.isfinite(best), best, 0.0)
    if noise_m:
        depth = depth + np.random.default_rng(seed).normal(0, noise_m, depth.shape) * (depth > 0)
    return depth.astype(np.float32), masks


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.fixture(scope="module")
def scene():
    return render_scene(noise_m=0.002)


def test_segments_two_boxes_standing_on_a_plane_and_ignores_the_wall(scene):
    depth, gt = scene
    assert gt[0].sum() > 2000 and gt[1].sum() > 1000  # the fixture itself is sane
    seg = build_segmenter("depth_tabletop", min_points=50)
    out = seg.segment(np.zeros((H, W, 3), np.uint8), depth)
    assert out.reason is None and len(out) == 2, out.skipped
    ious = np.array([[_iou(m, g) for g in gt] for m in out.masks])
    assert sorted(ious.argmax(axis=1).tolist()) == [0, 1]
    assert ious.max(axis=1).min() > 0.9, ious
    assert (out.class_ids == -1).all() and out.category_names == ["unknown", "unknown"]


def test_ransac_recovers_the_table_plane(scene):
    depth, _ = scene
    from cleanpose_core.geometry.camera import depth_to_points

    pts = depth_to_points(depth, K)[::4, ::4][depth[::4, ::4] > 0].astype(np.float64)
    normal, d, inliers = fit_plane_ransac(pts, 0.008, 256, np.random.default_rng(0))
    # The camera is 0.55 m above the table: the plane's distance to the origin.
    assert abs(d - 0.55) < 0.005 and abs(np.linalg.norm(normal) - 1) < 1e-9
    assert inliers.mean() > 0.5


def test_wall_is_kept_when_support_is_not_required(scene):
    depth, _ = scene
    seg = DepthTabletopSegmenter(TabletopConfig(min_support=0.0), SegmentationFilter(min_points=0))
    assert len(seg.segment(np.zeros((H, W, 3), np.uint8), depth)) == 3  # the wall's lower part comes back


def test_classifier_hook_assigns_categories(scene):
    depth, _ = scene
    seg = DepthTabletopSegmenter(classifier=lambda clouds: [(5, 0.9)] * len(clouds))
    out = seg.segment(np.zeros((H, W, 3), np.uint8), depth)
    assert out.category_names == ["mug", "mug"] and np.allclose(out.scores, 0.9)


def test_without_depth_returns_empty_with_reason():
    out = build_segmenter("depth_tabletop").segment(np.zeros((H, W, 3), np.uint8), None)
    assert len(out) == 0 and "depth" in out.reason


def test_empty_or_invalid_depth_returns_empty_without_raising():
    seg = build_segmenter("depth_tabletop")
    rgb = np.zeros((H, W, 3), np.uint8)
    for depth in (np.zeros((H, W), np.float32), np.full((H, W), np.nan, np.float32)):
        out = seg.segment(rgb, depth)
        assert len(out) == 0 and "no plane" in out.reason


def test_estimator_hands_each_frames_intrinsics_to_the_backend(scene):
    """A cropped frame moves the principal point; the backend must back-project with the frame's K."""
    from cleanpose_core.inference.estimator import Estimator, EstimatorConfig
    from cleanpose_core.segmentation.rescoring import crop_intrinsics

    depth, gt = scene
    r0, c0 = 60, 100
    crop, K_crop = depth[r0:, c0:], crop_intrinsics(K, r0, c0, H - r0, W - c0)
    seg = DepthTabletopSegmenter(TabletopConfig(), SegmentationFilter(min_points=50),
                                 classifier=lambda clouds: [(5, 0.9)] * len(clouds))
    est = Estimator(
        EstimatorConfig(pose_backend="box_fit", segmenter="external", keep_masks=True), segmenter=seg
    )
    result = est.estimate(np.zeros((*crop.shape, 3), np.uint8), crop, K_crop, "m")
    assert seg.intrinsics == K_crop
    assert len(result.detections) == 2 and {d.category for d in result.detections} == {"mug"}
    ious = [max(_iou(d.mask, g[r0:, c0:]) for g in gt) for d in result.detections]
    assert min(ious) > 0.9, ious
