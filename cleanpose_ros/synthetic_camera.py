"""synthetic_camera: the synthetic data engine as a live RGB-D camera.

Publishes (relative names, remap or namespace them like a real driver):
  color/image_raw                  sensor_msgs/Image rgb8
  aligned_depth_to_color/image_raw sensor_msgs/Image 16UC1 (mm), registered to colour, with the sensor noise model
  color/camera_info                sensor_msgs/CameraInfo (REAL275 intrinsics by default)
  ground_truth                     cleanpose_ros/ObjectPoseArray: every visible object's true pose and metric size
All four carry the same header (stamp = render time, frame_id = `frame_id`). The scene is static; the camera
either stays still (`motion: static`) or orbits the table slowly (`motion: orbit`). Frames are rendered by
a timer at `rate` Hz; if rendering is slower, the effective rate drops (never a backlog).
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import load_yaml
from cleanpose_core.data.synthetic.config import SynthConfig
from cleanpose_core.data.synthetic.generate import intrinsics_of, scene_rng
from cleanpose_core.data.synthetic.noise import depth_to_sensor_mm
from cleanpose_core.data.synthetic.render import SceneRenderer
from cleanpose_core.data.synthetic.scene import compose_scene, look_at
from cleanpose_core.data.synthetic.writer import object_pose_in_camera
from cleanpose_core.inference.types import Detection
from cleanpose_ros.conversions import object_pose_array_msg
from cleanpose_ros.image_conversion import numpy_to_image
from cleanpose_ros.msg import ObjectPoseArray
from cleanpose_ros.node_main import run_node

SYMMETRIC = {"bottle", "bowl", "can"}
SENSOR_QOS = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)  # like a driver (REP 2003)


class SyntheticCamera(Node):
    def __init__(self, **kwargs):
        super().__init__("synthetic_camera", **kwargs)
        self.declare_parameter("seed", 7)             # scene seed (test split: instances never seen in training)
        self.declare_parameter("split", "test")       # instance pool: train | test
        self.declare_parameter("rate", 5.0)           # Hz
        self.declare_parameter("frames", 0)           # stop publishing after this many frames; 0 = forever
        self.declare_parameter("motion", "orbit")     # orbit | static
        self.declare_parameter("orbit_deg_per_frame", 2.0)
        self.declare_parameter("frame_id", "camera_color_optical_frame")
        self.declare_parameter("config", "")          # synthetic engine YAML; "" = defaults
        self.declare_parameter("min_objects", 3)      # redraw the scene until it has at least this many objects
        get = lambda name: self.get_parameter(name).value  # noqa: E731
        cfg_path = get("config")
        self.cfg = load_yaml(SynthConfig, cfg_path) if cfg_path else SynthConfig()
        if get("motion") not in ("orbit", "static") or get("rate") <= 0 or get("split") not in ("train", "test"):
            raise ValueError("motion must be orbit|static, rate > 0, split train|test")
        self.K = intrinsics_of(self.cfg)
        self.frame_id = get("frame_id")
        self.frames_limit = int(get("frames"))
        self.step_rad = np.deg2rad(get("orbit_deg_per_frame")) if get("motion") == "orbit" else 0.0
        self.rng, self.scene = self._compose(int(get("seed")), get("split"), int(get("min_objects")))
        self.renderer = SceneRenderer(self.scene, self.K, self.cfg.render.threads, self.cfg.render.shadows)
        R_wc, C = self.scene.camera_poses[0]
        target = C + R_wc[:, 2] * (C[2] / -R_wc[2, 2])  # where the optical axis meets the table (z = 0)
        offset = C - target
        self.target, self.radius, self.height = target, np.linalg.norm(offset[:2]), offset[2]
        self.azimuth = np.arctan2(offset[1], offset[0])
        self.sent = 0
        self.pub_rgb = self.create_publisher(Image, "color/image_raw", SENSOR_QOS)
        self.pub_depth = self.create_publisher(Image, "aligned_depth_to_color/image_raw", SENSOR_QOS)
        self.pub_info = self.create_publisher(CameraInfo, "color/camera_info", SENSOR_QOS)
        self.pub_gt = self.create_publisher(ObjectPoseArray, "ground_truth", SENSOR_QOS)
        self.timer = self.create_timer(1.0 / get("rate"), self._publish_frame)
        names = ", ".join(o.shape.category for o in self.scene.objects)
        self.get_logger().info(f"scene with {len(self.scene.objects)} objects ({names}) at {get('rate')} Hz")

    def _compose(self, seed: int, split: str, min_objects: int):
        for attempt in range(100):
            rng = scene_rng(seed + attempt, split, 0)
            scene = compose_scene(rng, split, self.cfg.scene, self.cfg.camera, self.cfg.render, 1)
            if len(scene.objects) >= min_objects:
                return rng, scene
        raise ValueError(f"no scene with >= {min_objects} objects in 100 draws; lower min_objects")

    def camera_pose(self) -> tuple[np.ndarray, np.ndarray]:
        az = self.azimuth + self.step_rad * self.sent
        eye = self.target + np.array([self.radius * np.cos(az), self.radius * np.sin(az), self.height])
        return look_at(eye, self.target), eye

    def render_next(self) -> tuple[np.ndarray, np.ndarray, list[Detection]]:
        """Render the next viewpoint: (rgb (H, W, 3) uint8, depth (H, W) uint16 mm, ground-truth objects)."""
        R_wc, C = self.camera_pose()
        frame = self.renderer.render(R_wc, C, self.rng, self.cfg.render.image_noise)
        depth_mm = depth_to_sensor_mm(frame.depth, frame.cos_incidence, frame.albedo_luma, self.cfg.noise, self.rng)
        self.sent += 1
        return frame.rgb, depth_mm, self.ground_truth(frame, depth_mm)

    def camera_info(self, header: Header) -> CameraInfo:
        info = CameraInfo(header=header, width=self.K.width, height=self.K.height, distortion_model="plumb_bob")
        info.k = self.K.matrix.ravel().tolist()
        info.p = [self.K.fx, 0.0, self.K.cx, 0.0, 0.0, self.K.fy, self.K.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        info.r = np.eye(3).ravel().tolist()
        info.d = [0.0] * 5
        return info

    def _publish_frame(self) -> None:
        if self.frames_limit and self.sent >= self.frames_limit:
            return
        rgb, depth_mm, truth = self.render_next()
        header = Header(frame_id=self.frame_id)
        header.stamp = self.get_clock().now().to_msg()
        self.pub_rgb.publish(numpy_to_image(rgb, "rgb8", header))
        self.pub_depth.publish(numpy_to_image(depth_mm, "16UC1", header))
        self.pub_info.publish(self.camera_info(header))
        self.pub_gt.publish(object_pose_array_msg(truth, header, {}, "synthetic"))

    def ground_truth(self, frame, depth_mm: np.ndarray) -> list[Detection]:
        """Every object with at least one visible pixel, as a Detection carrying the true pose and metric size."""
        out = []
        for k, obj in enumerate(self.scene.objects):
            pix = frame.instance == k
            if not pix.any():
                continue
            R, t = object_pose_in_camera(obj.R_wo, obj.t_wo, frame.R_wc, frame.C)
            ys, xs = np.nonzero(pix)
            category = obj.shape.category
            out.append(Detection(category=category, category_id=NOCS_CATEGORIES.index(category), score=1.0,
                                 rotation=R, translation=t, size=obj.scale * np.asarray(obj.shape.extents),
                                 mask_bbox=(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())),
                                 num_points=int(np.count_nonzero(pix & (depth_mm > 0))),
                                 symmetric=category in SYMMETRIC, track_id=obj.shape.model_id))
        return out


def main(args=None) -> None:
    run_node(SyntheticCamera, args=args)


if __name__ == "__main__":
    main()
