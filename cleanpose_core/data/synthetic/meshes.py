"""Imported meshes for the synthetic engine: three folder layouts, canonicalised to the NOCS frame and
checked.

`read_catalogue(folder)` lists the meshes of a folder (without loading them) in one of three layouts:

- ShapeNetCore v2: `<synset>/<model>/models/model_normalized.obj`, the six NOCS synsets (SHAPENET_SYNSETS).
  ShapeNetCore v2 OBJs are aligned with "up +Y, front -Z" (shapenet.org, ShapeNetCore v2 notes, which say this
  fixes v1's mirroring), while NOCS keeps ShapeNetCore v1's "up +Y, front +X" frame (see shapes.py); the
  proper rotation (x, y, z) -> (-z, y, x) takes one to the other.
- NOCS `obj_models`: `{train,val}/<synset>/<model>/model.obj` (the CAMERA models, ShapeNetCore v1) and
  `{real_train,real_test}/<instance>.obj` (the REAL scans, category = the name's prefix, e.g.
  `mug_daniel_norm`, bbox size in metres in `<instance>.txt` beside it when present). The CAMERA OBJs are
  mirrored along z against
  the NOCS maps: the SPD/DPDN preprocessing (`shape_data.py`, "flip z-axis in CAMERA") negates z, and so do
  we. `train`/`real_train` models go to the train split, `val`/`real_test` ones to the test split.
- A generic folder of OBJ / PLY / STL / GLB files described by `meshes.yaml` (see `read_meshes_yaml`).

`load_instance(entry)` reads one mesh with trimesh (any of those formats; scenes are flattened into one mesh,
materials ignored), rotates it into the NOCS frame (y up, x front / mug handle), centres its tight bbox and
scales it to a unit diagonal. Nothing assumes a closed surface: bounds, surface sampling and the checks below
work on open or non-manifold meshes, and the renderer shades both sides of a triangle. `check_instance`
measures what the
frame should satisfy: bottle, bowl and can must be rotationally symmetric about y; a mug's handle must stick
out along +x (the NOCS / ShapeNet v1 convention that shapes.py follows). Violations are warnings naming the
file.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
import yaml
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from cleanpose_core import NOCS_CATEGORIES, NOCS_SYMMETRIC
from cleanpose_core.config import ConfigError
from cleanpose_core.data.synthetic.shapes import PART_BODY, PART_HANDLE, ShapeInstance, _normalise

log = logging.getLogger(__name__)

SHAPENET_SYNSETS = {"02876657": "bottle", "02880940": "bowl", "02942699": "camera", "02946921": "can",
                    "03642806": "laptop", "03797390": "mug"}
NOCS_OBJ_SUBSETS = {"train": "train", "val": "test", "real_train": "train", "real_test": "test"}
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".glb", ".gltf", ".off")
_AXES = {"x": 0, "y": 1, "z": 2}
_ENTRY_KEYS = {"file", "category", "up", "front", "size_m", "scale", "split", "id"}
# rotated-surface distance / sampling noise above which an axis is not a symmetry axis
SYMMETRY_TOLERANCE = 2.0


@dataclass(frozen=True)
class MeshEntry:
    """One mesh file of a catalogue; `rotation` maps the file's coordinates to the NOCS axes (p_nocs = R
    p)."""

    model_id: str
    category: str
    path: str
    split: str  # 'train' | 'test'
    layout: str  # 'shapenet_v2' | 'nocs_obj_models' | 'meshes_yaml'
    rotation: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    mirror_z: bool = False  # negate the NOCS z after rotating (the CAMERA models of NOCS obj_models)
    size_m: tuple[float, float, float] | None = None  # real tight-bbox extents along NOCS x, y, z (metres)
    unit_scale: float | None = None  # metres per mesh unit (the real size follows from the mesh)


@dataclass(frozen=True)
class MeshInstance(ShapeInstance):
    """A ShapeInstance read from a file; `metric_scale` is its real bbox diagonal in metres when known."""

    metric_scale: float | None = None
    path: str = ""


def parse_axis(text: str, where: str) -> np.ndarray:
    """'+x', '-y', 'z', ... -> the signed unit vector."""
    m = re.fullmatch(r"\s*([+-]?)\s*([xyzXYZ])\s*", str(text))
    if m is None:
        raise ConfigError(f"{where}: axis must be one of +x, -x, +y, -y, +z, -z, got {text!r}")
    v = np.zeros(3)
    v[_AXES[m.group(2).lower()]] = -1.0 if m.group(1) == "-" else 1.0
    return v


def axes_rotation(up: str, front: str, where: str) -> tuple[tuple[float, ...], ...]:
    """Rotation taking the mesh's `up` axis to NOCS +y and its `front` axis to NOCS +x (z = x cross y)."""
    u, f = parse_axis(up, f"{where} up"), parse_axis(front, f"{where} front")
    if abs(float(u @ f)) > 0.5:
        raise ConfigError(f"{where}: up {up!r} and front {front!r} must be different axes")
    return tuple(tuple(float(x) for x in row) for row in np.stack([f, u, np.cross(f, u)]))


def name_hash(shape_seed: int, category: str, model_id: str) -> float:
    digest = hashlib.sha1(f"{shape_seed}/{category}/{model_id}".encode()).hexdigest()
    return int(digest[:12], 16) / float(16**12)


def assign_splits(items: list[dict], shape_seed: int) -> list[dict]:
    """Fill `split` where it is None: a hash of (shape_seed, category, model id) below 0.5 is train, else
    test.

    A file's split depends only on its own name, so adding meshes never moves another mesh across splits, with
    one
    exception: a category with >= 2 meshes that all hash into one split gets the one nearest the cut moved
    across, so each split has at least one instance of it.
    """
    for it in items:
        it["_u"] = name_hash(shape_seed, it["category"], it["model_id"])
        if it["split"] is None:
            it["split"] = "train" if it["_u"] < 0.5 else "test"
            it["_hashed"] = True
    for cat in NOCS_CATEGORIES:
        group = [it for it in items if it["category"] == cat]
        splits = {it["split"] for it in group}
        movable = [it for it in group if it.get("_hashed")]
        if len(group) >= 2 and len(splits) == 1 and movable:
            it = min(movable, key=lambda i: abs(i["_u"] - 0.5))
            it["split"] = "test" if it["split"] == "train" else "train"
    return items


def _shapenet_items(root: Path) -> list[dict]:
    items = []
    for synset, cat in SHAPENET_SYNSETS.items():
        for obj in sorted((root / synset).glob("*/models/model_normalized.obj")):
            rot = axes_rotation("+y", "-z", str(obj))  # v2: up +Y, front -Z
            items.append({"model_id": obj.parents[1].name, "category": cat, "path": str(obj), "split": None,
                          "layout": "shapenet_v2", "rotation": rot})
    return items


def _nocs_items(root: Path) -> list[dict]:
    items = []
    for subset, split in NOCS_OBJ_SUBSETS.items():
        for synset, cat in SHAPENET_SYNSETS.items():
            for obj in sorted((root / subset / synset).glob("*/model.obj")):
                items.append({"model_id": obj.parent.name, "category": cat, "path": str(obj), "split": split,
                              "layout": "nocs_obj_models", "mirror_z": True})
        for obj in sorted((root / subset).glob("*.obj")):
            cat = next((c for c in NOCS_CATEGORIES if obj.stem.lower().startswith(c + "_")), None)
            if cat is None:
                log.warning("%s: name does not start with a NOCS category and an underscore; skipped", obj)
                continue
            size = None
            if obj.with_suffix(".txt").is_file():
                dims = np.loadtxt(obj.with_suffix(".txt")).reshape(-1)
                size = tuple(float(d) for d in dims[:3]) if dims.size >= 3 else None
            items.append({"model_id": obj.stem, "category": cat, "path": str(obj), "split": split,
                          "layout": "nocs_obj_models", "size_m": size})
    return items


def read_meshes_yaml(path: Path) -> list[dict]:
    """Entries of a `meshes.yaml`: a list (or `{meshes: [...]}`) of mappings

        - {file: cup.ply, category: mug, up: "+z", front: "+x", size_m: [0.12, 0.10, 0.09]}

    `file` is relative to the YAML file; `category` one of NOCS_CATEGORIES; `up` / `front` (default "+y" /
    "+x") are the mesh's own axes that become NOCS +y (up) and NOCS +x (front: a camera's lens, a laptop's
    user side, a mug's handle). `size_m` is the real tight-bbox extent along NOCS x, y, z after that rotation,
    in metres; or `scale`, metres per mesh unit (0.001 for a mesh in mm); with neither, the size is drawn from
    the category's `scene.scale_ranges`. Optional: `split` (train | test, overriding the hash) and `id`
    (default: file stem).
    """
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"meshes"}:
        data = data["meshes"]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: expected a non-empty list of {{file: ..., category: ...}} entries")
    items = []
    for k, e in enumerate(data):
        where = f"{path} entry {k + 1}"
        if not isinstance(e, dict):
            raise ConfigError(f"{where}: expected a mapping, got {e!r}")
        unknown = sorted(set(e) - _ENTRY_KEYS)
        if unknown or "file" not in e or "category" not in e:
            raise ConfigError(f"{where}: needs 'file' and 'category'; unknown keys {unknown}; valid keys "
                              f"{sorted(_ENTRY_KEYS)}")
        where = f"{path} ({e['file']})"
        file = path.parent / str(e["file"])
        if not file.is_file():
            raise ConfigError(f"{where}: file not found: {file}")
        if file.suffix.lower() not in MESH_SUFFIXES:
            raise ConfigError(f"{where}: mesh files must be one of {', '.join(MESH_SUFFIXES)}")
        if e["category"] not in NOCS_CATEGORIES:
            raise ConfigError(f"{where}: category must be one of {NOCS_CATEGORIES}, got {e['category']!r}")
        if e.get("split") not in (None, "train", "test"):
            raise ConfigError(f"{where}: split must be train or test, got {e['split']!r}")
        if "size_m" in e and "scale" in e:
            raise ConfigError(f"{where}: give size_m or scale, not both")
        size = e.get("size_m")
        if size is not None and (not isinstance(size, list) or len(size) != 3
                                 or not all(isinstance(s, (int, float)) and s > 0 for s in size)):
            raise ConfigError(
                f"{where}: size_m must be three positive numbers [x, y, z] in metres, got {size!r}"
            )
        scale = e.get("scale")
        if scale is not None and (not isinstance(scale, (int, float)) or scale <= 0):
            raise ConfigError(
                f"{where}: scale (metres per mesh unit) must be a positive number, got {scale!r}"
            )
        # a file name and a meta token
        model_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(e.get("id", file.stem)))
        rotation = axes_rotation(e.get("up", "+y"), e.get("front", "+x"), where)
        items.append(
            {
                "model_id": model_id,
                "category": e["category"],
                "path": str(file),
                "split": e.get("split"),
                "layout": "meshes_yaml",
                "rotation": rotation,
                "size_m": tuple(float(s) for s in size) if size else None,
                "unit_scale": float(scale) if scale is not None else None,
            }
        )
    return items


@functools.lru_cache(maxsize=8)
def read_catalogue(folder: str, shape_seed: int = 0) -> tuple[MeshEntry, ...]:
    """Every mesh of `folder` with its category and split (see the module docstring for the layouts)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"meshes folder not found: {root}")
    if (root / "meshes.yaml").is_file():
        items = read_meshes_yaml(root / "meshes.yaml")
    elif any((root / s).is_dir() for s in NOCS_OBJ_SUBSETS):
        items = _nocs_items(root)
    elif any((root / s).is_dir() for s in SHAPENET_SYNSETS):
        items = _shapenet_items(root)
    else:
        raise ConfigError(
            f"{root}: no meshes.yaml, no NOCS obj_models subsets ({', '.join(NOCS_OBJ_SUBSETS)}) "
            f"and no ShapeNetCore synset folders ({', '.join(SHAPENET_SYNSETS)})"
        )
    if not items:
        raise ConfigError(f"{root}: no mesh files found")
    seen: dict[str, str] = {}
    unique = []
    for it in items:
        if it["model_id"] in seen:
            if it["layout"] == "meshes_yaml":
                raise ConfigError(
                    f"{root}: model id {it['model_id']!r} names both {seen[it['model_id']]} and "
                    f"{it['path']}; give one of them an `id`"
                )
            log.warning("%s: model id %s already read from %s; skipped", it["path"], it["model_id"],
                        seen[it["model_id"]])
            continue
        seen[it["model_id"]] = it["path"]
        unique.append(it)
    assign_splits(unique, shape_seed)
    fields = set(MeshEntry.__dataclass_fields__)
    return tuple(MeshEntry(**{k: v for k, v in it.items() if k in fields}) for it in unique)


def read_mesh(path: str) -> trimesh.Trimesh:
    """One triangle mesh from an OBJ / PLY / STL / GLB / ... file (scenes flattened, materials not read)."""
    try:
        mesh = trimesh.load(path, force="mesh", skip_materials=True)
    except Exception as exc:  # trimesh raises many kinds; the message must name the file
        raise ValueError(f"{path}: cannot read the mesh: {exc}") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError(f"{path}: no triangles in the file")
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0 or float(np.ptp(mesh.vertices, axis=0).max()) <= 0:
        raise ValueError(f"{path}: the mesh is degenerate (no area)")
    return mesh


def canonicalise(
    mesh: trimesh.Trimesh, rotation, mirror_z: bool = False
) -> tuple[trimesh.Trimesh, np.ndarray, float]:
    """Rotate into the NOCS axes, centre the tight bbox and scale to a unit diagonal.

    Returns the mesh, its (3,) extents (unit norm) and the bbox diagonal before scaling, in mesh units.
    """
    T = np.eye(4)
    T[:3, :3] = np.asarray(rotation, dtype=np.float64)
    if mirror_z:
        T[2, :3] *= -1.0  # a reflection: trimesh also reverses the face winding
    mesh.apply_transform(T)
    diagonal = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    mesh, extents = _normalise(mesh)
    return mesh, extents, diagonal


def symmetry_errors(mesh: trimesh.Trimesh, axes: np.ndarray, n: int = 3000) -> np.ndarray:
    """Per (3,) axis through the origin: surface distance after rotating about it, over the sampling noise.

    About 1 for an axis of rotational symmetry; 3 or more otherwise (a box, a mug). Needs no closed surface.
    """
    p, _ = trimesh.sample.sample_surface(mesh, n, seed=1)
    q, _ = trimesh.sample.sample_surface(mesh, n, seed=2)
    tree = cKDTree(p)
    noise = max(float(tree.query(q)[0].mean()), 1e-9)
    out = []
    for a in np.asarray(axes, dtype=np.float64):
        rots = Rotation.from_rotvec(np.outer(np.deg2rad([40.0, 100.0, 160.0, 230.0]), a / np.linalg.norm(a)))
        out.append(np.mean([tree.query(q @ R.T)[0].mean() for R in rots.as_matrix()]) / noise)
    return np.asarray(out)


def mug_handle(mesh: trimesh.Trimesh, n: int = 4000) -> tuple[str | None, np.ndarray]:
    """Direction of a canonical mug's handle ('+x', '-x', 'z' or None) and the (F,) mask of handle faces.

    The cup is a body of revolution about an axis parallel to y; the handle lies in the X-Y plane, so the
    cup's radius is half the z extent and its axis passes through the x of the surface points at the z
    extremes. The handle is on the side where the bbox reaches farther from that axis; its faces are those
    beyond the cup's radius at their height (measured on the other side).
    """
    lo, hi = mesh.bounds
    ex, ez = hi[0] - lo[0], hi[2] - lo[2]
    no_faces = np.zeros(len(mesh.faces), bool)
    if ex < 1.05 * ez:
        return ("z" if ez > 1.05 * ex else None), no_faces
    r, zc = ez / 2, (lo[2] + hi[2]) / 2
    pts, _ = trimesh.sample.sample_surface(mesh, n, seed=3)
    rim = np.abs(pts[:, 2] - zc) > 0.9 * r
    axis_x = float(np.median(pts[rim, 0])) if rim.any() else (lo[0] + hi[0]) / 2
    reach_plus, reach_minus = hi[0] - axis_x, axis_x - lo[0]
    if max(reach_plus, reach_minus) < 1.1 * min(reach_plus, reach_minus):
        return None, no_faces
    sign = 1.0 if reach_plus > reach_minus else -1.0
    bins = np.linspace(lo[1], hi[1], 13)

    def height_bin(q: np.ndarray) -> np.ndarray:
        return np.clip(np.digitize(q[:, 1], bins) - 1, 0, len(bins) - 2)

    radial = np.hypot(pts[:, 0] - axis_x, pts[:, 2] - zc)
    far, b = sign * (pts[:, 0] - axis_x) <= 0, height_bin(pts)
    r_far = np.array(
        [radial[far & (b == i)].max() if (far & (b == i)).any() else r for i in range(len(bins) - 1)]
    )
    c = mesh.triangles_center
    outside = np.hypot(c[:, 0] - axis_x, c[:, 2] - zc) > 1.03 * r_far[height_bin(c)] + 0.005
    handle = (sign * (c[:, 0] - axis_x) > 0) & outside
    return ("+x" if sign > 0 else "-x"), handle


def check_instance(shape: ShapeInstance, path: str) -> list[str]:
    """Warnings (each naming the file) where `shape` breaks the NOCS frame conventions of its category."""
    warnings = []
    if shape.category in NOCS_SYMMETRIC:
        _w, v = np.linalg.eigh(np.cov(trimesh.sample.sample_surface(shape.mesh, 2000, seed=4)[0].T))
        axes = np.vstack([np.eye(3), v.T])
        err = symmetry_errors(shape.mesh, axes)
        if err[1] > SYMMETRY_TOLERANCE:
            k = int(np.argmin(err))
            found = (f"the measured symmetry axis is {np.round(axes[k], 2).tolist()} (error {err[k]:.1f})"
                     if err[k] <= SYMMETRY_TOLERANCE else "no axis of rotational symmetry was found")
            warnings.append(f"{path}: a {shape.category} must be rotationally symmetric about y (error "
                            f"{err[1]:.1f}, tolerance {SYMMETRY_TOLERANCE}); {found}. Check its `up` axis.")
    if shape.category == "mug":
        side, _ = mug_handle(shape.mesh)
        if side != "+x":
            where = {"-x": "points along -x", "z": "lies along z", None: "was not found"}[side]
            warnings.append(
                f"{path}: a mug's handle must point along +x (NOCS convention); its handle {where}. "
                "Check its `front` axis (the handle direction)."
            )
    return warnings


@functools.lru_cache(maxsize=512)
def load_instance(entry: MeshEntry) -> MeshInstance:
    """The canonical NOCS-frame instance of `entry` (cached: callers must not modify the mesh)."""
    mesh, extents, diagonal = canonicalise(read_mesh(entry.path), entry.rotation, entry.mirror_z)
    metric = None
    if entry.size_m is not None:
        size = np.asarray(entry.size_m)
        metric = float(np.linalg.norm(size))
        if np.abs(size / metric - extents).max() > 0.05:
            log.warning(
                "%s: size_m %s does not have the mesh's proportions %s (after the up/front rotation); "
                "the mesh keeps its shape and gets the bbox diagonal of size_m",
                entry.path,
                list(entry.size_m),
                np.round(extents * metric, 4).tolist(),
            )
    elif entry.unit_scale is not None:
        metric = entry.unit_scale * diagonal
    parts = np.full(len(mesh.faces), PART_BODY, dtype=np.int8)
    if entry.category == "mug":
        side, handle = mug_handle(mesh)
        if side == "+x":
            parts[handle] = PART_HANDLE
    mesh.vertices.flags.writeable = False
    return MeshInstance(entry.model_id, entry.category, mesh, parts, extents, metric, entry.path)
