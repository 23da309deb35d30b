"""The README's demo: a synthetic RGB-D camera and the pose node as separate processes talking over real DDS.

Runs a fixed number of frames, then writes to the output folder:
  frames/NNNN.png      the pose node's debug image (projected boxes and axes) of every processed frame
  demo.gif             the same frames as an animation
  bag/                 an MCAP rosbag2 recording of the camera, detection, TF and marker topics
  detections.json      every detection with its error against the synthetic ground truth
and prints a summary: per-frame latency and accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from cleanpose_core.geometry.rotations import rotation_error_deg
from cleanpose_ros.image_conversion import rgb_from_image
from cleanpose_ros.msg import ObjectPoseArray
from cleanpose_ros.recorder import BagRecorder

CAMERA_NS = "/camera"
POSE_NS = "/cleanpose/pose_node"


def _matrix(pose) -> tuple[np.ndarray, np.ndarray]:
    q = pose.orientation
    R = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    return R, np.array([pose.position.x, pose.position.y, pose.position.z])


def match_to_ground_truth(pred: ObjectPoseArray, gt: ObjectPoseArray) -> list[dict]:
    """Pair each prediction with the nearest unused ground-truth object of its category; errors per pair."""
    used = set()
    rows = []
    for obj in pred.objects:
        R, t = _matrix(obj.pose)
        best, best_d = None, np.inf
        for j, g in enumerate(gt.objects):
            if j in used or g.category != obj.category:
                continue
            d = np.linalg.norm(_matrix(g.pose)[1] - t)
            if d < best_d:
                best, best_d = j, d
        row = {"id": obj.id, "category": obj.category, "score": round(obj.score, 4),
               "pose_confidence": round(obj.pose_confidence, 4),
               "translation_m": t.round(4).tolist(), "size_m": [obj.size.x, obj.size.y, obj.size.z]}
        if best is not None:
            used.add(best)
            g = gt.objects[best]
            Rg, tg = _matrix(g.pose)
            row.update(
                gt_instance=g.id,
                rotation_error_deg=round(float(rotation_error_deg(R, Rg, g.symmetric)), 2),
                translation_error_cm=round(float(best_d * 100), 2),
                size_error_cm=round(
                    float(np.linalg.norm(np.array(row["size_m"]) - [g.size.x, g.size.y, g.size.z]) * 100), 2
                ),
            )
        rows.append(row)
    return rows


class DemoMonitor:
    """Subscribes to the pose node's outputs and the camera's ground truth; keeps what the summary needs."""

    def __init__(self, node, out: Path):
        self.out = out
        (out / "frames").mkdir(parents=True, exist_ok=True)
        self.gt: dict[int, ObjectPoseArray] = {}
        self.poses: list[ObjectPoseArray] = []
        self.debug_frames: list[Path] = []
        self.tf_frames: set[str] = set()
        self.diagnostics: dict[str, str] = {}
        node.create_subscription(ObjectPoseArray, f"{CAMERA_NS}/ground_truth", self._on_gt, 50)
        self.first_answer = 0.0  # time.monotonic() of the first ~/poses message
        node.create_subscription(ObjectPoseArray, f"{POSE_NS}/poses", self._on_poses, 50)
        node.create_subscription(Image, f"{POSE_NS}/debug_image", self._on_debug, 50)
        node.create_subscription(TFMessage, "/tf", self._on_tf, 100)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    @staticmethod
    def _stamp(header) -> int:
        return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec

    def _on_gt(self, msg):
        self.gt[self._stamp(msg.header)] = msg

    def _on_poses(self, msg):
        if not self.poses:
            self.first_answer = time.monotonic()
        self.poses.append(msg)

    def _on_debug(self, msg):
        path = self.out / "frames" / f"{len(self.debug_frames):04d}.png"
        imageio.imwrite(path, rgb_from_image(msg))
        self.debug_frames.append(path)

    def _on_tf(self, msg):
        self.tf_frames.update(t.child_frame_id for t in msg.transforms)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if "pose estimation" in status.name:
                self.diagnostics = {kv.key: kv.value for kv in status.values}


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def run(frames: int, out: Path, rate: float, seed: int, timeout: float, duration: float = 0.0,
        min_objects: int = 3, tracking_frame: str = "world") -> int:
    out.mkdir(parents=True, exist_ok=True)
    for previous in (out / "bag", out / "frames"):  # a re-run replaces the last run's outputs
        shutil.rmtree(previous, ignore_errors=True)
    rclpy.init()
    node = rclpy.create_node("cleanpose_demo_monitor")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    monitor = DemoMonitor(node, out)
    recorder = BagRecorder(node, out / "bag", [
        (f"{CAMERA_NS}/color/image_raw", Image), (f"{CAMERA_NS}/aligned_depth_to_color/image_raw", Image),
        (f"{CAMERA_NS}/color/camera_info", CameraInfo), (f"{CAMERA_NS}/ground_truth", ObjectPoseArray),
        (f"{POSE_NS}/detections", Detection3DArray), (f"{POSE_NS}/poses", ObjectPoseArray),
        (f"{POSE_NS}/markers", MarkerArray), (f"{POSE_NS}/debug_image", Image), ("/tf", TFMessage)])
    # The camera publishes until the node has processed `frames` frames: the node drops frames that arrive
    # while it is busy (by design), so a camera that stopped after `frames` would leave the demo waiting.
    commands = {
        "synthetic_camera": ["-m", "cleanpose_ros.synthetic_camera", "--ros-args", "-r", f"__ns:={CAMERA_NS}",
                             "-p", f"rate:={rate}", "-p", f"seed:={seed}", "-p", "frames:=0",
                             "-p", f"min_objects:={min_objects}"],
        "pose_node": ["-m", "cleanpose_ros.pose_node", "--ros-args", "-r", "__ns:=/cleanpose",
                      "-p", f"tracking_frame:={tracking_frame or chr(39) * 2}",  # '' is YAML's empty string
                      "-r", f"rgb/image:={CAMERA_NS}/color/image_raw",
                      "-r", f"depth/image:={CAMERA_NS}/aligned_depth_to_color/image_raw",
                      "-r", f"rgb/camera_info:={CAMERA_NS}/color/camera_info"]}
    # started inside the try, so that an error never leaves them running
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            procs[name] = _start(command, out / f"{name}.log")
        started = time.monotonic()
        # Until `frames` frames are processed, or for `duration` s of processing when that is given.
        done = ((lambda: monitor.poses and time.monotonic() - monitor.first_answer >= duration) if duration
                else (lambda: len(monitor.poses) >= frames))
        while not done() and time.monotonic() - started < timeout:
            executor.spin_once(timeout_sec=0.1)
            for name, proc in procs.items():
                if proc.poll() is not None and proc.returncode != 0:
                    print(f"[demo] {name} exited with {proc.returncode}; see {out / (name + '.log')}")
                    return 1
        deadline = time.monotonic() + 2.0  # let the last debug images and TF arrive
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        print(f"[demo] interrupted after {len(monitor.poses)} frames; writing what there is")
    finally:
        recorder.close()
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return summarise(monitor, frames, out)


def summarise(monitor: DemoMonitor, frames: int, out: Path) -> int:
    records, latencies = [], []
    for msg in monitor.poses:
        gt = monitor.gt.get(DemoMonitor._stamp(msg.header))
        rows = match_to_ground_truth(msg, gt) if gt is not None else []
        latencies.append(msg.total_ms)
        records.append({"stamp_ns": DemoMonitor._stamp(msg.header), "total_ms": round(msg.total_ms, 1),
                        "segmentation_ms": round(msg.segmentation_ms, 1), "pose_ms": round(msg.pose_ms, 1),
                        "num_ground_truth": len(gt.objects) if gt else None, "detections": rows})
    matched = [d for r in records for d in r["detections"] if "rotation_error_deg" in d]
    n_gt = sum(r["num_ground_truth"] or 0 for r in records)
    summary = {
        "frames_processed": len(monitor.poses),
        "latency_ms": {
            "mean": float(np.mean(latencies)) if latencies else None,
            "p95": float(np.percentile(latencies, 95)) if latencies else None,
        },
        "objects_ground_truth": n_gt,
        "objects_detected_and_matched": len(matched),
        "rotation_error_deg_median": float(np.median([d["rotation_error_deg"] for d in matched]))
        if matched
        else None,
        "translation_error_cm_median": float(np.median([d["translation_error_cm"] for d in matched]))
        if matched
        else None,
        "within_10deg_5cm": (
            sum(d["rotation_error_deg"] <= 10 and d["translation_error_cm"] <= 5 for d in matched) / n_gt
        )
        if n_gt
        else None,
        "tf_frames": sorted(monitor.tf_frames),
        "object_tf_frames": len([f for f in monitor.tf_frames if f.startswith("cleanpose/")]),
        "ground_truth_objects_seen": len({o.id for gt in monitor.gt.values() for o in gt.objects}),
        "diagnostics": monitor.diagnostics,
    }
    (out / "detections.json").write_text(json.dumps({"summary": summary, "frames": records}, indent=2))
    if monitor.debug_frames:
        imageio.mimsave(
            out / "demo.gif", [imageio.imread(p) for p in monitor.debug_frames], duration=0.25, loop=0
        )
    print(json.dumps(summary, indent=2))
    print(f"[demo] wrote {out}/frames/*.png, demo.gif, bag/ (MCAP), detections.json")
    return 0 if len(monitor.poses) >= max(frames, 1) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=20, help="frames the pose node must process")
    parser.add_argument("--out", type=Path, default=Path("output/demo"))
    parser.add_argument("--rate", type=float, default=5.0, help="synthetic camera rate (Hz)")
    parser.add_argument("--seed", type=int, default=7, help="synthetic scene seed")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before giving up")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="run this many seconds from the first answer instead of counting frames")
    parser.add_argument("--min-objects", type=int, default=3, help="objects in the synthetic scene, at least")
    parser.add_argument("--tracking-frame", default="world",
                        help="the pose node's tracking_frame ('' = track in the camera frame)")
    args = parser.parse_args(argv)
    return run(args.frames, args.out, args.rate, args.seed, args.timeout, args.duration, args.min_objects,
               args.tracking_frame)


if __name__ == "__main__":
    sys.exit(main())
