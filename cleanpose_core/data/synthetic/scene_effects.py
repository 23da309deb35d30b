"""Scene effects of the synthetic engine (`rgb_effects: true`): coloured lights and procedural textures.

Per scene, drawn after the scene is composed (so geometry, labels and viewpoints are those of the effects-off
scene), a `SceneLook` that the renderer uses instead of the scene's single near-white light and plain clutter:
- 1-3 lights: the scene's key light (same direction and intensity) plus weaker fills from random directions,
  each with a random colour temperature; an ambient term with its own colour temperature;
- tileable procedural textures (value noise, stripes, checker, wood grain; numpy + cv2.resize, no downloads)
  on the clutter, the walls and floor, and a plain table, mapped by box projection on world coordinates.

Colour temperature to RGB: Tanner Helland's curve fit (2012, "How to convert temperature (K) to RGB") to
Mitchell Charity's black-body sRGB table (CIE 1964 10-degree observer, D65 white point), decoded to linear
light with the engine's gamma 2.2 and scaled to unit luminance, so temperature changes a light's tint, not its
brightness. Its error against the Planckian locus is a few 8-bit levels: enough for lights.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cleanpose_core.data.synthetic.config import RenderConfig, RGBEffectsConfig
from cleanpose_core.data.synthetic.scene import TABLE_PLAIN, Lighting, Scene, _random_colour

TEXTURE_KINDS = ("noise", "stripes", "checker", "wood")
TEXTURE_SIZE = 128  # texels per period: finer than a pixel for a 2-10 cm period at 0.5-1 m
_LUMA = np.array([0.2126, 0.7152, 0.0722])


def kelvin_to_rgb(kelvin: float) -> np.ndarray:
    """(3,) linear RGB of a black body at `kelvin` K (Tanner Helland's fit, 1000-40000 K), unit luminance."""
    t = float(np.clip(kelvin, 1000.0, 40000.0)) / 100.0
    if t <= 66:
        r, g = 255.0, 99.4708025861 * np.log(t) - 161.1195681661
    else:
        r, g = 329.698727446 * (t - 60) ** -0.1332047592, 288.1221695283 * (t - 60) ** -0.0755148492
    if t >= 66:
        b = 255.0
    elif t <= 19:
        b = 0.0
    else:
        b = 138.5177312231 * np.log(t - 10) - 305.0447927307
    linear = (np.clip([r, g, b], 0.0, 255.0) / 255.0) ** 2.2
    return linear / (linear @ _LUMA)


def _periodic_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) float32 tileable value noise in ~[0, 1]: a random (cells, cells) grid, cubic upsampled."""
    grid = rng.random((cells, cells)).astype(np.float32)
    big = cv2.resize(np.tile(grid, (3, 3)), (3 * size, 3 * size), interpolation=cv2.INTER_CUBIC)
    return big[size:2 * size, size:2 * size]  # the middle period: its edges see their periodic neighbours


def make_texture_weight(kind: str, rng: np.random.Generator, size: int = TEXTURE_SIZE) -> np.ndarray:
    """(size, size) float32 mixing weight in [0, 1] of a tileable procedural texture of `kind`."""
    u, v = np.meshgrid(np.arange(size) / size, np.arange(size) / size)
    if kind == "noise":  # fractal value noise: three octaves
        w = sum(a * _periodic_noise(rng, size, c) for a, c in ((1.0, 4), (0.5, 8), (0.25, 16)))
        w = (w - w.min()) / max(float(w.max() - w.min()), 1e-6)
    elif kind == "stripes":  # integer frequencies keep it tileable; any angle a multiple allows
        kx, ky = int(rng.integers(1, 7)), int(rng.integers(-3, 4))
        w = np.sin(2 * np.pi * (kx * u + ky * v) + rng.uniform(0, 2 * np.pi)) > rng.uniform(-0.5, 0.5)
    elif kind == "checker":
        n = 2 * int(rng.integers(1, 5))  # an even cell count tiles
        w = (np.floor(u * n) + np.floor(v * n)) % 2
    elif kind == "wood":  # rings along v, warped by noise, sharpened like the table's grain
        rings, warp = int(rng.integers(3, 11)), rng.uniform(0.5, 2.0)
        g = np.sin(2 * np.pi * (rings * v + warp * _periodic_noise(rng, size, 4)))
        w = (0.5 + 0.5 * g) ** 3
    else:
        raise ValueError(f"texture kind must be one of {TEXTURE_KINDS}, got {kind!r}")
    return np.clip(w, 0.0, 1.0).astype(np.float32)


@dataclass
class Texture:
    """A tileable texture on world surfaces: albedo = colours[0] * (1 - w) + colours[1] * w."""

    weight: np.ndarray  # (S, S) float32 mixing weight in [0, 1]
    colours: np.ndarray  # (2, 3) linear albedo at weight 0 and 1
    tile: float  # metres covered by one period

    def albedo(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """(P, 3) float32 albedo at world points (P, 3) with normals (P, 3) (box projection)."""
        axis = np.argmax(np.abs(normals), axis=1)  # project on the world plane the surface faces most
        a = np.where(axis == 0, points[:, 1], points[:, 0])
        b = np.where(axis == 2, points[:, 1], points[:, 2])
        size = self.weight.shape[0]
        scale = size / self.tile
        row, col = np.floor(b * scale).astype(np.int64) % size, np.floor(a * scale).astype(np.int64) % size
        w = self.weight[row, col]
        c = self.colours.astype(np.float32)
        return c[0] * (1 - w[:, None]) + c[1] * w[:, None]


@dataclass
class SceneLook:
    """What `rgb_effects` changes in a scene's appearance (SceneRenderer(..., look=...))."""

    lights: list[Lighting]  # key light first; their `ambient` fields are unused (zero)
    ambient: np.ndarray  # (3,) ambient light colour times level
    distractor_textures: list[Texture | None]  # one per scene.distractors entry; None = plain colour
    room_texture: Texture | None  # walls and floor
    table_texture: Texture | None  # only on a plain table (wood and tiles are textured already)


def _texture(rng: np.random.Generator, base: np.ndarray, tile: tuple[float, float]) -> Texture:
    kind = TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))]
    weight = make_texture_weight(kind, rng)
    # Second colour: a darker shade of the base (wood, weathered paint) or an unrelated one (prints).
    accent = base * rng.uniform(0.3, 0.7) if rng.random() < 0.5 else _random_colour(rng)
    return Texture(weight, np.stack([base, accent]).astype(np.float32), float(rng.uniform(*tile)))


def draw_scene_look(scene: Scene, cfg: RGBEffectsConfig, render_cfg: RenderConfig,
                    rng: np.random.Generator) -> SceneLook:
    """Lights and textures for `scene`, all drawn from `rng`."""
    key = scene.lighting
    key_level = float(key.colour @ _LUMA)  # the key light keeps its direction and brightness
    lights = []
    for i in range(int(rng.integers(cfg.lights[0], cfg.lights[1] + 1))):
        tint = kelvin_to_rgb(rng.uniform(*cfg.colour_temperature_k))
        if i == 0:
            lights.append(Lighting(key.direction.copy(), tint * key_level, np.zeros(3)))
            continue
        az = rng.uniform(0, 2 * np.pi)
        el = np.deg2rad(rng.uniform(*render_cfg.light_elevation_deg))
        direction = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        lights.append(Lighting(direction, tint * key_level * rng.uniform(*cfg.fill_intensity), np.zeros(3)))
    ambient = kelvin_to_rgb(rng.uniform(*cfg.colour_temperature_k)) * float(key.ambient @ _LUMA)

    textures: list[Texture | None] = []
    for d in scene.distractors:
        textured = rng.random() < cfg.distractor_texture_prob
        textures.append(_texture(rng, d.colour, cfg.distractor_tile_m) if textured else None)
    room = None
    if rng.random() < cfg.background_texture_prob:
        room = _texture(rng, scene.room_colour, cfg.background_tile_m)
    table = None
    if scene.table_kind == TABLE_PLAIN and rng.random() < cfg.background_texture_prob:
        table = _texture(rng, scene.table_colours[0], cfg.background_tile_m)
    return SceneLook(lights, ambient, textures, room, table)
