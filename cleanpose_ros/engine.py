"""The pose node's work, shared by the plain node and the managed (lifecycle) one.

A frame's path: `FrameInputs` (messages checked, synchronised) -> `Worker` mailbox -> `estimate_frame` (camera
model, messages to arrays, undistortion, Estimator: the frame checked and its depth converted, once) ->
tracking in the fixed frame -> `Outputs.publish` (in `target_frame`). Problems are counted by kind for
/diagnostics and logged with a rate limit; nothing a message contains stops the node.
"""

from __future__ import annotations

import functools
import time
from collections import Counter, deque

import numpy as np
import rclpy
from rclpy.node import Node

from cleanpose_core.inference.estimator import RETUNABLE, Estimator
from cleanpose_core.inference.tracking import PoseTracker
from cleanpose_core.inference.types import FrameResult
from cleanpose_ros.camera_model import CameraModelCache, CameraModelError
from cleanpose_ros.conversions import detection_array_msg, object_pose_array_msg
from cleanpose_ros.image_conversion import (
    COLOUR_ENCODINGS,
    DEPTH_ENCODINGS,
    depth_from_image,
    image_problem,
    rgb_from_image,
)
from cleanpose_ros.inputs import Frame, FrameInputs, stamp_ns
from cleanpose_ros.outputs import Estimate, Outputs
from cleanpose_ros.parameters import PoseNodeParams, estimator_config
from cleanpose_ros.tf_lookup import TransformSource
from cleanpose_ros.worker import Worker


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
        # last camera pose in tracking_frame; None = camera-frame tracks
        self._camera_pose: np.ndarray | None = None
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
        self.inputs = FrameInputs(
            self.node, self._on_frame, p.sync_slop, p.sync_queue_size, p.input_reliability, callback_group
        )
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
        new = estimator_config(params)
        changes = {
            k: getattr(new, k) for k in RETUNABLE if getattr(new, k) != getattr(self.estimator.config, k)
        }
        if changes:
            self.worker.call(functools.partial(self.estimator.retune, **changes))
        if (params.target_frame or params.tracking_frame) and self.transforms is None:
            self.transforms = TransformSource(self.node)
        self.estimator.config.keep_masks = new.keep_masks
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
                # start-up
                return Estimate(FrameResult([], reason="waiting for the first camera_info"), header)
            return Estimate(
                self.problem("camera_info_missing", frame.info_problem or "no camera_info"), header
            )
        try:
            camera = self.cameras.get(info, p.images_rectified, (frame.rgb.width, frame.rgb.height))
        except CameraModelError as exc:
            return Estimate(self.problem("camera_info_invalid", str(exc)), header)
        K = camera.intrinsics
        rgb = rgb_from_image(frame.rgb)
        # as the sensor gave it: the Estimator converts
        depth, unit = depth_from_image(frame.depth, p.depth_unit)
        if camera.needs_undistortion:
            self.warn(
                f"undistorting the images ({camera.describe()}); set images_rectified if they already are",
                period=float("inf"),
            )
            try:  # nearest-pixel resampling: depth values move unchanged, in any unit
                rgb, depth = camera.undistort(rgb, depth)
            # the rgb fits camera_info (checked above): the depth is another size
            except CameraModelError as exc:
                return Estimate(self.problem("size_mismatch", str(exc)), header)
        result = self.estimator.estimate(rgb, depth, K, unit, depth_range=(p.min_depth, p.max_depth))
        if result.frame_problem:  # size_mismatch, depth_empty, ...: the Estimator's one check of the frame
            self.problem(result.frame_problem, result.reason)
        if category:
            result.detections = [d for d in result.detections if d.category == category]
        self._track(result, header, (K.width, K.height))
        return Estimate(result, header, rgb, K)

    def _track(self, result: FrameResult, header, image_size: tuple[int, int]) -> None:
        frame_id, stamp = self.params.tracking_frame, stamp_ns(header)
        T = (self.transforms.lookup(frame_id, header.frame_id, stamp, self.params.tf_timeout)
             if frame_id and self.transforms is not None else None)
        if T is None and self._camera_pose is not None:  # the transform went away: carry the tracks over
            self.tracker.rebase(np.linalg.inv(self._camera_pose))
        elif T is not None and self._camera_pose is None:
            self.tracker.rebase(T)
        if frame_id and T is None:
            self.warn(
                f"no transform {frame_id} <- {header.frame_id}: tracking in the camera frame", period=10.0
            )
        self._camera_pose = T
        self.tracker.update(result.detections, camera_pose=T, stamp=stamp * 1e-9, image_size=image_size)

    def _process_and_publish(self, frame: Frame) -> None:
        estimate = self.estimate_frame(frame)
        result = estimate.result
        result.timings_ms["total"] = (time.monotonic() - frame.received) * 1e3
        T = None
        target = self.params.target_frame
        if target and target != estimate.header.frame_id:
            T = self.transforms.lookup(target, estimate.header.frame_id, stamp_ns(estimate.header),
                                       self.params.tf_timeout)
            if T is None:
                self.problem(
                    "no_transform",
                    f"no transform {target} <- {estimate.header.frame_id}: frame not "
                    f"published (target_frame)",
                )
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
        """~/estimate: the latest frame or the request's own, optionally one category (on the worker
        thread)."""
        if request.use_latest_frame:
            frame = self.last_frame
            if frame is None:
                response.success, response.message = False, "no synchronised frame received yet"
                return response
        else:  # messages that did not come through the subscriptions: checked here, as they are on arrival
            problem = image_problem(request.rgb, COLOUR_ENCODINGS) or image_problem(
                request.depth, DEPTH_ENCODINGS
            )
            if problem is not None:
                self.problem("image_invalid", problem)
                response.success, response.message = False, problem
                return response
            frame = Frame(request.rgb, request.depth, request.camera_info, received=time.monotonic())
        estimate = self.worker.call(self.estimate_frame, frame, request.category)
        result, header = estimate.result, estimate.header
        result.timings_ms["total"] = (time.monotonic() - frame.received) * 1e3
        response.success = result.reason is None
        response.message = result.reason or f"{len(result.detections)} object(s)"
        response.detections = detection_array_msg(result.detections, header)
        response.poses = object_pose_array_msg(result.detections, header, result.timings_ms, self.device)
        return response
