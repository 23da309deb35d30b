"""Per-instance preprocessing (data/instance.py), depth completion, augmentation and the epoch draw."""

import cv2
import numpy as np
import pytest
from data_fixtures import default_objects, render

from cleanpose_core.data.augment import (
    ColorAugmentConfig,
    augment_rgb,
    color_jitter,
    point_noise,
    rgb_add_noise,
)
from cleanpose_core.data.depth_completion import fill_missing, fill_missing_in_columns
from cleanpose_core.data.files import SampleError, decode_depth_mm
from cleanpose_core.data.instance import (IMAGENET_MEAN, IMAGENET_STD, CropWindow, bbox_from_mask, get_bbox,
                                          prepare_instance, remap_choose)
from cleanpose_core.data.sampling import epoch_draw, sample_rng
from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics

K = Intrinsics(*REAL275_INTRINSICS)


# --- crop window --------------------------------------------------------------------------------------------
def test_get_bbox_rounds_up_to_multiple_of_40_and_centres():
    w = get_bbox([200, 300, 260, 340])  # h = 60, w = 40 -> (60 // 40 + 1) * 40 = 80
    assert w == CropWindow(190, 270, 280, 360) and w.side == 80
    assert get_bbox([0, 0, 40, 40]).side == 80  # exactly 40 still rounds up (official // + 1)


def test_get_bbox_caps_at_440_and_shifts_inside_the_image():
    w = get_bbox([0, 0, 470, 630])
    assert w.side == 440 and w.rmin >= 0 and w.rmax <= 480 and w.cmin >= 0 and w.cmax <= 640
    assert (w.rmin, w.cmin) == (15, 95)  # centre (235, 315) - 220
    near_corner = get_bbox([470, 630, 480, 640])  # box in the bottom-right corner
    assert near_corner == CropWindow(440, 480, 600, 640)
    near_origin = get_bbox([0, 0, 5, 5])
    assert near_origin == CropWindow(0, 40, 0, 40)


def test_get_bbox_uses_given_image_bounds_for_housecat6d():
    w = get_bbox([700, 1000, 852, 1096], image_height=852, image_width=1096)
    assert w.side == 160 and w.rmax == 852 and w.cmax == 1096


def test_get_bbox_window_never_exceeds_a_small_image():
    w = get_bbox([0, 0, 90, 90], image_height=64, image_width=100)
    assert w.side == 64 and w.rmin == 0 and w.rmax == 64 and 0 <= w.cmin and w.cmax <= 100


def test_bbox_from_mask_is_tight_with_exclusive_ends():
    m = np.zeros((20, 30), bool)
    m[3:7, 10:12] = True
    assert bbox_from_mask(m) == (3, 10, 7, 12)
    assert bbox_from_mask(np.zeros((4, 4), bool)) is None


# --- choose remap -------------------------------------------------------------------------------------------
def test_remap_choose_matches_the_official_formula():
    side, S = 120, 224
    rows, cols = np.array([0, 5, 119, 60]), np.array([0, 119, 3, 60])
    choose = rows * side + cols
    ratio = S / side
    expected = np.floor(rows * ratio) * S + np.floor(cols * ratio)
    out = remap_choose(choose, side, S)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected.astype(np.int64))
    assert out.max() < S * S and out[0] == 0 and out[-1] == 112 * S + 112


# --- prepare_instance ---------------------------------------------------------------------------------------
def _frame():
    objs = default_objects()
    rgb, depth, ids = render(objs, K.height, K.width)
    return objs, rgb, depth.astype(np.float32), ids


def test_prepare_instance_backprojects_planar_depth_and_choose_points_at_the_source_pixel():
    objs, rgb, depth, ids = _frame()
    camera = objs[1]  # 50 x 80 pixels at 0.6 m, more than N = 1024 -> drawn without replacement
    inst, reason = prepare_instance(rgb, depth, ids == camera.inst_id, K, np.random.default_rng(0),
                                    bbox=camera.bbox, n_points=1024, image_size=224)
    assert reason is None
    assert inst.pts.shape == (1024, 3) and inst.pts.dtype == np.float32
    assert inst.rgb.shape == (3, 224, 224) and inst.rgb.dtype == np.float32
    assert inst.choose.shape == (1024,) and inst.choose.dtype == np.int64
    assert inst.n_valid == 50 * 80 and inst.window == get_bbox(camera.bbox)
    np.testing.assert_allclose(inst.pts[:, 2], 0.6, atol=1e-6)
    u = inst.pts[:, 0] * K.fx / inst.pts[:, 2] + K.cx
    v = inst.pts[:, 1] * K.fy / inst.pts[:, 2] + K.cy
    np.testing.assert_allclose(u, np.round(u), atol=1e-3)  # every point is a pixel centre of the mask
    u, v = np.round(u).astype(int), np.round(v).astype(int)
    assert (ids[v, u] == camera.inst_id).all()
    assert len(set(zip(u.tolist(), v.tolist()))) == 1024  # without replacement
    # The crop colour at `choose` encodes the source pixel (R = u, G = v): same pixel up to the resize.
    crop = (inst.rgb.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255
    picked = crop.reshape(-1, 3)[inst.choose]
    side = inst.window.side
    assert np.abs(picked[:, 0] - u).max() <= side / 224 + 1
    assert np.abs(picked[:, 1] - v).max() <= side / 224 + 1


def test_prepare_instance_rgb_is_bilinear_resize_with_imagenet_normalisation():
    objs, rgb, depth, ids = _frame()
    o = objs[0]
    inst, _ = prepare_instance(rgb, depth, ids == o.inst_id, K, np.random.default_rng(0), bbox=o.bbox,
                               n_points=64, image_size=32)
    w = inst.window
    expected = cv2.resize(rgb[w.rmin:w.rmax, w.cmin:w.cmax], (32, 32), interpolation=cv2.INTER_LINEAR)
    expected = ((expected / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    np.testing.assert_allclose(inst.rgb, expected, atol=1e-5)


def test_prepare_instance_samples_with_replacement_when_few_pixels():
    objs, rgb, depth, ids = _frame()
    mug = objs[2]  # 9 pixels
    inst, reason = prepare_instance(
        rgb, depth, ids == mug.inst_id, K, np.random.default_rng(0), bbox=mug.bbox, n_points=128
    )
    assert reason is None and inst.n_valid == 9 and inst.pts.shape == (128, 3)
    assert len(np.unique(inst.pts, axis=0)) == 9


def test_prepare_instance_is_reproducible_with_the_same_generator():
    objs, rgb, depth, ids = _frame()
    a, _ = prepare_instance(rgb, depth, ids == 2, K, np.random.default_rng(7), n_points=256)
    b, _ = prepare_instance(rgb, depth, ids == 2, K, np.random.default_rng(7), n_points=256)
    np.testing.assert_array_equal(a.choose, b.choose)
    np.testing.assert_array_equal(a.pts, b.pts)


@pytest.mark.parametrize("case, key", [
    ("empty", "empty mask"),
    ("zero_depth", "no valid depth in the mask"),
    ("nan_depth", "no valid depth in the mask"),
    ("few", "too few valid pixels"),
    ("box_misses_mask", "no valid pixels in the crop window"),
    ("shape", "bad input"),
    ("intrinsics", "bad input"),
])
def test_prepare_instance_returns_none_and_a_reason_on_bad_input(case, key):
    objs, rgb, depth, ids = _frame()
    mask, bbox, k, min_valid = ids == 2, None, K, 0
    if case == "empty":
        mask = np.zeros_like(mask)
    elif case == "zero_depth":
        depth = np.zeros_like(depth)
    elif case == "nan_depth":
        depth = np.full_like(depth, np.nan)
    elif case == "few":
        mask, min_valid = ids == 3, 16  # 9 pixels <= 16 (test-time rule)
    elif case == "box_misses_mask":
        bbox = [400, 500, 420, 520]
    elif case == "shape":
        depth = depth[:100]
    elif case == "intrinsics":
        k = Intrinsics(0.0, 500.0, 320.0, 240.0)
    inst, reason = prepare_instance(rgb, depth, mask, k, np.random.default_rng(0), bbox=bbox,
                                    min_valid_pixels=min_valid)
    assert inst is None and reason.split(":")[0] == key, reason


# --- depth files and completion -----------------------------------------------------------------------------
def test_decode_depth_mm_handles_uint16_and_the_3_channel_encoding():
    mm = np.array([[0, 1, 600], [255, 256, 4000]], np.uint16)
    np.testing.assert_array_equal(decode_depth_mm(mm), mm)
    enc = np.zeros((2, 3, 3), np.uint8)
    enc[..., 1], enc[..., 2] = mm // 256, mm % 256
    enc[0, 0, 1], enc[0, 0, 2] = 32001 // 256, 32001 % 256  # "missing"
    out = decode_depth_mm(enc)
    assert out.dtype == np.uint16 and out[0, 0] == 0
    np.testing.assert_array_equal(out.ravel()[1:], mm.ravel()[1:])
    with pytest.raises(SampleError, match="unsupported depth"):
        decode_depth_mm(np.zeros((2, 2), np.float32))


def test_fill_missing_fills_holes_and_keeps_valid_pixels():
    depth = np.full((120, 160), 0.8, np.float32)
    depth[60:, :] = 1.5  # a step: two planes
    holes = np.zeros_like(depth, bool)
    holes[30:36, 40:47] = True  # a hole in the near plane
    holes[90:93, 100:140] = True  # a hole in the far plane
    depth[holes] = 0
    out = fill_missing(depth)
    assert out.dtype == np.float32 and out.shape == depth.shape
    assert (out[holes] > 0).all()
    np.testing.assert_allclose(out[30:36, 40:47], 0.8, atol=1e-5)
    np.testing.assert_allclose(out[90:93, 100:140], 1.5, atol=1e-5)
    # Valid pixels away from the depth step keep their value; at the step the nearer surface grows over the
    # farther one by a few pixels (IP-Basic dilates inverted depth, so near wins) and the bilateral blur mixes
    # the two, never leaving the range of the measured depths.
    away = ~holes
    away[54:66] = False
    np.testing.assert_allclose(out[away], depth[away], atol=1e-5)
    assert np.allclose(out[54:60], 0.8, atol=1e-5) and (out[60:66] <= 1.5 + 1e-5).all()
    assert (out[54:66] >= 0.8 - 1e-5).all()
    # No extrapolation to the top of the image: only the first 7x7 dilation reaches 3 rows above the top
    # measurement; the hole filling itself stops at each column's first valid pixel.
    top = np.zeros_like(depth)
    top[50:, :] = 1.0
    assert (fill_missing(top)[:47] == 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_filling_a_column_band_equals_filling_the_whole_frame_there(seed):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:240, 0:320]
    depth = (0.6 + 0.004 * rows + 0.3 * np.sin(cols / 17.0) + rng.normal(0, 0.003, rows.shape)).astype(
        np.float32
    )
    depth[rng.uniform(size=depth.shape) < 0.05] = 0  # speckle
    for _ in range(12):  # holes from pixels to tens of pixels, a few columns empty from the top
        r, c = rng.integers(0, 240), rng.integers(0, 320)
        depth[r:r + rng.integers(2, 40), c:c + rng.integers(2, 40)] = 0
    depth[:rng.integers(20, 120), rng.integers(0, 300):][:, :15] = 0
    depth[rng.uniform(size=depth.shape) < 0.01] = np.nan
    whole = fill_missing(depth)
    c0 = int(rng.integers(0, 200))
    c1 = int(c0 + rng.integers(1, 120))
    band = fill_missing_in_columns(depth, c0, c1)
    np.testing.assert_array_equal(band[:, c0:c1], whole[:, c0:c1])
    outside = np.ones(320, bool)
    outside[c0:c1] = False
    np.testing.assert_array_equal(band[:, outside], np.nan_to_num(depth[:, outside], nan=0.0))
    np.testing.assert_array_equal(fill_missing_in_columns(depth, 0, 320), whole)


def test_fill_missing_drops_depth_beyond_max_and_survives_all_zero_and_nan():
    d = np.full((40, 40), 3.5, np.float32)
    assert (fill_missing(d) == 0).all()
    assert (fill_missing(np.zeros((40, 40), np.float32)) == 0).all()
    assert (fill_missing(np.full((40, 40), np.nan, np.float32)) == 0).all()


# --- augmentation -------------------------------------------------------------------------------------------
def test_colour_augmentation_is_reproducible_and_changes_the_image():
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cfg = ColorAugmentConfig()
    a = augment_rgb(img, np.random.default_rng(3), cfg)
    b = augment_rgb(img, np.random.default_rng(3), cfg)
    c = augment_rgb(img, np.random.default_rng(4), cfg)
    assert a.dtype == np.uint8 and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, img)
    assert augment_rgb(img, np.random.default_rng(3), ColorAugmentConfig(enabled=False)) is img


def test_color_jitter_with_zero_strength_is_identity_and_rgb_add_noise_brightens_on_average():
    img = np.random.default_rng(1).integers(40, 200, (32, 32, 3), dtype=np.uint8)
    same = color_jitter(img, np.random.default_rng(0), 0.0, 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(same, img)
    # HSV value x U(1.15, 1.35) always: the mean brightness goes up.
    means = [rgb_add_noise(img, np.random.default_rng(s)).mean() for s in range(8)]
    assert np.mean(means) > img.mean() + 10


def test_point_noise_is_clipped_at_5_mm():
    n = point_noise(20000, np.random.default_rng(0))
    assert n.shape == (20000, 3) and n.dtype == np.float32
    assert np.abs(n).max() <= 0.005 and 0.0008 < n.std() < 0.0012


# --- epoch draw / per-sample generators ---------------------------------------------------------------------
def test_epoch_draw_is_a_function_of_seed_and_epoch():
    a = epoch_draw(100, 40, seed=3, epoch=2)
    np.testing.assert_array_equal(a, epoch_draw(100, 40, seed=3, epoch=2))
    assert not np.array_equal(a, epoch_draw(100, 40, seed=3, epoch=3))
    assert not np.array_equal(a, epoch_draw(100, 40, seed=4, epoch=2))
    assert len(np.unique(a)) == 40  # more images than draws: without replacement (official CAMERA)
    b = epoch_draw(10, 40, seed=3, epoch=0)  # fewer images than draws: with replacement (official REAL)
    assert b.shape == (40,) and set(b.tolist()) <= set(range(10)) and len(np.unique(b)) < 40
    c = epoch_draw(10, -1, seed=3, epoch=0)
    assert sorted(c.tolist()) == list(range(10))
    with pytest.raises(ValueError):
        epoch_draw(10, 0, 0, 0)


def test_sample_rng_streams_differ_by_index_and_attempt():
    draws = {(i, a): sample_rng(1, 0, i, a).integers(1 << 30) for i in range(3) for a in range(3)}
    assert len(set(draws.values())) == 9
    assert sample_rng(1, 0, 2, 1).integers(1 << 30) == draws[(2, 1)]
