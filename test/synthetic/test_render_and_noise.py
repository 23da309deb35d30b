"""Renderer and depth-noise model on hand-built scenes: depth is metric z, handle visibility, noise
effects."""

import numpy as np
import pytest

from cleanpose_core.data.synthetic.config import NoiseConfig
from cleanpose_core.data.synthetic.noise import depth_to_sensor_mm
from cleanpose_core.data.synthetic.render import SceneRenderer
from cleanpose_core.data.synthetic.scene import _UPRIGHT, Lighting, Scene, SceneObject, look_at, make_material
from cleanpose_core.data.synthetic.shapes import make_instance
from cleanpose_core.data.synthetic.writer import build_labels, decode_nocs, encode_nocs
from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics

K = Intrinsics(*REAL275_INTRINSICS)


def _mug_scene() -> Scene:
    shape = make_instance("mug", 2)
    scale = 0.15
    t = np.array([0.0, 0.0, -(scale * shape.mesh.vertices @ _UPRIGHT.T)[:, 2].min()])
    mug = SceneObject(shape, scale, _UPRIGHT.copy(), t, make_material("mug", np.random.default_rng(0)))
    light = Lighting(
        np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93]), np.ones(3), np.full(3, 0.3)
    )
    return Scene([mug], [], 2, np.full((2, 3), 0.5), 4.0, (1.6, 1.2), np.full(3, 0.7), light, [])


@pytest.mark.parametrize("side, visible", [(1.0, 1), (-1.0, 0)])
def test_mug_handle_visibility_follows_the_rendered_handle_pixels(side, visible):
    scene = _mug_scene()
    # World +x is the mug's handle side (upright pose with no yaw); look from that side or the opposite one.
    eye = np.array([side * 0.6, 0.0, 0.12])
    R_wc = look_at(eye, np.array([0.0, 0.0, 0.07]))
    frame = SceneRenderer(scene, K, threads=1).render(R_wc, eye, np.random.default_rng(0), image_noise=0.0)
    depth_mm = depth_to_sensor_mm(
        frame.depth,
        frame.cos_incidence,
        frame.albedo_luma,
        NoiseConfig(enabled=False),
        np.random.default_rng(0),
    )
    meta, label = build_labels(scene, frame, depth_mm, 64, 16)
    assert meta == ["1 6 mug_0002"]
    assert label["handle_visibility"].tolist() == [visible]


def test_rendered_depth_is_the_metric_z_of_the_surface():
    scene = _mug_scene()
    eye = np.array([0.0, 0.0, 0.8])  # straight down onto the table (roll-free look-at needs a tiny offset)
    R_wc = look_at(eye, np.array([1e-3, 0.3, 0.0]))
    frame = SceneRenderer(scene, K, threads=1).render(R_wc, eye, np.random.default_rng(0))
    table = (frame.instance < 0) & (frame.depth > 0)
    v, u = np.nonzero(table)
    # Back-project and map to the world: table pixels must lie on the plane z = 0.
    z = frame.depth[v, u]
    p_c = np.stack([(u - K.cx) * z / K.fx, (v - K.cy) * z / K.fy, z], 1)
    p_w = p_c @ R_wc.T + eye
    on_top = (np.abs(p_w[:, 0]) < 0.75) & (np.abs(p_w[:, 1]) < 0.55)  # inside the 1.6 x 1.2 m table top
    assert on_top.sum() > 10000
    assert np.abs(p_w[on_top, 2]).max() < 1e-4
    # And NOCS values on the mug are inside the unit box and survive the PNG encoding.
    on = frame.instance == 0
    decoded = decode_nocs(encode_nocs(frame.nocs, on))
    assert np.abs(decoded[on] - frame.nocs[on]).max() <= 0.5 / 255 + 1e-6


def test_noise_off_only_quantises_to_millimetres():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.3, 2.0, (48, 64)).astype(np.float32)
    out = depth_to_sensor_mm(
        depth, np.ones_like(depth), np.full_like(depth, 0.5), NoiseConfig(enabled=False), rng
    )
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, np.rint(depth * 1000).astype(np.uint16))


def test_noise_drops_dark_grazing_and_edge_pixels_and_grows_with_distance():
    rng = np.random.default_rng(0)
    cfg = NoiseConfig(speckle=0.0)
    h, w = 200, 200
    depth = np.full((h, w), 0.8, np.float32)
    depth[:, 100:] = 1.6  # a step edge at column 100
    cos = np.ones((h, w), np.float32)
    cos[:50] = 0.05  # grazing band
    luma = np.full((h, w), 0.5, np.float32)
    luma[50:100] = 0.0  # black band
    out = depth_to_sensor_mm(depth, cos, luma, cfg, rng)
    missing = out == 0
    assert missing[:50].mean() > 0.7  # grazing
    assert missing[50:100, :90].mean() > 0.5  # dark
    assert missing[100:, 99:101].mean() > 0.3  # edge
    clean = missing[100:, 10:90].mean()
    assert clean < 0.01  # bright, frontal, flat: almost no holes
    near = out[100:, 10:90].astype(float)
    far = out[100:, 110:190].astype(float)
    assert 0.5 < near.std() < far.std() < 10.0  # millimetres; sigma grows with z
    assert abs(near.mean() - 800) < 1 and abs(far[far > 0].mean() - 1600) < 1.5
