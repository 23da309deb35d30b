"""End to end through real DDS with the shipped models: the synthetic camera and the pose node as two separate
processes, this test as a third. On a static scene of unseen test instances, detections match the camera's
ground truth within tolerances, TF carries one frame per detection stamped with the image, and track ids stay
the same from frame to frame.
"""

import time
from collections import Counter, defaultdict

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

from cleanpose_core.inference.estimator import SHIPPED_POSE_MODEL
from cleanpose_core.segmentation.maskrcnn import DEFAULT_WEIGHTS as SHIPPED_SEGMENTER
from cleanpose_ros.demo import match_to_ground_truth
from cleanpose_ros.msg import ObjectPoseArray
from cleanpose_ros.parameters import PoseNodeParams
from node_process import start_process

pytestmark = [pytest.mark.ros,
              pytest.mark.skipif(not (SHIPPED_POSE_MODEL.is_file() and SHIPPED_SEGMENTER.is_file()),
                                 reason="needs the shipped pose and segmentation models in models/")]
FRAMES = 6
TRACK_MIN_HITS = PoseNodeParams().track_min_hits
SEED = 7  # the demo's scene


# A wide-angle lens (barrel distortion as strong as an Azure Kinect's or OAK-D's raw colour image): the node
# must undistort with CameraInfo.d and meet the same tolerances as with the pinhole camera.
LENSES = {"pinhole": None, "distorted": "[-0.3, 0.1, 0.0, 0.0, 0.0]"}


@pytest.mark.parametrize("lens", LENSES)
def test_static_scene_detections_tf_and_ids(ros_context, unique_topic, tmp_path, lens):
    cam_ns, pose_ns = f"{unique_topic}_camera", f"{unique_topic}_pose"
    lens_args = [f"distortion:={LENSES[lens]}"] if LENSES[lens] else []
    camera = start_process(
        "cleanpose_ros.synthetic_camera",
        cam_ns,
        "rate:=1.0",
        f"seed:={SEED}",
        "frames:=0",
        "motion:=static",
        *lens_args,
        log_path=tmp_path / "camera.log",
    )
    pose = start_process("cleanpose_ros.pose_node", pose_ns, "device:=cpu",
                         remaps={"rgb/image": f"{cam_ns}/color/image_raw",
                                 "depth/image": f"{cam_ns}/aligned_depth_to_color/image_raw",
                                 "rgb/camera_info": f"{cam_ns}/color/camera_info"},
                         log_path=tmp_path / "pose.log")
    node = rclpy.create_node("end_to_end_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    stamp = lambda header: (header.stamp.sec, header.stamp.nanosec)  # noqa: E731
    truth, poses, detections, tf = {}, [], {}, defaultdict(set)
    node.create_subscription(
        ObjectPoseArray, f"{cam_ns}/ground_truth", lambda m: truth.__setitem__(stamp(m.header), m), 20
    )
    node.create_subscription(ObjectPoseArray, f"{pose_ns}/pose_node/poses", poses.append, 20)
    node.create_subscription(Detection3DArray, f"{pose_ns}/pose_node/detections",
                             lambda m: detections.__setitem__(stamp(m.header), m), 20)

    def on_tf(msg):
        for t in msg.transforms:  # object frames only (the synthetic camera publishes its own pose too)
            if t.child_frame_id.startswith("cleanpose/"):
                tf[stamp(t.header)].add((t.header.frame_id, t.child_frame_id))

    node.create_subscription(TFMessage, "/tf", on_tf, 50)
    def discovered(msg):
        # The test's own subscriptions match the camera and the node at slightly different moments, so the
        # first answers may lack their ground truth, detections or TF here; count from the first one that has
        # all three.
        key = stamp(msg.header)
        return key in truth and key in detections and (bool(tf[key]) or not msg.objects)

    def usable():
        start = next((i for i, msg in enumerate(poses) if discovered(msg)), len(poses))
        return poses[start:]

    try:
        deadline = time.monotonic() + 240
        while len(usable()) < FRAMES and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            assert pose.poll() is None, (tmp_path / "pose.log").read_text()
            assert camera.poll() is None, (tmp_path / "camera.log").read_text()
        end = time.monotonic() + 1.0  # the last TF and detections
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        for proc in (camera, pose):
            proc.terminate()
        for proc in (camera, pose):
            proc.wait(timeout=20)
        node.destroy_node()
    frames = usable()[:FRAMES]
    assert len(frames) >= FRAMES, "\n".join(f"--- {name}\n" + (tmp_path / name).read_text()[-4000:]
                                            for name in ("camera.log", "pose.log"))

    matched, per_frame_ids = [], []
    for msg in frames:
        key = stamp(msg.header)
        assert key in truth and key in detections
        gt = truth[key]
        rows = match_to_ground_truth(msg, gt)
        matched += [r for r in rows if "rotation_error_deg" in r]
        # A duplicate detection beside a tracked object has no id (the tracker keeps no track for it): it may
        # take the object's ground-truth match in a frame, but it is not an identity to keep.
        per_frame_ids.append({r["gt_instance"]: r["id"] for r in rows if "gt_instance" in r and r["id"]})
        # Detection3DArray and ObjectPoseArray describe the same objects; TF has one frame per object, stamped
        # with the image and parented to its optical frame.
        assert [d.id for d in detections[key].detections] == [o.id for o in msg.objects]
        # Objects get their TF frame once confirmed (track_min_hits frames): every frame names a published
        # object.
        assert {parent for parent, _ in tf[key]} <= {msg.header.frame_id}
        assert {child.rsplit("_", 1)[1] for _, child in tf[key]} <= {o.id for o in msg.objects}
    n_truth = len(truth[stamp(frames[0].header)].objects)
    assert n_truth >= 3
    recall = len(matched) / (FRAMES * n_truth)
    t_err = np.median([r["translation_error_cm"] for r in matched])
    r_err = np.median([r["rotation_error_deg"] for r in matched])
    s_err = np.median([r["size_error_cm"] for r in matched])
    assert recall >= 0.6, matched
    # Tolerances set from the first shipped model (3.8 cm, 9.7 deg, 3.5 cm median on this scene); later models
    # must hold them.
    assert t_err < 5.0 and r_err < 20.0 and s_err < 5.0, (t_err, r_err, s_err)
    # The network's pose confidence reaches the message (a message left unset would carry 0).
    confidences = [r["pose_confidence"] for r in matched]
    assert all(0.0 <= c <= 1.0 for c in confidences) and np.median(confidences) > 0.0, confidences
    # Static scene: every true object keeps its track id from frame to frame (object_tracks) ...
    published = [{o.id for o in msg.objects} for msg in frames]
    tracks = object_tracks(per_frame_ids, published)
    assert tracks, per_frame_ids
    for gt_instance, track_id in tracks.items():
        # ... and once published in track_min_hits consecutive frames it is confirmed: its TF frame is there
        # in the last frame whenever it is detected there (a borderline object missed once restarts its
        # count).
        present = [track_id in ids for ids in published]
        if present[-1] and longest_run(present) >= TRACK_MIN_HITS:
            last = stamp(frames[-1].header)
            assert track_id in {child.rsplit("_", 1)[1] for _, child in tf[last]}, (
                gt_instance,
                track_id,
                tf[last],
            )
    # A static scene confirms most objects within the test: the last frame carries object TF frames.
    assert tf[stamp(frames[-1].header)], per_frame_ids


def object_tracks(per_frame_ids: list[dict], published: list[set]) -> dict:
    """{ground-truth object: its track id} on a static scene; AssertionError on an id switch.

    Every true object keeps its track id from frame to frame. Its track is the id it is matched to most often;
    in every frame where any detection matches the object, that id must be published (an id switch ends it).
    A flickering false positive or duplicate beside an object may come and go with an id of its own and in
    some frames take the object's ground-truth match; an object whose score hovers around the threshold may go
    undetected in a frame and comes back with its id (the tracker keeps unseen tracks). The nearest-truth
    matcher may also hand an object another object's detection: with the object missed in a frame, a
    neighbour whose estimate is a few cm off towards it is nearer to its truth than to the neighbour's own. A
    track whose detections match another object most of the time is that object's: such a pairing says
    nothing about the object's identity and is left out.
    """
    objects_per_id = defaultdict(Counter)
    for frame_ids in per_frame_ids:
        for gt_instance, track_id in frame_ids.items():
            objects_per_id[track_id][gt_instance] += 1
    own = [{gt: tid for gt, tid in frame_ids.items() if objects_per_id[tid].most_common(1)[0][0] == gt}
           for frame_ids in per_frame_ids]
    ids_per_object = defaultdict(Counter)
    for frame_ids in own:
        for gt_instance, track_id in frame_ids.items():
            ids_per_object[gt_instance][track_id] += 1
    tracks = {}
    for gt_instance, counts in ids_per_object.items():
        track_id, n = counts.most_common(1)[0]
        assert 2 * n > sum(counts.values()), (gt_instance, counts, per_frame_ids)  # one id for most sightings
        seen = [ids for ids, frame_ids in zip(published, own) if gt_instance in frame_ids]
        assert all(track_id in ids for ids in seen), (gt_instance, track_id, per_frame_ids)
        tracks[gt_instance] = track_id
    return tracks


def test_object_tracks_tells_a_switch_from_a_neighbours_detection():
    steady = [{"a": "1", "b": "2"}] * 6
    assert object_tracks(steady, [{"1", "2"}] * 6) == {"a": "1", "b": "2"}
    # b missed in frame 3, a's detection (track 1) nearest to b's truth there, a unmatched: no switch.
    neighbour = steady[:3] + [{"b": "1"}] + steady[4:]
    assert object_tracks(neighbour, [{"1", "2"}] * 3 + [{"1"}] + [{"1", "2"}] * 2) == {"a": "1", "b": "2"}
    # b detected in two frames only (its score near the threshold), with its one id: no switch.
    rare = [{"a": "1", "b": "2"} if i in (1, 4) else {"a": "1"} for i in range(6)]
    published = [{"1", "2"} if i in (1, 4) else {"1"} for i in range(6)]
    assert object_tracks(rare, published) == {"a": "1", "b": "2"}
    # b's track 2 ends and b goes on as track 3: a switch.
    switch = steady[:4] + [{"a": "1", "b": "3"}] * 2
    with pytest.raises(AssertionError):
        object_tracks(switch, [{"1", "2"}] * 4 + [{"1", "3"}] * 2)


def longest_run(flags):
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best
