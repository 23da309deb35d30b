"""CPU renderer for composed scenes: open3d's RaycastingScene (Embree) + numpy shading, one ray per pixel.

Outputs per viewpoint: colour (Lambert + Blinn-Phong with ray-traced shadows from one key light, ambient term,
procedural textures, sRGB encoding and sensor noise; with `rgb_effects` the lights and textures of a
scene_effects.SceneLook and the colour sensor of rgb_sensor.py), exact metric depth, instance map, per-pixel
part labels, NOCS coordinates, and the per-pixel incidence cosine and albedo that the depth-noise model needs.

Rays go through integer pixel coordinates (u, v) -- not pixel centres -- because the NOCS/DPDN readers
back-project pixel (u, v) as x = (u - cx) z / fx; this way a rendered depth pixel back-projects exactly onto
the surface point whose NOCS value is stored at that pixel. Ray directions have unit z in the camera frame, so
the ray parameter `t_hit` is the depth z itself.

Why not a rasteriser/OpenGL: none is reliably available headless on CPU here (see TOOLCHAIN.md); Embree ray
casting is 12-16 ms per 640x480 frame for this scene size and needs no GPU or display.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import open3d as o3d
import trimesh

from cleanpose_core.data.synthetic.scene import (
    PATTERN_BLOTCH,
    PATTERN_CHECKER,
    PATTERN_LABEL,
    PATTERN_PLAIN,
    PATTERN_STRIPES,
    TABLE_TILES,
    TABLE_WOOD,
    Scene,
)
from cleanpose_core.data.synthetic.scene_effects import SceneLook
from cleanpose_core.data.synthetic.shapes import PART_BODY, PART_DISPLAY, PART_KEYBOARD, PART_LABEL
from cleanpose_core.geometry.camera import Intrinsics

_KIND_OBJECT, _KIND_DISTRACTOR, _KIND_TABLE, _KIND_ROOM = range(4)
_SHADOW_REACH = 1.5  # metres: only nearby geometry casts shadows (the room's ceiling must not)
_LUT_SIZE = 4096
_SRGB_LUT = (np.linspace(0.0, 1.0, _LUT_SIZE) ** (1 / 2.2) * 255.0).astype(np.float32)  # linear -> 8-bit sRGB


@dataclass
class Frame:
    """One rendered viewpoint; H, W pixels.

    Attributes:
        rgb: (H, W, 3) uint8 colour image (RGB order).
        depth: (H, W) float32 exact depth z in metres, 0 where a ray hits nothing.
        instance: (H, W) int16 index into `scene.objects`, -1 for table, room and distractors.
        part: (H, W) int8 part label (shapes.PART_*) on objects, -1 elsewhere.
        nocs: (H, W, 3) float32 NOCS coordinates in [-0.5, 0.5] on objects, 0 elsewhere.
        cos_incidence: (H, W) float32 |cos| of the angle between view ray and surface normal.
        albedo_luma: (H, W) float32 albedo luminance in [0, 1] (linear).
        R_wc, C: the camera pose used (optical frame -> world).
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    part: np.ndarray
    nocs: np.ndarray
    cos_incidence: np.ndarray
    albedo_luma: np.ndarray
    R_wc: np.ndarray
    C: np.ndarray


def _pattern(q: np.ndarray, kind: int, freq: float, phase: np.ndarray) -> np.ndarray:
    """(P,) mixing weight in [0, 1] of a procedural pattern at (P, 3) object/table coordinates `q`."""
    if kind == PATTERN_STRIPES:
        return (np.sin(2 * np.pi * freq * q[:, 1] + phase[0]) > 0.3).astype(np.float32)
    if kind == PATTERN_CHECKER:
        cells = (
            np.floor(freq * q[:, 0] + phase[0])
            + np.floor(freq * q[:, 1] + phase[1])
            + np.floor(freq * q[:, 2])
        )
        return (cells % 2).astype(np.float32)
    if kind == PATTERN_BLOTCH:
        v = (
            np.sin(freq * 3 * q[:, 0] + phase[0])
            * np.sin(freq * 2.3 * q[:, 1] + phase[1])
            * np.sin(freq * 2.7 * q[:, 2] + phase[2])
        )
        return np.clip(v * 2 + 0.5, 0, 1).astype(np.float32)
    if kind == PATTERN_LABEL:
        # Printed label: a band of blocky "text" rows around the object.
        ang = np.arctan2(q[:, 2], q[:, 0])
        rows = np.floor(q[:, 1] * 40 + phase[0])
        blocks = np.floor(ang * (3 + (rows % 5)) + phase[1])
        return ((np.sin(rows * 12.9898 + blocks * 78.233) * 43758.5453) % 1.0 > 0.55).astype(np.float32) * (
            rows % 3 != 0
        )
    return np.zeros(len(q), np.float32)


class SceneRenderer:
    """Ray-casts one composed scene from any number of viewpoints.

    Build once per scene (BVH build ~ a few ms), then call `render(R_wc, C)` per viewpoint.
    """

    def __init__(self, scene: Scene, intrinsics: Intrinsics, threads: int = 0, shadows: bool = True,
                 look: SceneLook | None = None):
        self.scene = scene
        self.look = look  # rgb_effects: lights and textures that replace the scene's (scene_effects.py)
        self.K = intrinsics
        self.threads = threads
        self.shadows = shadows
        self._rc = o3d.t.geometry.RaycastingScene()
        self._kind: list[tuple[int, int]] = []  # geometry id -> (kind, index)
        self._n_faces: list[int] = []  # geometry id -> number of triangles
        self._face_luma: np.ndarray | None = None  # built on first use by base_luma
        self._face_offset: np.ndarray | None = None
        for i, obj in enumerate(scene.objects):
            verts = obj.scale * np.asarray(obj.shape.mesh.vertices) @ obj.R_wo.T + obj.t_wo
            self._add(verts, obj.shape.mesh.faces, (_KIND_OBJECT, i))
        for i, d in enumerate(scene.distractors):
            self._add(d.mesh.vertices, d.mesh.faces, (_KIND_DISTRACTOR, i))
        tx, ty = scene.table_extent
        table = trimesh.creation.box(extents=[tx, ty, 0.04])
        table.apply_translation([0.0, 0.0, -0.02])
        self._add(table.vertices, table.faces, (_KIND_TABLE, 0))
        room = trimesh.creation.box(extents=[8.0, 8.0, 4.0])
        room.apply_translation([0.0, 0.0, 1.25])  # floor 0.75 m below the table top
        self._add(room.vertices, room.faces, (_KIND_ROOM, 0))
        u = np.arange(intrinsics.width, dtype=np.float32)
        v = np.arange(intrinsics.height, dtype=np.float32)
        uu, vv = np.meshgrid(u, v)
        # (H*W, 3) camera-frame ray directions with unit z: t_hit is the depth.
        self._dirs_c = np.stack(
            [(uu - intrinsics.cx) / intrinsics.fx, (vv - intrinsics.cy) / intrinsics.fy, np.ones_like(uu)], -1
        ).reshape(-1, 3)
        self._inv_dir_norm = (1.0 / np.linalg.norm(self._dirs_c, axis=1)).astype(np.float32)

    def _add(self, vertices: np.ndarray, faces: np.ndarray, kind: tuple[int, int]) -> None:
        gid = self._rc.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
        )
        assert gid == len(self._kind), "open3d geometry ids are expected to be consecutive"
        self._kind.append(kind)
        self._n_faces.append(len(faces))

    def render(self, R_wc: np.ndarray, C: np.ndarray, rng: np.random.Generator, image_noise: float = 2.0,
               sensor: Callable[[np.ndarray, np.ndarray | None], np.ndarray] | None = None) -> Frame:
        """Render the viewpoint (R_wc (3, 3), C (3,) metres); `rng` draws the colour sensor noise.

        `sensor` (rgb_sensor.make_rgb_sensor) turns the (H, W, 3) linear colour into the uint8 image instead
        of the sRGB encoding and additive noise here; it gets the same standard-normal draw from `rng` (or
        None when image_noise is 0) for its read noise, so `rng` advances as it does without it.
        """
        H, W = self.K.height, self.K.width
        C32 = np.asarray(C, dtype=np.float32)
        d_w = self._dirs_c @ R_wc.T.astype(np.float32)  # (H*W, 3) world ray directions, unit camera z
        rays = np.empty((H * W, 6), np.float32)
        rays[:, :3], rays[:, 3:] = C32, d_w
        hit = self._rc.cast_rays(o3d.core.Tensor(rays), nthreads=self.threads)
        t_all = hit["t_hit"].numpy()
        valid = np.isfinite(t_all)
        depth = np.where(valid, t_all, 0.0).astype(np.float32)

        # Shade only pixels that hit something (inside the room that is all of them: skip the gather then).
        px = slice(None) if valid.all() else np.nonzero(valid)[0]
        t = t_all[px]
        gid = hit["geometry_ids"].numpy()[px]
        prim = hit["primitive_ids"].numpy()[px]
        normal = hit["primitive_normals"].numpy()[px]
        dn = d_w[px] * self._inv_dir_norm[px, None]  # unit view directions
        points = C32 + t[:, None] * d_w[px]  # world hit points
        # Normals facing the camera, and the incidence cosine the depth-noise model uses.
        cosang = np.einsum("ij,ij->i", normal, dn)
        normal *= np.where(cosang > 0, -1.0, 1.0).astype(np.float32)[:, None]

        instance, part, nocs, albedo, specular, shininess = self._materials(points, gid, prim, normal)

        light = self.scene.lighting
        lights = [(light.direction, light.colour)] if self.look is None else \
            [(li.direction, li.colour) for li in self.look.lights]
        ambient = light.ambient if self.look is None else self.look.ambient
        irradiance = ambient.astype(np.float32)
        highlight = np.float32(0.0)
        for direction, colour in lights:
            direct, spec = self._direct_light(points, normal, dn, specular, shininess, direction)
            irradiance = irradiance + direct[:, None] * colour.astype(np.float32)
            highlight = highlight + spec[:, None] * colour.astype(np.float32)
        radiance = albedo * irradiance
        radiance += highlight
        if sensor is not None:
            linear = np.zeros((H * W, 3), np.float32)
            linear[px] = radiance
            linear = cv2.GaussianBlur(linear.reshape(H, W, 3), (3, 3), 0.6)  # the optical blur of _encode
            read_field = rng.standard_normal(linear.shape, dtype=np.float32) if image_noise > 0 else None
            rgb = sensor(linear, read_field)
        else:
            rgb = self._encode(radiance, px, rng, image_noise)

        def full(values: np.ndarray, fill, dtype) -> np.ndarray:
            out = np.full((H * W,) + values.shape[1:], fill, dtype)
            out[px] = values
            return out.reshape((H, W) + values.shape[1:])

        luma = albedo @ np.array([0.2126, 0.7152, 0.0722], np.float32)
        return Frame(
            rgb=rgb,
            depth=depth.reshape(H, W),
            instance=full(instance, -1, np.int16),
            part=full(part, -1, np.int8),
            nocs=full(nocs, 0.0, np.float32),
            cos_incidence=full(np.abs(cosang), 0.0, np.float32),
            albedo_luma=full(luma, 0.0, np.float32),
            R_wc=R_wc,
            C=C,
        )

    def _direct_light(self, points: np.ndarray, normal: np.ndarray, dn: np.ndarray, specular: np.ndarray,
                      shininess: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P,) Lambert factor (0 in shadow) and Blinn-Phong highlight of a directional light at the hits."""
        n_hit = len(points)
        L = direction.astype(np.float32)
        ndotl = np.clip(normal @ L, 0.0, None)
        lit = np.nonzero(ndotl > 0)[0]
        direct = np.zeros(n_hit, np.float32)
        direct[lit] = ndotl[lit]
        if self.shadows and len(lit):
            srays = np.empty((len(lit), 6), np.float32)
            srays[:, :3] = points[lit] + 1e-3 * normal[lit]
            srays[:, 3:] = L
            occluded = self._rc.test_occlusions(o3d.core.Tensor(srays), tnear=1e-4, tfar=_SHADOW_REACH,
                                                nthreads=self.threads).numpy()
            direct[lit[occluded]] = 0.0
        # Blinn-Phong highlight where the light reaches.
        shiny = np.nonzero((direct > 0) & (specular > 0))[0]
        half = L[None, :] - dn[shiny]
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        spec = np.zeros(n_hit, np.float32)
        spec[shiny] = (
            specular[shiny] * np.clip(np.einsum("ij,ij->i", normal[shiny], half), 0, 1) ** shininess[shiny]
        )
        return direct, spec

    def _encode(self, radiance: np.ndarray, px, rng: np.random.Generator, image_noise: float) -> np.ndarray:
        """(H, W, 3) uint8 sRGB image of the hits' linear radiance, with Gaussian noise (effects off)."""
        H, W = self.K.height, self.K.width
        # sRGB encoding through a lookup table (a float power over every pixel is the slowest step otherwise).
        code = _SRGB_LUT[np.clip(radiance * (_LUT_SIZE - 1), 0, _LUT_SIZE - 1).astype(np.int32)]
        rgb = np.zeros((H * W, 3), np.float32)
        rgb[px] = code
        rgb = rgb.reshape(H, W, 3)
        # Slight optical blur (one ray per pixel would otherwise give aliased, unrealistically sharp edges).
        rgb = cv2.GaussianBlur(rgb, (3, 3), 0.6)
        if image_noise > 0:
            rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(image_noise)
        return np.clip(rgb, 0, 255).astype(np.uint8)

    def cast_rays(self, rays: np.ndarray) -> dict[str, np.ndarray]:
        """Cast (N, 6) float32 rays (origin, direction) into the scene; numpy arrays of open3d's hit fields.

        Keys: t_hit (N,) (inf on a miss; in units of the direction's length), geometry_ids (N,),
        primitive_ids (N,), primitive_normals (N, 3). Other sensors (stereo.py) see the scene through this.
        """
        hit = self._rc.cast_rays(o3d.core.Tensor(np.ascontiguousarray(rays, dtype=np.float32)),
                                 nthreads=self.threads)
        return {k: hit[k].numpy() for k in ("t_hit", "geometry_ids", "primitive_ids", "primitive_normals")}

    def base_luma(self, gid: np.ndarray, prim: np.ndarray) -> np.ndarray:
        """(P,) float32 linear luminance of the base colour of triangles `prim` of geometries `gid` (hits).

        Per-part colours without the procedural patterns (a table lookup, ~100x cheaper than the full albedo):
        what the stereo simulation uses as infrared reflectance, where printed patterns barely show.
        """
        if self._face_luma is None:
            weights = np.array([0.2126, 0.7152, 0.0722])
            per_geometry = []
            for g, (kind, idx) in enumerate(self._kind):
                n_faces = self._n_faces[g]
                if kind == _KIND_OBJECT:
                    obj = self.scene.objects[idx]
                    per_geometry.append(obj.material.colours[obj.shape.face_parts] @ weights)
                elif kind == _KIND_DISTRACTOR:
                    per_geometry.append(np.full(n_faces, self.scene.distractors[idx].colour @ weights))
                elif kind == _KIND_TABLE:
                    per_geometry.append(np.full(n_faces, self.scene.table_colours[0] @ weights))
                else:
                    per_geometry.append(np.full(n_faces, 0.7 * self.scene.room_colour @ weights))
            self._face_offset = np.cumsum([0] + self._n_faces[:-1]).astype(np.int64)
            self._face_luma = np.concatenate(per_geometry).astype(np.float32)
        return self._face_luma[self._face_offset[gid] + prim]

    def _materials(self, points: np.ndarray, gid: np.ndarray, prim: np.ndarray,
                   normal: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per hit (world points, normals): instance, part, NOCS, albedo (P, 3), specular, shininess."""
        n_hit = len(points)
        instance = np.full(n_hit, -1, np.int16)
        part = np.full(n_hit, -1, np.int8)
        nocs = np.zeros((n_hit, 3), np.float32)
        albedo = np.zeros((n_hit, 3), np.float32)
        specular = np.zeros(n_hit, np.float32)
        shininess = np.full(n_hit, 20.0, np.float32)
        present = np.bincount(gid, minlength=len(self._kind)) > 0
        for g, (kind, idx) in enumerate(self._kind):
            if not present[g]:
                continue
            sel = np.nonzero(gid == g)[0]
            if kind == _KIND_OBJECT:
                obj = self.scene.objects[idx]
                q = ((points[sel] - obj.t_wo) @ obj.R_wo / obj.scale).astype(np.float32)  # R^T (p - t) / s
                nocs[sel] = np.clip(q, -0.5, 0.5)
                parts = obj.shape.face_parts[prim[sel]]
                instance[sel], part[sel] = idx, parts
                albedo[sel] = self._object_albedo(obj.material, q, parts)
                specular[sel], shininess[sel] = obj.material.specular, obj.material.shininess
            elif kind == _KIND_DISTRACTOR:
                texture = self.look.distractor_textures[idx] if self.look is not None else None
                albedo[sel] = self.scene.distractors[idx].colour if texture is None else \
                    texture.albedo(points[sel], normal[sel])
                specular[sel] = 0.15
            elif kind == _KIND_TABLE:
                texture = self.look.table_texture if self.look is not None else None
                albedo[sel] = self._table_albedo(points[sel]) if texture is None else \
                    texture.albedo(points[sel], normal[sel])
                specular[sel], shininess[sel] = 0.08, 15.0
            else:
                # Room: floor darker than walls, soft vertical gradient.
                z = points[sel, 2]
                texture = self.look.room_texture if self.look is not None else None
                base = self.scene.room_colour[None, :] if texture is None else \
                    texture.albedo(points[sel], normal[sel])
                albedo[sel] = base * np.clip(0.55 + 0.15 * z, 0.3, 1.0)[:, None]
        return instance, part, nocs, albedo, specular, shininess

    @staticmethod
    def _object_albedo(mat, q: np.ndarray, parts: np.ndarray) -> np.ndarray:
        """(P, 3) albedo of object points with NOCS coordinates q (P, 3) and part labels (P,)."""
        col = mat.colours[parts].astype(np.float32)
        patterned = (
            (parts == PART_LABEL)
            if mat.pattern == PATTERN_LABEL
            else (parts == PART_BODY) | (parts == PART_LABEL)
        )
        if mat.pattern != PATTERN_PLAIN and patterned.any():
            w = _pattern(q[patterned], mat.pattern, mat.frequency, mat.phase)[:, None]
            col[patterned] = col[patterned] * (1 - w) + mat.accent[None, :] * w
        kb = parts == PART_KEYBOARD  # key grid on the laptop deck
        if kb.any():
            keys = (np.sin(q[kb, 2] * 2 * np.pi * 28) > -0.6) & (np.sin(q[kb, 0] * 2 * np.pi * 14) > -0.5)
            col[kb] = col[kb] * np.where(keys, 1.0, 0.4)[:, None]
        disp = parts == PART_DISPLAY
        if disp.any():  # a wallpaper gradient on screens that are on
            col[disp] = col[disp] * (0.7 + 0.6 * (q[disp, 1:2] + 0.5))
        return col

    def _table_albedo(self, p: np.ndarray) -> np.ndarray:
        """(P, 3) albedo of table points (P, 3) in world coordinates (metres)."""
        base, accent = self.scene.table_colours
        f = self.scene.table_frequency
        if self.scene.table_kind == TABLE_WOOD:
            # Wood grain: rings along y, warped by a slow wave along x.
            g = np.sin(f * 6 * (p[:, 1] + 0.03 * np.sin(p[:, 0] * 7)) + 3 * np.sin(p[:, 0] * 1.3))
            w = (0.5 + 0.5 * g) ** 3
        elif self.scene.table_kind == TABLE_TILES:
            cell = 1.0 / max(f, 1.0) * 3
            fx, fy = (p[:, 0] / cell) % 1.0, (p[:, 1] / cell) % 1.0
            grout = (np.minimum(fx, 1 - fx) < 0.03) | (np.minimum(fy, 1 - fy) < 0.03)
            w = grout.astype(np.float32)
        else:
            w = 0.15 * (np.sin(p[:, 0] * 31) * np.sin(p[:, 1] * 27) + 1) / 2
        return base[None, :] * (1 - w[:, None]) + accent[None, :] * w[:, None]
