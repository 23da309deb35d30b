"""Overhead of the ROS 2 layer: pose-node end-to-end latency minus the Estimator's own time, on the same frames.

1. Renders N frames of a synthetic test scene with at least 3 objects (the `synthetic_camera` engine).
2. Starts `pose_node` as a separate process (shipped models, CPU) and sends it one frame at a time over real
   DDS (camera_info, 16UC1 depth, rgb8), waiting for its `~/poses` answer: end-to-end latency = answer received
   minus frame published, so it covers serialisation, transport, synchronisation, conversion, estimation,
   tracking and publishing every output (detections, TF, markers, debug image).
3. Stops the node, then times `Estimator.estimate` in this process on the same frames with the node's settings.

Overhead = (median end-to-end - median Estimator) / median Estimator. Writes bench/results/node_overhead.json.

    python bench/bench_node_overhead.py [--frames 12] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rclpy
import torch
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from cleanpose_core.inference.estimator import Estimator, EstimatorConfig
from cleanpose_ros.image_conversion import numpy_to_image
from cleanpose_ros.msg import ObjectPoseArray
from cleanpose_ros.parameters import PoseNodeParams
from cleanpose_ros.synthetic_camera import SyntheticCamera

REPO = Path(__file__).resolve().parents[1]
NS = f"/bench_overhead_{os.getpid()}"


def render_frames(context, n: int, seed: int):
    camera = SyntheticCamera(context=context, parameter_overrides=[
        Parameter("seed", value=seed), Parameter("min_objects", value=3), Parameter("motion", value="orbit")])
    try:
        return camera.K, [camera.render_next() for _ in range(n)], camera.camera_info
    finally:
        camera.destroy_node()


def node_latencies(context, frames, camera_info, threads: int, log_path: Path) -> tuple[list[float], list[dict]]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, "-m", "cleanpose_ros.pose_node", "--ros-args", "-r", f"__ns:={NS}",
                             "-p", "device:=cpu"], stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env)
    node = rclpy.create_node("overhead_bench", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
    pubs = [node.create_publisher(t, f"{NS}/{topic}", qos)
            for t, topic in ((CameraInfo, "rgb/camera_info"), (Image, "depth/image"), (Image, "rgb/image"))]
    answers: dict[tuple[int, int], tuple[float, ObjectPoseArray]] = {}

    def on_poses(msg):
        answers[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (time.perf_counter(), msg)

    node.create_subscription(ObjectPoseArray, f"{NS}/pose_node/poses", on_poses, 10)
    latencies, reported = [], []
    try:
        deadline = time.monotonic() + 120
        while pubs[2].get_subscription_count() == 0 and proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        if proc.poll() is not None or pubs[2].get_subscription_count() == 0:
            raise RuntimeError(f"pose node did not come up:\n{log_path.read_text()}")
        for i, (rgb, depth_mm, _) in enumerate([frames[0]] * 2 + frames):  # two warm-up frames
            header = Header(frame_id="camera_color_optical_frame")
            header.stamp = node.get_clock().now().to_msg()
            key = (header.stamp.sec, header.stamp.nanosec)
            msgs = camera_info(header), numpy_to_image(depth_mm, "16UC1", header), numpy_to_image(rgb, "rgb8", header)
            sent = time.perf_counter()
            for pub, msg in zip(pubs, msgs):
                pub.publish(msg)
            deadline = time.monotonic() + 30
            while key not in answers and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.01)
            if key not in answers:
                raise RuntimeError(f"no answer to frame {i} within 30 s:\n{log_path.read_text()}")
            received, msg = answers[key]
            if i >= 2:
                latencies.append((received - sent) * 1000.0)
                reported.append({"objects": len(msg.objects), "segmentation_ms": msg.segmentation_ms,
                                 "pose_ms": msg.pose_ms, "node_total_ms": msg.total_ms})
            time.sleep(0.2)  # let the node go idle: one frame in flight at a time
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        node.destroy_node()
    return latencies, reported


def estimator_times(frames, K, threads: int, repeats: int) -> list[float]:
    torch.set_num_threads(threads)
    p = PoseNodeParams()
    est = Estimator(EstimatorConfig(device="cpu", score_threshold=p.score_threshold, max_objects=p.max_objects,
                                    min_mask_area=p.min_mask_area, min_points=p.min_points))
    est.estimate(frames[0][0], frames[0][1], K, "mm")  # warm-up
    times = []
    for _ in range(repeats):
        for rgb, depth_mm, _ in frames:
            t0 = time.perf_counter()
            est.estimate(rgb, depth_mm, K, "mm")
            times.append((time.perf_counter() - t0) * 1000.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, node and in-process alike")
    parser.add_argument("--seed", type=int, default=11, help="synthetic test scene seed")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "node_overhead.json"))
    args = parser.parse_args()
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        K, frames, camera_info = render_frames(context, args.frames, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            e2e, reported = node_latencies(context, frames, camera_info, args.threads, Path(tmp) / "node.log")
    finally:
        rclpy.shutdown(context=context)
    estimator = estimator_times(frames, K, args.threads, repeats=2)
    e2e_ms, est_ms = statistics.median(e2e), statistics.median(estimator)
    report = {
        "benchmark": "pose_node end to end (DDS in, all outputs published) vs Estimator alone, 640x480, CPU",
        "frames": args.frames, "threads": args.threads,
        "objects_per_frame_median": statistics.median(r["objects"] for r in reported),
        "end_to_end_ms_median": round(e2e_ms, 1),
        "estimator_ms_median": round(est_ms, 1),
        "overhead_ms": round(e2e_ms - est_ms, 1),
        "overhead_fraction": round((e2e_ms - est_ms) / est_ms, 3),
        "node_reported_total_ms_median": round(statistics.median(r["node_total_ms"] for r in reported), 1),
        "end_to_end_ms": [round(v, 1) for v in e2e],
        "estimator_ms": [round(v, 1) for v in estimator],
        "load_average_before": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "machine": platform.platform(),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("end_to_end_ms", "estimator_ms")}, indent=2))


if __name__ == "__main__":
    main()
