"""Load test through real DDS: 30 Hz of 640x480 RGB-D for 20 s into the pose node as a separate process.

Asserts what a robot needs under overload: latency stays bounded and does not grow (only the newest frame is
processed), the frames the node could not take are counted as drops, and memory does not grow.
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
from cleanpose_ros.msg import ObjectPoseArray
from node_process import K, start_node

pytestmark = pytest.mark.ros
RATE_HZ, DURATION_S = 30.0, 20.0


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_thirty_hertz_for_twenty_seconds(ros_context, unique_topic, segmenter_weights, tmp_path):
    ns = unique_topic
    log_path = tmp_path / "pose_node.log"
    proc = start_node(
        ns,
        "pose_backend:=box_fit",
        f"segmentation_weights:={segmenter_weights}",
        "device:=cpu",
        log_path=log_path,
    )
    node = rclpy.create_node("load_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
    pubs = [node.create_publisher(t, f"{ns}/{topic}", qos)
            for t, topic in ((CameraInfo, "rgb/camera_info"), (Image, "depth/image"), (Image, "rgb/image"))]
    poses, diagnostics = [], []
    node.create_subscription(ObjectPoseArray, f"{ns}/pose_node/poses", poses.append, 50)
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    rgb = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    depth = np.full((480, 640), 800, np.uint16)
    try:
        deadline = time.monotonic() + 90
        while pubs[2].get_subscription_count() == 0 and proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert proc.poll() is None and pubs[2].get_subscription_count() > 0, log_path.read_text()
        sent, memory = 0, []
        start = time.monotonic()
        while time.monotonic() - start < DURATION_S:
            header = Header(frame_id="camera_color_optical_frame")
            header.stamp = node.get_clock().now().to_msg()
            pubs[0].publish(CameraInfo(header=header, width=640, height=480, k=K))
            pubs[1].publish(numpy_to_image(depth, "16UC1", header))
            pubs[2].publish(numpy_to_image(rgb, "rgb8", header))
            sent += 1
            if sent % int(RATE_HZ * 5) == 0:
                memory.append(rss_mb(proc.pid))
            next_time = start + sent / RATE_HZ
            while time.monotonic() < next_time:
                executor.spin_once(timeout_sec=max(0.0, next_time - time.monotonic()))
        settle = time.monotonic() + 3
        while time.monotonic() < settle:
            executor.spin_once(timeout_sec=0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        node.destroy_node()

    latencies = np.array([p.total_ms for p in poses])
    assert len(latencies) >= 10, f"only {len(latencies)} frames processed of {sent} sent"
    fifth = max(len(latencies) // 5, 1)
    # Bounded and not growing: the last fifth of the run is no slower than twice the first fifth.
    assert latencies.max() < 3000, latencies.max()
    assert np.median(latencies[-fifth:]) <= 2 * np.median(latencies[:fifth]) + 50
    # The node processed fewer frames than it received and counted the rest.
    values = {kv.key: kv.value for d in diagnostics[-3:] for s in d.status for kv in s.values}
    dropped = int(values["frames_dropped_busy"]) + int(values.get("dropped_unmatched_rgb", 0))
    assert int(values["frames_processed"]) < sent and dropped > 0
    # Memory is flat once warm (allow 150 MB of allocator slack).
    assert memory[-1] - memory[0] < 150, memory
