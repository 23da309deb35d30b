"""Overhead of the ROS 2 layer: pose-node end-to-end latency minus the Estimator's own time, on the same
frames.

1. Renders N frames of a synthetic test scene with at least 3 objects (the `synthetic_camera` engine).
2. Starts `pose_node` as a separate process (shipped models, CPU) and sends it one frame at a time over real
   DDS (camera_info, 16UC1 depth, rgb8), waiting for its `~/poses` answer: end-to-end latency = answer
   received minus frame published, so it covers serialisation, transport, synchronisation, conversion,
   estimation, tracking and publishing every output (detections, TF, markers, debug image).
3. After each answer, times `Estimator.estimate` in this process on the same frame with the node's settings
   (interleaved, so both see the same load on a noisy machine). `--objects` caps both at N detections.

Overhead = (median end-to-end - median Estimator) / median Estimator. Writes bench/results/node_overhead.json.

    python bench/bench_node_overhead.py [--frames 12] [--threads 2] [--objects 3]
"""

from __future__ import annotations

import cleanpose_ros.openmp_policy  # noqa: F401  (first: the in-process Estimator gets the node's OpenMP policy)

import argparse
import dataclasses
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

from cleanpose_core.inference.estimator import Estimator
from cleanpose_ros.camera_model import camera_model_from_info
from cleanpose_ros.image_conversion import depth_from_image, numpy_to_image, rgb_from_image
from cleanpose_ros.msg import ObjectPoseArray
from cleanpose_ros.parameters import PoseNodeParams, estimator_config
from cleanpose_ros.synthetic_camera import SyntheticCamera

REPO = Path(__file__).resolve().parents[1]
NS = f"/bench_overhead_{os.getpid()}"


def render_frames(context, n: int, seed: int):
    camera = SyntheticCamera(context=context, parameter_overrides=[
        Parameter("seed", value=seed), Parameter("min_objects", value=3), Parameter("motion", value="orbit")])
    try:
        return [camera.render_next() for _ in range(n)], camera.camera_info
    finally:
        camera.destroy_node()


def measure(context, frames, camera_info, threads: int, objects: int, log_path: Path):
    """Per frame, interleaved so both see the same machine load: the node's end-to-end latency, then the
    Estimator alone in this process on the same frame. -> (end-to-end ms, Estimator ms, node reports,
    resent)."""
    # The node's own parameters -> Estimator settings, as the node process below is started with.
    params = dataclasses.replace(PoseNodeParams(), device="cpu", max_objects=objects)
    torch.set_num_threads(threads)
    estimator = Estimator(estimator_config(params))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cleanpose_ros.pose_node",
            "--ros-args",
            "-r",
            f"__ns:={NS}",
            "-p",
            "device:=cpu",
            "-p",
            f"max_objects:={objects}",
        ],
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
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
    latencies, estimator_ms, reported, resent = [], [], [], 0
    try:
        deadline = time.monotonic() + 120
        while pubs[2].get_subscription_count() == 0 and proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        if proc.poll() is not None or pubs[2].get_subscription_count() == 0:
            raise RuntimeError(f"pose node did not come up:\n{log_path.read_text()}")
        for i, (rgb, depth_mm, _) in enumerate([frames[0]] * 2 + frames):  # two warm-up frames
            # A frame lost in transport (best-effort) is sent again with a new stamp; latency counts from the
            # send that was answered.
            for _attempt in range(3):
                header = Header(frame_id="camera_color_optical_frame")
                header.stamp = node.get_clock().now().to_msg()
                key = (header.stamp.sec, header.stamp.nanosec)
                msgs = (camera_info(header), numpy_to_image(depth_mm, "16UC1", header),
                        numpy_to_image(rgb, "rgb8", header))
                sent = time.perf_counter()
                for pub, msg in zip(pubs, msgs):
                    pub.publish(msg)
                deadline = time.monotonic() + 15
                while key not in answers and time.monotonic() < deadline:
                    # wakes on arrival; a short timeout polls and steals CPU from the node
                    executor.spin_once(timeout_sec=0.5)
                if key in answers:
                    break
                resent += 1
            if key not in answers:
                raise RuntimeError(f"no answer to frame {i} after 3 sends:\n{log_path.read_text()}")
            received, msg = answers[key]
            time.sleep(0.2)  # let the node go idle: one frame in flight at a time
            # The same inputs the node gives its Estimator (its own conversion of the messages it was sent).
            rgb_in, (depth_in, unit) = rgb_from_image(msgs[2]), depth_from_image(msgs[1], params.depth_unit)
            K_in = camera_model_from_info(msgs[0], params.images_rectified).intrinsics
            t0 = time.perf_counter()
            alone = estimator.estimate(
                rgb_in, depth_in, K_in, unit, depth_range=(params.min_depth, params.max_depth)
            )
            if i >= 2:
                estimator_ms.append((time.perf_counter() - t0) * 1000.0)
                latencies.append((received - sent) * 1000.0)
                reported.append({"objects": len(msg.objects), "objects_in_process": len(alone.detections),
                                 "in_process_segmentation_ms": alone.timings_ms.get("segmentation", 0.0),
                                 "in_process_pose_ms": alone.timings_ms.get("preprocess", 0.0)
                                 + alone.timings_ms.get("pose", 0.0),
                                 "segmentation_ms": msg.segmentation_ms, "pose_ms": msg.pose_ms,
                                 "node_total_ms": msg.total_ms})
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        node.destroy_node()
    return latencies, estimator_ms, reported, resent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, node and in-process alike")
    parser.add_argument("--seed", type=int, default=11, help="synthetic test scene seed")
    parser.add_argument("--objects", type=int, default=3, help="max_objects of node and Estimator alike")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "node_overhead.json"))
    args = parser.parse_args()
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        frames, camera_info = render_frames(context, args.frames, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            e2e, estimator, reported, resent = measure(
                context, frames, camera_info, args.threads, args.objects, Path(tmp) / "node.log"
            )
    finally:
        rclpy.shutdown(context=context)
    e2e_ms, est_ms = statistics.median(e2e), statistics.median(estimator)
    report = {
        "benchmark": "pose_node end to end (DDS in, all outputs published) vs Estimator alone, 640x480, CPU",
        "frames": args.frames, "threads": args.threads, "max_objects": args.objects,
        "frames_resent_after_loss": resent,
        "objects_per_frame_median": statistics.median(r["objects"] for r in reported),
        "objects_per_frame_in_process_median": statistics.median(r["objects_in_process"] for r in reported),
        "end_to_end_ms_median": round(e2e_ms, 1),
        "estimator_ms_median": round(est_ms, 1),
        "overhead_ms": round(e2e_ms - est_ms, 1),
        "overhead_fraction": round((e2e_ms - est_ms) / est_ms, 3),
        "node_reported_total_ms_median": round(statistics.median(r["node_total_ms"] for r in reported), 1),
        # Where the time goes: the Estimator's own stages inside the node vs in this process.
        **{f"{where}_{stage}_ms_median": round(statistics.median(r[key] for r in reported), 1)
           for where, prefix in (("node", ""), ("in_process", "in_process_"))
           for stage, key in (("segmentation", f"{prefix}segmentation_ms"), ("pose", f"{prefix}pose_ms"))},
        "end_to_end_ms": [round(v, 1) for v in e2e],
        "estimator_ms": [round(v, 1) for v in estimator],
        "load_average_before": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__,
        "machine": platform.platform(),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps({k: v for k, v in report.items() if k not in ("end_to_end_ms", "estimator_ms")}, indent=2)
    )


if __name__ == "__main__":
    main()
