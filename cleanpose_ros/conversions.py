"""Estimator detections -> ROS messages (Detection3DArray, the package's ObjectPoseArray, TF transforms).

Quaternions: the core works with rotation matrices and (w, x, y, z); ROS wants (x, y, z, w). scipy's
`as_quat()` is scalar-last, i.e. already in ROS order, which is why the conversion happens only here.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from geometry_msgs.msg import Point, Pose, TransformStamped, Vector3
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

from cleanpose_core.inference.types import Detection
from cleanpose_ros.msg import ObjectPose, ObjectPoseArray


def pose_msg(rotation: np.ndarray, translation: np.ndarray) -> Pose:
    """(3, 3) rotation + (3,) translation (m) -> geometry_msgs/Pose (quaternion x, y, z, w)."""
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in translation)
    qx, qy, qz, qw = Rotation.from_matrix(rotation).as_quat()
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (
        float(qx), float(qy), float(qz), float(qw))
    return pose


def detection_msg(det: Detection, header: Header) -> Detection3D:
    """One detection as vision_msgs/Detection3D: bbox.center = full pose, bbox.size = metric size."""
    msg = Detection3D()
    msg.header = header
    msg.id = det.track_id or ""
    msg.bbox.center = pose_msg(det.rotation, det.translation)
    msg.bbox.size = Vector3(x=float(det.size[0]), y=float(det.size[1]), z=float(det.size[2]))
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = det.category
    hypothesis.hypothesis.score = float(det.score)
    hypothesis.pose.pose = msg.bbox.center
    msg.results = [hypothesis]
    return msg


def detection_array_msg(detections: Iterable[Detection], header: Header) -> Detection3DArray:
    msg = Detection3DArray()
    msg.header = header
    msg.detections = [detection_msg(d, header) for d in detections]
    return msg


def object_pose_array_msg(detections: Iterable[Detection], header: Header, timings_ms: dict[str, float],
                          device: str) -> ObjectPoseArray:
    """The package's own message: metric size, symmetry, keypoints, point counts and per-stage timing."""
    msg = ObjectPoseArray()
    msg.header = header
    for det in detections:
        obj = ObjectPose()
        obj.id = det.track_id or ""
        obj.category = det.category
        obj.score = float(det.score)
        obj.pose_confidence = float(det.pose_confidence)
        obj.pose = pose_msg(det.rotation, det.translation)
        obj.size = Vector3(x=float(det.size[0]), y=float(det.size[1]), z=float(det.size[2]))
        obj.symmetric = bool(det.symmetric)
        if det.keypoints is not None:
            obj.keypoints = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in det.keypoints]
        obj.num_points = int(det.num_points)
        obj.bbox_2d = [int(v) for v in det.mask_bbox]
        msg.objects.append(obj)
    msg.segmentation_ms = float(timings_ms.get("segmentation", 0.0))
    msg.pose_ms = float(timings_ms.get("preprocess", 0.0) + timings_ms.get("pose", 0.0))
    msg.total_ms = float(timings_ms.get("total", 0.0))
    msg.device = device
    return msg


def child_frame_id(det: Detection, tf_prefix: str) -> str:
    """TF child frame of a detection: `<tf_prefix><category>_<track id>` of its confirmed track."""
    return f"{tf_prefix}{det.track_label}"


def transform_msgs(detections: Iterable[Detection], header: Header, tf_prefix: str) -> list[TransformStamped]:
    """One TransformStamped per detection of a confirmed track (tentative ones get no frame yet, so a
    one-frame false positive never appears in TF): parent = the header's frame, stamp = the image's."""
    out = []
    for det in detections:
        if not det.track_label:
            continue
        tf = TransformStamped()
        tf.header = header
        tf.child_frame_id = child_frame_id(det, tf_prefix)
        pose = pose_msg(det.rotation, det.translation)
        tf.transform.translation.x = pose.position.x
        tf.transform.translation.y = pose.position.y
        tf.transform.translation.z = pose.position.z
        tf.transform.rotation = pose.orientation
        out.append(tf)
    return out
