"""What the node publishes for a frame: Detection3DArray, ObjectPoseArray, TF, markers, debug image, points.

The optional outputs follow the parameters at run time (a publisher is created when switched on and destroyed
when switched off). Poses go out in `target_frame` when one is set: the caller gives the transform.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2, PointField
from std_msgs.msg import Header
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_core.inference.draw import draw_detections
from cleanpose_core.inference.types import Detection, FrameResult
from cleanpose_ros.conversions import detection_array_msg, object_pose_array_msg, transform_msgs
from cleanpose_ros.image_conversion import numpy_to_image
from cleanpose_ros.markers import MarkerBuilder
from cleanpose_ros.msg import ObjectPoseArray
from cleanpose_ros.parameters import PoseNodeParams
from cleanpose_ros.tf_publisher import ObjectTfBroadcaster

OUTPUT_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
OPTIONAL = {"publish_markers": (MarkerArray, "~/markers"), "publish_debug_image": (Image, "~/debug_image"),
            "publish_object_points": (PointCloud2, "~/object_points")}


@dataclass
class Estimate:
    """The estimator's result on a frame, with the decoded inputs the visualisation outputs need."""

    result: FrameResult
    header: Header                     # the rgb image's header (camera optical frame)
    rgb: np.ndarray | None = None      # (H, W, 3) uint8, undistorted when the camera needed it
    intrinsics: Intrinsics | None = None


def in_frame(detections: list[Detection], T: np.ndarray) -> list[Detection]:
    """Copies of the detections with their poses moved by T (4, 4): camera frame -> another frame."""
    out = []
    for det in detections:
        moved = copy.copy(det)
        moved.rotation = T[:3, :3] @ det.rotation
        moved.translation = T[:3, :3] @ det.translation + T[:3, 3]
        if det.keypoints is not None:
            moved.keypoints = det.keypoints @ T[:3, :3].T + T[:3, 3]
        out.append(moved)
    return out


class Outputs:
    def __init__(self, node: Node, params: PoseNodeParams):
        self._node = node
        self.detections = node.create_publisher(Detection3DArray, "~/detections", OUTPUT_QOS)
        self.poses = node.create_publisher(ObjectPoseArray, "~/poses", OUTPUT_QOS)
        self.tf = ObjectTfBroadcaster(node)
        self.markers = MarkerBuilder()
        self._optional: dict[str, object] = {}
        self.configure(params)

    def configure(self, params: PoseNodeParams) -> None:
        """Create or destroy the optional publishers to match the parameters."""
        self.params = params
        for name, (msg_type, topic) in OPTIONAL.items():
            wanted, pub = getattr(params, name), self._optional.get(name)
            if wanted and pub is None:
                self._optional[name] = self._node.create_publisher(msg_type, topic, OUTPUT_QOS)
            elif not wanted and pub is not None:
                self._node.destroy_publisher(self._optional.pop(name))

    def close(self) -> None:
        for pub in [self.detections, self.poses, *self._optional.values(), *self.tf.publishers]:
            self._node.destroy_publisher(pub)
        self._optional = {}

    def publish(self, estimate: Estimate, T_target_camera: np.ndarray | None, device: str) -> None:
        """Publish a frame's outputs; poses in `params.target_frame` via T_target_camera when that is set."""
        result, header = estimate.result, estimate.header
        dets = result.detections
        if T_target_camera is not None:
            dets = in_frame(dets, T_target_camera)
            header = Header(stamp=header.stamp, frame_id=self.params.target_frame)
        self.detections.publish(detection_array_msg(dets, header))
        self.poses.publish(object_pose_array_msg(dets, header, result.timings_ms, device))
        if self.params.publish_tf:
            self.tf.send(transform_msgs(dets, header, self.params.tf_prefix))
        if "publish_markers" in self._optional:
            self._optional["publish_markers"].publish(self.markers.build(dets, header))
        if estimate.rgb is None:
            return
        if "publish_debug_image" in self._optional:  # drawn in the camera frame, where the image lives
            drawn = draw_detections(estimate.rgb, result.detections, estimate.intrinsics)
            self._optional["publish_debug_image"].publish(numpy_to_image(drawn, "rgb8", estimate.header))
        if "publish_object_points" in self._optional:
            self._optional["publish_object_points"].publish(object_cloud(estimate))


def object_cloud(estimate: Estimate) -> PointCloud2:
    """xyz (float32) + object index (uint32) of every valid depth pixel inside each detection's mask, camera
    frame (the Estimator keeps them with the masks)."""
    chunks = []
    for index, det in enumerate(estimate.result.detections):
        if det.points is None:
            continue
        xyz = det.points
        chunks.append(
            np.rec.fromarrays(
                [xyz[:, 0], xyz[:, 1], xyz[:, 2], np.full(len(xyz), index, np.uint32)], names="x,y,z,object"
            )
        )
    cloud = np.concatenate(chunks) if chunks else np.rec.fromarrays(
        [np.zeros(0, np.float32)] * 3 + [np.zeros(0, np.uint32)], names="x,y,z,object")
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32 if i < 3 else PointField.UINT32,
                         count=1) for i, n in enumerate(("x", "y", "z", "object"))]
    return PointCloud2(header=estimate.header, height=1, width=len(cloud), fields=fields, is_bigendian=False,
                       point_step=16, row_step=16 * len(cloud), is_dense=True,
                       data=np.ascontiguousarray(cloud).tobytes())
