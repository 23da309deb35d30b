"""Procedural shape families for the six NOCS categories, built with trimesh, in the NOCS canonical frame.

Every instance is a triangle mesh in its category's canonical frame, exactly as NOCS defines it: the tight
axis-aligned bounding box is centred at the origin and scaled to a unit diagonal (so every vertex lies in
[-0.5, 0.5]^3 and the NOCS map value of a surface point is `p + 0.5`).

Axis conventions. NOCS's CAMERA objects are ShapeNetCore v1 models, whose README states "the up direction is
the +Y axis, and the front is the +X axis" with the X-Y plane the bilateral symmetry plane; the REAL275 scans
were aligned to the same frame (public annotations of the REAL mugs describe "Y directed up and X directed in
handle direction"). We follow that frame for every category:

- bottle, bowl, can: solids of revolution about +y (the symmetry axis), base at the bottom (-y).
- mug: revolved cup about +y with the handle in the X-Y plane on the +x side.
- camera: body upright (+y up), lens pointing along +x (the front), symmetric-ish about the X-Y plane.
- laptop: base in the X-Z plane (keyboard facing +y), the user sits on the +x side; the hinge runs along z at
  the -x edge and the lid rises from it with the display facing +x.

Instances are identified as "<category>_<index:04d>" and are a pure function of (shape_seed, category, index),
so the same id always names the same mesh, whatever the generation seed. `split_of_instance` assigns even
indices below `pool_size` to train and odd ones to test; the `val_pool_size` indices after `pool_size` form
the validation pool, which neither train nor test contains (issue 18: choices are tuned on it, test splits
only read for final tables). Held-out instances never appear in training.

Every mesh carries a per-face part label (`PART_*`), used for per-part materials and for the mug's
handle-visibility flag. Differences from the official data: these are procedural shapes, not ShapeNet /
scanned models, so textures are procedural and the per-category shape distribution is our own (documented
ranges below).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import trimesh

from cleanpose_core import NOCS_CATEGORIES

# Part labels stored per face; materials and the handle-visibility test key on these.
PART_BODY = 0
PART_CAP = 1  # bottle cap
PART_LABEL = 2  # printed label band (bottle, can)
PART_HANDLE = 3  # mug handle
PART_LENS = 4  # camera lens barrel
PART_GLASS = 5  # camera lens front glass
PART_TRIM = 6  # camera grip / top plate, can rims
PART_KEYBOARD = 7  # laptop keyboard deck
PART_DISPLAY = 8  # laptop display
PART_INNER = 9  # inside of bowl / mug
NUM_PARTS = 10

_SECTIONS = 48  # angular resolution of solids of revolution: chord error 0.2 % of the radius, ~2-4k faces


@dataclass(frozen=True)
class ShapeInstance:
    """One procedural object in its NOCS frame.

    Attributes:
        model_id: "<category>_<index:04d>".
        category: one of NOCS_CATEGORIES.
        mesh: trimesh.Trimesh with vertices in the NOCS frame (tight bbox centred, unit diagonal).
        face_parts: (F,) int8 part label per face (PART_*).
        extents: (3,) float64 tight bbox extents in NOCS units (unit norm) = the DPDN `sizes` entry.
    """

    model_id: str
    category: str
    mesh: trimesh.Trimesh
    face_parts: np.ndarray
    extents: np.ndarray


SPLITS = ("train", "val", "test")


def split_of_instance(index: int, pool_size: int) -> str:
    """Below `pool_size`: 'train' for even indices, 'test' for odd ones; from `pool_size` on: 'val'. No two
    splits share a shape, and adding the validation pool left the train and test pools as they were."""
    if index >= pool_size:
        return "val"
    return "train" if index % 2 == 0 else "test"


def instance_indices(split: str, pool_size: int, val_pool_size: int = 0) -> list[int]:
    """The instance indices of `split` ('train', 'val' or 'test'); the validation pool holds the
    `val_pool_size` indices after `pool_size`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    every = range(pool_size + val_pool_size)
    return [i for i in every if split_of_instance(i, pool_size) == split]


def model_id_of(category: str, index: int) -> str:
    return f"{category}_{index:04d}"


# ----------------------------------------------------------------------------------------------------------
# Mesh building blocks
# ----------------------------------------------------------------------------------------------------------


def _z_up_to_y_up() -> np.ndarray:
    """4x4 transform mapping trimesh's revolve axis (+z) onto +y: (x, y, z) -> (x, z, -y)."""
    return trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])


def _revolve(profile_ry: np.ndarray, sections: int = _SECTIONS) -> trimesh.Trimesh:
    """Solid of revolution about +y from a (P, 2) polyline of (radius, height) points.

    A profile that starts and ends on the axis (radius 0) gives a closed surface.
    """
    profile_ry = np.asarray(profile_ry, dtype=np.float64)
    mesh = trimesh.creation.revolve(profile_ry, sections=sections)
    mesh.apply_transform(_z_up_to_y_up())
    return mesh


def _tube(path: np.ndarray, radius_a: float, radius_b: float, ring: int = 12) -> trimesh.Trimesh:
    """Closed tube with an elliptical cross-section along a (P, 3) path lying in the X-Y plane.

    `radius_a` is the half-width in the path's plane, `radius_b` the half-width along z (flat handles have
    radius_b > radius_a). The two ends are capped with fans.
    """
    path = np.asarray(path, dtype=np.float64)
    tangents = np.gradient(path, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    binormal = np.array([0.0, 0.0, 1.0])
    normals = np.cross(binormal, tangents)  # in-plane normal of each path point
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    ang = np.linspace(0.0, 2 * np.pi, ring, endpoint=False)
    # (P, ring, 3) ring vertices
    verts = (
        path[:, None, :]
        + radius_a * np.cos(ang)[None, :, None] * normals[:, None, :]
        + radius_b * np.sin(ang)[None, :, None] * binormal[None, None, :]
    )
    n_path = len(path)
    faces = []
    for i in range(n_path - 1):
        for j in range(ring):
            a, b = i * ring + j, i * ring + (j + 1) % ring
            c, d = a + ring, b + ring
            faces += [[a, b, d], [a, d, c]]
    verts = verts.reshape(-1, 3)
    start_c, end_c = len(verts), len(verts) + 1
    verts = np.vstack([verts, path[0], path[-1]])
    for j in range(ring):
        faces.append([start_c, (j + 1) % ring, j])
        last = (n_path - 1) * ring
        faces.append([end_c, last + j, last + (j + 1) % ring])
    return trimesh.Trimesh(verts, np.asarray(faces), process=False)


def _box(extents, centre, rotation_z: float = 0.0) -> trimesh.Trimesh:
    """Axis-aligned box of `extents` (x, y, z), rotated by `rotation_z` radians about z, centred at
    `centre`."""
    transform = trimesh.transformations.rotation_matrix(rotation_z, [0, 0, 1])
    transform[:3, 3] = centre
    return trimesh.creation.box(extents=extents, transform=transform)


def _cylinder_x(
    radius: float, length: float, x0: float, y: float, z: float, sections: int = 32
) -> trimesh.Trimesh:
    """Cylinder with its axis along +x, starting at x0 and ending at x0 + length, centred on (y, z)."""
    transform = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])  # z axis -> x axis
    transform[:3, 3] = [x0 + length / 2, y, z]
    return trimesh.creation.cylinder(radius=radius, height=length, sections=sections, transform=transform)


def _assemble(parts: list[tuple[trimesh.Trimesh, int]]) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Concatenate (mesh, part label) pieces into one mesh plus its (F,) face-part array."""
    meshes = [m for m, _ in parts]
    labels = np.concatenate([np.full(len(m.faces), p, dtype=np.int8) for m, p in parts])
    return trimesh.util.concatenate(meshes), labels


def _normalise(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Centre the tight bbox at the origin and scale it to a unit diagonal (the NOCS normalisation)."""
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    mesh.apply_scale(1.0 / np.linalg.norm(hi - lo))
    lo, hi = mesh.bounds
    return mesh, hi - lo


# ----------------------------------------------------------------------------------------------------------
# Category families. Each takes a Generator and returns (mesh, face parts) in arbitrary units, y up.
# ----------------------------------------------------------------------------------------------------------


def _bottle(rng: np.random.Generator) -> tuple[trimesh.Trimesh, np.ndarray]:
    # Unit height; body radius, shoulder height, neck length and cap vary independently, giving water bottles,
    # wine bottles, squat sauce bottles and shampoo-like flasks.
    rb = rng.uniform(0.13, 0.28)  # body radius / height
    y_shoulder = rng.uniform(0.4, 0.72)
    neck_r = rb * rng.uniform(0.22, 0.5)
    cap_h = rng.uniform(0.04, 0.09)
    y_neck = rng.uniform(y_shoulder + 0.08, min(0.92 - cap_h, y_shoulder + 0.35))
    cap_r = neck_r * rng.uniform(1.0, 1.25)
    base_r = rb * rng.uniform(0.85, 1.0)
    shoulder_pow = rng.uniform(0.6, 2.0)  # <1: domed shoulder, >1: conical/concave shoulder
    t = np.linspace(0.0, 1.0, 10)[1:-1]
    shoulder = np.stack(
        [neck_r + (rb - neck_r) * (1 - t**shoulder_pow) ** 0.5, y_shoulder + t * (y_neck - y_shoulder)], 1
    )
    label_lo = max(0.07, rng.uniform(0.1, 0.3) * y_shoulder)
    label_hi = y_shoulder * rng.uniform(0.7, 0.95)
    # Extra profile points at the label edges so the label band is its own ring of faces.
    body = [[0.0, 0.0], [base_r, 0.0], [rb, 0.04], [rb, label_lo], [rb, label_hi], [rb, y_shoulder]]
    neck_top = 1.0 - cap_h
    profile = np.vstack(
        [body, shoulder, [[neck_r, y_neck], [neck_r, neck_top], [cap_r, neck_top], [cap_r, 1.0], [0.0, 1.0]]]
    )
    mesh = _revolve(profile)
    centres_y = mesh.triangles_center[:, 1]
    parts = np.full(len(mesh.faces), PART_BODY, dtype=np.int8)
    parts[(centres_y > label_lo) & (centres_y < label_hi)] = PART_LABEL
    parts[centres_y > neck_top - 1e-6] = PART_CAP
    return mesh, parts


def _bowl(rng: np.random.Generator) -> tuple[trimesh.Trimesh, np.ndarray]:
    # Unit rim radius; height, foot ring, wall thickness and the wall curve (hemispherical ... flared) vary.
    h = rng.uniform(0.35, 0.75)
    foot_r = rng.uniform(0.3, 0.6)
    foot_h = rng.uniform(0.0, 0.06) * h
    wall = rng.uniform(0.03, 0.07)
    power = rng.uniform(0.45, 1.3)  # <1 rounded belly, ~1 conical, >1 flared rim
    t = np.linspace(0.0, 1.0, 14)
    outer_r = foot_r + (1.0 - foot_r) * t**power
    outer_y = foot_h + (h - foot_h) * np.sin(t * np.pi / 2) ** 1.2
    # The inside follows the outside, one wall thickness in and up, meeting it at a flat lip on the rim.
    inner_r = np.maximum(outer_r - wall, 0.0)[::-1]
    inner_y = np.minimum(outer_y + wall, h)[::-1]
    profile = np.vstack(
        [[[0.0, 0.0], [foot_r, 0.0]], np.stack([outer_r, outer_y], 1), np.stack([inner_r, inner_y], 1),
         [[0.0, foot_h + wall]]]
    )
    mesh = _revolve(profile)
    # Faces whose normal points towards the axis or up from the floor are the bowl's inside.
    c = mesh.triangles_center
    radial = np.stack([c[:, 0], np.zeros(len(c)), c[:, 2]], 1)
    inward = np.einsum("ij,ij->i", mesh.face_normals, radial) < 0
    parts = np.where(inward & (c[:, 1] > foot_h + wall * 0.5), PART_INNER, PART_BODY).astype(np.int8)
    return mesh, parts


def _can(rng: np.random.Generator) -> tuple[trimesh.Trimesh, np.ndarray]:
    # Unit height; slim energy-drink cans to squat tuna/food cans, with rolled rims and a recessed lid.
    r = rng.uniform(0.2, 0.55)
    rim = rng.uniform(0.02, 0.05)
    neck = rng.uniform(0.85, 0.95)  # top taper radius ratio
    recess = rng.uniform(0.01, 0.04)
    profile = [
        [0.0, recess],
        [r * neck, recess],
        [r * neck, 0.0],
        [r, rim],
        [r, 1.0 - rim * 2],
        [r * neck, 1.0 - rim * 0.5],
        [r * neck, 1.0],
        [r * neck * 0.96, 1.0],
        [r * neck * 0.96, 1.0 - recess],
        [0.0, 1.0 - recess],
    ]
    mesh = _revolve(np.asarray(profile))
    cy = mesh.triangles_center[:, 1]
    parts = np.full(len(mesh.faces), PART_TRIM, dtype=np.int8)
    parts[(cy > rim) & (cy < 1.0 - rim * 2)] = PART_LABEL
    return mesh, parts


def _mug(rng: np.random.Generator) -> tuple[trimesh.Trimesh, np.ndarray]:
    # Unit height; straight, tapered and barrel cups; round, D-shaped and squarish handles of varied size.
    r_top = rng.uniform(0.32, 0.6)
    r_bot = r_top * rng.uniform(0.7, 1.05)
    belly = rng.uniform(0.0, 0.08) * r_top  # barrel bulge at mid height
    wall = rng.uniform(0.03, 0.06)
    base = rng.uniform(0.05, 0.1)
    t = np.linspace(0.0, 1.0, 9)
    outer_r = r_bot + (r_top - r_bot) * t + belly * np.sin(np.pi * t)
    outer = np.stack([outer_r, t], 1)
    inner = np.stack([outer_r[::-1] - wall, np.maximum(t[::-1], base)], 1)
    profile = np.vstack([[[0.0, 0.0]], outer, inner, [[0.0, base]]])
    cup = _revolve(profile)
    c = cup.triangles_center
    radial = np.stack([c[:, 0], np.zeros(len(c)), c[:, 2]], 1)
    inward = np.einsum("ij,ij->i", cup.face_normals, radial) < 0
    cup_parts = np.where(inward & (c[:, 1] > base * 0.5), PART_INNER, PART_BODY).astype(np.int8)

    # Handle: a tube from an upper to a lower attachment on the +x wall, bulging out along +x.
    y_hi = rng.uniform(0.7, 0.9)
    y_lo = rng.uniform(0.12, y_hi - 0.35)
    reach = rng.uniform(0.18, 0.4)  # how far the handle sticks out, in mug heights
    squareness = rng.uniform(0.0, 1.0)  # 0 = round C, 1 = square-ish D
    thick = rng.uniform(0.03, 0.06)
    flat = rng.uniform(1.0, 1.8)  # cross-section aspect (z half-width / in-plane half-width)

    def wall_radius(y):
        return np.interp(y, t, outer_r)

    theta = np.linspace(np.pi / 2, -np.pi / 2, 24)
    # Superellipse sweep: exponent -> 0 squares the corners.
    e = 1.0 - 0.75 * squareness
    cx, sy = (
        np.sign(np.cos(theta)) * np.abs(np.cos(theta)) ** e,
        np.sign(np.sin(theta)) * np.abs(np.sin(theta)) ** e,
    )
    yc, hh = (y_hi + y_lo) / 2, (y_hi - y_lo) / 2
    ys = yc + hh * sy
    xs = wall_radius(ys) - thick + (reach + thick) * cx
    handle = _tube(np.stack([xs, ys, np.zeros_like(xs)], 1), thick, thick * flat)
    return _assemble([(cup, PART_BODY), (handle, PART_HANDLE)])[0], np.concatenate(
        [cup_parts, np.full(len(handle.faces), PART_HANDLE, np.int8)]
    )


def _camera(rng: np.random.Generator) -> tuple[trimesh.Trimesh, np.ndarray]:
    # Unit body width (along z); compacts (short lens, flat top) to DSLRs (grip, prism hump, long lens).
    height = rng.uniform(0.55, 0.8)
    depth = rng.uniform(0.25, 0.5)
    dslr = rng.random() < 0.6
    parts: list[tuple[trimesh.Trimesh, int]] = [(_box([depth, height, 1.0], [0, height / 2, 0]), PART_BODY)]
    lens_r = rng.uniform(0.17, 0.3) * (1.0 if dslr else 0.8)
    lens_r = min(lens_r, height * 0.45)
    lens_len = rng.uniform(0.25, 0.8) if dslr else rng.uniform(0.08, 0.25)
    lens_z = rng.uniform(-0.1, 0.1) if dslr else rng.uniform(-0.3, 0.0)
    lens_y = height * rng.uniform(0.45, 0.55)
    x0 = depth / 2
    parts.append((_cylinder_x(lens_r, lens_len, x0, lens_y, lens_z), PART_LENS))
    ring_len = lens_len * rng.uniform(0.15, 0.3)
    parts.append(
        (
            _cylinder_x(lens_r * rng.uniform(1.03, 1.12), ring_len, x0 + lens_len * 0.35, lens_y, lens_z),
            PART_TRIM,
        )
    )
    parts.append((_cylinder_x(lens_r * 0.8, 0.01, x0 + lens_len, lens_y, lens_z), PART_GLASS))
    if dslr:
        grip_w = rng.uniform(0.15, 0.25)
        parts.append(
            (
                _box(
                    [depth * 0.5, height * 0.95, grip_w], [x0 + depth * 0.2, height * 0.475, 0.5 - grip_w / 2]
                ),
                PART_TRIM,
            )
        )
        hump_h = rng.uniform(0.12, 0.25)
        parts.append((_box([depth * 0.8, hump_h, 0.3], [0.0, height + hump_h / 2, lens_z]), PART_TRIM))
    else:
        flash = rng.uniform(0.05, 0.1)
        parts.append((_box([depth * 0.6, flash, 0.25], [0.0, height + flash / 2, 0.3]), PART_TRIM))
    button = trimesh.creation.cylinder(radius=0.04, height=0.04, sections=16)
    button.apply_transform(_z_up_to_y_up())
    button.apply_translation([0.0, height + 0.02, 0.38])
    parts.append((button, PART_TRIM))
    return _assemble(parts)


def _laptop(rng: np.random.Generator) -> tuple[trimesh.Trimesh, np.ndarray]:
    # Unit width (along z); aspect ratio, thickness and the opening angle (60..135 deg) vary.
    depth = rng.uniform(0.62, 0.75)
    base_t = rng.uniform(0.03, 0.06)
    lid_t = rng.uniform(0.015, 0.03)
    lid_len = depth * rng.uniform(0.92, 1.0)
    alpha = np.deg2rad(rng.uniform(60.0, 135.0))  # angle between keyboard deck and lid
    base = _box([depth, base_t, 1.0], [0.0, base_t / 2, 0.0])
    hinge = np.array([-depth / 2, base_t, 0.0])
    d = np.array([np.cos(alpha), np.sin(alpha), 0.0])  # along the lid, from the hinge
    n_back = np.array([-np.sin(alpha), np.cos(alpha), 0.0])  # lid normal pointing away from the user
    lid_centre = hinge + d * lid_len / 2 + n_back * lid_t / 2
    lid = _box([lid_len, lid_t, 0.98], lid_centre, rotation_z=alpha)
    base_parts = np.where(base.face_normals[:, 1] > 0.9, PART_KEYBOARD, PART_BODY).astype(np.int8)
    lid_parts = np.where(lid.face_normals @ -n_back > 0.9, PART_DISPLAY, PART_BODY).astype(np.int8)
    mesh = trimesh.util.concatenate([base, lid])
    return mesh, np.concatenate([base_parts, lid_parts])


_FAMILIES = {"bottle": _bottle, "bowl": _bowl, "camera": _camera, "can": _can, "laptop": _laptop, "mug": _mug}


@functools.lru_cache(maxsize=512)
def make_instance(category: str, index: int, shape_seed: int = 0) -> ShapeInstance:
    """The instance `<category>_<index:04d>`: a deterministic function of (shape_seed, category, index).

    Returns a ShapeInstance whose mesh is in the NOCS frame (tight bbox centred, unit diagonal). Cached, so
    scenes that reuse an instance do not rebuild it; callers must not modify the returned mesh.
    """
    if category not in _FAMILIES:
        raise ValueError(f"unknown category {category!r}; expected one of {NOCS_CATEGORIES}")
    if index < 0:
        raise ValueError(f"instance index must be >= 0, got {index}")
    seq = np.random.SeedSequence([shape_seed, NOCS_CATEGORIES.index(category), index])
    mesh, parts = _FAMILIES[category](np.random.default_rng(seq))
    mesh, extents = _normalise(mesh)
    mesh.vertices.flags.writeable = False
    return ShapeInstance(model_id_of(category, index), category, mesh, parts, extents)


def sample_surface_points(
    mesh: trimesh.Trimesh, n_points: int = 1024, n_candidates: int = 8192, seed: int = 0
) -> np.ndarray:
    """(n_points, 3) float32 points on `mesh`: area-uniform candidates reduced by farthest-point sampling.

    This is how the NOCS model point clouds (`obj_models/*.pkl`) are made (SPD preprocessing: FPS over the
    surface), so the result is spread evenly, centred like the mesh and in its units.
    """
    candidates, _ = trimesh.sample.sample_surface(mesh, n_candidates, seed=seed)
    idx = farthest_point_indices(np.asarray(candidates, dtype=np.float64), n_points)
    return candidates[idx].astype(np.float32)


def farthest_point_indices(points: np.ndarray, n_samples: int) -> np.ndarray:
    """(n_samples,) indices of an iterative farthest-point subset of (N, 3) `points`, starting at index 0.

    Uses the `fpsample` package when installed; otherwise a vectorised numpy loop (one O(N) update per pick).
    """
    n = len(points)
    if n_samples > n:
        raise ValueError(f"cannot pick {n_samples} farthest points from {n} points")
    try:
        import fpsample  # optional fast path (dev extra)

        return np.asarray(
            fpsample.fps_sampling(points.astype(np.float32), n_samples, start_idx=0), dtype=np.int64
        )
    except ImportError:
        pass
    chosen = np.zeros(n_samples, dtype=np.int64)
    dist = np.full(n, np.inf)
    for i in range(1, n_samples):
        dist = np.minimum(dist, np.sum((points - points[chosen[i - 1]]) ** 2, axis=1))
        chosen[i] = int(np.argmax(dist))
    return chosen
