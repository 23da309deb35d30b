"""Tracker: stable ids on static and moving scenes, new ids for new objects, symmetric-frame stabilisation."""

import numpy as np
from scipy.spatial.transform import Rotation

from cleanpose_core.inference.tracking import PoseTracker, align_symmetric_rotation
from cleanpose_core.inference.types import Detection


def det(category, t, R=None, symmetric=False):
    return Detection(category=category, category_id=0, score=1.0,
                     rotation=np.eye(3) if R is None else R, translation=np.asarray(t, float),
                     size=np.ones(3) * 0.1, mask_bbox=(0, 0, 1, 1), num_points=100, symmetric=symmetric)


def test_ids_stay_stable_on_a_static_scene_regardless_of_order():
    tracker = PoseTracker()
    first = tracker.update([det("mug", [0, 0, 0.5]), det("mug", [0.2, 0, 0.5]), det("can", [0, 0.1, 0.6])])
    ids = {tuple(d.translation): d.track_id for d in first}
    assert len(set(ids.values())) == 3
    for _ in range(5):
        again = tracker.update([det("can", [0, 0.1, 0.6]), det("mug", [0.201, 0, 0.5]), det("mug", [0, 0, 0.5])])
        assert again[2].track_id == ids[(0.0, 0.0, 0.5)]
        assert again[1].track_id == ids[(0.2, 0.0, 0.5)]
        assert again[0].track_id == ids[(0.0, 0.1, 0.6)]


def test_categories_never_share_a_track_and_far_jumps_open_new_tracks():
    tracker = PoseTracker(max_distance=0.05)
    a = tracker.update([det("mug", [0, 0, 0.5])])[0].track_id
    assert tracker.update([det("bowl", [0, 0, 0.5])])[0].track_id != a
    assert tracker.update([det("mug", [0.3, 0, 0.5])])[0].track_id not in (a,)


def test_tracks_expire_after_max_missed_frames_and_ids_are_not_reused():
    tracker = PoseTracker(max_missed=2)
    first = tracker.update([det("mug", [0, 0, 0.5])])[0].track_id
    for _ in range(3):
        tracker.update([])
    assert tracker.live_ids == []
    assert tracker.update([det("mug", [0, 0, 0.5])])[0].track_id != first


def test_symmetric_rotation_is_pulled_to_the_previous_frame():
    tracker = PoseTracker()
    base = Rotation.from_euler("xz", [0.3, -0.2]).as_matrix()
    first = tracker.update([det("can", [0, 0, 0.5], base, symmetric=True)])[0].rotation.copy()
    for spin in (1.0, -2.5, 3.0):  # the network's arbitrary spin about the object's y axis
        spun = base @ Rotation.from_euler("y", spin).as_matrix()
        out = tracker.update([det("can", [0, 0, 0.5], spun, symmetric=True)])[0].rotation
        np.testing.assert_allclose(out, first, atol=1e-9)
        np.testing.assert_allclose(out[:, 1], base[:, 1], atol=1e-9)  # symmetry axis untouched


def test_new_symmetric_track_faces_the_camera_and_asymmetric_rotation_is_untouched():
    R = Rotation.from_euler("y", 2.0).as_matrix()
    aligned = align_symmetric_rotation(R, None)
    assert aligned[2, 2] < -0.999  # object z axis points back at the camera
    tracker = PoseTracker()
    asym = Rotation.from_euler("y", 2.0).as_matrix()
    np.testing.assert_array_equal(tracker.update([det("mug", [0, 0, 0.5], asym.copy())])[0].rotation, asym)
