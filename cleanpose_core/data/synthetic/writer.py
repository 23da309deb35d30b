"""Writer for the NOCS/DPDN on-disk layout (the REAL275 branch), so the real-data readers read synthetic data.

Per image, under `OUT/<split>/scene_XXXX/NNNN`:
- `_color.png`  (H, W, 3) uint8, BGR on disk (cv2.imwrite), as NOCS ships it;
- `_depth.png`  (H, W) uint16 millimetres, 0 = missing;
- `_mask.png`   (H, W) uint8 grayscale, instance ids 1..n, 255 = background (readers take channel 2 of
  cv2.imread, which for a grayscale PNG is the same value);
- `_coord.png`  (H, W, 3) uint8 NOCS map in the official encoding: the readers do `img[:, :, (2, 1, 0)] / 255`
  and then `z = 1 - z`, and NOCS values there are `p_nocs + 0.5` in [0, 1]; so we store RGB = (x, y, 1 - z) of
  `p_nocs + 0.5`, i.e. BGR on disk = (1 - z, y, x), background 0;
- `_meta.txt`   one line per visible instance: "inst_id class_id model_id" (REAL's 3-field form);
- `_label.pkl`  DPDN keys: class_ids (1..6), instance_ids, model_list, bboxes [y1, x1, y2, x2] (y2/x2
  exclusive), scales (bbox diagonal, m), sizes (extents / diagonal), rotations (n, 3, 3), translations (n, 3)
  in metres, handle_visibility (n,). As DPDN's preprocessing does, only instances with at least
  `min_valid_depth` valid depth pixels are labelled.
For the test split also `OUT/segmentation_results/<split>/results_<scene>_<frame>.pkl` in the NOCS
segmentation-results format, with GROUND-TRUTH masks, boxes and classes (scores 1), like HouseCat6D's test
protocol; it is what the test readers iterate over.

Pose convention: a NOCS point p maps into the camera optical frame as `s * R @ p + t`.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.data.synthetic.render import Frame
from cleanpose_core.data.synthetic.scene import Scene
from cleanpose_core.data.synthetic.shapes import PART_HANDLE

BACKGROUND_ID = 255
PICKLE_PROTOCOL = 4  # fixed, so label files are byte-identical across runs and readable by Python >= 3.4
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # fastest zlib level: writing is a third of the frame time otherwise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and os.replace, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _imwrite(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image, _PNG):
        raise OSError(f"could not write image {path}")


def encode_nocs(nocs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) NOCS coordinates in [-0.5, 0.5] and (H, W) bool object mask -> (H, W, 3) uint8 BGR coord
    image."""
    c = np.clip(nocs + 0.5, 0.0, 1.0)
    rgb = np.stack([c[..., 0], c[..., 1], 1.0 - c[..., 2]], axis=-1)
    img = np.rint(rgb * 255.0).astype(np.uint8) * mask[..., None]
    return np.ascontiguousarray(img[..., ::-1])


def decode_nocs(coord_bgr: np.ndarray) -> np.ndarray:
    """Inverse of `encode_nocs` as the official readers decode it: (H, W, 3) uint8 -> float32 in [-0.5,
    0.5]."""
    c = coord_bgr[..., (2, 1, 0)].astype(np.float32) / 255.0
    c[..., 2] = 1.0 - c[..., 2]
    return c - 0.5


def object_pose_in_camera(
    R_wo: np.ndarray, t_wo: np.ndarray, R_wc: np.ndarray, C: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(R (3, 3), t (3,)) of the object's NOCS frame in the camera frame, from world poses of both."""
    return R_wc.T @ R_wo, R_wc.T @ (t_wo - C)


def build_labels(
    scene: Scene, frame: Frame, depth_mm: np.ndarray, min_valid_depth: int, handle_min_pixels: int
) -> tuple[list[str], dict]:
    """Meta lines (every visible instance) and the DPDN label dict (instances with enough valid depth)."""
    meta, rows = [], []
    for k, obj in enumerate(scene.objects):
        pix = frame.instance == k
        if not pix.any():
            continue
        inst_id, class_id = k + 1, NOCS_CATEGORIES.index(obj.shape.category) + 1
        meta.append(f"{inst_id} {class_id} {obj.shape.model_id}")
        if np.count_nonzero(pix & (depth_mm > 0)) < min_valid_depth:
            continue
        ys, xs = np.nonzero(pix)
        R, t = object_pose_in_camera(obj.R_wo, obj.t_wo, frame.R_wc, frame.C)
        handle = 1
        if obj.shape.category == "mug":
            handle = int(np.count_nonzero(pix & (frame.part == PART_HANDLE)) >= handle_min_pixels)
        rows.append((class_id, inst_id, obj.shape.model_id, [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1],
                     obj.scale, obj.shape.extents, R, t, handle))
    n = len(rows)
    label = {
        "class_ids": [r[0] for r in rows],
        "instance_ids": [r[1] for r in rows],
        "model_list": [r[2] for r in rows],
        "bboxes": np.array([r[3] for r in rows], dtype=np.int32).reshape(n, 4),
        "scales": np.array([r[4] for r in rows], dtype=np.float32).reshape(n),
        "sizes": np.array([r[5] for r in rows], dtype=np.float32).reshape(n, 3),
        "rotations": np.array([r[6] for r in rows], dtype=np.float32).reshape(n, 3, 3),
        "translations": np.array([r[7] for r in rows], dtype=np.float32).reshape(n, 3),
        "handle_visibility": np.array([r[8] for r in rows], dtype=np.int32).reshape(n),
    }
    return meta, label


def segmentation_result(label: dict, instance_map: np.ndarray, image_path: str) -> dict:
    """NOCS segmentation-results dict carrying ground-truth masks for the labelled instances."""
    n = len(label["class_ids"])
    masks = (
        np.stack([instance_map == i for i in label["instance_ids"]], axis=-1)
        if n
        else np.zeros((*instance_map.shape, 0), bool)
    )
    scales, R, t = label["scales"], label["rotations"], label["translations"]
    RTs = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    RTs[:, :3, :3] = R * scales[:, None, None]
    RTs[:, :3, 3] = t
    class_ids = np.asarray(label["class_ids"], dtype=np.int32).reshape(n)
    return {
        "image_path": image_path,
        "pred_masks": masks,
        "pred_bboxes": label["bboxes"].copy(),
        "pred_class_ids": class_ids.copy(),
        "pred_scores": np.ones(n, dtype=np.float32),
        "gt_class_ids": class_ids,
        "gt_bboxes": label["bboxes"].copy(),
        "gt_RTs": RTs,
        "gt_scales": label["sizes"].copy(),
        "gt_handle_visibility": label["handle_visibility"].copy(),
    }


def write_frame(out_dir: Path, split: str, scene_name: str, frame_index: int, scene: Scene, frame: Frame,
                depth_mm: np.ndarray, min_valid_depth: int, handle_min_pixels: int) -> dict:
    """Write every per-image file of one frame; returns {'prefix', 'n_labelled', 'n_visible'} for the
    lists."""
    scene_dir = out_dir / split / scene_name
    scene_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{frame_index:04d}"
    base = scene_dir / stem
    meta, label = build_labels(scene, frame, depth_mm, min_valid_depth, handle_min_pixels)
    visible_ids = {int(line.split()[0]) for line in meta}
    mask = np.full(frame.instance.shape, BACKGROUND_ID, np.uint8)
    on_object = frame.instance >= 0
    mask[on_object] = (frame.instance[on_object] + 1).astype(np.uint8)
    assert set(np.unique(mask[on_object]).tolist()) <= visible_ids
    _imwrite(base.with_name(stem + "_color.png"), np.ascontiguousarray(frame.rgb[..., ::-1]))
    _imwrite(base.with_name(stem + "_depth.png"), depth_mm)
    _imwrite(base.with_name(stem + "_mask.png"), mask)
    _imwrite(base.with_name(stem + "_coord.png"), encode_nocs(frame.nocs, on_object))
    (scene_dir / f"{stem}_meta.txt").write_text("".join(line + "\n" for line in meta))
    atomic_write_bytes(scene_dir / f"{stem}_label.pkl", pickle.dumps(label, protocol=PICKLE_PROTOCOL))
    prefix = f"{split}/{scene_name}/{stem}"
    if split != "train" and label["class_ids"]:  # val and test: what `cleanpose predict` reads
        seg_dir = out_dir / "segmentation_results" / split
        seg_dir.mkdir(parents=True, exist_ok=True)
        result = segmentation_result(label, mask, "data/" + prefix)
        atomic_write_bytes(
            seg_dir / f"results_{scene_name}_{stem}.pkl", pickle.dumps(result, protocol=PICKLE_PROTOCOL)
        )
    return {"prefix": prefix, "n_labelled": len(label["class_ids"]), "n_visible": len(meta)}


def write_scene_info(out_dir: Path, split: str, scene_name: str, frames: list[dict]) -> None:
    """Mark a scene complete (written last; resume skips scenes that have it)."""
    path = out_dir / split / scene_name / "scene_info.json"
    atomic_write_bytes(path, json.dumps({"scene": scene_name, "frames": frames}, indent=1).encode())


def read_scene_info(out_dir: Path, split: str, scene_name: str) -> dict | None:
    """The scene's completion record, or None when the scene is missing or incomplete."""
    path = out_dir / split / scene_name / "scene_info.json"
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    scene_dir = out_dir / split / scene_name
    for f in info.get("frames", []):
        stem = f["prefix"].rsplit("/", 1)[-1]
        if not all((scene_dir / f"{stem}{suffix}").is_file() for suffix in
                   ("_color.png", "_depth.png", "_mask.png", "_coord.png", "_meta.txt", "_label.pkl")):
            return None
    return info


def write_lists(out_dir: Path, split: str, frames: list[dict]) -> tuple[int, int]:
    """`<split>_list_all.txt` (every frame) and `<split>_list.txt` (frames with >= 1 labelled instance)."""
    all_prefixes = [f["prefix"] for f in frames]
    valid = [f["prefix"] for f in frames if f["n_labelled"] > 0]
    (out_dir / f"{split}_list_all.txt").write_text("".join(p + "\n" for p in all_prefixes))
    (out_dir / f"{split}_list.txt").write_text("".join(p + "\n" for p in valid))
    return len(valid), len(all_prefixes)
