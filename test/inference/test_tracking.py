"""Tracker: stable ids on static and moving scenes, new ids for new objects, symmetric-frame stabilisation."""

import numpy as np
from scipy.spatial.transform import Rotation

from cleanpose_core.inference.tracking import PoseTracker, align_symmetric_rotation
from cleanpose_core.inference.types import Detection


def det(category, t, R=None, symmetric=False, score=1.0):
    return Detection(category=category, category_id=0, score=score,
                     rotation=np.eye(3) if R is None else R, translation=np.asarray(t, float),
                     size=np.ones(3) * 0.04, mask_bbox=(0, 0, 1, 1), num_points=100, symmetric=symmetric)


def test_ids_stay_stable_on_a_static_scene_regardless_of_order():
    tracker = PoseTracker()
    first = tracker.update([det("mug", [0, 0, 0.5]), det("mug", [0.2, 0, 0.5]), det("can", [0, 0.1, 0.6])])
    ids = {tuple(d.translation): d.track_id for d in first}
    assert len(set(ids.values())) == 3
    for _ in range(5):
        again = tracker.update(
            [det("can", [0, 0.1, 0.6]), det("mug", [0.201, 0, 0.5]), det("mug", [0, 0, 0.5])]
        )
        assert again[2].track_id == ids[(0.0, 0.0, 0.5)]
        assert again[1].track_id == ids[(0.2, 0.0, 0.5)]
        assert again[0].track_id == ids[(0.0, 0.1, 0.6)]


def test_a_relabelled_object_keeps_its_track_but_another_category_nearby_does_not():
    tracker = PoseTracker(max_distance=0.06, min_hits=2)
    mug = [tracker.update([det("mug", [0, 0, 0.5])])[0] for _ in range(2)][-1]
    assert mug.track_label == f"mug_{mug.track_id}"
    renamed = tracker.update([det("bowl", [0.01, 0, 0.5], score=0.3)])[0]
    # name fixed at confirmation
    assert renamed.track_id == mug.track_id and renamed.track_label == mug.track_label
    beside = tracker.update([det("mug", [0.0, 0, 0.5]), det("can", [0.045, 0, 0.5])])
    assert beside[0].track_id == mug.track_id and beside[1].track_id != mug.track_id  # 4.5 cm > half the gate
    assert tracker.update([det("mug", [0.3, 0, 0.5])])[0].track_id not in (mug.track_id, beside[1].track_id)


def test_tracks_are_named_only_once_confirmed_by_the_majority_category():
    tracker = PoseTracker(min_hits=3)
    first = tracker.update([det("can", [0, 0, 0.5], score=0.4)])[0]
    second = tracker.update([det("bottle", [0, 0, 0.5], score=0.9)])[0]
    assert first.track_label is None and second.track_label is None
    third = tracker.update([det("bottle", [0, 0, 0.5], score=0.9)])[0]
    assert third.track_label == f"bottle_{first.track_id}"


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


def orbit_pose(angle, radius=0.6):
    """(4, 4) pose in the world of a camera on a circle around the origin, looking at it (optical z
    inward)."""
    eye = np.array([radius * np.cos(angle), radius * np.sin(angle), 0.4])
    z = -eye / np.linalg.norm(eye)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = np.stack([x, np.cross(z, x), z], axis=1), eye
    return T


def in_camera(T, world_points):
    return [T[:3, :3].T @ (np.asarray(p) - T[:3, 3]) for p in world_points]


def test_a_moving_camera_keeps_ids_when_tracking_in_a_fixed_frame_and_not_without():
    world = [[0.3, 0.0, 0.0], [0.15, 0.25, 0.0], [-0.2, -0.22, 0.0]]
    fixed, naive = PoseTracker(max_distance=0.05), PoseTracker(max_distance=0.05)
    fixed_ids, naive_ids = set(), set()
    for k in range(24):  # 15 degrees per frame: the objects sweep 6-8 cm per frame through the camera frame
        T = orbit_pose(np.deg2rad(15 * k))
        cams = in_camera(T, world)
        fixed_ids |= {d.track_id for d in fixed.update([det("mug", c) for c in cams], camera_pose=T)}
        naive_ids |= {d.track_id for d in naive.update([det("mug", c) for c in cams])}
    assert len(fixed_ids) == 3
    assert len(naive_ids) > 6  # the same scene without the camera's pose loses the objects


def test_constant_velocity_model_follows_accelerating_motion_in_the_camera_frame():
    predicting, plain = PoseTracker(max_distance=0.03), PoseTracker(max_distance=0.03)
    with_model, without = set(), set()
    x = 0.0
    for k in range(15):  # speed grows by 1 cm per frame: soon beyond the gate, but never its change
        x += 0.01 * k
        with_model |= {d.track_id for d in predicting.update([det("can", [x, 0, 0.8])], stamp=0.1 * k)}
        without |= {d.track_id for d in plain.update([det("can", [x, 0, 0.8])])}
    assert len(with_model) == 1
    assert len(without) > 8


def test_symmetric_alignment_happens_in_the_fixed_frame():
    tracker = PoseTracker()
    obj = Rotation.from_euler("x", 0.2).as_matrix()  # world rotation of a can
    first_world = None
    for k in range(6):
        T = orbit_pose(np.deg2rad(5 * k))
        R_cam = T[:3, :3].T @ obj @ Rotation.from_euler("y", 1.3 * k).as_matrix()  # arbitrary network spin
        out = tracker.update(
            [det("can", in_camera(T, [[0, 0, 0]])[0], R_cam, symmetric=True)], camera_pose=T
        )[0]
        world_R = T[:3, :3] @ out.rotation
        if first_world is None:
            first_world = world_R
        np.testing.assert_allclose(world_R, first_world, atol=1e-9)  # the TF frame does not spin in the world


def test_rebase_moves_tracks_between_frames_without_new_ids():
    tracker = PoseTracker(max_distance=0.02)
    T = orbit_pose(0.7)
    cam = in_camera(T, [[0.1, 0.0, 0.0]])[0]
    first = tracker.update([det("bowl", cam)], camera_pose=T)[0].track_id
    tracker.rebase(np.linalg.inv(T))  # the transform is gone: continue in the camera frame
    assert tracker.update([det("bowl", cam)])[0].track_id == first
    tracker.rebase(T)  # and back
    assert tracker.update([det("bowl", cam)], camera_pose=T)[0].track_id == first


def test_large_objects_get_a_wider_gate_and_fixed_frame_centres_average_their_views():
    tracker = PoseTracker(max_distance=0.05)
    laptop = det("laptop", [0, 0, 0.8])
    laptop.size = np.array([0.35, 0.25, 0.3])  # diagonal 0.52 m: the gate grows to 0.26 m
    first = tracker.update([laptop], camera_pose=np.eye(4))[0].track_id
    for x in (0.12, -0.12, 0.12):  # its centre swings with what is visible of it
        moved = det("laptop", [x, 0, 0.8])
        moved.size = laptop.size
        assert tracker.update([moved], camera_pose=np.eye(4))[0].track_id == first
    assert abs(tracker._tracks[0].translation[0]) < 0.08  # averaged, not the last view's 0.12


def test_a_second_detection_on_a_tracked_object_is_a_duplicate_without_a_track():
    tracker = PoseTracker(max_distance=0.08, min_hits=1)
    camera = tracker.update([det("camera", [0, 0, 0.6])])[0]
    out = tracker.update([det("camera", [0, 0, 0.6]), det("can", [0.03, 0, 0.58]), det("can", [0.3, 0, 0.6])])
    assert out[0].track_id == camera.track_id
    assert out[1].track_id is None and out[1].track_label is None  # the lens seen as a can
    assert out[2].track_id not in (None, camera.track_id)  # a real can elsewhere


def test_an_object_cut_by_the_image_border_rejoins_its_track_within_a_wider_gate():
    tracker = PoseTracker(max_distance=0.05)
    first = tracker.update([det("bottle", [0, 0, 0.7])], camera_pose=np.eye(4), image_size=(640, 480))[0]
    cut = det("bottle", [0.08, 0, 0.7])  # re-entering the view: its visible part pulls the centre 8 cm off
    cut.mask_bbox = (0, 100, 40, 300)
    assert tracker.update([cut], camera_pose=np.eye(4), image_size=(640, 480))[0].track_id == first.track_id
    assert np.linalg.norm(tracker._tracks[0].translation - [0, 0, 0.7]) < 0.01  # and moves the centre little
    whole = det("bottle", [0.08, 0, 0.7])  # the same offset seen whole is another object
    whole.mask_bbox = (200, 100, 240, 300)
    assert tracker.update([whole], camera_pose=np.eye(4), image_size=(640, 480))[0].track_id != first.track_id
