"""The synthetic camera's lens and pose: `distortion` makes it a distorted camera that its own CameraInfo
undoes, and /tf carries world -> optical frame so that the ground-truth poses compose to the world poses.

In-process nodes for the image maths (real rclpy, nothing spun); one camera process over DDS for the wiring.
"""

import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from cleanpose_ros.camera_model import camera_model_from_info
from cleanpose_ros.image_conversion import image_to_numpy
from cleanpose_ros.tf_publisher import TF_QOS
from node_process import start_process

pytest.importorskip("open3d")
from cleanpose_ros.synthetic_camera import SENSOR_QOS, SyntheticCamera  # noqa: E402 (needs the renderer)

WIDE = [-0.3, 0.1, 0.0, 0.0, 0.0]
D435_K = [610.30, 0.0, 323.51, 0.0, 610.30, 240.51, 0.0, 0.0, 1.0]  # the d435 preset's colour camera, 640x480


@pytest.fixture
def clean_config(tmp_path):
    """Exact depth and colour: lets images of two cameras be compared pixel by pixel."""
    path = tmp_path / "clean.yaml"
    path.write_text("noise: {enabled: false}\nrender: {image_noise: 0.0, threads: 1}\n")
    return str(path)


def camera(context, **params) -> SyntheticCamera:
    return SyntheticCamera(
        context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )


def spin_until(done, executor, proc, node, tmp_path, timeout: float = 90.0) -> None:
    """Spin the test node until `done()` or `timeout` s (failing if the camera process died), then stop the
    camera process and the node."""
    try:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            assert proc.poll() is None, (tmp_path / "camera.log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        node.destroy_node()


def test_distorted_camera_is_undone_by_its_own_camera_info(ros_context, clean_config):
    # ints too
    pinhole = camera(ros_context, motion="static", config=clean_config, distortion=[0, 0, 0, 0, 0])
    lens = camera(ros_context, motion="static", config=clean_config, distortion=WIDE)
    try:
        rgb_p, depth_p, truth_p = pinhole.render_next()
        rgb_d, depth_d, truth_d = lens.render_next()
        info = lens.camera_info(Header())
        assert list(info.d) == WIDE and info.distortion_model == "plumb_bob"
        assert list(pinhole.camera_info(Header()).d) == [0.0] * 5
        assert list(info.k) == list(pinhole.camera_info(Header()).k)
        # The lens sees beyond the pinhole image's borders: its corners are rendered, not left empty.
        assert (depth_d[:4, :4] > 0).all() and (depth_d[-4:, -4:] > 0).all()
        rgb_u, depth_u = camera_model_from_info(info, images_rectified=False).undistort(rgb_d, depth_d)
        inner = (slice(20, -20), slice(20, -20))
        close = lambda depth: np.mean(np.abs(depth[inner].astype(int) - depth_p[inner].astype(int)) <= 5)  # noqa
        # measured: 99.9 % of pixels within 5 mm after undistortion (the rest at edges), 68 % without
        assert close(depth_u) > 0.99 and close(depth_d) < 0.9, (close(depth_u), close(depth_d))
        assert np.abs(rgb_u[inner].astype(int) - rgb_p[inner]).mean() < 1.5
        # Same optical frame, same true poses; only the image-space boxes move with the lens.
        assert [d.track_id for d in truth_d] == [d.track_id for d in truth_p]
        for a, b in zip(truth_d, truth_p):
            np.testing.assert_allclose(a.rotation, b.rotation)
            np.testing.assert_allclose(a.translation, b.translation)
        assert any(a.mask_bbox != b.mask_bbox for a, b in zip(truth_d, truth_p))
    finally:
        pinhole.destroy_node()
        lens.destroy_node()


def test_camera_transform_composed_with_ground_truth_gives_world_poses(ros_context):
    cam = camera(ros_context, motion="orbit", orbit_deg_per_frame=20.0, world_frame="map")
    try:
        world = {o.shape.model_id: o for o in cam.scene.objects}
        for _ in range(2):  # two viewpoints of the orbit: the camera pose has to follow
            _, _, truth = cam.render_next()
            tf = cam.camera_transform(Header(frame_id=cam.frame_id))
            assert (tf.header.frame_id, tf.child_frame_id) == ("map", "camera_color_optical_frame")
            q, t = tf.transform.rotation, tf.transform.translation
            R_wc = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
            C = np.array([t.x, t.y, t.z])
            assert truth
            for det in truth:
                obj = world[det.track_id]
                np.testing.assert_allclose(R_wc @ det.rotation, obj.R_wo, atol=1e-6)
                np.testing.assert_allclose(R_wc @ det.translation + C, obj.t_wo, atol=1e-6)
    finally:
        cam.destroy_node()


@pytest.mark.parametrize("value", [[0.1, 0.0, 0.0, 0.0], [float("nan")] + [0.0] * 4, "abc"])
def test_bad_distortion_parameter_is_a_configuration_error(ros_context, value):
    with pytest.raises(ValueError, match="distortion"):
        camera(ros_context, distortion=value)


def test_publish_tf_can_be_switched_off(ros_context):
    cam = camera(ros_context, publish_tf=False)
    try:
        assert cam.tf is None
    finally:
        cam.destroy_node()


@pytest.mark.ros
def test_camera_publishes_its_pose_on_tf_and_its_distortion_over_dds(ros_context, unique_topic, tmp_path):
    # Unique frame names: other tests' nodes may publish on the global /tf at the same time.
    frame, world = f"{unique_topic[1:]}_optical", f"{unique_topic[1:]}_world"
    proc = start_process("cleanpose_ros.synthetic_camera", unique_topic, "rate:=5.0", "motion:=orbit",
                         f"frame_id:={frame}", f"world_frame:={world}", f"distortion:={WIDE}",
                         log_path=tmp_path / "camera.log")
    node = rclpy.create_node("synthetic_camera_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    stamp = lambda header: (header.stamp.sec, header.stamp.nanosec)  # noqa: E731
    infos, images, tfs = [], {}, {}
    node.create_subscription(CameraInfo, f"{unique_topic}/color/camera_info", infos.append, SENSOR_QOS)
    node.create_subscription(Image, f"{unique_topic}/color/image_raw",
                             lambda m: images.__setitem__(stamp(m.header), m.header.frame_id), SENSOR_QOS)

    def on_tf(msg):
        for t in msg.transforms:
            if t.child_frame_id == frame:
                tfs[stamp(t.header)] = t

    node.create_subscription(TFMessage, "/tf", on_tf, TF_QOS)
    spin_until(lambda: infos and len(set(images) & set(tfs)) >= 2, executor, proc, node, tmp_path)
    both = sorted(set(images) & set(tfs))
    assert infos and len(both) >= 2, (len(infos), sorted(images), sorted(tfs),
                                      (tmp_path / "camera.log").read_text()[-3000:])
    assert list(infos[-1].d) == WIDE and infos[-1].distortion_model == "plumb_bob"
    for key in both:  # each frame's camera pose, stamped like its images, world -> the images' frame
        tf = tfs[key]
        assert tf.header.frame_id == world and images[key] == frame
        q = tf.transform.rotation
        assert np.linalg.norm([q.x, q.y, q.z, q.w]) == pytest.approx(1.0)
    first, last = tfs[both[0]].transform.translation, tfs[both[-1]].transform.translation
    assert (first.x, first.y) != (last.x, last.y)  # orbit: the published pose moves with the camera


def test_stereo_d435_depth_has_holes_where_the_ideal_depth_has_none(ros_context):
    # The same scene and viewpoint (same seed, static camera) with the same d435 intrinsics, two depth models.
    ideal = camera(ros_context, motion="static", depth_model="ideal", camera="d435")
    stereo = camera(ros_context, motion="static", depth_model="stereo", camera="d435")
    try:
        for cam in (ideal, stereo):
            info = cam.camera_info(Header())
            assert list(info.k) == pytest.approx(D435_K) and (info.width, info.height) == (640, 480)
        _, depth_i, truth_i = ideal.render_next()
        _, depth_s, truth_s = stereo.render_next()
        assert depth_s.shape == depth_i.shape == (480, 640)
        assert [d.track_id for d in truth_s] == [d.track_id for d in truth_i]
        holes = (depth_s == 0) & (depth_i > 0)
        both = (depth_s > 0) & (depth_i > 0)
        # measured: 2.6 % holes (occlusion shadows, edges), the valid rest within a few mm of the true depth
        assert (depth_i == 0).mean() < 0.001 and holes.mean() > 0.005, (holes.mean(), (depth_i == 0).mean())
        assert both.mean() > 0.8
        assert np.median(np.abs(depth_s[both].astype(int) - depth_i[both])) < 10
    finally:
        ideal.destroy_node()
        stereo.destroy_node()


def test_camera_preset_sets_image_size_and_camera_info(ros_context):
    cam = camera(ros_context, camera="azure_720p")
    try:
        info = cam.camera_info(Header())
        assert (info.width, info.height) == (1280, 720)
        assert list(info.k) == pytest.approx([612.95, 0.0, 635.38, 0.0, 612.92, 367.84, 0.0, 0.0, 1.0])
        assert cam.cfg.depth_model == "noisy"  # the default
    finally:
        cam.destroy_node()


@pytest.mark.parametrize("params, match", [
    ({"depth_model": "stereo"}, "depth_model 'stereo' and camera 'real275'"),  # real275 has no stereo head
    ({"depth_model": "stereo", "camera": "azure_720p"}, "stereo"),
    ({"depth_model": "lidar"}, "parameter depth_model must be one of"),
    ({"camera": "kinect"}, "parameter camera must be one of"),
])
def test_bad_depth_model_or_camera_is_a_configuration_error(ros_context, params, match):
    with pytest.raises(ValueError, match=match):
        camera(ros_context, **params)


@pytest.mark.ros
def test_stereo_d435_frame_over_dds_has_its_intrinsics_and_holes(ros_context, unique_topic, tmp_path):
    proc = start_process("cleanpose_ros.synthetic_camera", unique_topic, "rate:=2.0", "motion:=static",
                         "depth_model:=stereo", "camera:=d435", log_path=tmp_path / "camera.log")
    node = rclpy.create_node("synthetic_camera_stereo_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    infos, depths = [], []
    node.create_subscription(CameraInfo, f"{unique_topic}/color/camera_info", infos.append, SENSOR_QOS)
    node.create_subscription(Image, f"{unique_topic}/aligned_depth_to_color/image_raw", depths.append,
                             SENSOR_QOS)
    spin_until(lambda: infos and depths, executor, proc, node, tmp_path)
    assert infos and depths, (len(infos), len(depths), (tmp_path / "camera.log").read_text()[-3000:])
    info, msg = infos[-1], depths[-1]
    assert list(info.k) == pytest.approx(D435_K) and (info.width, info.height) == (640, 480)
    assert msg.encoding == "16UC1" and (msg.width, msg.height) == (640, 480)
    depth = image_to_numpy(msg)
    # invalid pixels are published as 0 (REP 118 for 16UC1); most of the image is valid
    assert 0 < np.count_nonzero(depth == 0) < 0.5 * depth.size
