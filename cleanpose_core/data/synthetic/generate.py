"""Generate a synthetic split in the NOCS/DPDN layout: scenes -> rendered frames -> files, lists, models,
sheet.

Determinism: scene i of a split draws everything from `SeedSequence([seed, split_code, i])`, so results do not
depend on the number of workers, their scheduling, or on resuming. Shape instances depend only on
`scene.shape_seed` (and the split only chooses which instances, by parity), so model ids mean the same mesh in
every run and train/test never share an instance.

Resuming: a scene is complete once its `scene_info.json` exists (written last, atomically) and every file it
lists is present; complete scenes are skipped. Resuming into a folder made with another seed or config is
refused with an error naming the difference.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from cleanpose_core.config import ConfigError, from_dict, to_dict
from cleanpose_core.data.synthetic.config import SynthConfig
from cleanpose_core.data.synthetic.contact_sheet import make_contact_sheet
from cleanpose_core.data.synthetic.depth_sensor import make_depth_sensor
from cleanpose_core.data.synthetic.noise import depth_to_sensor_mm
from cleanpose_core.data.synthetic.render import SceneRenderer
from cleanpose_core.data.synthetic.rgb_sensor import make_rgb_sensor
from cleanpose_core.data.synthetic.scene import compose_scene
from cleanpose_core.data.synthetic.scene_effects import draw_scene_look
from cleanpose_core.data.synthetic.shape_source import ShapeSource
from cleanpose_core.data.synthetic.shapes import sample_surface_points
from cleanpose_core.data.synthetic.writer import (
    PICKLE_PROTOCOL,
    atomic_write_bytes,
    read_scene_info,
    write_frame,
    write_lists,
    write_scene_info,
)
from cleanpose_core.geometry.camera import Intrinsics

log = logging.getLogger(__name__)

SPLIT_CODES = {"train": 0, "test": 1, "val": 2}


@dataclass
class SplitSummary:
    out_dir: Path
    split: str
    scenes_rendered: int  # scenes rendered by this call (the rest were already complete)
    frames: int  # frames in the split
    valid_frames: int  # frames with >= 1 labelled instance
    contact_sheet: Path | None


def scene_name(index: int) -> str:
    """Folder name of 0-based scene `index`: scene_0001, scene_0002, ..."""
    return f"scene_{index + 1:04d}"


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split], index]))


def effects_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The `rgb_effects` draws of scene `index`: a stream apart from the scene's, so switching the effects on
    changes the colour images only (scene, viewpoints, labels and the depth model's draws stay the same)."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split], index, 1]))


def intrinsics_of(cfg: SynthConfig) -> Intrinsics:
    fx, fy, cx, cy = cfg.camera.intrinsics
    return Intrinsics(fx, fy, cx, cy, cfg.camera.width, cfg.camera.height)


def render_scene(out_dir: Path, split: str, index: int, seed: int, cfg: SynthConfig) -> list[dict]:
    """Compose, render and write scene `index` of `split`; returns its frame records (see write_frame)."""
    rng = scene_rng(seed, split, index)
    scene = compose_scene(rng, split, cfg.scene, cfg.camera, cfg.render, cfg.frames_per_scene)
    look = colour_sensor = None
    if cfg.rgb_effects:  # lights, textures and colour-sensor effects (scene_effects.py, rgb_sensor.py)
        fx_rng = effects_rng(seed, split, index)
        look = draw_scene_look(scene, cfg.effects, cfg.render, fx_rng)
        colour_sensor = make_rgb_sensor(cfg.effects, fx_rng)
    renderer = SceneRenderer(scene, intrinsics_of(cfg), cfg.render.threads, cfg.render.shadows, look)
    sensor = make_depth_sensor(cfg, renderer)
    name = scene_name(index)
    records = []
    for f, (R_wc, C) in enumerate(scene.camera_poses):
        frame = renderer.render(R_wc, C, rng, cfg.render.image_noise, colour_sensor)
        depth_mm = sensor(frame, rng)
        records.append(write_frame(out_dir, split, name, f, scene, frame, depth_mm, cfg.min_valid_depth,
                                   cfg.handle_min_pixels))
    write_scene_info(out_dir, split, name, records)
    return records


def ideal_depth_mm(split: str, index: int, frame_index: int, seed: int, cfg: SynthConfig) -> np.ndarray:
    """(H, W) uint16 ideal depth (mm) of frame `frame_index` of scene `index`, re-rendered from the seed.

    The scene and its viewpoints are drawn before any sensor noise, so they come out the same as in the split.
    """
    rng = scene_rng(seed, split, index)
    scene = compose_scene(rng, split, cfg.scene, cfg.camera, cfg.render, cfg.frames_per_scene)
    renderer = SceneRenderer(scene, intrinsics_of(cfg), cfg.render.threads, shadows=False)
    frame = renderer.render(*scene.camera_poses[frame_index], rng, 0.0)
    noise_off = dataclasses.replace(cfg.noise, enabled=False)
    return depth_to_sensor_mm(frame.depth, frame.cos_incidence, frame.albedo_luma, noise_off, rng)


def effects_off_colour(split: str, index: int, frame_index: int, seed: int, cfg: SynthConfig) -> np.ndarray:
    """(H, W, 3) uint8 RGB of frame `frame_index` of scene `index` rendered with `rgb_effects` off (for the
    first frame of a scene exactly what an effects-off split writes; later frames differ in their noise)."""
    rng = scene_rng(seed, split, index)
    scene = compose_scene(rng, split, cfg.scene, cfg.camera, cfg.render, cfg.frames_per_scene)
    renderer = SceneRenderer(scene, intrinsics_of(cfg), cfg.render.threads, cfg.render.shadows)
    return renderer.render(*scene.camera_poses[frame_index], rng, cfg.render.image_noise).rgb


def _worker(task: tuple) -> int:
    out_dir, split, index, seed, cfg_dict = task
    cfg = from_dict(SynthConfig, cfg_dict)
    if cfg.render.threads > 0:
        cv2.setNumThreads(cfg.render.threads)  # the stereo matcher's threads, as the ray caster's
    render_scene(Path(out_dir), split, index, seed, cfg)
    return index


def _check_or_write_config(out_dir: Path, split: str, seed: int, n_scenes: int, cfg: SynthConfig) -> None:
    path = out_dir / split / "config.yaml"
    resolved = {"split": split, "seed": seed, "scenes": n_scenes, "config": to_dict(cfg)}
    if path.is_file():
        old = yaml.safe_load(path.read_text()) or {}
        try:  # folders written before a config key existed resume with that key's default
            old["config"] = to_dict(from_dict(SynthConfig, old.get("config") or {}))
        except ConfigError:
            pass  # reported as a different config below
        for key in ("seed", "config"):
            if old.get(key) != resolved[key]:
                raise ConfigError(
                    f"{path} was written with a different {key!r}; resuming would mix two datasets. "
                    f"Use a new --out folder or the same {key}."
                )
        resolved["scenes"] = max(int(old.get("scenes", 0)), n_scenes)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, yaml.safe_dump(resolved, sort_keys=False).encode())


def write_object_models(out_dir: Path, split: str, cfg: SynthConfig) -> Path:
    """`obj_models/<split>.pkl` (model id -> (n_model_points, 3) float32 FPS points, NOCS frame) and the
    meshes."""
    models_dir = out_dir / "obj_models"
    mesh_dir = models_dir / "meshes"
    mesh_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{split}.pkl"
    # (model id, loader, point seed): procedural and/or imported
    instances = ShapeSource(split, cfg.scene).models()
    expected = {m for m, _, _ in instances}
    if path.is_file() and all((mesh_dir / f"{m}.obj").is_file() for m in expected):
        with open(path, "rb") as f:
            if set(pickle.load(f)) == expected:  # already exported (resumed run)
                return path
    models = {}
    for _, load, points_seed in instances:
        shape = load()
        models[shape.model_id] = sample_surface_points(shape.mesh, cfg.n_model_points, seed=points_seed)
        mesh_path = mesh_dir / f"{shape.model_id}.obj"
        if not mesh_path.is_file():
            atomic_write_bytes(mesh_path, shape.mesh.export(file_type="obj").encode())
    atomic_write_bytes(path, pickle.dumps(models, protocol=PICKLE_PROTOCOL))
    return path


def generate_split(out_dir: str | Path, split: str, n_scenes: int, seed: int, cfg: SynthConfig | None = None,
                   workers: int = 1, progress: bool = True, contact_sheet_rows: int = 6) -> SplitSummary:
    """Render `n_scenes` scenes of `split` ('train' | 'val' | 'test') into `out_dir`, resuming completed
    scenes."""
    cfg = cfg or SynthConfig()
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {list(SPLIT_CODES)}, got {split!r}")
    if n_scenes < 1:
        raise ValueError(f"the number of scenes must be >= 1, got {n_scenes}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir)
    _check_or_write_config(out_dir, split, int(seed), n_scenes, cfg)
    ShapeSource(split, cfg.scene).check()  # imported meshes: read (a bad file is an error) and checked, once

    pending = [i for i in range(n_scenes) if read_scene_info(out_dir, split, scene_name(i)) is None]
    if len(pending) < n_scenes:
        log.info("resuming: %d of %d scenes already complete", n_scenes - len(pending), n_scenes)
    from tqdm import tqdm

    bar = tqdm(total=len(pending), desc=f"synth {split}", unit="scene", disable=not progress)
    if workers == 1 or len(pending) <= 1:
        for i in pending:
            render_scene(out_dir, split, i, int(seed), cfg)
            bar.update(1)
    else:
        # Split the cores between workers so the ray caster does not oversubscribe them.
        per_worker = max(1, (os.cpu_count() or 1) // workers)
        cfg_dict = to_dict(cfg)
        if cfg.render.threads == 0:
            cfg_dict["render"]["threads"] = per_worker
        tasks = [(str(out_dir), split, i, int(seed), cfg_dict) for i in pending]
        # One BLAS/OpenMP thread per worker: the shading's small matmuls otherwise spawn a thread per core in
        # every worker and the workers fight over the cores (measured: 4.7 -> 8.0 frames/s with 2 workers on 2
        # cores). Spawned children read these at start-up, so they are set only while the pool starts.
        single = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        saved = {k: os.environ.get(k) for k in single}
        os.environ.update(single)
        try:
            pool = mp.get_context("spawn").Pool(workers)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        with pool:
            for _ in pool.imap_unordered(_worker, tasks):
                bar.update(1)
    bar.close()

    frames: list[dict] = []
    for i in range(n_scenes):
        info = read_scene_info(out_dir, split, scene_name(i))
        if info is None:
            raise RuntimeError(f"scene {scene_name(i)} is incomplete after rendering; re-run to resume")
        frames.extend(info["frames"])
    n_valid, n_all = write_lists(out_dir, split, frames)
    write_object_models(out_dir, split, cfg)

    sheet = None
    if contact_sheet_rows > 0:
        # One frame from each of the first scenes (different viewpoints of one scene add little).
        picks = [f["prefix"] for f in frames if f["prefix"].endswith("/0000") and f["n_visible"] > 0][
            :contact_sheet_rows
        ]
        if picks:
            # Next to the written depth, the ideal depth of the same view, on the same colour scale.
            reference = None
            if cfg.depth_model != "ideal":
                reference = {p: ideal_depth_mm(split, int(p.split("/")[1][6:]) - 1, int(p.split("/")[2]),
                                               int(seed), cfg) for p in picks}
            colour_ref = None  # with rgb effects on, the same view without them
            if cfg.rgb_effects:
                colour_ref = {p: effects_off_colour(split, int(p.split("/")[1][6:]) - 1, int(p.split("/")[2]),
                                                    int(seed), cfg) for p in picks}
            sheet = make_contact_sheet(
                out_dir,
                picks,
                out_dir / f"contact_sheet_{split}.png",
                reference,
                depth_title=f"{cfg.depth_model} depth (mm)",
                reference_colour=colour_ref,
                colour_title="colour, rgb effects" if cfg.rgb_effects else "colour",
            )
    return SplitSummary(out_dir, split, len(pending), n_all, n_valid, sheet)
