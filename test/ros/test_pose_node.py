"""The pose node as a separate process, through real rclpy and DDS: outputs carry the image stamp and frame,
bad messages give warnings and no crash, the service answers, invalid parameters stop it with a clear error.

The segmenter here has random weights (no trained model is needed to test the plumbing), so frames yield no
objects; detection accuracy through the node is tested where the shipped models are available.
"""

import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from cleanpose_ros.image_conversion import numpy_to_image
from node_process import K, start_node
from cleanpose_ros.msg import ObjectPoseArray
from cleanpose_ros.srv import EstimatePoses
from vision_msgs.msg import Detection3DArray

pytestmark = pytest.mark.ros


def frame(stamp_sec, h=120, w=160, depth_encoding="16UC1"):
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec = stamp_sec
    rgb = numpy_to_image(np.full((h, w, 3), 128, np.uint8), "rgb8", header)
    depth_array = {
        "16UC1": lambda: np.full((h, w), 700, np.uint16),
        "32FC1": lambda: np.full((h, w), np.nan, np.float32),
        "rgb8": lambda: np.zeros((h, w, 3), np.uint8),
    }[depth_encoding]()
    depth = numpy_to_image(depth_array, depth_encoding, header)
    info = CameraInfo(header=header, width=w, height=h, k=K)
    return rgb, depth, info


class Harness:
    def __init__(self, context, ns):
        self.node = rclpy.create_node("pose_node_test", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
        self.pub = {
            name: self.node.create_publisher(t, f"{ns}/{topic}", qos)
            for name, t, topic in (
                ("rgb", Image, "rgb/image"),
                ("depth", Image, "depth/image"),
                ("info", CameraInfo, "rgb/camera_info"),
            )
        }
        self.detections, self.poses, self.diagnostics = [], [], []
        self.node.create_subscription(
            Detection3DArray, f"{ns}/pose_node/detections", self.detections.append, 10
        )
        self.node.create_subscription(ObjectPoseArray, f"{ns}/pose_node/poses", self.poses.append, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.client = self.node.create_client(EstimatePoses, f"{ns}/pose_node/estimate")

    def spin_until(self, condition, timeout):
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def send(self, rgb, depth, info):
        self.pub["info"].publish(info)
        self.pub["depth"].publish(depth)
        self.pub["rgb"].publish(rgb)


def test_outputs_bad_messages_and_service(ros_context, unique_topic, segmenter_weights, tmp_path):
    ns = unique_topic
    log_path = tmp_path / "pose_node.log"
    proc = start_node(
        ns,
        "pose_backend:=box_fit",
        f"segmentation_weights:={segmenter_weights}",
        "device:=cpu",
        "sync_warn_after:=1.0",
        log_path=log_path,
    )
    h = Harness(ros_context, ns)
    try:
        # 1. A valid frame: an answer on ~/detections and ~/poses with the image's stamp and frame.
        assert h.spin_until(
            lambda: h.pub["rgb"].get_subscription_count() > 0 or proc.poll() is not None, 90
        ), log_path.read_text()
        assert proc.poll() is None, log_path.read_text()
        stamp = 100
        assert h.spin_until(lambda: h.send(*frame(stamp)) or h.spin_until(lambda: bool(h.poses), 2.0), 60), (
            log_path.read_text()
        )
        det, pose = h.detections[-1], h.poses[-1]
        assert det.header.stamp.sec == stamp and det.header.frame_id == "camera_color_optical_frame"
        assert pose.device == "cpu" and pose.header.stamp.sec == stamp

        # 2. Frame-level problems: size mismatch, all-NaN depth, camera_info for another size. No crash, and
        # each still produces an (empty) answer stamped like its image.
        bad = [(frame(202)[0], frame(202, h=60)[1], frame(202)[2]), frame(2021, depth_encoding="32FC1")]
        rgb, depth, info = frame(2023)
        info.width = 320
        bad.append((rgb, depth, info))
        for rgb, depth, info in bad:
            n, sec = len(h.poses), rgb.header.stamp.sec
            h.send(rgb, depth, info)
            # Match the answer by stamp: a late answer to a repeat of the first frame may come in between.
            answers = lambda: [p for p in h.poses[n:] if p.header.stamp.sec == sec]  # noqa: E731
            assert h.spin_until(lambda: bool(answers()), 30), f"no answer to stamp {sec}"
            assert not answers()[0].objects
        # Malformed messages (wrong depth encoding, an empty image) are rejected on arrival: no answer,
        # counted.
        for rgb, depth, info in (frame(2030, depth_encoding="rgb8"), frame(2031, h=0, w=0)):
            n = len(h.poses)
            h.send(rgb, depth, info)
            assert not h.spin_until(lambda: any(p.header.stamp.sec >= 2030 for p in h.poses[n:]), 2.0)
        # An out-of-order frame (older than the last one processed) is dropped and counted, not processed.
        n = len(h.poses)
        h.send(*frame(150))
        assert not h.spin_until(lambda: len(h.poses) > n, 3.0)
        assert proc.poll() is None

        # 3. Diagnostics report the device and the counts, problems by kind.
        def diagnostic(key, least):
            return any(any(kv.key == key and int(kv.value) >= least for kv in s.values)
                       for d in h.diagnostics for s in d.status)
        assert h.spin_until(
            lambda: (
                diagnostic("frames_processed", 4)
                and diagnostic("out_of_order_rgb", 1)
                and diagnostic("problem size_mismatch", 1)
                and diagnostic("problem camera_info_invalid", 1)
                and diagnostic("problem depth_empty", 1)
                and diagnostic("rejected depth: unsupported encoding", 1)
                and diagnostic("rejected rgb: empty image", 1)
                and diagnostic("rejected depth: empty image", 1)
            ),
            10,
        )

        # 4. The on-demand service on the latest frame.
        assert h.client.wait_for_service(timeout_sec=10)
        future = h.client.call_async(EstimatePoses.Request(use_latest_frame=True))
        assert h.spin_until(future.done, 30)
        response = future.result()
        assert response.detections.header.stamp.sec == 2023
        assert (
            not response.success and "describes a 320x120 image but the image is 160x120" in response.message
        )

        # 5. Nothing synchronising (only rgb arrives) gives a loud warning with per-topic counts.
        for s in range(300, 330):
            h.pub["rgb"].publish(frame(s)[0])
            h.spin_until(lambda: False, 0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        h.node.destroy_node()
    log = log_path.read_text()
    assert "depth/image rejected: unsupported encoding 'rgb8'" in log
    # the Estimator's check of the frame
    assert "depth size (60, 160) does not match rgb size (120, 160)" in log
    assert "empty image (0x0)" in log
    assert "no synchronised rgb/depth" in log and "received so far" in log
    assert "Traceback" not in log


def test_invalid_parameter_stops_the_node_with_a_clear_error(tmp_path):
    log_path = tmp_path / "pose_node.log"
    proc = start_node("/cleanpose_bad_param", "depth_unit:=furlongs", log_path=log_path)
    assert proc.wait(timeout=90) == 2
    assert "[PoseNode] configuration error: parameter depth_unit must be one of ['auto', 'mm', 'm']" \
        in log_path.read_text()
