"""Detections -> Detection3DArray / ObjectPoseArray / TF / markers: fields as DESIGN.md section 4 fixes
them."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from cleanpose_core.inference.types import Detection
from cleanpose_ros.conversions import detection_array_msg, object_pose_array_msg, transform_msgs
from cleanpose_ros.markers import MarkerBuilder


def make_det(track_id="3", category="mug"):
    R = Rotation.from_euler("xyz", [0.1, -0.7, 0.3]).as_matrix()
    return Detection(
        category=category,
        category_id=5,
        score=0.9,
        rotation=R,
        translation=np.array([0.1, -0.2, 0.8]),
        size=np.array([0.12, 0.1, 0.09]),
        mask_bbox=(10, 20, 30, 40),
        num_points=321,
        keypoints=np.zeros((4, 3)),
        track_id=track_id,
        pose_confidence=0.625,
    )


def header():
    h = Header(frame_id="camera_color_optical_frame")
    h.stamp.sec, h.stamp.nanosec = 42, 7
    return h


def test_detection3d_carries_full_pose_metric_size_class_and_id():
    det = make_det()
    msg = detection_array_msg([det], header())
    d = msg.detections[0]
    assert msg.header.frame_id == d.header.frame_id == "camera_color_optical_frame"
    assert d.id == "3" and d.results[0].hypothesis.class_id == "mug"
    assert d.results[0].hypothesis.score == pytest.approx(0.9)
    q = d.bbox.center.orientation
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), det.rotation, atol=1e-12)
    p = d.bbox.center.position
    assert (p.x, p.y, p.z) == (0.1, -0.2, 0.8)
    assert (d.bbox.size.x, d.bbox.size.y, d.bbox.size.z) == (0.12, 0.1, 0.09)


def test_object_pose_array_and_tf_names():
    det = make_det()
    own = object_pose_array_msg(
        [det], header(), {"segmentation": 5.0, "preprocess": 1.0, "pose": 9.0, "total": 20.0}, "cpu"
    )
    assert own.objects[0].num_points == 321 and list(own.objects[0].bbox_2d) == [10, 20, 30, 40]
    assert len(own.objects[0].keypoints) == 4 and own.pose_ms == pytest.approx(10.0)
    assert own.objects[0].score == pytest.approx(0.9) and own.objects[0].pose_confidence == pytest.approx(
        0.625
    )
    det.track_label = "mug_3"
    confirmed, tentative = make_det("4", "can"), make_det("5", "bowl")
    confirmed.track_label = "can_4"  # the track's name; tentative tracks have none and get no TF frame yet
    tfs = transform_msgs([det, confirmed, tentative], header(), "cleanpose/")
    assert [t.child_frame_id for t in tfs] == ["cleanpose/mug_3", "cleanpose/can_4"]
    assert all((t.header.stamp.sec, t.header.stamp.nanosec) == (42, 7) for t in tfs)
    assert tfs[0].transform.translation.z == 0.8


def test_markers_have_box_axes_label_and_stale_ones_are_deleted():
    builder = MarkerBuilder()
    first = builder.build([make_det("3"), make_det("4", "can")], header())
    boxes = [m for m in first.markers if m.ns == "boxes"]
    assert len(first.markers) == 6 and len(boxes) == 2
    assert len(boxes[0].points) == 24  # 12 edges
    # Box corners span exactly the metric size along each object axis.
    pts = np.array([[p.x, p.y, p.z] for p in boxes[0].points])
    np.testing.assert_allclose(pts.max(0) - pts.min(0), [0.12, 0.1, 0.09])
    second = builder.build([make_det("3")], header())
    deletes = [(m.ns, m.id) for m in second.markers if m.action == Marker.DELETE]
    assert sorted(deletes) == [("axes", 4), ("boxes", 4), ("labels", 4)]
    assert not [m for m in builder.build([make_det("3")], header()).markers if m.action == Marker.DELETE]
