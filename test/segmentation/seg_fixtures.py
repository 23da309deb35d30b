"""Tiny NOCS/DPDN-layout datasets written the way the synthetic engine and DPDN write them.

`write_nocs_dataset` produces, under a root: `<split>/scene_XXXX/NNNN_{color,depth,mask}.png` (BGR colour,
uint16 mm depth, grayscale instance ids with 255 background), `NNNN_label.pkl` (1-based class_ids,
instance_ids, bboxes [y1, x1, y2, x2]), `<split>_list.txt`, and `segmentation_results/<split>/results_*.pkl`
with ground-truth masks. Objects are flat-coloured rectangles and ellipses on a textured background, which is
enough for Mask R-CNN to make visible progress in a few steps.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np


def write_nocs_dataset(
    root: Path, split: str = "train", n_images: int = 2, size: tuple[int, int] = (120, 160), seed: int = 0
) -> list[dict]:
    """Write the fixture; returns per image {'prefix', 'instance_map', 'class_ids', 'instance_ids'}."""
    rng = np.random.default_rng(seed)
    h, w = size
    records, prefixes = [], []
    for img in range(n_images):
        scene = f"scene_{img // 2 + 1:04d}"
        stem = f"{img % 2:04d}"
        folder = root / split / scene
        folder.mkdir(parents=True, exist_ok=True)
        rgb = (rng.uniform(90, 140, (h, w, 3)) + rng.normal(0, 6, (h, w, 3))).clip(0, 255).astype(np.uint8)
        inst = np.full((h, w), 255, np.uint8)
        depth = np.full((h, w), 900, np.uint16)
        class_ids, inst_ids, boxes = [], [], []
        n_obj = 3
        for k in range(n_obj):
            cls = int(rng.integers(1, 7))
            colour = np.array([40 * cls % 255, 255 - 30 * cls, 60 + 25 * cls], np.uint8)
            cy, cx = int(h * (0.3 + 0.4 * rng.uniform())), int(w * (0.15 + 0.3 * k))
            ry, rx = int(h * rng.uniform(0.12, 0.2)), int(w * rng.uniform(0.07, 0.11))
            shape = np.zeros((h, w), np.uint8)
            if cls % 2:
                cv2.ellipse(shape, (cx, cy), (rx, ry), 0, 0, 360, 1, -1)
            else:
                cv2.rectangle(shape, (cx - rx, cy - ry), (cx + rx, cy + ry), 1, -1)
            on = shape.astype(bool) & (inst == 255)
            inst[on] = k + 1
            rgb[on] = colour
            depth[on] = 800 - 20 * k
            ys, xs = np.nonzero(inst == k + 1)
            class_ids.append(cls)
            inst_ids.append(k + 1)
            boxes.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
        base = folder / stem
        cv2.imwrite(str(base) + "_color.png", rgb[:, :, ::-1])
        cv2.imwrite(str(base) + "_depth.png", depth)
        cv2.imwrite(str(base) + "_mask.png", inst)
        n = len(class_ids)
        label = {
            "class_ids": class_ids,
            "instance_ids": inst_ids,
            "model_list": [f"m{c}" for c in class_ids],
            "bboxes": np.array(boxes, np.int32).reshape(n, 4),
            "scales": np.full(n, 0.2, np.float32),
            "sizes": np.full((n, 3), 0.577, np.float32),
            "rotations": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
            "translations": np.zeros((n, 3), np.float32),
            "handle_visibility": np.ones(n, np.int32),
        }
        with open(str(base) + "_label.pkl", "wb") as f:
            pickle.dump(label, f)
        prefix = f"{split}/{scene}/{stem}"
        prefixes.append(prefix)
        seg_dir = root / "segmentation_results" / split
        seg_dir.mkdir(parents=True, exist_ok=True)
        result = {"image_path": "data/" + prefix, "pred_masks": np.stack([inst == i for i in inst_ids], -1),
                  "pred_bboxes": label["bboxes"].copy(), "pred_class_ids": np.array(class_ids, np.int32),
                  "pred_scores": np.ones(n, np.float32), "gt_class_ids": np.array(class_ids, np.int32)}
        with open(seg_dir / f"results_{scene}_{stem}.pkl", "wb") as f:
            pickle.dump(result, f)
        records.append(
            {
                "prefix": prefix,
                "instance_map": inst,
                "class_ids": class_ids,
                "instance_ids": inst_ids,
                "rgb": rgb,
                "depth_m": depth.astype(np.float32) / 1000.0,
            }
        )
    (root / f"{split}_list.txt").write_text("".join(p + "\n" for p in prefixes))
    return records
