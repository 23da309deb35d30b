"""pose_node: RGB + registered depth + camera_info in; Detection3DArray, TF, markers, debug image out.

Threading: subscription callbacks only feed the synchroniser (cheap); the newest synchronised frame goes into a
one-slot mailbox that a worker thread drains, so latency never grows under load — a frame that is replaced
before the worker picks it up is counted as dropped. Every torch call runs on that one worker thread: the
Estimator is built there and service requests are handed to it (ahead of the next streamed frame), so the model
and the tracker need no lock and the process has a single OpenMP thread pool (libgomp makes one per thread that
runs torch ops). OpenMP threads sleep while idle (see openmp_policy).
"""

from __future__ import annotations

import cleanpose_ros.openmp_policy  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from cleanpose_core.geometry.camera import Intrinsics, pixels_to_points
from cleanpose_core.inference.draw import draw_detections
from cleanpose_core.inference.estimator import Estimator, EstimatorConfig
from cleanpose_core.inference.tracking import PoseTracker
from cleanpose_core.inference.types import FrameResult
from cleanpose_ros.conversions import detection_array_msg, object_pose_array_msg, transform_msgs
from cleanpose_ros.image_conversion import ImageConversionError, depth_from_image, numpy_to_image, rgb_from_image
from cleanpose_ros.markers import MarkerBuilder
from cleanpose_ros.msg import ObjectPoseArray
from cleanpose_ros.node_main import run_node
from cleanpose_ros.parameters import PoseNodeParams, declare_and_read
from cleanpose_ros.srv import EstimatePoses
from cleanpose_ros.sync import ApproximateSync
from cleanpose_ros.tf_publisher import ObjectTfBroadcaster

OUTPUT_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
STAMP = lambda header: header.stamp.sec * 1_000_000_000 + header.stamp.nanosec  # noqa: E731


@dataclass
class Frame:
    rgb: Image
    depth: Image
    info: CameraInfo
    received: float  # time.monotonic() when the set was synchronised


@dataclass
class Estimate:
    """The estimator's result on a frame, with the decoded inputs the visualisation outputs need."""

    result: FrameResult
    header: Header
    rgb: np.ndarray | None = None      # (H, W, 3) uint8
    depth: np.ndarray | None = None    # (H, W) float32 metres, gated to [min_depth, max_depth]
    intrinsics: Intrinsics | None = None


def estimator_config(p: PoseNodeParams) -> EstimatorConfig:
    """The Estimator settings the node's parameters ask for."""
    return EstimatorConfig(
        model_weights=p.model_weights or None, pose_backend=p.pose_backend, pose_solver=p.pose_solver, device=p.device,
        segmenter=p.segmentation_backend, segmenter_weights=p.segmentation_weights or None,
        score_threshold=p.score_threshold, max_objects=p.max_objects, min_mask_area=p.min_mask_area,
        min_points=p.min_points, keep_masks=p.publish_object_points,
        category_classifier=p.category_classifier or None, category_weight=p.category_weight)


def frame_arrays(frame: Frame, params: PoseNodeParams) -> tuple[np.ndarray, np.ndarray, Intrinsics]:
    """The Estimator's inputs from a synchronised frame: RGB uint8, depth in metres with out-of-range depth
    zeroed, intrinsics. Raises ImageConversionError for images that cannot be read."""
    rgb = rgb_from_image(frame.rgb)
    depth = depth_from_image(frame.depth, params.depth_unit)
    depth[(depth < params.min_depth) | (depth > params.max_depth)] = 0.0
    return rgb, depth, Intrinsics.from_matrix(np.asarray(frame.info.k, float), rgb.shape[1], rgb.shape[0])


class PoseNode(Node):
    def __init__(self, **kwargs):
        super().__init__("pose_node", **kwargs)
        self.params: PoseNodeParams = declare_and_read(self)
        p = self.params
        # Mailbox of the newest synchronised frame and queue of calls (service requests), drained by the worker.
        self._mailbox: Frame | None = None
        self._calls: deque[tuple[Future, object, tuple]] = deque()
        self._mail = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="cleanpose_worker", daemon=True)
        self._worker.start()
        try:
            self.estimator = self._on_worker(Estimator, estimator_config(p))
        except BaseException:
            self._stop_worker()
            raise
        self.tracker = PoseTracker(p.track_max_distance, p.track_max_missed)
        self.markers = MarkerBuilder()

        input_qos = QoSProfile(depth=1, history=QoSHistoryPolicy.KEEP_LAST,
                               reliability=QoSReliabilityPolicy.BEST_EFFORT if p.input_reliability == "best_effort"
                               else QoSReliabilityPolicy.RELIABLE)
        self.sync = ApproximateSync(("rgb", "depth", "info"), p.sync_slop, p.sync_queue_size)
        inputs = ReentrantCallbackGroup()
        self.create_subscription(Image, "rgb/image", lambda m: self._on_input("rgb", m), input_qos,
                                 callback_group=inputs)
        self.create_subscription(Image, "depth/image", lambda m: self._on_input("depth", m), input_qos,
                                 callback_group=inputs)
        self.create_subscription(CameraInfo, "rgb/camera_info", lambda m: self._on_input("info", m), input_qos,
                                 callback_group=inputs)

        self.pub_detections = self.create_publisher(Detection3DArray, "~/detections", OUTPUT_QOS)
        self.pub_poses = self.create_publisher(ObjectPoseArray, "~/poses", OUTPUT_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", OUTPUT_QOS) if p.publish_markers else None
        self.pub_debug = self.create_publisher(Image, "~/debug_image", OUTPUT_QOS) if p.publish_debug_image else None
        self.pub_points = (self.create_publisher(PointCloud2, "~/object_points", OUTPUT_QOS)
                           if p.publish_object_points else None)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS)
        self.tf = ObjectTfBroadcaster(self) if p.publish_tf else None
        self.create_service(EstimatePoses, "~/estimate", self._on_estimate,
                            callback_group=MutuallyExclusiveCallbackGroup())

        self._latest: Frame | None = None
        self.frames_processed = 0
        self.frames_dropped = 0
        self._latency_ms: deque = deque(maxlen=50)
        self._stage_ms: dict[str, float] = {}
        self._last_sync_time = time.monotonic()
        self._last_received = dict(self.sync.stats.received)
        self._last_reason = ""
        self._warned: dict[str, float] = {}  # message -> when it was last logged
        self.create_timer(1.0, self._on_timer, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"ready on {self.estimator.device} (segmentation: {p.segmentation_backend}); waiting for "
            f"{self.resolve_topic_name('rgb/image')}, {self.resolve_topic_name('depth/image')}, "
            f"{self.resolve_topic_name('rgb/camera_info')}")

    # ---------------------------------------------------------------- inputs
    def _on_input(self, topic: str, msg) -> None:
        match = self.sync.add(topic, STAMP(msg.header), msg)
        if match is None:
            return
        frame = Frame(*match, received=time.monotonic())
        with self._mail:
            if self._mailbox is not None:
                self.frames_dropped += 1  # superseded before the worker got to it
            self._mailbox = frame
            self._latest = frame
            self._last_sync_time = frame.received
            self._mail.notify()

    def _work(self) -> None:
        while True:
            with self._mail:
                while self._mailbox is None and not self._calls and not self._stop:
                    self._mail.wait()  # every change of these three notifies
                if self._stop:
                    for future, _, _ in self._calls:
                        future.set_exception(RuntimeError("pose_node is shutting down"))
                    return
                call = self._calls.popleft() if self._calls else None
                if call is None:
                    frame, self._mailbox = self._mailbox, None
            if call is not None:
                future, fn, args = call
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed back to the caller
                    future.set_exception(exc)
                continue
            try:
                self._process_and_publish(frame)
            except Exception as exc:  # never let one bad frame kill the worker
                self.get_logger().error(f"frame skipped: {type(exc).__name__}: {exc}")

    def _on_worker(self, fn, *args):
        """Run fn(*args) on the worker thread (see the module docstring) and return its result or raise."""
        if threading.current_thread() is self._worker:
            return fn(*args)
        future: Future = Future()
        with self._mail:
            if self._stop:
                raise RuntimeError("pose_node is shutting down")
            self._calls.append((future, fn, args))
            self._mail.notify()
        return future.result()

    def _stop_worker(self) -> None:
        with self._mail:
            self._stop = True
            self._mail.notify()
        self._worker.join(timeout=5.0)

    # ---------------------------------------------------------------- processing
    def estimate_frame(self, frame: Frame, category: str = "") -> Estimate:
        """Run segmentation + pose on one synchronised frame. Problems become a FrameResult with a reason."""
        header = frame.rgb.header
        problem = self._check_inputs(frame)
        if problem:
            return Estimate(FrameResult([], reason=problem), header)
        try:
            rgb, depth, K = frame_arrays(frame, self.params)
        except ImageConversionError as exc:
            return Estimate(FrameResult([], reason=str(exc)), header)
        result = self.estimator.estimate(rgb, depth, K, depth_unit="m")
        if category:
            result.detections = [d for d in result.detections if d.category == category]
        self.tracker.update(result.detections)
        return Estimate(result, header, rgb, depth, K)

    def _check_inputs(self, frame: Frame) -> str | None:
        rgb, depth, info = frame.rgb, frame.depth, frame.info
        if (rgb.width, rgb.height) != (depth.width, depth.height):
            return (f"rgb is {rgb.width}x{rgb.height} but depth is {depth.width}x{depth.height}: depth must be "
                    f"registered to the rgb camera at the same resolution")
        if (info.width, info.height) not in ((rgb.width, rgb.height), (0, 0)):
            return f"camera_info is for {info.width}x{info.height} but rgb is {rgb.width}x{rgb.height}"
        K = np.asarray(info.k, float)
        if K.size != 9 or not np.isfinite(K).all() or K[0] <= 0 or K[4] <= 0:
            return f"camera_info has an invalid camera matrix k={list(K)}"
        if rgb.header.frame_id != depth.header.frame_id:
            self._warn(f"rgb frame_id {rgb.header.frame_id!r} != depth frame_id {depth.header.frame_id!r}; "
                       f"assuming the depth is registered to rgb", period=10.0)
        return None

    def _process_and_publish(self, frame: Frame) -> None:
        estimate = self.estimate_frame(frame)
        result = estimate.result
        if result.reason:
            self._last_reason = result.reason
            self._warn(f"no estimate: {result.reason}", period=5.0)
        result.timings_ms["total"] = (time.monotonic() - frame.received) * 1e3
        self._publish(estimate)
        self.frames_processed += 1
        self._latency_ms.append((time.monotonic() - frame.received) * 1e3)
        self._stage_ms = dict(result.timings_ms)

    def _publish(self, estimate: Estimate) -> None:
        result, header = estimate.result, estimate.header
        dets = result.detections
        self.pub_detections.publish(detection_array_msg(dets, header))
        self.pub_poses.publish(object_pose_array_msg(dets, header, result.timings_ms, self.estimator.device))
        if self.tf is not None:
            self.tf.send(transform_msgs(dets, header, self.params.tf_prefix))
        if self.pub_markers is not None:
            self.pub_markers.publish(self.markers.build(dets, header))
        if estimate.rgb is None:
            return
        if self.pub_debug is not None:
            drawn = draw_detections(estimate.rgb, dets, estimate.intrinsics)
            self.pub_debug.publish(numpy_to_image(drawn, "rgb8", header))
        if self.pub_points is not None:
            self.pub_points.publish(self._object_cloud(estimate))

    @staticmethod
    def _object_cloud(estimate: Estimate) -> PointCloud2:
        """xyz (float32) + object index (uint32) of every valid depth pixel inside each detection's mask."""
        chunks = []
        for index, det in enumerate(estimate.result.detections):
            if det.mask is None:
                continue
            rows, cols = np.nonzero(det.mask & (estimate.depth > 0))
            xyz = pixels_to_points(rows, cols, estimate.depth, estimate.intrinsics)
            chunks.append(np.rec.fromarrays([xyz[:, 0], xyz[:, 1], xyz[:, 2], np.full(len(xyz), index, np.uint32)],
                                            names="x,y,z,object"))
        cloud = np.concatenate(chunks) if chunks else np.rec.fromarrays(
            [np.zeros(0, np.float32)] * 3 + [np.zeros(0, np.uint32)], names="x,y,z,object")
        fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32 if i < 3 else PointField.UINT32,
                             count=1) for i, n in enumerate(("x", "y", "z", "object"))]
        return PointCloud2(header=estimate.header, height=1, width=len(cloud), fields=fields, is_bigendian=False,
                           point_step=16, row_step=16 * len(cloud), is_dense=True,
                           data=np.ascontiguousarray(cloud).tobytes())

    # ---------------------------------------------------------------- service
    def _on_estimate(self, request, response):
        if request.use_latest_frame:
            frame = self._latest
            if frame is None:
                response.success, response.message = False, "no synchronised frame received yet"
                return response
        else:
            frame = Frame(request.rgb, request.depth, request.camera_info, received=time.monotonic())
        estimate = self._on_worker(self.estimate_frame, frame, request.category)
        result, header = estimate.result, estimate.header
        result.timings_ms["total"] = (time.monotonic() - frame.received) * 1e3
        response.success = result.reason is None
        response.message = result.reason or f"{len(result.detections)} object(s)"
        response.detections = detection_array_msg(result.detections, header)
        response.poses = object_pose_array_msg(result.detections, header, result.timings_ms, self.estimator.device)
        return response

    # ---------------------------------------------------------------- health
    def _warn(self, message: str, period: float) -> None:
        """Log a warning, repeating the same message at most every `period` s (distinct problems all show)."""
        now = time.monotonic()
        if now - self._warned.get(message, -np.inf) >= period:
            self._warned[message] = now
            self.get_logger().warning(message)

    def _on_timer(self) -> None:
        try:
            self._check_health()
        except Exception as exc:  # health reporting must never take the node down
            self.get_logger().error(f"diagnostics failed: {type(exc).__name__}: {exc}")

    def _check_health(self) -> None:
        stats = self.sync.stats
        silent_for = time.monotonic() - self._last_sync_time
        if silent_for > self.params.sync_warn_after:
            counts = ", ".join(f"{t}: {n}" for t, n in stats.received.items())
            missing = [t for t, n in stats.received.items() if n == self._last_received.get(t, 0)]
            hint = f"; nothing new on {missing}" if missing else f"; stamps differ by more than {self.params.sync_slop} s?"
            self.get_logger().warning(
                f"no synchronised rgb/depth/camera_info for {silent_for:.0f} s (received so far: {counts}){hint}",
                throttle_duration_sec=self.params.sync_warn_after)
        self._last_received = dict(stats.received)
        self.pub_diagnostics.publish(self._diagnostics())

    def _diagnostics(self) -> DiagnosticArray:
        stats = self.sync.stats
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: pose estimation",
                                  hardware_id=self.estimator.device)
        silent = time.monotonic() - self._last_sync_time > self.params.sync_warn_after
        status.level = DiagnosticStatus.WARN if silent else DiagnosticStatus.OK
        status.message = "no synchronised input" if silent else "running"
        latency = list(self._latency_ms)
        values = {
            "device": self.estimator.device,
            "frames_processed": self.frames_processed,
            "frames_dropped_busy": self.frames_dropped,
            "frames_matched": stats.matched,
            "latency_ms_mean": f"{np.mean(latency):.1f}" if latency else "n/a",
            "latency_ms_max": f"{np.max(latency):.1f}" if latency else "n/a",
            "last_problem": self._last_reason,
        }
        values.update({f"received_{t}": n for t, n in stats.received.items()})
        values.update({f"dropped_unmatched_{t}": n for t, n in stats.dropped.items()})
        values.update({f"out_of_order_{t}": n for t, n in stats.out_of_order.items()})
        values.update({f"stage_ms_{k}": f"{v:.1f}" for k, v in self._stage_ms.items()})
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        return array

    def destroy_node(self):
        if getattr(self, "_worker", None) is not None:  # absent when __init__ failed (rclpy.shutdown still calls this)
            self._stop_worker()
        return super().destroy_node()


def main(args=None) -> None:
    # A single-threaded executor: the callbacks are cheap (the worker thread does the estimation) and rclpy's
    # MultiThreadedExecutor only adds threads competing for the cores. The callback groups above still let the
    # node run under a multi-threaded executor of a host process.
    run_node(PoseNode, SingleThreadedExecutor, args=args)


if __name__ == "__main__":
    main()
