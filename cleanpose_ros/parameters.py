"""The pose node's parameters, each defined once: default, description, range and whether it may change while
the node runs live in the dataclass field's metadata, and the ROS descriptors are made from them. The
parameters that are Estimator settings take all of that from `EstimatorConfig`'s fields (`estimator_config`
builds the Estimator's settings from them), so the node and the library cannot disagree.

- Integers are accepted for double parameters (a launch argument `rate:=10` or `score_threshold: 1` in a
params
  file arrives as an INTEGER); any other type, or a value out of range, is a ValueError naming the parameter,
  which `node_main.run_node` turns into exit code 2.
- Run-time changes (`ros2 param set`) are validated the same way and rejected with the reason; parameters that
need
  a reload are read-only and say so in their description.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from cleanpose_core.device import check_device_name
from cleanpose_core.inference.estimator import FRAME_SEGMENTERS, SETTINGS, EstimatorConfig, setting

_p = setting  # a node-only parameter: default, description, (low, high) bounds, run-time changeable, choices


def _estimator(name: str, **override):
    """The parameter that is EstimatorConfig's field `name`. Its "unset" (None: the shipped file) is "" here,
    since a ROS parameter cannot be None."""
    f = SETTINGS[name]
    metadata = {**f.metadata, "estimator": name, **override}
    return field(default="" if f.default is None else f.default, metadata=metadata)


@dataclass(frozen=True)
class PoseNodeParams:
    # --- models (read-only: changing them means loading other weights) ---
    model_weights: str = _estimator("model_weights")
    pose_backend: str = _estimator("pose_backend")
    pose_solver: str = _estimator("pose_solver")
    point_samples: int = _estimator("point_samples")
    device: str = _estimator("device")
    runtime: str = _estimator("runtime")
    # the others need masks per call
    segmentation_backend: str = _estimator("segmenter", choices=FRAME_SEGMENTERS)
    segmentation_weights: str = _estimator("segmenter_weights")
    category_classifier: str = _estimator("category_classifier")
    # --- detection (settable at run time) ---
    score_threshold: float = _estimator("score_threshold")
    category_weight: float = _estimator("category_weight")
    max_objects: int = _estimator("max_objects")
    min_mask_area: int = _estimator("min_mask_area")
    min_points: int = _estimator("min_points")
    # --- input ---
    depth_unit: str = _p("auto", "Depth units: auto (16UC1 = mm, 32FC1 = m), or force mm / m", runtime=True,
                         choices=("auto", "mm", "m"))
    min_depth: float = _p(0.1, "Depth below this (m) is invalid; < max_depth", (0.0, 100.0), runtime=True)
    max_depth: float = _p(3.0, "Depth beyond this (m) is invalid; > min_depth", (0.0, 100.0), runtime=True)
    images_rectified: bool = _p(False, "The images are already undistorted (image_rect topics, ZED): use the "
                                "projection matrix P and never undistort", runtime=True)
    sync_slop: float = _p(0.02, "Maximum stamp difference (s) between rgb and depth", (0.0, 10.0))
    sync_queue_size: int = _p(5, "Messages kept per image topic while waiting for a match", (1, 100))
    camera_info_tolerance: float = _p(
        1.0,
        "Maximum age difference (s) between the newest camera_info of the rgb frame and an image; 0 = any",
        (0.0, 3600.0),
        runtime=True,
    )
    sync_warn_after: float = _p(
        5.0,
        "Seconds without a synchronised frame before a warning with per-topic counts",
        (0.1, 3600.0),
        runtime=True,
    )
    input_reliability: str = _p("best_effort", "Input QoS reliability: best_effort (sensor data; matches any "
                                "publisher) or reliable", choices=("best_effort", "reliable"))
    # --- frames and tracking ---
    target_frame: str = _p("", "Frame of the published detections and object TF frames; empty = the camera's "
                           "optical frame (needs TF from that frame when set)", runtime=True)
    tracking_frame: str = _p(
        "",
        "Fixed frame (odom, map, world) in which objects are tracked, so ids survive "
        "camera motion; empty = track in the camera frame with a motion model",
    )
    tf_timeout: float = _p(
        0.05,
        "Seconds to wait for a transform at an image's stamp before using the latest",
        (0.0, 1.0),
        runtime=True,
    )
    track_max_distance: float = _p(0.10, "Metres a tracked object may move between frames and keep its id",
                                   (0.001, 10.0), runtime=True)
    track_max_missed: int = _p(100, "Frames a track survives without a detection", (0, 10_000), runtime=True)
    track_min_hits: int = _p(5, "Detections in consecutive frames before an object gets its TF "
                             "frame (sporadic false positives get none)", (1, 1000), runtime=True)
    # --- outputs ---
    tf_prefix: str = _p("cleanpose/", "Prefix of object TF frames: <tf_prefix><category>_<id>", runtime=True)
    publish_tf: bool = _p(True, "Publish one TF frame per object on /tf", runtime=True)
    publish_markers: bool = _p(True, "Publish ~/markers (oriented boxes, axes, labels)", runtime=True)
    publish_debug_image: bool = _p(True, "Publish ~/debug_image (boxes and axes drawn over the RGB image)",
                                   runtime=True)
    publish_object_points: bool = _p(False, "Publish ~/object_points (segmented points of each estimate), "
                                     "PointCloud2", runtime=True)

    def validate(self) -> None:
        """Raise ValueError naming the parameter for a value that is not allowed."""
        for f in fields(self):
            value, bounds, choices = getattr(self, f.name), f.metadata["bounds"], f.metadata["choices"]
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise ValueError(f"parameter {f.name} must be in [{bounds[0]}, {bounds[1]}], got {value}")
            if choices is not None and value not in choices:
                raise ValueError(f"parameter {f.name} must be one of {list(choices)}, got {value!r}")
        check_device_name(self.device)
        if not self.min_depth < self.max_depth:
            raise ValueError(
                f"parameters min_depth and max_depth: need min_depth < max_depth, got {self.min_depth}, "
                f"{self.max_depth}"
            )
        if self.segmentation_backend == "depth_tabletop" and self.category_weight == 0.0:
            raise ValueError(
                "parameter category_weight must be > 0 with segmentation_backend depth_tabletop (the "
                "point classifier names its objects)"
            )


FIELDS = {f.name: f for f in fields(PoseNodeParams)}
RUNTIME = tuple(name for name, f in FIELDS.items() if f.metadata["runtime"])


def estimator_config(p: PoseNodeParams) -> EstimatorConfig:
    """The Estimator settings the node's parameters ask for: every parameter that is one ("" = None,
    unset)."""
    values = {
        f.metadata["estimator"]: getattr(p, f.name) for f in FIELDS.values() if "estimator" in f.metadata
    }
    values = {name: None if v == "" and SETTINGS[name].default is None else v for name, v in values.items()}
    return EstimatorConfig(**values, keep_masks=p.publish_object_points)


def descriptor(name: str) -> ParameterDescriptor:
    """The ROS descriptor of a parameter, from its field metadata."""
    f = FIELDS[name]
    text = f.metadata["description"] + (
        "" if f.metadata["runtime"] else " (read-only: restart the node to change)"
    )
    # Doubles use dynamic typing so that an INTEGER value is accepted; `coerce` checks the type instead.
    d = ParameterDescriptor(
        description=text, read_only=not f.metadata["runtime"], dynamic_typing=f.type == "float"
    )
    bounds = f.metadata["bounds"]
    if bounds is not None and f.type == "float":
        d.floating_point_range = [FloatingPointRange(from_value=float(bounds[0]), to_value=float(bounds[1]))]
    elif bounds is not None:
        d.integer_range = [IntegerRange(from_value=int(bounds[0]), to_value=int(bounds[1]))]
    return d


def coerce(name: str, value: Any) -> Any:
    """`value` as the parameter's Python type (int -> float for doubles); ValueError naming the parameter."""
    kind = FIELDS[name].type
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    expected = {"float": float, "int": int, "bool": bool, "str": str}[kind]
    if type(value) is not expected:
        ros_type = {"float": "double", "int": "integer", "bool": "bool", "str": "string"}[kind]
        article = "an" if ros_type == "integer" else "a"
        raise ValueError(
            f"parameter {name} must be {article} {ros_type}, got {type(value).__name__} {value!r}"
        )
    return value


def declare_and_read(node: Node) -> PoseNodeParams:
    """Declare every parameter with its descriptor, read and validate them (ValueError names the
    parameter)."""
    values = {}
    for name, f in FIELDS.items():
        try:
            value = node.declare_parameter(name, f.default, descriptor(name)).value
        except ParameterException as exc:  # wrong type or out of range in an override: say which parameter
            raise ValueError(f"parameter {name}: {exc}") from exc
        values[name] = coerce(name, value)
    params = PoseNodeParams(**values)
    params.validate()
    return params


def watch_changes(node: Node, current: Callable[[], PoseNodeParams],
                  apply: Callable[[PoseNodeParams], None]) -> None:
    """Validate run-time parameter changes as a whole (`ros2 param set` is refused with the reason) and hand
    the accepted set to `apply`. Read-only parameters are refused by rclpy itself before this runs."""

    def on_set(changed: list[Parameter]) -> SetParametersResult:
        try:
            updates = {p.name: coerce(p.name, p.value) for p in changed if p.name in FIELDS}
            params = dataclasses.replace(current(), **updates)
            params.validate()
            apply(params)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        except Exception as exc:  # never let a parameter request take the node down
            return SetParametersResult(
                successful=False, reason=f"internal error: {type(exc).__name__}: {exc}"
            )
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
