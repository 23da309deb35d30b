"""synthetic_camera: the synthetic data engine as a live RGB-D camera.

Publishes (relative names, remap or namespace them like a real driver):
  color/image_raw                  sensor_msgs/Image rgb8
  aligned_depth_to_color/image_raw sensor_msgs/Image 16UC1 (mm), registered to colour, from `depth_model`
  color/camera_info                sensor_msgs/CameraInfo (the `camera` preset's intrinsics; REAL275 default)
  ground_truth                     cleanpose_ros/ObjectPoseArray: each visible object's true pose and size
  /tf                              the camera's pose: `world_frame` -> `frame_id` (when `publish_tf`)
All carry the same stamp (render time) and frame_id = `frame_id` (the TF parent is `world_frame`). The scene
is static; the camera either stays still (`motion: static`) or orbits the table slowly (`motion: orbit`).
Frames are rendered by a timer at `rate` Hz; if rendering is slower, the effective rate drops (no backlog).

`depth_model` and `camera` are those of `cleanpose synth --depth-model/--camera` and set them in the engine's
config (over the `config` file's): `depth_model: stereo` with `camera: d435` or `d415` publishes the simulated
active-stereo depth (holes in occlusion shadows and on dark or thin parts, edge fattening), 0.3-0.6 s a frame;
`camera` also sets the image size and intrinsics of the images and of camera_info (azure_720p: 1280x720).

`distortion` (plumb_bob k1 k2 p1 p2 k3, default all zeros = a pinhole camera) simulates a lens: the rendered
pinhole images are warped to what a camera with these coefficients records (colour bilinear, depth and
instance ids nearest, so no depth is blended across edges) and camera_info.d carries them. The camera matrix,
optical frame and ground-truth poses are the same as without distortion: what undistorting with (k, d) undoes.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import TransformStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from cleanpose_core import NOCS_CATEGORIES, NOCS_SYMMETRIC
from cleanpose_core.geometry import distortion
from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_core.config import load_yaml
from cleanpose_core.data.synthetic.config import CAMERA_PRESETS, DEPTH_MODELS, SynthConfig
from cleanpose_core.data.synthetic.depth_sensor import make_depth_sensor
from cleanpose_core.data.synthetic.generate import intrinsics_of, scene_rng
from cleanpose_core.data.synthetic.render import SceneRenderer
from cleanpose_core.data.synthetic.scene import compose_scene, look_at
from cleanpose_core.data.synthetic.writer import object_pose_in_camera
from cleanpose_core.inference.types import Detection
from cleanpose_ros.conversions import object_pose_array_msg, pose_msg
from cleanpose_ros.image_conversion import numpy_to_image
from cleanpose_ros.msg import ObjectPoseArray
from cleanpose_ros.node_main import run_node
from cleanpose_ros.tf_publisher import ObjectTfBroadcaster

SENSOR_QOS = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)  # like a driver (REP 2003)


class SyntheticCamera(Node):
    def __init__(self, **kwargs):
        super().__init__("synthetic_camera", **kwargs)
        # scene seed (test split: instances never seen in training)
        self.declare_parameter("seed", 7)
        self.declare_parameter("split", "test")       # instance pool: train | test
        # doubles with dynamic typing: a launch argument `rate:=10` arrives as an INTEGER
        self.declare_parameter("rate", 5.0, ParameterDescriptor(dynamic_typing=True))  # Hz
        self.declare_parameter("frames", 0)           # stop publishing after this many frames; 0 = forever
        self.declare_parameter("motion", "orbit")     # orbit | static
        self.declare_parameter("orbit_deg_per_frame", 2.0, ParameterDescriptor(dynamic_typing=True))
        self.declare_parameter("frame_id", "camera_color_optical_frame")
        self.declare_parameter("config", "")          # synthetic engine YAML; "" = defaults
        # redraw the scene until it has at least this many objects
        self.declare_parameter("min_objects", 3)
        # dynamic typing: a launch argument or `-p distortion:=[0,0,0,0,0]` arrives as an integer array
        self.declare_parameter("distortion", [0.0] * 5, ParameterDescriptor(
            description="plumb_bob k1 k2 p1 p2 k3 of the simulated lens; all zeros = pinhole",
            dynamic_typing=True))
        self.declare_parameter("depth_model", "noisy", ParameterDescriptor(
            description="depth sensor: ideal (exact depth, mm), noisy (per-pixel noise model) or stereo "
            "(simulated active stereo; needs camera d435 or d415)", read_only=True))
        self.declare_parameter("camera", "real275", ParameterDescriptor(
            description=f"camera preset ({' | '.join(CAMERA_PRESETS)}): image size and intrinsics of the "
            "colour camera, and for d435/d415 the stereo head", read_only=True))
        self.declare_parameter("publish_tf", True)    # the camera's pose on /tf: world_frame -> frame_id
        self.declare_parameter("world_frame", "world")
        get = lambda name: self.get_parameter(name).value  # noqa: E731
        for name in ("rate", "orbit_deg_per_frame"):
            if isinstance(get(name), bool) or not isinstance(get(name), (int, float)):
                raise ValueError(f"parameter {name} must be a number, got {get(name)!r}")
        cfg_path = get("config")
        self.cfg = load_yaml(SynthConfig, cfg_path) if cfg_path else SynthConfig()
        self._use_sensor(get("depth_model"), get("camera"))
        if (
            get("motion") not in ("orbit", "static")
            or get("rate") <= 0
            or get("split") not in ("train", "test")
        ):
            raise ValueError("motion must be orbit|static, rate > 0, split train|test")
        self.K = intrinsics_of(self.cfg)
        self.frame_id = get("frame_id")
        self.world_frame = get("world_frame")
        self.D = self._distortion(get("distortion"))
        self.render_K, self.lens_maps = self._lens(self.K, self.D)
        self.tf = ObjectTfBroadcaster(self) if get("publish_tf") else None
        self.last_pose: tuple[np.ndarray, np.ndarray] | None = None  # (R_wc, C) of the last rendered frame
        self.frames_limit = int(get("frames"))
        self.step_rad = np.deg2rad(get("orbit_deg_per_frame")) if get("motion") == "orbit" else 0.0
        self.rng, self.scene = self._compose(int(get("seed")), get("split"), int(get("min_objects")))
        self.renderer = SceneRenderer(self.scene, self.render_K, self.cfg.render.threads,
                                      self.cfg.render.shadows)
        self.depth_sensor = make_depth_sensor(self.cfg, self.renderer)  # (frame, rng) -> depth mm
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

    def _use_sensor(self, depth_model, camera) -> None:
        """Set the engine config's depth model and camera preset (a preset equal to the config's keeps its own
        intrinsics overrides); ValueError naming the parameter."""
        if depth_model not in DEPTH_MODELS:
            raise ValueError(
                f"parameter depth_model must be one of {list(DEPTH_MODELS)}, got {depth_model!r}")
        if camera not in CAMERA_PRESETS:
            raise ValueError(f"parameter camera must be one of {list(CAMERA_PRESETS)}, got {camera!r}")
        if camera != self.cfg.camera.preset:
            self.cfg.use_camera(camera)
        self.cfg.depth_model = depth_model
        try:
            self.cfg.validate()
        except ValueError as exc:  # stereo on a camera without a stereo head
            raise ValueError(f"parameters depth_model {depth_model!r} and camera {camera!r}: {exc}") from exc

    def _compose(self, seed: int, split: str, min_objects: int):
        for attempt in range(100):
            rng = scene_rng(seed + attempt, split, 0)
            scene = compose_scene(rng, split, self.cfg.scene, self.cfg.camera, self.cfg.render, 1)
            if len(scene.objects) >= min_objects:
                return rng, scene
        raise ValueError(f"no scene with >= {min_objects} objects in 100 draws; lower min_objects")

    @staticmethod
    def _distortion(value) -> np.ndarray:
        try:
            D = np.asarray(list(value), dtype=np.float64)
        except (TypeError, ValueError):
            D = np.empty(0)
        if D.shape != (5,) or not np.isfinite(D).all():
            raise ValueError(f"distortion must be 5 finite numbers (plumb_bob k1 k2 p1 p2 k3), got {value!r}")
        return D

    @staticmethod
    def _lens(K: Intrinsics, D: np.ndarray):
        """(intrinsics to render with, remap tables to the distorted image or None). The pinhole render covers
        everything the lens sees (a barrel lens sees beyond the pinhole image's borders); the tables are built
        once, every frame goes through the same lens."""
        if not D.any():
            return K, None
        model = distortion.PLUMB_BOB
        canvas, width, height = distortion.pinhole_canvas(K.matrix, D, model, K.width, K.height)
        maps = distortion.distortion_maps(K.matrix, D, model, K.width, K.height, canvas)
        return Intrinsics.from_matrix(canvas, width, height), maps

    def camera_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(R_wc, eye) of the next frame: R_wc's columns are the optical frame's axes in the world, so the
        world <- optical transform is (R_wc, eye), and an object at (R, t) in the optical frame is at (R_wc R,
        R_wc t + eye) in the world (writer.object_pose_in_camera inverted)."""
        az = self.azimuth + self.step_rad * self.sent
        eye = self.target + np.array([self.radius * np.cos(az), self.radius * np.sin(az), self.height])
        return look_at(eye, self.target), eye

    def render_next(self) -> tuple[np.ndarray, np.ndarray, list[Detection]]:
        """Render the next viewpoint: (rgb (H, W, 3) uint8, depth (H, W) uint16 mm, ground-truth objects)."""
        R_wc, C = self.camera_pose()
        frame = self.renderer.render(R_wc, C, self.rng, self.cfg.render.image_noise)
        depth_mm = self.depth_sensor(frame, self.rng)
        self.sent += 1
        self.last_pose = (R_wc, C)
        rgb, instance = frame.rgb, frame.instance
        if self.lens_maps is not None:
            rgb = distortion.remap_linear(rgb, self.lens_maps)
            depth_mm = distortion.remap_nearest(depth_mm, self.lens_maps)
            # ids shifted by one: pixels from outside the rendered image come back 0 = -1, "no object"
            instance = distortion.remap_nearest(instance + np.int16(1), self.lens_maps) - np.int16(1)
        return rgb, depth_mm, self.ground_truth(frame, depth_mm, instance)

    def camera_info(self, header: Header) -> CameraInfo:
        info = CameraInfo(
            header=header, width=self.K.width, height=self.K.height, distortion_model="plumb_bob"
        )
        info.k = self.K.matrix.ravel().tolist()
        info.p = [self.K.fx, 0.0, self.K.cx, 0.0, 0.0, self.K.fy, self.K.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        info.r = np.eye(3).ravel().tolist()
        info.d = self.D.tolist()
        return info

    def camera_transform(self, header: Header) -> TransformStamped:
        """world_frame -> optical frame of the last rendered frame, stamped like its images."""
        R_wc, C = self.last_pose
        pose = pose_msg(R_wc, C)
        msg = TransformStamped(child_frame_id=self.frame_id)
        msg.header.stamp, msg.header.frame_id = header.stamp, self.world_frame
        msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (
            pose.position.x, pose.position.y, pose.position.z)
        msg.transform.rotation = pose.orientation
        return msg

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
        if self.tf is not None:
            self.tf.send([self.camera_transform(header)])

    def ground_truth(self, frame, depth_mm: np.ndarray, instance: np.ndarray | None = None
                     ) -> list[Detection]:
        """Every object with at least one visible pixel (of `instance`, the published image's ids; default the
        rendered ones), as a Detection carrying the true pose and metric size."""
        instance = frame.instance if instance is None else instance
        out = []
        for k, obj in enumerate(self.scene.objects):
            pix = instance == k
            if not pix.any():
                continue
            R, t = object_pose_in_camera(obj.R_wo, obj.t_wo, frame.R_wc, frame.C)
            ys, xs = np.nonzero(pix)
            category = obj.shape.category
            out.append(Detection(category=category, category_id=NOCS_CATEGORIES.index(category), score=1.0,
                                 rotation=R, translation=t, size=obj.scale * np.asarray(obj.shape.extents),
                                 mask_bbox=(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())),
                                 num_points=int(np.count_nonzero(pix & (depth_mm > 0))),
                                 symmetric=category in NOCS_SYMMETRIC, track_id=obj.shape.model_id))
        return out


def main(args=None) -> None:
    run_node(SyntheticCamera, args=args)


if __name__ == "__main__":
    main()
