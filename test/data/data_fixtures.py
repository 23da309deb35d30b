"""Tiny datasets in the exact on-disk formats the readers consume, written by test code into temporary
folders.

Every frame is a table plane at 0.9 m with fronto-parallel rectangular "objects" at known depths, so the
expected back-projected points, crops and NOCS coordinates are known in closed form. The colour of pixel (v,
u) encodes its position (R = u mod 256, G = v mod 256, B = 128), which lets a test check that a point's
`choose` entry points at the crop pixel the point came from.

Formats written (architecture-facts §1.1, §1.5):
- NOCS/DPDN CAMERA: camera/<split>/<scene>/<frame>_{color.png,mask.png,label.pkl} (+ a decoy object-only
  _depth.png that must NOT be read), camera_full_depths/<split>/<scene>/<frame>_composed.png,
  camera/<split>_list.txt, obj_models/camera_<split>.pkl;
- NOCS/DPDN REAL: real/<split>/scene_N/<frame>_{color,depth,mask}.png + _label.pkl, depth either uint16 mm or
the
  3-channel encoded variant (G·256 + R, 32001 = missing), real/<split>_list.txt, obj_models/real_<split>.pkl,
  segmentation_results/REAL275/results_*.pkl (NOCS results format with 'data/'-prefixed image_path);
- HouseCat6D: <scene>/{rgb,depth,instance,labels}/, intrinsics.txt, meta.txt, labels with gt_scales (metric).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from cleanpose_core.geometry.camera import Intrinsics

TABLE_DEPTH = 0.9  # m


@dataclass
class Obj:
    """A rectangular fronto-parallel patch: rows r0:r1, cols c0:c1 at `depth` metres, with a label pose."""

    inst_id: int
    class_id: int  # 1-based
    rows: tuple[int, int]
    cols: tuple[int, int]
    depth: float
    rotation: np.ndarray
    extents: np.ndarray  # metric box size (m)
    model_id: str
    holes: list[tuple[int, int]] = field(default_factory=list)  # pixels with missing depth

    @property
    def bbox(self) -> list[int]:
        return [self.rows[0], self.cols[0], self.rows[1], self.cols[1]]

    def translation(self, K: Intrinsics) -> np.ndarray:
        """Centre of the patch in the camera frame (m)."""
        v = (self.rows[0] + self.rows[1] - 1) / 2
        u = (self.cols[0] + self.cols[1] - 1) / 2
        return np.array([(u - K.cx) * self.depth / K.fx, (v - K.cy) * self.depth / K.fy, self.depth])

    def patch_points(self, K: Intrinsics) -> np.ndarray:
        """(n, 3) back-projected points of every pixel of the patch (m)."""
        v, u = np.mgrid[self.rows[0]:self.rows[1], self.cols[0]:self.cols[1]]
        z = np.full(v.shape, self.depth)
        return np.stack([(u - K.cx) * z / K.fx, (v - K.cy) * z / K.fy, z], -1).reshape(-1, 3)


def default_objects() -> list[Obj]:
    """A bottle (symmetric, pure y rotation), a camera (not symmetric) and a tiny mug (9 pixels)."""
    return [
        Obj(1, 1, (200, 260), (300, 340), 0.5, Rotation.from_euler("y", 0.7).as_matrix(),
            np.array([0.08, 0.2, 0.08]), "bottle_a", holes=[(230, 320), (231, 320), (230, 321)]),
        Obj(2, 3, (100, 150), (100, 180), 0.6, Rotation.from_euler("xy", [0.3, 1.0]).as_matrix(),
            np.array([0.12, 0.08, 0.06]), "camera_a"),
        Obj(3, 6, (400, 403), (600, 603), 0.7, np.eye(3), np.array([0.1, 0.1, 0.1]), "mug_a"),
    ]


def render(objs: list[Obj], height: int, width: int, background_id: int = 255):
    """(rgb (H, W, 3) uint8 RGB, depth (H, W) float64 m, ids (H, W) uint8) of a frame."""
    v, u = np.mgrid[0:height, 0:width]
    rgb = np.stack([u % 256, v % 256, np.full_like(u, 128)], -1).astype(np.uint8)
    depth = np.full((height, width), TABLE_DEPTH)
    ids = np.full((height, width), background_id, np.uint8)
    for o in objs:
        depth[o.rows[0]:o.rows[1], o.cols[0]:o.cols[1]] = o.depth
        ids[o.rows[0]:o.rows[1], o.cols[0]:o.cols[1]] = o.inst_id
        for r, c in o.holes:
            depth[r, c] = 0.0
    return rgb, depth, ids


def expected_model(o: Obj, K: Intrinsics) -> np.ndarray:
    """(1024, 3) NOCS 'model' points = the patch's exact NOCS coordinates, so pc_mask is all ones."""
    q = (o.patch_points(K) - o.translation(K)) / np.linalg.norm(o.extents) @ o.rotation
    idx = np.random.default_rng(0).choice(len(q), 1024, replace=len(q) < 1024)
    return q[idx].astype(np.float32)


def nocs_label(objs: list[Obj], K: Intrinsics, camera_style: bool) -> dict:
    """DPDN `_label.pkl` dict. REAL: sizes = extents / diagonal, scales = diagonal. CAMERA: sizes = NOCS
    extents of a model that is 0.8 of unit diagonal, scales chosen so that scales · sizes = the metric
    extents."""
    n = len(objs)
    diag = np.array([np.linalg.norm(o.extents) for o in objs])
    if camera_style:
        sizes = np.stack([0.8 * o.extents / np.linalg.norm(o.extents) for o in objs])
        scales = diag / 0.8
    else:
        sizes = np.stack([o.extents / np.linalg.norm(o.extents) for o in objs])
        scales = diag
    return {
        "class_ids": [o.class_id for o in objs],
        "instance_ids": [o.inst_id for o in objs],
        "model_list": [o.model_id for o in objs],
        "bboxes": np.array([o.bbox for o in objs], np.int32).reshape(n, 4),
        "scales": scales.astype(np.float32),
        "sizes": sizes.astype(np.float32),
        "rotations": np.stack([o.rotation for o in objs]).astype(np.float32),
        "translations": np.stack([o.translation(K) for o in objs]).astype(np.float32),
        "handle_visibility": np.ones(n, np.int32),
    }


def encode_depth_3ch(depth_mm: np.ndarray) -> np.ndarray:
    """(H, W) uint16 mm -> (H, W, 3) uint8 BGR array of NOCS's encoded depth (G = high byte, R = low byte)."""
    d = depth_mm.astype(np.int64)
    d = np.where(d == 0, 32001, d)
    out = np.zeros(depth_mm.shape + (3,), np.uint8)
    out[..., 1] = d // 256  # G
    out[..., 2] = d % 256  # R (channel 2 of OpenCV's BGR order)
    return out


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image), path


def _write_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def write_nocs_frame(prefix: Path, objs: list[Obj], K: Intrinsics, *, camera_style: bool,
                     depth_path: Path | None = None, encoded_depth: bool = False) -> tuple:
    """Write _color.png (BGR), _mask.png, _label.pkl and the depth image of one frame; returns the arrays."""
    rgb, depth, ids = render(objs, K.height, K.width)
    _write_png(Path(f"{prefix}_color.png"), rgb[..., ::-1])
    _write_png(Path(f"{prefix}_mask.png"), ids)
    _write_pickle(Path(f"{prefix}_label.pkl"), nocs_label(objs, K, camera_style))
    depth_mm = np.rint(depth * 1000).astype(np.uint16)
    depth_path = depth_path or Path(f"{prefix}_depth.png")
    _write_png(depth_path, encode_depth_3ch(depth_mm) if encoded_depth else depth_mm)
    return rgb, depth, ids


def write_camera_tree(root: Path, K: Intrinsics, objs: list[Obj] | None = None) -> list[Obj]:
    """A 2-image CAMERA-style training tree with composed depths and obj_models/camera_train.pkl."""
    objs = objs or default_objects()
    lines = []
    for frame in ("0000", "0001"):
        rel = f"train/00000/{frame}"
        write_nocs_frame(root / "camera" / rel, objs, K, camera_style=True,
                         depth_path=root / "camera_full_depths" / f"{rel}_composed.png")
        # CAMERA also ships an object-only _depth.png; a reader that used it would see 2 m everywhere.
        _write_png(root / "camera" / f"{rel}_depth.png", np.full((K.height, K.width), 2000, np.uint16))
        lines.append(rel)
    (root / "camera" / "train_list.txt").write_text("\n".join(lines) + "\n")
    _write_pickle(root / "obj_models" / "camera_train.pkl", models_for(objs, K))
    return objs


def models_for(objs: list[Obj], K: Intrinsics) -> dict[str, np.ndarray]:
    """Model point clouds: exact NOCS points for the bottle and mug, far-away points for the camera (pc_mask
    0)."""
    models = {o.model_id: expected_model(o, K) for o in objs}
    models["camera_a"] = models["camera_a"] + np.float32(2.0)
    return models


def write_real_tree(root: Path, K: Intrinsics, objs: list[Obj] | None = None) -> list[Obj]:
    """A REAL-style tree: train/scene_1/0000 (uint16 depth), train/scene_1/0001 (3-channel encoded depth), a
    test image and its segmentation-result pickle (ground-truth masks as predictions, plus one empty mask)."""
    objs = objs or default_objects()
    write_nocs_frame(root / "real/train/scene_1/0000", objs, K, camera_style=False)
    write_nocs_frame(root / "real/train/scene_1/0001", objs, K, camera_style=False, encoded_depth=True)
    (root / "real" / "train_list.txt").write_text("train/scene_1/0000\ntrain/scene_1/0001\n")
    _write_pickle(root / "obj_models" / "real_train.pkl", models_for(objs, K))

    _, _, ids = write_nocs_frame(root / "real/test/scene_1/0000", objs, K, camera_style=False)
    label = nocs_label(objs, K, camera_style=False)
    n = len(objs)
    masks = np.stack([ids == o.inst_id for o in objs] + [np.zeros_like(ids, bool)], axis=-1)  # + empty mask
    rts = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    rts[:, :3, :3] = label["rotations"] * label["scales"][:, None, None]
    rts[:, :3, 3] = label["translations"]
    result = {
        "image_path": "data/real/test/scene_1/0000",
        "pred_masks": masks,
        "pred_bboxes": np.concatenate([label["bboxes"], [[0, 0, 10, 10]]]).astype(np.int32),
        "pred_class_ids": np.array([o.class_id for o in objs] + [2], np.int32),
        "pred_scores": np.array([0.9, 0.8, 0.7, 0.6], np.float32),
        "gt_class_ids": np.array(label["class_ids"], np.int32),
        "gt_bboxes": label["bboxes"],
        "gt_RTs": rts,
        "gt_scales": label["sizes"],
        "gt_handle_visibility": label["handle_visibility"],
    }
    _write_pickle(root / "segmentation_results" / "REAL275" / "results_test_scene_1_0000.pkl", result)
    return objs


HOUSECAT_K = Intrinsics(905.0, 905.0, 548.0, 426.0, 1096, 852)


def housecat_objects() -> list[Obj]:
    """A glass (class 8, symmetric), a box (class 1) and a tiny shoe (class 9, 9 pixels)."""
    return [
        Obj(1, 8, (300, 380), (500, 560), 0.6, Rotation.from_euler("y", -1.1).as_matrix(),
            np.array([0.07, 0.12, 0.07]), "glass"),
        Obj(2, 1, (600, 700), (100, 250), 0.7, Rotation.from_euler("z", 0.4).as_matrix(),
            np.array([0.2, 0.1, 0.15]), "box"),
        Obj(3, 9, (10, 13), (1000, 1003), 0.8, np.eye(3), np.array([0.3, 0.1, 0.1]), "shoe"),
    ]


def write_housecat_scene(
    root: Path, scene: str, n_images: int = 2, objs: list[Obj] | None = None
) -> list[Obj]:
    """One HouseCat6D scene folder with `n_images` frames of 852 x 1096."""
    objs = objs or housecat_objects()
    K = HOUSECAT_K
    base = root / scene
    for i in range(n_images):
        name = f"{i:06d}"
        rgb, depth, ids = render(objs, K.height, K.width, background_id=0)
        _write_png(base / "rgb" / f"{name}.png", rgb[..., ::-1])
        _write_png(base / "depth" / f"{name}.png", np.rint(depth * 1000).astype(np.uint16))
        _write_png(base / "instance" / f"{name}.png", ids)
        label = {
            "class_ids": np.array([o.class_id for o in objs]),
            "instance_ids": np.array([o.inst_id for o in objs]),
            "bboxes": np.array([o.bbox for o in objs]),
            "rotations": np.stack([o.rotation for o in objs]).astype(np.float32),
            "translations": np.stack([o.translation(K) for o in objs]).astype(np.float32),
            "gt_scales": np.stack([o.extents for o in objs]).astype(np.float32),
        }
        _write_pickle(base / "labels" / f"{name}_label.pkl", label)
    np.savetxt(base / "intrinsics.txt", K.matrix)
    (base / "meta.txt").write_text("".join(f"{o.inst_id} {o.class_id} {o.model_id}\n" for o in objs))
    return objs
