"""Debug drawing: the projected box lands where the object is, and off-screen or behind-camera objects are
safe."""

import numpy as np

from cleanpose_core.geometry.boxes import BOX_EDGES
from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_core.inference.draw import draw_detections
from cleanpose_core.inference.types import Detection

K = Intrinsics(500.0, 500.0, 320.0, 240.0)


def det(t):
    return Detection(
        category="can",
        category_id=3,
        score=0.9,
        rotation=np.eye(3),
        translation=np.asarray(t, float),
        size=np.array([0.1, 0.2, 0.1]),
        mask_bbox=(0, 0, 1, 1),
        num_points=10,
        track_id="1",
    )


def test_box_edges_are_the_twelve_edges_of_a_cube():
    assert len(BOX_EDGES) == 12 and all(sum(1 for e in BOX_EDGES if v in e) == 3 for v in range(8))


def test_box_is_drawn_around_the_projected_centre_and_nothing_else_changes():
    rgb = np.zeros((480, 640, 3), np.uint8)
    out = draw_detections(rgb, [det([0.0, 0.0, 1.0])], K)
    changed = np.argwhere(out.any(axis=2))
    assert rgb.sum() == 0  # input untouched
    # A 0.2 m tall box at 1 m spans rows 187..293 (its front face at 0.95 m); the label sits just above it.
    assert 150 <= changed[:, 0].min() <= 190 and 288 <= changed[:, 0].max() <= 300
    assert 280 <= changed[:, 1].min() and changed[:, 1].max() <= 380 + 40  # the label may extend right


def test_objects_behind_the_camera_are_skipped():
    rgb = np.zeros((480, 640, 3), np.uint8)
    assert not draw_detections(rgb, [det([0.0, 0.0, -1.0])], K).any()
