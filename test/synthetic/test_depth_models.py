"""Depth models (ideal / noisy / stereo), camera presets and the active-stereo simulation's own artefacts."""

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
import yaml

from cleanpose_core.config import ConfigError, from_dict
from cleanpose_core.data.synthetic import cli
from cleanpose_core.data.synthetic.config import CAMERA_PRESETS, DEPTH_MODELS, SynthConfig
from cleanpose_core.data.synthetic.generate import generate_split, ideal_depth_mm
from cleanpose_core.data.synthetic.render import SceneRenderer
from cleanpose_core.data.synthetic.scene import TABLE_PLAIN, Distractor, Lighting, Scene
from cleanpose_core.data.synthetic.stereo import StereoCamera
from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics

# Optical frame looking straight down at the table (x = world x, y = world -y, z = world -z).
DOWN = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


REFERENCE = Path(__file__).parent / "reference"


@pytest.mark.parametrize("model", ["noisy", "ideal"])
def test_noisy_and_ideal_depth_match_the_engine_before_depth_models(tmp_path, small_config, model):
    """Frame 0 of train scene 1, seed 3, against the PNG the engine wrote before depth models existed.

    Not a hash: Embree's float results differ between CPU families (Intel vs AMD), which moves a few edge
    pixels across a mm rounding or a hit/miss boundary. A changed noise model or renderer moves far more."""
    cfg = small_config(noise=True)
    assert SynthConfig().depth_model == "noisy"  # the default keeps today's behaviour
    cfg.depth_model = model
    generate_split(tmp_path, "train", 1, seed=3, cfg=cfg, progress=False, contact_sheet_rows=0)
    got = cv2.imread(str(tmp_path / "train/scene_0001/0000_depth.png"), cv2.IMREAD_UNCHANGED).astype(int)
    want = cv2.imread(str(REFERENCE / f"{model}_seed3_scene1_frame0.png"), cv2.IMREAD_UNCHANGED).astype(int)
    assert got.shape == want.shape
    assert np.mean((got > 0) != (want > 0)) < 0.005  # same holes
    both = (got > 0) & (want > 0)
    assert both.sum() > 0.3 * got.size
    assert np.mean(np.abs(got - want)[both] > 1) < 0.005  # same depth, to the mm


def test_camera_presets_set_intrinsics_size_and_stereo_head():
    assert SynthConfig().camera.intrinsics == REAL275_INTRINSICS and SynthConfig().stereo.baseline is None
    d435 = from_dict(SynthConfig, {"camera": {"preset": "d435"}})  # a YAML naming only the preset
    assert d435.camera.intrinsics == (610.30, 610.30, 323.51, 240.51)
    assert (d435.camera.width, d435.camera.height) == (640, 480)
    assert (d435.stereo.baseline, d435.stereo.ir_focal, d435.stereo.ir_size) == (0.050, 384.2, (640, 480))
    assert d435.stereo.colour_offset == (-0.015, 0.0, 0.0)  # colour camera 15 mm left of the left imager
    cfg = SynthConfig()
    cfg.use_camera("d415")
    assert (cfg.stereo.baseline, cfg.stereo.ir_focal) == (0.055, 627.0) and cfg.camera.preset == "d415"
    cfg.use_camera("azure_720p")
    assert (cfg.camera.width, cfg.camera.height) == (1280, 720) and cfg.stereo.baseline is None
    assert cfg.camera.intrinsics[0] == pytest.approx(919.43 * 2 / 3, abs=0.01)
    # Explicit intrinsics win over the preset's; a stereo model needs a camera with a stereo head.
    own = from_dict(SynthConfig, {"camera": {"preset": "d435", "intrinsics": [500.0, 500.0, 320.0, 240.0]}})
    assert own.camera.intrinsics == (500.0, 500.0, 320.0, 240.0) and own.stereo.baseline == 0.050
    with pytest.raises(ConfigError, match="needs a stereo camera"):
        from_dict(SynthConfig, {"depth_model": "stereo"})
    with pytest.raises(ConfigError, match="camera preset must be one of"):
        from_dict(SynthConfig, {"camera": {"preset": "kinect"}})
    # The CLI's choices (kept literal so `--help` does not import the engine) match the config.
    assert cli.CAMERA_CHOICES == tuple(CAMERA_PRESETS) and cli.DEPTH_MODEL_CHOICES == DEPTH_MODELS


def _scene(boxes=(), rod=None) -> Scene:
    """Grey plain 4 x 4 m table, grey boxes (x, y, size_x, size_y, height) and a thin rod (x, y, r, h)."""
    parts = []
    for x, y, sx, sy, h in boxes:
        m = trimesh.creation.box(extents=[sx, sy, h])
        m.apply_translation([x, y, h / 2])
        parts.append(Distractor(m, np.full(3, 0.5)))
    if rod is not None:
        x, y, r, h = rod
        m = trimesh.creation.cylinder(radius=r, height=h, sections=16)
        m.apply_translation([x, y, h / 2])
        parts.append(Distractor(m, np.full(3, 0.5)))
    light = Lighting(np.array([0.0, 0.0, 1.0]), np.ones(3), np.full(3, 0.3))
    return Scene([], parts, TABLE_PLAIN, np.full((2, 3), 0.5), 4.0, (4.0, 4.0), np.full(3, 0.7), light, [])


def _rig(scene: Scene, preset: str = "d435") -> tuple[SceneRenderer, StereoCamera]:
    cfg = SynthConfig()
    cfg.use_camera(preset)
    K = Intrinsics(*cfg.camera.intrinsics, cfg.camera.width, cfg.camera.height)
    renderer = SceneRenderer(scene, K, threads=1, shadows=False)
    return renderer, StereoCamera(renderer, cfg.stereo)


@pytest.fixture(scope="module")
def box_capture():
    """A 12 cm box (20 cm tall) and a 4 mm rod (25 cm tall) on the table, seen from 0.7 m straight above."""
    renderer, stereo = _rig(_scene(boxes=[(0.0, 0.0, 0.12, 0.12, 0.2)], rod=(0.0, -0.15, 0.002, 0.25)))
    C = np.array([0.0, 0.0, 0.7])
    ideal = renderer.render(DOWN, C, np.random.default_rng(0), 0.0).depth
    out = stereo.capture(DOWN, C, np.random.default_rng(1))
    return ideal, out.depth_mm.astype(np.float64) / 1000.0, out


def test_stereo_ir_images_carry_the_projected_dots(box_capture):
    _, _, out = box_capture
    for ir in (out.ir_left, out.ir_right):
        table = ir[150:230, 450:550].astype(float)  # plain grey table: all texture comes from the projector
        assert table.std() > 20 and np.percentile(table, 99) > 3 * np.median(table)


def test_stereo_loses_the_band_the_right_camera_does_not_see():
    # Datasheet: the left edge of the left imager's view, f B / Z pixels wide, is outside the right one's.
    renderer, _ = _rig(_scene())
    cfg = SynthConfig()
    cfg.use_camera("d435")
    stereo = StereoCamera(renderer, cfg.stereo, full_frame=True)
    depth_ir = stereo.capture(DOWN, np.array([0.0, 0.0, 0.7]), np.random.default_rng(0)).depth_ir
    band = 384.2 * 0.050 / 0.7  # 27 px
    assert (depth_ir[:, : int(band) - 3] == 0).mean() > 0.95
    assert (depth_ir[:, int(band) + 8:int(band) + 40] > 0).mean() > 0.95


def test_stereo_leaves_the_occlusion_shadow_left_of_objects_and_only_there(box_capture):
    ideal, depth, _ = box_capture
    top = np.abs(ideal - 0.5) < 0.005  # box top at z = 0.5 m
    rows = np.nonzero(top.sum(1) > 50)[0][5:-5]
    cols = np.nonzero(top[rows].any(0))[0]
    left, right = cols.min(), cols.max()
    # The right IR camera sits at +x: table just left of the box is hidden from it (and from the left IR
    # camera, for the colour camera 15 mm further left): ~11 IR = 17 colour px + 5 px at these depths.
    shadow = depth[rows, left - 16:left] == 0
    lit_side = depth[rows, right + 1:right + 17] == 0
    assert shadow.mean() > 0.7, shadow.mean()
    assert lit_side.mean() < 0.05, lit_side.mean()
    # The ideal depth has no such hole: the stereo one is the sensor's doing.
    assert (ideal[rows, left - 16:left] > 0).all()


def test_stereo_depth_on_the_plane_matches_the_ideal_depth(box_capture):
    ideal, depth, _ = box_capture
    roi = (slice(30, 150), slice(420, 620))  # table, away from box and rod
    valid = depth[roi] > 0
    assert valid.mean() > 0.97
    err = depth[roi][valid] - ideal[roi][valid]
    assert abs(np.median(err)) < 0.004 and np.percentile(np.abs(err), 95) < 0.012  # metres at z = 0.7 m


def test_stereo_fattens_foreground_edges(box_capture):
    ideal, depth, _ = box_capture
    top = np.abs(ideal - 0.5) < 0.005
    table = ideal > 0.65
    # Table pixels next to the box that the matcher gives the box's depth: block aggregation at work.
    fattened = table & (np.abs(depth - 0.5) < 0.02)
    rows = np.count_nonzero(top.sum(1) > 50)
    assert fattened.sum() > 0.5 * rows, fattened.sum()
    assert fattened.sum() < 10 * rows  # a few pixels per edge, not a blob


def test_stereo_loses_thin_parts(box_capture):
    ideal, depth, _ = box_capture
    rod = (ideal < 0.68) & (np.abs(ideal - 0.5) > 0.005) & (np.arange(ideal.shape[0])[:, None] > 330)
    assert rod.sum() > 100  # the ideal depth sees the 4 mm rod over its whole length
    right = np.abs(depth - ideal) < 0.01
    assert (right & rod).sum() < 0.2 * rod.sum()  # the stereo camera mostly sees the table through it


@pytest.mark.parametrize("preset", ["d435", "d415"])
def test_stereo_depth_noise_grows_with_the_square_of_the_distance(preset):
    # A table tilted 20 deg to the camera: disparities then cover every sub-pixel phase, as in real scenes
    # (a fronto-parallel plane at one disparity only shows the matcher's sub-pixel bias at that phase).
    th = np.deg2rad(20.0)
    R = DOWN @ np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]])
    renderer, stereo = _rig(_scene(), preset)
    std = {}
    for z in (0.5, 1.0):
        C = np.array([0.0, 0.0, z])
        ideal = renderer.render(R, C, np.random.default_rng(0), 0.0).depth[80:-80, 100:-100]
        depth = stereo.capture(R, C, np.random.default_rng(1)).depth_mm[80:-80, 100:-100] / 1000.0
        valid = depth > 0
        assert valid.mean() > 0.97
        std[z] = (depth[valid] - ideal[valid]).std()
    ratio = std[1.0] / std[0.5]
    assert 2.5 < ratio < 7.0, (std, ratio)  # (1.0 / 0.5)^2 = 4
    assert std[0.5] < 0.004  # metres: a few millimetres at half a metre


def test_cli_stereo_d435_writes_a_scene_the_reader_reads(tmp_path):
    from cleanpose_core.data.nocs import NOCSTestConfig, NOCSTestDataset

    parser = argparse.ArgumentParser(prog="cleanpose")
    cli.register(parser.add_subparsers(dest="command"))
    cfg_path = tmp_path / "synth.yaml"
    cfg_path.write_text("scene:\n  pool_size: 4\n  objects: [2, 3]\nrender:\n  threads: 1\n")
    out = tmp_path / "d"
    common = ["synth", "--out", str(out), "--scenes", "1", "--split", "test", "--seed", "1",
              "--frames-per-scene", "1", "--config", str(cfg_path), "--quiet"]
    args = parser.parse_args(common + ["--depth-model", "stereo", "--camera", "d435"])
    assert args.func(args) == 0
    written = yaml.safe_load((out / "test" / "config.yaml").read_text())["config"]
    assert written["depth_model"] == "stereo" and written["camera"]["preset"] == "d435"
    ds = NOCSTestDataset(from_dict(NOCSTestConfig, {"root": str(out), "source": "synthetic",
                                                    "sample_num": 64}))
    assert ds.layout.intrinsics == Intrinsics(610.30, 610.30, 323.51, 240.51, 640, 480)
    item = ds[0]
    assert item.error is None and item.num_instances >= 1
    depth = cv2.imread(str(out / "test" / "scene_0001" / "0000_depth.png"), cv2.IMREAD_UNCHANGED)
    ideal = ideal_depth_mm("test", 0, 0, 1, from_dict(SynthConfig, written))
    both = (depth > 0) & (ideal > 0)
    assert depth.dtype == np.uint16 and both.mean() > 0.8
    assert np.abs(depth[both].astype(float) - ideal[both]).mean() > 1.0  # mm: the sensor's, not the truth
    sheet = cv2.imread(str(out / "contact_sheet_test.png"))
    assert sheet.shape[1] == 5 * 320  # colour, stereo depth, ideal depth, mask, NOCS
    # Contradictory or impossible flags are errors, not surprises.
    args = parser.parse_args(common[:2] + [str(tmp_path / "e")] + common[3:] + ["--depth-model", "stereo"])
    assert args.func(args) == 2  # REAL275 has no stereo head
    args = parser.parse_args(common[:2] + [str(tmp_path / "f")] + common[3:] + ["--depth-model", "noisy",
                                                                                 "--no-noise"])
    assert args.func(args) == 2


def test_folders_written_before_depth_models_still_resume(tmp_path, small_config):
    cfg = small_config()
    cfg.frames_per_scene = 1
    generate_split(tmp_path, "train", 1, seed=0, cfg=cfg, progress=False, contact_sheet_rows=0)
    path = tmp_path / "train" / "config.yaml"
    old = yaml.safe_load(path.read_text())
    for key in ("depth_model", "stereo"):
        del old["config"][key]
    del old["config"]["camera"]["preset"]
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    summary = generate_split(tmp_path, "train", 1, seed=0, cfg=cfg, progress=False, contact_sheet_rows=0)
    assert summary.scenes_rendered == 0
