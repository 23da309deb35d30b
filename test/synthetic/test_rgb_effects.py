"""RGB sensor and scene effects (`rgb_effects`, `cleanpose synth --rgb-effects`): off by default and then the
colour images are the engine's before them; on, deterministic per seed, and each effect does what it says."""

import argparse
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
import yaml

from cleanpose_core.config import ConfigError, from_dict
from cleanpose_core.data.synthetic import cli
from cleanpose_core.data.synthetic.config import RGBEffectsConfig, SynthConfig
from cleanpose_core.data.synthetic.generate import effects_off_colour, generate_split
from cleanpose_core.data.synthetic.render import SceneRenderer
from cleanpose_core.data.synthetic.rgb_sensor import (
    SensorDraw,
    apply_sensor,
    disc_kernel,
    draw_sensor,
    motion_kernel,
)
from cleanpose_core.data.synthetic.scene import TABLE_PLAIN, Distractor, Lighting, Scene
from cleanpose_core.data.synthetic.scene_effects import (
    TEXTURE_KINDS,
    SceneLook,
    Texture,
    kelvin_to_rgb,
    make_texture_weight,
)
from cleanpose_core.geometry.camera import Intrinsics

DOWN = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # optical frame looking straight down
K_TINY = Intrinsics(80.0, 80.0, 40.0, 30.0, 80, 60)


def _tiny(cfg: SynthConfig | None = None) -> SynthConfig:
    """conftest's small_config (or its equivalent) at 160 x 120 pixels with 4 shapes per category."""
    if cfg is None:
        cfg = SynthConfig()
        cfg.frames_per_scene, cfg.scene.objects, cfg.render.threads = 2, (3, 6), 1
    cfg.camera.intrinsics, cfg.camera.width, cfg.camera.height = (148.0, 148.0, 80.0, 60.0), 160, 120
    cfg.scene.pool_size = 4
    return cfg


def _files(root: Path, suffix: str) -> list[bytes]:
    paths = sorted(root.glob(f"train/*/*{suffix}"))
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED).tobytes() for p in paths]


def test_effects_off_colour_is_bit_identical_to_the_engine_before_effects(tmp_path, small_config):
    assert SynthConfig().rgb_effects is False  # the default
    cfg = _tiny(small_config())
    generate_split(tmp_path, "train", 2, seed=3, cfg=cfg, progress=False, contact_sheet_rows=0)
    h = hashlib.sha256()
    for data in _files(tmp_path, "_color.png"):
        h.update(data)
    # Written by the code before the effects existed (same machine type as CI; Embree's float results could
    # differ on another CPU family).
    assert h.hexdigest() == "1e737191bef74825647f986671bc5cfec5db5dae4fae8b878c140a373493a888"
    # ... and equal to a render that bypasses the effects stage.
    written = cv2.imread(str(tmp_path / "train/scene_0002/0000_color.png"))[:, :, ::-1]
    np.testing.assert_array_equal(written, effects_off_colour("train", 1, 0, 3, cfg))


@pytest.fixture(scope="module")
def effect_splits(tmp_path_factory):
    """The same one-scene split (ideal depth) with the effects off, on, and on again."""
    roots = {}
    for name, on in (("off", False), ("on", True), ("again", True)):
        cfg = _tiny()
        cfg.depth_model, cfg.rgb_effects = "ideal", on
        roots[name] = tmp_path_factory.mktemp(f"fx_{name}")
        generate_split(roots[name], "train", 1, seed=3, cfg=cfg, progress=False,
                       contact_sheet_rows=1 if name == "on" else 0)
    return roots


def test_effects_change_only_the_colour_and_are_deterministic_per_seed(effect_splits):
    off, on, again = (effect_splits[k] for k in ("off", "on", "again"))
    assert _files(on, "_color.png") == _files(again, "_color.png")
    for a, b in zip(_files(on, "_color.png"), _files(off, "_color.png")):
        assert a != b
    for suffix in ("_depth.png", "_mask.png", "_coord.png", "_meta.txt"):  # scene, views and labels unchanged
        assert sorted(p.read_bytes() for p in off.glob(f"train/*/*{suffix}")) == \
            sorted(p.read_bytes() for p in on.glob(f"train/*/*{suffix}"))
    sheet = cv2.imread(str(on / "contact_sheet_train.png"))
    assert sheet.shape[1] == 5 * 320  # colour, colour with the effects off, depth, mask, NOCS


def _flat(value: float, shape=(48, 64)) -> np.ndarray:
    return np.full(shape + (3,), value, np.float32)


def _checker(cells: int = 8, size: int = 64) -> np.ndarray:
    u = np.arange(size) * cells // size
    return np.repeat(((u[:, None] + u[None, :]) % 2).astype(np.float32)[:, :, None] * 0.6 + 0.1, 3, axis=2)


def _laplacian_var(rgb: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_sensor_is_deterministic_per_seed_and_draws_within_the_ranges():
    cfg = RGBEffectsConfig()
    img = _checker()
    out = [apply_sensor(img, draw_sensor(cfg, rng), rng) for rng in map(np.random.default_rng, (5, 5, 6))]
    assert np.array_equal(out[0], out[1]) and not np.array_equal(out[0], out[2])
    draws = [draw_sensor(cfg, np.random.default_rng(s)) for s in range(200)]
    assert all(cfg.gamma[0] <= d.gamma <= cfg.gamma[1] for d in draws)
    assert all(d.jpeg_quality is None or cfg.jpeg_quality[0] <= d.jpeg_quality <= cfg.jpeg_quality[1]
               for d in draws)
    assert 0.1 < np.mean([d.motion_px > 0 for d in draws]) < 0.4  # motion_blur_prob 0.25
    never = RGBEffectsConfig(motion_blur_prob=0.0, defocus_prob=0.0, jpeg_prob=0.0)
    d = draw_sensor(never, np.random.default_rng(0))
    assert d.motion_px == 0 and d.defocus_px == 0 and d.jpeg_quality is None


def test_exposure_scales_the_mean():
    img = _checker() * 0.5
    base = apply_sensor(img, SensorDraw(gamma=1.0), np.random.default_rng(0)).astype(float)
    double = apply_sensor(img, SensorDraw(gamma=1.0, exposure=2.0), np.random.default_rng(0)).astype(float)
    assert double.mean() / base.mean() == pytest.approx(2.0, rel=0.02)
    # Auto exposure meters the mean linear luminance to its target, whatever the scene's brightness.
    for level in (0.1, 0.6):
        out = apply_sensor(_flat(level), SensorDraw(gamma=1.0, ae_mean=0.25), np.random.default_rng(0))
        assert out.mean() / 255 == pytest.approx(0.25, abs=0.01)


def test_white_balance_changes_channel_ratios():
    img = _flat(0.3) * np.array([1.0, 0.8, 0.5], np.float32)  # a warm cast
    plain = apply_sensor(img, SensorDraw(gamma=1.0), np.random.default_rng(0)).reshape(-1, 3).mean(0)
    gains = SensorDraw(gamma=1.0, wb_gains=np.array([0.8, 1.0, 1.25], np.float32))
    tuned = apply_sensor(img, gains, np.random.default_rng(0)).reshape(-1, 3).mean(0)
    assert tuned[0] / tuned[1] < 0.85 * plain[0] / plain[1]
    assert tuned[2] / tuned[1] > 1.2 * plain[2] / plain[1]
    # Full grey-world white balance removes the cast, half of it only part of it.
    full = apply_sensor(img, SensorDraw(gamma=1.0, awb_strength=1.0), np.random.default_rng(0)).reshape(-1, 3)
    assert np.ptp(full.mean(0)) <= 1.0
    half = apply_sensor(img, SensorDraw(gamma=1.0, awb_strength=0.5), np.random.default_rng(0)).reshape(-1, 3)
    assert half.mean(0)[0] / half.mean(0)[2] == pytest.approx(np.sqrt(2), abs=0.05)  # R/B: 2 -> 2 * 0.5^0.5


def test_gamma_brightens_mid_tones_with_a_larger_exponent():
    low, high = (apply_sensor(_flat(0.2), SensorDraw(gamma=g), np.random.default_rng(0)).mean()
                 for g in (1.9, 2.5))
    assert high > low
    assert low == pytest.approx(255 * 0.2 ** (1 / 1.9), abs=1.0)


def test_shot_noise_grows_with_the_signal_and_read_noise_is_everywhere():
    dark, bright = _flat(0.05, (64, 64)), _flat(0.5, (64, 64))
    shot = SensorDraw(gamma=1.0, shot=1e-3)
    s_dark = apply_sensor(dark, shot, np.random.default_rng(0)).astype(float).std()
    s_bright = apply_sensor(bright, shot, np.random.default_rng(0)).astype(float).std()
    # Poissonian: the standard deviation grows with the square root of the signal (sqrt(10) here).
    assert s_bright / s_dark == pytest.approx(np.sqrt(10), rel=0.15)
    black = apply_sensor(_flat(0.0, (64, 64)), SensorDraw(gamma=1.0, shot=1e-3), np.random.default_rng(0))
    assert black.std() == 0  # no signal, no shot noise
    read = apply_sensor(_flat(0.1, (64, 64)), SensorDraw(gamma=1.0, read=0.01), np.random.default_rng(0))
    assert read.astype(float).std() == pytest.approx(0.01 * 255, rel=0.15)


def test_blur_lowers_the_laplacian_variance_and_motion_blur_follows_its_direction():
    img = _checker()
    sharp = _laplacian_var(apply_sensor(img, SensorDraw(), np.random.default_rng(0)))
    motion = _laplacian_var(apply_sensor(img, SensorDraw(motion_px=9.0), np.random.default_rng(0)))
    defocus = _laplacian_var(apply_sensor(img, SensorDraw(defocus_px=2.5), np.random.default_rng(0)))
    assert motion < 0.6 * sharp and defocus < 0.6 * sharp
    # Horizontal motion smears vertical stripes and leaves horizontal ones sharp.
    stripes = np.zeros((64, 64, 3), np.float32)
    stripes[:, ::8] = stripes[:, 1::8] = 0.8
    along = SensorDraw(motion_px=9.0, motion_angle=0.0)
    assert _laplacian_var(apply_sensor(stripes, along, np.random.default_rng(0))) < \
        0.3 * _laplacian_var(apply_sensor(stripes, SensorDraw(), np.random.default_rng(0)))
    across = apply_sensor(np.ascontiguousarray(stripes.transpose(1, 0, 2)), along, np.random.default_rng(0))
    np.testing.assert_array_equal(across, apply_sensor(np.ascontiguousarray(stripes.transpose(1, 0, 2)),
                                                       SensorDraw(), np.random.default_rng(0)))
    for kernel in (motion_kernel(7.3, 0.7), disc_kernel(2.5)):
        assert kernel.sum() == pytest.approx(1.0, abs=1e-6) and kernel.min() >= 0
    disc = disc_kernel(2.5)
    assert disc.shape == (7, 7) and disc[3, 0] == 0 < disc[3, 1]  # a 2.5 px disc does not reach 3 px


def test_jpeg_at_low_quality_changes_more_pixels_than_at_high_quality():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((64, 64, 3)).astype(np.float32), (5, 5), 1.5) * 0.8
    plain = apply_sensor(img, SensorDraw(), np.random.default_rng(0)).astype(float)
    err = {q: np.abs(apply_sensor(img, SensorDraw(jpeg_quality=q), np.random.default_rng(0)) - plain).mean()
           for q in (20, 95)}
    assert err[20] > 2 * err[95] and err[20] > 1.0


def test_colour_temperature_2000_k_is_redder_than_10000_k():
    warm, cool = kelvin_to_rgb(2000.0), kelvin_to_rgb(10000.0)
    assert warm[0] / warm[2] > 10 * cool[0] / cool[2]
    assert cool[2] > cool[0]  # daylight above 6600 K is bluish
    for t in (2000.0, 4000.0, 6500.0, 10000.0):
        assert kelvin_to_rgb(t) @ np.array([0.2126, 0.7152, 0.0722]) == pytest.approx(1.0)  # tint, not level
    white = kelvin_to_rgb(6600.0)
    assert np.ptp(white) < 0.05  # the fit's white point
    # Through the renderer: a grey table lit by a 2000 K light is redder than under a 10000 K one.
    scene = _grey_scene()
    ratio = {}
    for t in (2000.0, 10000.0):
        look = SceneLook([Lighting(np.array([0.0, 0.0, 1.0]), kelvin_to_rgb(t), np.zeros(3))], np.zeros(3),
                         [None], None, None)
        rgb = SceneRenderer(scene, K_TINY, threads=1, shadows=False, look=look).render(
            DOWN, np.array([0.0, 0.0, 0.7]), np.random.default_rng(0), 0.0).rgb.reshape(-1, 3).astype(float)
        ratio[t] = rgb[:, 0].mean() / max(rgb[:, 2].mean(), 1.0)
    assert ratio[2000.0] > 3 * ratio[10000.0]


def _grey_scene() -> Scene:
    box = trimesh.creation.box(extents=[0.2, 0.2, 0.1])
    box.apply_translation([0.0, 0.0, 0.05])
    light = Lighting(np.array([0.0, 0.0, 1.0]), np.ones(3), np.full(3, 0.3))
    return Scene([], [Distractor(box, np.full(3, 0.4))], TABLE_PLAIN, np.full((2, 3), 0.4), 4.0, (4.0, 4.0),
                 np.full(3, 0.7), light, [])


def test_textures_are_tileable_and_show_on_distractors_and_background():
    for kind in TEXTURE_KINDS:
        w = make_texture_weight(kind, np.random.default_rng(1), size=64)
        assert w.dtype == np.float32 and w.min() >= 0 and w.max() <= 1 and w.std() > 0.05, kind
        # Tileable: the wrap-around step is no larger than the steps inside the texture.
        inner = max(np.abs(np.diff(w, axis=1)).max(), np.abs(np.diff(w, axis=0)).max())
        assert np.abs(w[:, 0] - w[:, -1]).max() <= inner + 1e-6 and np.abs(w[0] - w[-1]).max() <= inner + 1e-6
    with pytest.raises(ValueError, match="texture kind"):
        make_texture_weight("marble", np.random.default_rng(0))
    scene = _grey_scene()
    cells = np.arange(64) // 16  # 4 x 4 cells of 5 cm
    checker = ((cells[:, None] + cells[None, :]) % 2).astype(np.float32)
    tex = Texture(checker, np.array([[0.05, 0.05, 0.05], [0.8, 0.8, 0.8]], np.float32), 0.2)
    light = [Lighting(np.array([0.0, 0.0, 1.0]), np.ones(3), np.zeros(3))]
    C = np.array([0.0, 0.0, 0.7])
    std = {}
    for name, look in (("plain", SceneLook(light, np.full(3, 0.3), [None], None, None)),
                       ("textured", SceneLook(light, np.full(3, 0.3), [tex], None, tex))):
        frame = SceneRenderer(scene, K_TINY, threads=1, shadows=False, look=look).render(
            DOWN, C, np.random.default_rng(0), 0.0)
        box_top = np.abs(frame.depth - 0.6) < 1e-3
        table = np.abs(frame.depth - 0.7) < 1e-3
        std[name] = (frame.rgb[box_top].std(), frame.rgb[table].std())
    # (The plain surfaces vary only by their specular highlight.)
    assert std["plain"][0] < 5 and std["textured"][0] > 30, std  # the distractor
    assert std["plain"][1] < 5 and std["textured"][1] > 30, std  # the (plain) table


def test_config_cli_flag_and_old_folders(tmp_path):
    with pytest.raises(ConfigError, match="jpeg_quality"):
        from_dict(SynthConfig, {"rgb_effects": True, "effects": {"jpeg_quality": [50, 101]}})
    with pytest.raises(ConfigError, match="motion_blur_prob"):
        from_dict(SynthConfig, {"effects": {"motion_blur_prob": 1.5}})
    two = from_dict(SynthConfig, {"rgb_effects": True, "effects": {"lights": [2, 2]}})
    assert two.rgb_effects and two.effects.lights == (2, 2)

    parser = argparse.ArgumentParser(prog="cleanpose")
    cli.register(parser.add_subparsers(dest="command"))
    cfg_path = tmp_path / "synth.yaml"
    cfg_path.write_text("scene:\n  pool_size: 4\n  objects: [2, 3]\nrender:\n  threads: 1\ncamera:\n"
                        "  intrinsics: [148.0, 148.0, 80.0, 60.0]\n  width: 160\n  height: 120\n")
    out = tmp_path / "d"
    args = parser.parse_args(["synth", "--out", str(out), "--scenes", "1", "--split", "train", "--seed", "1",
                              "--frames-per-scene", "1", "--config", str(cfg_path), "--quiet",
                              "--rgb-effects"])
    assert args.func(args) == 0
    path = out / "train" / "config.yaml"
    written = yaml.safe_load(path.read_text())
    assert written["config"]["rgb_effects"] is True and written["config"]["effects"]["lights"] == [1, 3]
    # A folder written before the effects existed resumes (its config means effects off).
    before = {k: v for k, v in written["config"].items() if k not in ("rgb_effects", "effects")}
    old = dict(written, config=before)
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    cfg = from_dict(SynthConfig, old["config"])
    assert cfg.rgb_effects is False
    summary = generate_split(out, "train", 1, seed=1, cfg=cfg, progress=False, contact_sheet_rows=0)
    assert summary.scenes_rendered == 0
