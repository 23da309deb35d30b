"""Scene composer: a textured tabletop with 1-6 NOCS-category objects, distractor clutter, lights and
viewpoints.

World frame: z up, the table top is the plane z = 0 centred at the origin. Objects rest on it in stable poses:
upright (canonical +y along world +z) with a random yaw for most; lying on their side (bottle, can, mug) or
upside down (bowl, can, mug) with configurable probabilities; each is lowered until its lowest vertex touches
the table, and footprints (bounding circles in the table plane) never overlap, so nothing interpenetrates.
Laptops and cameras are always upright: their other resting poses (on an edge, on the lens) are unusual in
REAL275. Viewpoints look at the objects from varied heights, azimuths and distances with a small roll.

Conventions: column vectors; `R_wo` maps the object's NOCS frame to the world, and a world point is
`s * R_wo @ p_nocs + t_wo` with `s` the metric bbox diagonal; a camera pose `R_wc, C` maps the camera optical
frame (x right, y down, z forward) to the world: `p_w = R_wc @ p_c + C`.

Everything is drawn from one numpy Generator, so a scene is a pure function of its seed.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np
import trimesh

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.data.synthetic.config import CameraConfig, RenderConfig, SceneConfig
from cleanpose_core.data.synthetic.shape_source import ShapeSource
from cleanpose_core.data.synthetic.shapes import (
    NUM_PARTS,
    PART_CAP,
    PART_DISPLAY,
    PART_GLASS,
    PART_HANDLE,
    PART_INNER,
    PART_KEYBOARD,
    PART_LABEL,
    PART_LENS,
    PART_TRIM,
    ShapeInstance,
)

# Pattern kinds evaluated in the renderer on NOCS (object) or table coordinates.
PATTERN_PLAIN, PATTERN_STRIPES, PATTERN_CHECKER, PATTERN_BLOTCH, PATTERN_LABEL = range(5)
TABLE_WOOD, TABLE_TILES, TABLE_PLAIN = range(3)

_LYING = ("bottle", "can", "mug")
_UPSIDE_DOWN = ("bowl", "can", "mug")


@dataclass
class Material:
    """Per-part albedo in linear RGB [0, 1] plus a procedural pattern.

    Attributes:
        colours: (NUM_PARTS, 3) base albedo per part label.
        pattern: PATTERN_* applied to the body and label parts.
        accent: (3,) second colour of the pattern.
        frequency: pattern frequency in cycles per NOCS unit.
        phase: (3,) pattern phase offsets.
        specular: Blinn-Phong specular weight; shininess its exponent.
    """

    colours: np.ndarray
    pattern: int = PATTERN_PLAIN
    accent: np.ndarray = field(default_factory=lambda: np.ones(3))
    frequency: float = 4.0
    phase: np.ndarray = field(default_factory=lambda: np.zeros(3))
    specular: float = 0.2
    shininess: float = 30.0


@dataclass
class SceneObject:
    """A category object placed in the world: world point = scale * R_wo @ p_nocs + t_wo."""

    shape: ShapeInstance
    scale: float  # metres, bbox diagonal (the NOCS `scale`)
    R_wo: np.ndarray  # (3, 3) NOCS frame -> world
    t_wo: np.ndarray  # (3,) metres
    material: Material


@dataclass
class Distractor:
    """A non-category clutter primitive, already in world coordinates."""

    mesh: trimesh.Trimesh
    colour: np.ndarray  # (3,) linear albedo


@dataclass
class Lighting:
    direction: np.ndarray  # (3,) unit vector from the scene towards the key light (world)
    colour: np.ndarray  # (3,) key light colour times intensity
    ambient: np.ndarray  # (3,) ambient light colour times level


@dataclass
class Scene:
    objects: list[SceneObject]
    distractors: list[Distractor]
    table_kind: int
    table_colours: np.ndarray  # (2, 3) base and accent albedo
    table_frequency: float
    table_extent: tuple[float, float]
    room_colour: np.ndarray  # (3,) albedo of floor and walls
    lighting: Lighting
    camera_poses: list[tuple[np.ndarray, np.ndarray]]  # per frame (R_wc (3, 3), C (3,))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] -> linear RGB albedo (sRGB decoded, so it renders back to the chosen colour)."""
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v)) ** 2.2


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv(rng.random(), rng.uniform(0.2, 0.95), rng.uniform(0.25, 0.95))


def _grey(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    return np.full(3, rng.uniform(lo, hi) ** 2.2)


def make_material(category: str, rng: np.random.Generator, biased_hue: float | None = None) -> Material:
    """A category-plausible random material. `biased_hue` (in [0, 1)) forces the body hue (confounder
    study)."""
    body = (
        _random_colour(rng) if biased_hue is None else _hsv(biased_hue + rng.uniform(-0.03, 0.03), 0.8, 0.8)
    )
    colours = np.tile(body, (NUM_PARTS, 1))
    pattern = int(
        rng.choice(
            [PATTERN_PLAIN, PATTERN_STRIPES, PATTERN_CHECKER, PATTERN_BLOTCH], p=[0.4, 0.25, 0.15, 0.2]
        )
    )
    specular, shininess = rng.uniform(0.05, 0.4), rng.uniform(10, 60)
    if category == "bottle":
        colours[PART_CAP] = _random_colour(rng)
        colours[PART_LABEL] = _random_colour(rng) if biased_hue is None else body
        pattern = PATTERN_LABEL if rng.random() < 0.6 else pattern
    elif category == "can":
        colours[PART_TRIM] = _grey(rng, 0.6, 0.85)
        colours[PART_LABEL] = body
        pattern = PATTERN_LABEL if rng.random() < 0.5 else PATTERN_STRIPES
        specular = rng.uniform(0.3, 0.6)
    elif category in ("mug", "bowl"):
        colours[PART_INNER] = body if rng.random() < 0.5 else _grey(rng, 0.8, 0.95)
        colours[PART_HANDLE] = body
        specular = rng.uniform(0.2, 0.5)
    elif category == "camera":
        if biased_hue is None:
            colours[:] = _grey(rng, 0.05, 0.2) if rng.random() < 0.7 else _grey(rng, 0.5, 0.8)
        colours[PART_LENS] = _grey(rng, 0.03, 0.12)
        colours[PART_GLASS] = np.array([0.01, 0.015, 0.03])
        colours[PART_TRIM] = _grey(rng, 0.05, 0.3)
        pattern = PATTERN_PLAIN if rng.random() < 0.7 else PATTERN_BLOTCH
    elif category == "laptop":
        if biased_hue is None:
            colours[:] = _grey(rng, 0.1, 0.85)
        colours[PART_KEYBOARD] = _grey(rng, 0.03, 0.2)
        # A dark (off) screen or a bright wallpaper.
        colours[PART_DISPLAY] = _grey(rng, 0.02, 0.06) if rng.random() < 0.5 else _random_colour(rng)
        pattern = PATTERN_PLAIN
    accent = _random_colour(rng)
    return Material(
        colours, pattern, accent, rng.uniform(2.0, 8.0), rng.uniform(0, 2 * np.pi, 3), specular, shininess
    )


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# Object +y (NOCS up) onto world +z (table normal): rotation of +90 deg about x.
_UPRIGHT = _rot_x(np.pi / 2)


def _resting_rotation(category: str, rng: np.random.Generator, cfg: SceneConfig) -> np.ndarray:
    """R_wo of a stable resting pose: upright, lying on the side or upside down, with a random yaw."""
    local = np.eye(3)
    u = rng.random()
    if category in _LYING and u < cfg.lying_prob:
        # Mugs roll about their own x axis so the handle stays level; bottles and cans about z.
        side = rng.choice([-1.0, 1.0]) * np.pi / 2
        local = _rot_x(side) if category == "mug" else _rot_z(side)
    elif category in _UPSIDE_DOWN and u < cfg.lying_prob + cfg.upside_down_prob:
        local = _rot_x(np.pi)
    return _rot_z(rng.uniform(0, 2 * np.pi)) @ _UPRIGHT @ local


def _footprint(vertices_w: np.ndarray) -> tuple[np.ndarray, float]:
    """Bounding circle (centre offset (2,), radius) of world vertices projected on the table plane."""
    lo, hi = vertices_w[:, :2].min(0), vertices_w[:, :2].max(0)
    centre = (lo + hi) / 2
    return centre, float(np.linalg.norm(vertices_w[:, :2] - centre, axis=1).max())


def _place(
    footprints: list[tuple[np.ndarray, float]],
    radius: float,
    rng: np.random.Generator,
    cfg: SceneConfig,
    tries: int = 60,
) -> np.ndarray | None:
    """A table position (2,) for a footprint of `radius` not overlapping the placed ones, or None."""
    half = np.asarray(cfg.placement_extent) / 2
    for _ in range(tries):
        c = rng.uniform(-half, half)
        if all(np.linalg.norm(c - pc) >= radius + pr + cfg.min_gap for pc, pr in footprints):
            return c
    return None


def _distractor_mesh(rng: np.random.Generator) -> trimesh.Trimesh:
    """A random clutter primitive (box, ball, cylinder, cone, capsule) with its base at z = 0."""
    kind = rng.integers(5)
    size = rng.uniform(0.03, 0.14)
    if kind == 0:
        mesh = trimesh.creation.box(extents=size * rng.uniform(0.4, 1.6, 3))
    elif kind == 1:
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=size / 2)
    elif kind == 2:
        mesh = trimesh.creation.cylinder(
            radius=size * rng.uniform(0.2, 0.6), height=size * rng.uniform(0.5, 2), sections=24
        )
    elif kind == 3:
        mesh = trimesh.creation.cone(
            radius=size * rng.uniform(0.3, 0.6), height=size * rng.uniform(0.6, 1.5), sections=24
        )
    else:
        mesh = trimesh.creation.capsule(height=size, radius=size * rng.uniform(0.15, 0.35), count=[12, 12])
        mesh.apply_transform(_homogeneous(_rot_x(np.pi / 2)))  # lying capsule
    mesh.apply_transform(_homogeneous(_rot_z(rng.uniform(0, 2 * np.pi))))
    mesh.apply_translation([0.0, 0.0, -mesh.bounds[0, 2]])
    return mesh


def _homogeneous(R: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    if t is not None:
        T[:3, 3] = t
    return T


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """R_wc (3, 3) of an optical frame at `eye` looking at `target` with world +z up, rolled by `roll` rad."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # points down in the image
    R = np.stack([x, y, z], axis=1)
    c, s = np.cos(roll), np.sin(roll)
    return R @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def sample_camera_poses(
    centre: np.ndarray, n: int, cfg: CameraConfig, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` viewpoints (R_wc, C) looking at `centre` (3,) from varied azimuth, elevation, distance and roll."""
    poses = []
    for _ in range(n):
        target = centre + np.array([*rng.normal(0, cfg.target_jitter, 2), 0.0])
        az = rng.uniform(0, 2 * np.pi)
        el = np.deg2rad(rng.uniform(*cfg.elevation_deg))
        dist = rng.uniform(*cfg.distance)
        eye = target + dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        poses.append((look_at(eye, target, np.deg2rad(rng.uniform(-cfg.roll_deg, cfg.roll_deg))), eye))
    return poses


def compose_scene(rng: np.random.Generator, split: str, scene_cfg: SceneConfig, camera_cfg: CameraConfig,
                  render_cfg: RenderConfig, n_frames: int) -> Scene:
    """Draw one scene: objects from `split`'s instance pool, clutter, table, lights and `n_frames`
    viewpoints."""
    source = ShapeSource(split, scene_cfg)  # procedural instances and/or imported meshes of the split
    n_objects = int(rng.integers(scene_cfg.objects[0], scene_cfg.objects[1] + 1))
    objects: list[SceneObject] = []
    footprints: list[tuple[np.ndarray, float]] = []
    for _ in range(n_objects):
        shape = source.draw(rng)
        category = shape.category
        scale = float(rng.uniform(*scene_cfg.scale_ranges[category]))
        scale = getattr(shape, "metric_scale", None) or scale  # an imported mesh of known real size keeps it
        R_wo = _resting_rotation(category, rng, scene_cfg)
        verts = scale * shape.mesh.vertices @ R_wo.T
        offset, radius = _footprint(verts)
        pos = _place(footprints, radius, rng, scene_cfg)
        biased_hue = None
        if scene_cfg.biased and split == "train" and rng.random() < scene_cfg.bias_strength:
            # One hue per category, centred in its sixth of the colour wheel.
            biased_hue = (NOCS_CATEGORIES.index(category) + 0.5) / len(NOCS_CATEGORIES)
        material = make_material(category, rng, biased_hue)
        if pos is None:  # the table is full; drop the object but keep the draws above, so seeds stay aligned
            continue
        t_wo = np.array([pos[0] - offset[0], pos[1] - offset[1], -verts[:, 2].min()])
        footprints.append((pos, radius))
        objects.append(SceneObject(shape, scale, R_wo, t_wo, material))

    distractors = []
    for _ in range(int(rng.integers(scene_cfg.distractors[0], scene_cfg.distractors[1] + 1))):
        mesh = _distractor_mesh(rng)
        offset, radius = _footprint(mesh.vertices)
        colour = _random_colour(rng)
        pos = _place(footprints, radius, rng, scene_cfg)
        if pos is None:
            continue
        mesh.apply_translation([pos[0] - offset[0], pos[1] - offset[1], 0.0])
        footprints.append((pos, radius))
        distractors.append(Distractor(mesh, colour))

    table_kind = int(rng.choice([TABLE_WOOD, TABLE_TILES, TABLE_PLAIN], p=[0.5, 0.25, 0.25]))
    if table_kind == TABLE_WOOD:
        base = _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.8))
        table_colours = np.stack([base, base * rng.uniform(0.55, 0.8)])
    else:
        table_colours = np.stack([_random_colour(rng) * 0.8 + 0.1, _random_colour(rng) * 0.8 + 0.1])
    room = _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.5, 0.9))

    light_az = rng.uniform(0, 2 * np.pi)
    light_el = np.deg2rad(rng.uniform(*render_cfg.light_elevation_deg))
    direction = np.array(
        [np.cos(light_el) * np.cos(light_az), np.cos(light_el) * np.sin(light_az), np.sin(light_el)]
    )
    tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.08, 0.08) * np.array([1.0, 0.0, -1.0])  # warm .. cool
    lighting = Lighting(direction, tint * rng.uniform(*render_cfg.light_intensity),
                        np.full(3, rng.uniform(*render_cfg.ambient)))

    centre = np.mean([o.t_wo for o in objects], axis=0) if objects else np.zeros(3)
    centre = np.array([centre[0], centre[1], 0.05])
    poses = sample_camera_poses(centre, n_frames, camera_cfg, rng)
    return Scene(objects, distractors, table_kind, table_colours, float(rng.uniform(3, 12)),
                 tuple(scene_cfg.table_extent), room, lighting, poses)
