"""CameraInfo -> CameraModel: binning and ROI, rectified images and p, validation, caching, undistortion
(round trips, depth never blended, speed) and what undistortion buys the pose estimate on a wide-angle lens.

Pure: real sensor_msgs/CameraInfo objects, no DDS.
"""

import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from cleanpose_core.geometry import distortion
from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_ros.camera_model import CameraModel, CameraModelCache, CameraModelError, camera_model_from_info

K = [591.0125, 0.0, 322.525, 0.0, 590.16775, 244.11084, 0.0, 0.0, 1.0]
WIDE = [-0.3, 0.1, 0.0, 0.0, 0.0]  # strong barrel distortion, like a wide-angle RGB-D colour camera


def info(k=K, d=(), model="plumb_bob", width=640, height=480, p=None, binning=(0, 0), roi=(0, 0, 0, 0)):
    msg = CameraInfo(width=width, height=height, distortion_model=model, k=list(map(float, k)),
                     d=list(map(float, d)), binning_x=binning[0], binning_y=binning[1])
    if p is not None:
        msg.p = list(map(float, p))
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = roi
    return msg


def test_plain_camera_keeps_k_and_passes_images_through():
    model = camera_model_from_info(info(d=[0.0] * 5), images_rectified=False)
    assert model.intrinsics == Intrinsics(591.0125, 590.16775, 322.525, 244.11084, 640, 480)
    assert not model.needs_undistortion
    rgb, depth = np.zeros((480, 640, 3), np.uint8), np.ones((480, 640), np.float32)
    out = model.undistort(rgb, depth)
    assert out[0] is rgb and out[1] is depth  # nothing copied when nothing is to be done
    assert not camera_model_from_info(info(d=[]), False).needs_undistortion
    # an unknown model is harmless while its coefficients are all zero
    assert not camera_model_from_info(info(d=[0.0] * 3, model="vendor_model"), False).needs_undistortion


@pytest.mark.parametrize("binning,roi,expected", [
    # (fx, fy, cx, cy, width, height) of the image actually received
    ((0, 0), (0, 0, 0, 0), (1000.0, 1100.0, 640.0, 480.0, 1280, 960)),  # 0 = no binning
    ((1, 1), (0, 0, 0, 0), (1000.0, 1100.0, 640.0, 480.0, 1280, 960)),
    ((2, 2), (0, 0, 0, 0), (500.0, 550.0, 320.0, 240.0, 640, 480)),
    ((2, 4), (0, 0, 0, 0), (500.0, 275.0, 320.0, 120.0, 640, 240)),
    ((0, 0), (100, 60, 640, 480), (1000.0, 1100.0, 540.0, 420.0, 640, 480)),
    ((2, 2), (100, 60, 640, 480), (500.0, 550.0, 270.0, 210.0, 320, 240)),  # offset first, then binning
])
def test_binning_and_roi_give_the_intrinsics_of_the_received_image(binning, roi, expected):
    full = [1000.0, 0, 640.0, 0, 1100.0, 480.0, 0, 0, 1]
    model = camera_model_from_info(info(k=full, width=1280, height=960, binning=binning, roi=roi), False)
    K_ = model.intrinsics
    assert (K_.fx, K_.fy, K_.cx, K_.cy, K_.width, K_.height) == pytest.approx(expected)


def test_distortion_follows_binning_and_roi():
    # A 3D point seen by the full-resolution distorted camera, received through an ROI with 2x2 binning: after
    # undistortion it must sit where the model's pinhole intrinsics project it.
    full_K = np.array([[1000.0, 0, 640.0], [0, 1000.0, 480.0], [0, 0, 1]])
    D = np.array(WIDE)
    roi, b = (200, 100, 960, 720), 2
    model = camera_model_from_info(info(k=full_K.ravel(), d=D, width=1280, height=960, binning=(b, b),
                                        roi=roi), False)
    point = np.array([0.45, -0.25, 1.0])  # far off-centre: the lens moves it by ~20 px
    uv_full = cv2.projectPoints(point[None], np.zeros(3), np.zeros(3), full_K, D)[0].ravel()
    uv = (uv_full - roi[:2]) / b  # where the received (ROI, binned) raw image has it
    h, w = model.intrinsics.height, model.intrinsics.width
    ys, xs = np.mgrid[0:h, 0:w]
    blob = np.exp(-((xs - uv[0]) ** 2 + (ys - uv[1]) ** 2) / (2 * 2.0 ** 2)).astype(np.float32)
    rgb = np.repeat((blob * 255).astype(np.uint8)[..., None], 3, axis=2)
    out, _ = model.undistort(rgb, np.zeros((h, w), np.float32))
    weight = out[..., 0].astype(float)
    found = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
    K_ = model.intrinsics
    expected = np.array([K_.fx * point[0] / point[2] + K_.cx, K_.fy * point[1] / point[2] + K_.cy])
    assert np.linalg.norm(found - expected) < 0.3, (found, expected)
    assert np.linalg.norm(uv - expected) > 5  # the point did move: the test sees distortion


def test_rectified_images_use_p_and_are_not_undistorted_again():
    p = [580.0, 0, 320.0, 0, 0, 581.0, 240.0, 0, 0, 0, 1, 0]
    model = camera_model_from_info(info(d=WIDE, p=p), images_rectified=True)
    assert not model.needs_undistortion
    assert (model.intrinsics.fx, model.intrinsics.fy, model.intrinsics.cx, model.intrinsics.cy) == (
        580.0, 581.0, 320.0, 240.0)
    assert "p" in model.describe()
    # p left unset (all zeros) by a driver: k is the best there is
    unset = camera_model_from_info(info(d=WIDE, p=[0.0] * 12), images_rectified=True)
    assert unset.intrinsics.fx == K[0] and not unset.needs_undistortion
    # the same info for raw images: k, and undistortion
    raw = camera_model_from_info(info(d=WIDE, p=p), images_rectified=False)
    assert raw.intrinsics.fx == K[0] and raw.needs_undistortion
    assert raw.distortion_model == "plumb_bob" and raw.D.tolist() == WIDE


@pytest.mark.parametrize("kwargs,match", [
    (dict(k=[np.nan] + K[1:]), "camera_info.k"),
    (dict(k=[0.0] + K[1:]), "camera_info.k"),
    (dict(k=K[:4] + [-5.0] + K[5:]), "camera_info.k"),
    (dict(d=[0.1, np.inf, 0, 0, 0]), "camera_info.d"),
    (dict(d=[-0.2, 0.05, 0, 0, 0], model="kannala_brandt_custom"), "distortion_model"),
    (dict(d=[-0.2, 0.05, 0], model="plumb_bob"), "3"),
    (dict(d=[-0.2, 0.05, 0, 0, 0], model="rational_polynomial"), "rational_polynomial"),
    (dict(d=[-0.2, 0.05, 0, 0, 0], model="equidistant"), "equidistant"),
    (dict(roi=(600, 0, 100, 480)), "camera_info.roi"),
    (dict(roi=(10, 10, 0, 0)), "camera_info.roi"),
    (dict(width=0, height=0), "width/height"),
])
def test_bad_camera_info_is_a_clear_error(kwargs, match):
    with pytest.raises(CameraModelError, match=match):
        camera_model_from_info(info(**kwargs), images_rectified=False)


def test_image_size_is_checked_and_fills_in_missing_width_height():
    with pytest.raises(CameraModelError, match="1280x960"):
        camera_model_from_info(info(), False, image_size=(1280, 960))
    model = camera_model_from_info(info(width=0, height=0), False, image_size=(320, 240))
    assert (model.intrinsics.width, model.intrinsics.height) == (320, 240)


def test_cache_returns_the_same_model_until_a_relevant_field_changes():
    cache = CameraModelCache()
    first = cache.get(info(d=WIDE), False)
    first.undistort(np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640), np.float32))
    maps = first._maps
    again = cache.get(info(d=WIDE), False)  # a new message with the same content, as every frame brings
    assert again is first and again._maps is maps  # undistortion tables built once
    other_p = [500.0, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 0]
    changed = [
        info(d=[-0.29, 0.1, 0, 0, 0]), info(d=WIDE, binning=(2, 2)), info(d=WIDE, roi=(0, 0, 320, 240)),
        info(d=WIDE, p=other_p), info(k=[600.0] + K[1:], d=WIDE)]
    for msg in changed:
        model = cache.get(msg, False)
        assert model is not first
        assert cache.get(msg, False) is model
    assert cache.get(info(d=WIDE), True) is not cache.get(info(d=WIDE), False)
    with pytest.raises(CameraModelError):  # a bad info is never answered with the previous model
        cache.get(info(d=WIDE, model="rational_polynomial"), False)


def _test_image(h=480, w=640):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    pattern = 127 + 60 * np.sin(xs / 9.0) * np.cos(ys / 13.0) + 60 * np.sin((xs + ys) / 31.0)
    rgb = np.stack([pattern, 255 - pattern, np.full_like(pattern, 90)], axis=-1).astype(np.uint8)
    depth = (0.8 + 0.02 * (xs // 16) + 0.1 * (ys > h / 2)).astype(np.float32)  # steps and a depth edge
    return rgb, depth


@pytest.mark.parametrize("model_name,D", [
    ("plumb_bob", WIDE),
    ("rational_polynomial", [-0.3, 0.1, 0.001, -0.001, 0.0, 0.02, 0.0, 0.0]),
    ("equidistant", [0.05, -0.02, 0.01, 0.0]),
])
def test_undistort_inverts_the_lens(model_name, D):
    rgb, depth = _test_image()
    model = camera_model_from_info(info(d=D, model=model_name), False)
    assert model.needs_undistortion
    lens = distortion.distortion_maps(model.intrinsics.matrix, np.array(D), model_name, 640, 480)
    rgb_d, depth_d = distortion.remap_linear(rgb, lens), distortion.remap_nearest(depth, lens)
    rgb_u, depth_u = model.undistort(rgb_d, depth_d)
    inner = (slice(60, -60), slice(80, -80))  # away from the borders: there the lens saw beyond the original
    error = np.abs(rgb_u[inner].astype(int) - rgb[inner].astype(int))
    naive = np.abs(rgb_d[inner].astype(int) - rgb[inner].astype(int))
    assert error.mean() < 2.0 and naive.mean() > 10 * error.mean(), (error.mean(), naive.mean())
    # depth moves by whole pixels, never blended: every value is one of the original ones (or 0 = none)
    assert np.isin(np.unique(depth_u), np.append(np.unique(depth), 0.0)).all()
    same, naive_same = np.mean(depth_u[inner] == depth[inner]), np.mean(depth_d[inner] == depth[inner])
    # the few mismatches sit at the steps, one pixel off
    assert same > 0.9 and naive_same < same - 0.2, (same, naive_same)


def test_undistortion_is_fast():
    rgb, depth = _test_image()
    model = camera_model_from_info(info(d=WIDE), False)
    model.undistort(rgb, depth)  # tables built here, once
    times = []
    for _ in range(20):
        start = time.perf_counter()
        model.undistort(rgb, depth)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 0.010, times  # a couple of ms on one core; generous for a loaded 2-core CI box


def test_wrong_image_size_and_describe():
    model = camera_model_from_info(info(d=WIDE), False)
    with pytest.raises(CameraModelError, match="320x240"):
        model.undistort(np.zeros((240, 320, 3), np.uint8), np.zeros((240, 320), np.float32))
    text = model.describe()
    assert "plumb_bob" in text and "-0.3" in text and "591.013" in text and "undistorting" in text
    assert isinstance(model, CameraModel) and "\n" not in text


# --- what undistortion buys the pose estimate ------------------------------------------------------------

@pytest.fixture(scope="module")
def wide_angle_frame():
    """A synthetic frame from a wide-angle pinhole camera (fx 400 at 640x480, 77 deg across) panned 25 deg off
    the objects, so they sit far from the image centre where a lens distorts most; masks from the renderer."""
    pytest.importorskip("open3d")
    from cleanpose_core.data.synthetic.config import SynthConfig
    from cleanpose_core.data.synthetic.generate import scene_rng
    from cleanpose_core.data.synthetic.render import SceneRenderer
    from cleanpose_core.data.synthetic.scene import compose_scene

    cfg = SynthConfig()
    for seed in range(50):
        rng = scene_rng(seed, "test", 0)
        scene = compose_scene(rng, "test", cfg.scene, cfg.camera, cfg.render, 1)
        if len(scene.objects) >= 3:
            break
    K_ = Intrinsics(400.0, 400.0, 320.0, 240.0, 640, 480)
    R_wc, C = scene.camera_poses[0]
    pan = np.deg2rad(25.0)
    R_pan = np.array([[np.cos(pan), 0, np.sin(pan)], [0, 1, 0], [-np.sin(pan), 0, np.cos(pan)]])
    frame = SceneRenderer(scene, K_, 1, False).render(R_wc @ R_pan, C, rng, 0.0)
    keep = [k for k in range(len(scene.objects)) if (frame.instance == k).sum() >= 200]
    masks = np.stack([frame.instance == k for k in keep])
    return dict(rgb=frame.rgb, depth=frame.depth.astype(np.float32), K=K_, masks=masks,
                labels=[scene.objects[k].shape.category for k in keep])


def test_undistortion_restores_the_pose_a_pinhole_camera_gets(wide_angle_frame):
    from cleanpose_core.geometry.rotations import rotation_error_deg
    from cleanpose_core.inference.estimator import Estimator, EstimatorConfig

    f = wide_angle_frame
    model = camera_model_from_info(info(k=f["K"].matrix.ravel(), d=WIDE), images_rectified=False)
    # What the distorted camera records: the same scene through the lens (masks warped like the images).
    lens = distortion.distortion_maps(f["K"].matrix, np.array(WIDE), "plumb_bob", 640, 480)
    rgb_d, depth_d = distortion.remap_linear(f["rgb"], lens), distortion.remap_nearest(f["depth"], lens)
    masks_d = np.stack([distortion.remap_nearest(m, lens) for m in f["masks"]])
    rgb_u, depth_u = model.undistort(rgb_d, depth_d)
    masks_u = np.stack([model.undistort_nearest(m) for m in masks_d])
    # Box fit: deterministic and model-free; 4096 points per object keep the point sampling's own scatter well
    # below the millimetres compared here.
    estimator = Estimator(EstimatorConfig(pose_backend="box_fit", segmenter="external", n_points=4096))

    def estimate(rgb, depth, masks):
        result = estimator.estimate(rgb, depth, model.intrinsics, "m", masks=masks, labels=f["labels"])
        assert len(result.detections) == len(f["labels"]), result.reason
        return result.detections

    pinhole = estimate(f["rgb"], f["depth"], f["masks"])
    undistorted = estimate(rgb_u, depth_u, masks_u)
    naive = estimate(rgb_d, depth_d, masks_d)  # the lens ignored, as the node did before camera models

    def errors(dets):
        t = [np.linalg.norm(d.translation - p.translation) for d, p in zip(dets, pinhole)]
        r = [rotation_error_deg(d.rotation, p.rotation, p.symmetric) for d, p in zip(dets, pinhole)]
        return np.array(t), np.array(r)

    t_u, r_u = errors(undistorted)
    t_n, r_n = errors(naive)
    # Undistorted: the pinhole camera's poses to within resampling (measured: <= 2.1 mm, <= 0.9 deg).
    assert t_u.max() < 0.006 and r_u.max() < 3.0, (t_u, r_u)
    # Ignoring the lens is biased: objects far off-centre land centimetres off (measured: to 3.8 cm, 5.7 deg).
    assert t_n.max() > 0.02 and t_n.mean() > 5 * t_u.mean(), (t_n, t_u)
    assert r_n.mean() > 2 * r_u.mean(), (r_n, r_u)
