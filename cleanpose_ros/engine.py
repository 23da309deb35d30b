"""The pose node's work, shared by the plain node and the managed (lifecycle) one.

A frame's path: `FrameInputs` (checked, synchronised) -> `Worker` mailbox -> `estimate_frame` (camera_info,
camera model, conversion, Estimator, tracking in the fixed frame) -> `Outputs.publish` (in `target_frame`).
Problems are counted by kind for /diagnostics and logged with a rate limit; nothing a message contains stops
the node.
"""

from __future__ import annotations

import functools
import time
from collections import Counter, deque

import numpy as np
import rclpy
from rclpy.node import Node

from cleanpose_core.inference.estimator import RETUNABLE, Estimator, EstimatorConfig
from cleanpose_core.inference.tracking import PoseTracker
from cleanpose_core.inference.types import FrameResult
from cleanpose_ros.camera_model import CameraModelCache, CameraModelError
from cleanpose_ros.conversions import detection_array_msg, object_pose_array_msg
from cleanpose_ros.image_conversion import ImageConversionError, depth_from_image, rgb_from_image
from cleanpose_ros.inputs import Frame, FrameInputs, stamp_ns
from cleanpose_ros.outputs import Estimate, Outputs
from cleanpose_ros.parameters import PoseNodeParams
from cleanpose_ros.tf_lookup import TransformSource
from cleanpose_ros.worker import Worker


def estimator_config(p: PoseNodeParams) -> EstimatorConfig:
    """The Estimator settings the node's parameters ask for."""
    return EstimatorConfig(
        model_weights=p.model_weights or None, pose_backend=p.pose_backend, pose_solver=p.pose_solver, device=p.device,
        segmenter=p.segmentation_backend, segmenter_weights=p.segmentation_weights or None,
        score_threshold=p.score_threshold, max_objects=p.max_objects, min_mask_area=p.min_mask_area,
        min_points=p.min_points, keep_masks=p.publish_object_points,
        category_classifier=p.category_classifier or None, category_weight=p.category_weight)


class PoseEngine:
    def __init__(self, node: Node, params: PoseNodeParams):
        self.node, self.params = node, params
        self.problems: Counter = Counter()
        self.last_problem = ""
        self.frames_processed = 0
        self.latency_ms: deque = deque(maxlen=50)
        self.stage_ms: dict[str, float] = {}
        self._warned: dict[str, float] = {}
        self.cameras = CameraModelCache()
        self.tracker = PoseTracker(params.track_max_distance, params.track_max_missed, params.track_min_hits)
        self._camera_pose: np.ndarray | None = None  # last camera pose in tracking_frame; None = camera-frame tracks
        self.worker = Worker(self._process_and_publish, self._on_worker_error)
        try:
            self.estimator = self.worker.call(Estimator, estimator_config(params))
        except BaseException:
            self.worker.stop()
            raise
        self.device = self.estimator.device
        self.transforms = TransformSource(node) if (params.tracking_frame or params.target_frame) else None
        self.inputs: FrameInputs | None = None
        self.outputs: Outputs | None = None
        self.last_frame: Frame | None = None
        self.last_sync_time = self.started = time.monotonic()

    # ---------------------------------------------------------------- wiring (the lifecycle node calls these)
    def open_outputs(self) -> None:
        self.outputs = Outputs(self.node, self.params)

    def open_inputs(self, callback_group=None) -> None:
        p = self.params
        self.inputs = FrameInputs(self.node, self._on_frame, p.sync_slop, p.sync_queue_size, p.input_reliability,
                                  callback_group)
        self.inputs.info_tolerance_s = p.camera_info_tolerance
        self.last_sync_time = time.monotonic()

    def close_inputs(self) -> None:
        if self.inputs is not None:
            self.inputs.close()
            self.inputs = None

    def shutdown(self) -> None:
        """Stop the inputs and the worker, and remove every publisher and subscription this engine made."""
        self.close_inputs()
        self.worker.stop()
        if self.outputs is not None:
            self.outputs.close()
            self.outputs = None
        if self.transforms is not None:
            self.transforms.close(self.node)
            self.transforms = None

    # ---------------------------------------------------------------- parameters at run time
    def apply(self, params: PoseNodeParams) -> None:
        """Take validated new parameters; ValueError (nothing changed) when the estimator refuses them."""
        changes = {k: getattr(params, k) for k in RETUNABLE if getattr(params, k) != getattr(self.params, k)}
        if changes:
            self.worker.call(functools.partial(self.estimator.retune, **changes))
        if (params.target_frame or params.tracking_frame) and self.transforms is None:
            self.transforms = TransformSource(self.node)
        self.estimator.config.keep_masks = params.publish_object_points
        self.tracker.configure(params.track_max_distance, params.track_max_missed, params.track_min_hits)
        if self.inputs is not None:
            self.inputs.info_tolerance_s = params.camera_info_tolerance
        if self.outputs is not None:
            self.outputs.configure(params)
        self.params = params

    # ---------------------------------------------------------------- frames
    def _on_frame(self, frame: Frame) -> None:
        self.last_frame = frame
        self.last_sync_time = frame.received
        self.worker.post(frame)

    def problem(self, kind: str, message: str) -> FrameResult:
        self.problems[kind] += 1
        self.last_problem = message
        self.warn(f"no estimate: {message}", period=5.0)
        return FrameResult([], reason=message)

    def estimate_frame(self, frame: Frame, category: str = "") -> Estimate:
        """Segmentation + pose on one frame, tracked; problems become an empty result with a reason."""
        header, p = frame.rgb.header, self.params
        info = frame.info
        if info is None:
            never = (frame.info_problem or "").startswith("no valid camera_info received yet")
            if never and time.monotonic() - self.started < p.sync_warn_after:
                return Estimate(FrameResult([], reason="waiting for the first camera_info"), header)  # start-up
            return Estimate(self.problem("camera_info_missing", frame.info_problem or "no camera_info"), header)
        rgb_msg, depth_msg = frame.rgb, frame.depth
        if (rgb_msg.width, rgb_msg.height) != (depth_msg.width, depth_msg.height):
            return Estimate(self.problem("size_mismatch", (
                f"rgb is {rgb_msg.width}x{rgb_msg.height} but depth is {depth_msg.width}x{depth_msg.height}: depth "
                f"must be registered to the rgb camera at the same resolution")), header)
        try:
            camera = self.cameras.get(info, p.images_rectified, (rgb_msg.width, rgb_msg.height))
        except CameraModelError as exc:
            return Estimate(self.problem("camera_info_invalid", str(exc)), header)
        K = camera.intrinsics
        try:
            rgb = rgb_from_image(rgb_msg)
            depth = depth_from_image(depth_msg, p.depth_unit)
        except ImageConversionError as exc:
            return Estimate(self.problem("image_invalid", str(exc)), header)
        if camera.needs_undistortion:
            self.warn(f"undistorting the images ({camera.describe()}); set images_rectified if they already are",
                      period=float("inf"))
            rgb, depth = camera.undistort(rgb, depth)
        depth[(depth < p.min_depth) | (depth > p.max_depth)] = 0.0
        result = self.estimator.estimate(rgb, depth, K, depth_unit="m")
        if category:
            result.detections = [d for d in result.detections if d.category == category]
        self._track(result, header, (K.width, K.height))
        return Estimate(result, header, rgb, depth, K)

    def _track(self, result: FrameResult, header, image_size: tuple[int, int]) -> None:
        frame_id, stamp = self.params.tracking_frame, stamp_ns(header)
        T = (self.transforms.lookup(frame_id, header.frame_id, stamp, self.params.tf_timeout)
             if frame_id and self.transforms is not None else None)
        if T is None and self._camera_pose is not None:  # the transform went away: carry the tracks over
            self.tracker.rebase(np.linalg.inv(self._camera_pose))
        elif T is not None and self._camera_pose is None:
            self.tracker.rebase(T)
        if frame_id and T is None:
            self.warn(f"no transform {frame_id} <- {header.frame_id}: tracking in the camera frame", period=10.0)
        self._camera_pose = T
        self.tracker.update(result.detections, camera_pose=T, stamp=stamp * 1e-9, image_size=image_size)

    def _process_and_publish(self, frame: Frame) -> None:
        estimate = self.estimate_frame(frame)
        result = estimate.result
        if result.reason and result.reason.startswith("depth has no valid pixel"):  # a frame the sensor lost
            self.problem("depth_empty", result.reason)
        result.timings_ms["total"] = (time.monotonic() - frame.received) * 1e3
        T = None
        target = self.params.target_frame
        if target and target != estimate.header.frame_id:
            T = self.transforms.lookup(target, estimate.header.frame_id, stamp_ns(estimate.header),
                                       self.params.tf_timeout)
            if T is None:
                self.problem("no_transform", f"no transform {target} <- {estimate.header.frame_id}: frame not "
                                             f"published (target_frame)")
                return
        self.outputs.publish(estimate, T, self.device)
        self.frames_processed += 1
        self.latency_ms.append((time.monotonic() - frame.received) * 1e3)
        self.stage_ms = dict(result.timings_ms)

    def _on_worker_error(self, exc: BaseException) -> None:
        if not rclpy.ok(context=self.node.context):  # shutting down: publishers are gone, nothing to report
            return
        self.problems["internal"] += 1
        self.node.get_logger().error(f"frame skipped: {type(exc).__name__}: {exc}")

    def warn(self, message: str, period: float) -> None:
        """Log a warning, repeating the same message at most every `period` s (distinct problems all show)."""
        now = time.monotonic()
        if now - self._warned.get(message, -np.inf) >= period:
            self._warned[message] = now
            self.node.get_logger().warning(message)

    # ---------------------------------------------------------------- service
    def on_estimate(self, request, response):
        """~/estimate: the latest frame or the request's own, optionally one category (on the worker thread)."""
        if request.use_latest_frame:
            frame = self.last_frame
            if frame is None:
                response.success, response.message = False, "no synchronised frame received yet"
                return response
        else:
            frame = Frame(request.rgb, request.depth, request.camera_info, received=time.monotonic())
        estimate = self.worker.call(self.estimate_frame, frame, request.category)
        result, header = estimate.result, estimate.header
        result.timings_ms["total"] = (time.monotonic() - frame.received) * 1e3
        response.success = result.reason is None
        response.message = result.reason or f"{len(result.detections)} object(s)"
        response.detections = detection_array_msg(result.detections, header)
        response.poses = object_pose_array_msg(result.detections, header, result.timings_ms, self.device)
        return response
