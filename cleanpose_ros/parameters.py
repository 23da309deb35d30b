"""The pose node's parameters: declared up front with descriptions (unit, range), read once into a typed
dataclass, validated at start-up with errors that name the parameter."""

from __future__ import annotations

from dataclasses import dataclass, fields

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from cleanpose_core.device import check_device_name
from cleanpose_core.inference.estimator import FRAME_SEGMENTERS, POSE_SOLVERS


@dataclass(frozen=True)
class PoseNodeParams:
    model_weights: str = ""         # pose model file (model_final.pt of `cleanpose train`); "" = shipped lite model
    pose_backend: str = "cleanpose"  # cleanpose (the network) | box_fit (non-learned baseline)
    pose_solver: str = "keypoints"   # keypoints (fit of the keypoint NOCS) | regression (the pose head, official)
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    segmentation_backend: str = "maskrcnn"  # maskrcnn (learned) | depth_tabletop (plane + regions)
    segmentation_weights: str = ""  # "" = the shipped segmenter
    score_threshold: float = 0.4    # minimum detection score [0, 1], after the point classifier's re-scoring
    #                                 (validation split: recall 0.80 / precision 0.76 at 0.4; 0.75 / 0.81 at 0.5;
    #                                 Mask R-CNN's own score at 0.5: 0.76 / 0.69)
    category_classifier: str = ""   # point classifier re-scoring detections; "" = the shipped one
    category_weight: float = 0.5    # its weight w in the fused score s^(1-w) q^w; 0 = off
    max_objects: int = 10           # per frame, highest scores first
    min_mask_area: int = 100        # pixels
    min_points: int = 32            # valid depth pixels inside a mask
    depth_unit: str = "auto"        # auto (16UC1 = mm, 32FC1 = m) | mm | m
    min_depth: float = 0.1          # m; nearer depth is treated as invalid
    max_depth: float = 3.0          # m; farther depth is treated as invalid
    sync_slop: float = 0.02         # s; max stamp difference between rgb, depth and camera_info
    sync_queue_size: int = 5        # messages kept per input while waiting for a match
    sync_warn_after: float = 5.0    # s without a synchronised frame before warning
    input_reliability: str = "best_effort"  # best_effort (sensor data, matches any publisher) | reliable
    tf_prefix: str = "cleanpose/"   # TF child frame = <tf_prefix><category>_<id>
    publish_tf: bool = True
    publish_markers: bool = True
    publish_debug_image: bool = True
    publish_object_points: bool = False
    track_max_distance: float = 0.10  # m a tracked object may move between frames
    track_max_missed: int = 5         # frames a track survives unseen

    def validate(self) -> None:
        check_device_name(self.device)
        if self.segmentation_backend not in FRAME_SEGMENTERS:
            raise ValueError(f"segmentation_backend must be {' or '.join(FRAME_SEGMENTERS)}, "
                             f"got {self.segmentation_backend!r}")
        if self.pose_backend not in ("cleanpose", "box_fit"):
            raise ValueError(f"pose_backend must be cleanpose or box_fit, got {self.pose_backend!r}")
        if self.pose_solver not in POSE_SOLVERS:
            raise ValueError(f"pose_solver must be one of {POSE_SOLVERS}, got {self.pose_solver!r}")
        if self.depth_unit not in ("auto", "mm", "m"):
            raise ValueError(f"depth_unit must be auto, mm or m, got {self.depth_unit!r}")
        if not 0.0 < self.min_depth < self.max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if self.input_reliability not in ("best_effort", "reliable"):
            raise ValueError(f"input_reliability must be best_effort or reliable, got {self.input_reliability!r}")


_DESCRIPTIONS = {
    "model_weights": "Pose model file (model_final.pt of `cleanpose train`); empty = the shipped lite model",
    "pose_backend": "Pose estimator: cleanpose (the network) or box_fit (non-learned baseline)",
    "pose_solver": "How the network's pose is read out: keypoints (similarity fit of the predicted keypoint NOCS "
                   "to the predicted keypoints) or regression (the pose head's output, as the official code)",
    "device": "Compute device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N",
    "segmentation_backend": "Instance segmentation: maskrcnn (learned, gives the category of each object) or "
                            "depth_tabletop (supporting plane + regions above it, named by the point classifier; "
                            "no trained segmenter needed, for uncluttered tables)",
    "segmentation_weights": "Mask R-CNN checkpoint (.pt); empty = the shipped segmenter",
    "score_threshold": "Minimum detection score (segmenter score re-weighted by the point classifier), in [0, 1]",
    "category_classifier": "Point-cloud classifier (.pt of `cleanpose train-classifier`) that re-scores Mask R-CNN "
                           "detections; empty = the shipped one",
    "category_weight": "Weight w of the point classifier in the detection score s^(1-w) q^w, in [0, 0.95]; 0 = off",
    "max_objects": "Maximum objects per frame (highest scores kept), >= 1",
    "min_mask_area": "Minimum mask area in pixels, >= 1",
    "min_points": "Minimum valid depth pixels inside a mask, >= 4",
    "depth_unit": "Depth units: auto (16UC1 = mm, 32FC1 = m), or force mm / m",
    "min_depth": "Depth below this (m) is invalid, > 0",
    "max_depth": "Depth beyond this (m) is invalid, > min_depth",
    "sync_slop": "Maximum stamp difference (s) between rgb, depth and camera_info, >= 0",
    "sync_queue_size": "Messages kept per input while waiting for a match, >= 1",
    "sync_warn_after": "Seconds without a synchronised frame before a warning with per-topic counts",
    "input_reliability": "Input QoS reliability: best_effort (sensor data; matches any publisher) or reliable",
    "tf_prefix": "Prefix of object TF frames: <tf_prefix><category>_<id>",
    "publish_tf": "Publish one TF frame per object on /tf",
    "publish_markers": "Publish ~/markers (oriented boxes, axes, labels)",
    "publish_debug_image": "Publish ~/debug_image (boxes and axes drawn over the RGB image)",
    "publish_object_points": "Publish ~/object_points (segmented points used by each estimate), PointCloud2",
    "track_max_distance": "Metres a tracked object may move between frames and keep its id, > 0",
    "track_max_missed": "Frames a track survives without a detection, >= 0",
}
_RANGES = {
    "score_threshold": FloatingPointRange(from_value=0.0, to_value=1.0),
    "category_weight": FloatingPointRange(from_value=0.0, to_value=0.95),
    "max_objects": IntegerRange(from_value=1, to_value=100),
    "min_mask_area": IntegerRange(from_value=1, to_value=1_000_000),
    "min_points": IntegerRange(from_value=4, to_value=1_000_000),
    "min_depth": FloatingPointRange(from_value=0.0, to_value=100.0),
    "max_depth": FloatingPointRange(from_value=0.0, to_value=100.0),
    "sync_slop": FloatingPointRange(from_value=0.0, to_value=10.0),
    "sync_queue_size": IntegerRange(from_value=1, to_value=100),
    "sync_warn_after": FloatingPointRange(from_value=0.1, to_value=3600.0),
    "track_max_distance": FloatingPointRange(from_value=0.001, to_value=10.0),
    "track_max_missed": IntegerRange(from_value=0, to_value=10_000),
}


def declare_and_read(node: Node) -> PoseNodeParams:
    """Declare every parameter with its description and range, read them, validate (ValueError names the key)."""
    values = {}
    for field in fields(PoseNodeParams):
        descriptor = ParameterDescriptor(description=_DESCRIPTIONS[field.name], read_only=True)
        bound = _RANGES.get(field.name)
        if isinstance(bound, FloatingPointRange):
            descriptor.floating_point_range = [bound]
        elif isinstance(bound, IntegerRange):
            descriptor.integer_range = [bound]
        values[field.name] = node.declare_parameter(field.name, field.default, descriptor).value
    params = PoseNodeParams(**values)
    params.validate()
    return params
