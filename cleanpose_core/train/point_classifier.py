"""Training the point classifier (`cleanpose train-classifier`) on the ground-truth instances of NOCS-format
data.

Data: the instances of any NOCS-format training split (synthetic, CAMERA25, REAL275: `data.nocs.NOCSLayout`),
read with the data package's readers and cropped to their instances once, in memory (a few hundred MB for
10,000 instances). Each draw erodes or dilates an instance's mask by up to `mask_jitter_px` pixels (predicted
masks are never exact), takes the points as inference does (`segmentation.rescoring.mask_points`, the one
sampler of both) and adds 3 mm noise. Object models are split by id into train / validation, so the reported
accuracy is on unseen shapes. The loop is `classification.train_classification`, shared with the teachers; the
network is `models/point_classifier.py`, its use at inference `segmentation/rescoring.py`, which also reads
the file written here: ``{"format": io.CLASSIFIER_FORMAT, "config", "state_dict", "categories", "metrics",
"source"}``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import to_dict
from cleanpose_core.data.files import SampleError, read_depth_m, read_instance_mask
from cleanpose_core.data.nocs import NOCSLayout, read_image_list
from cleanpose_core.device import resolve_device
from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_core.io import CLASSIFIER_FORMAT, save_artefact
from cleanpose_core.models.point_classifier import MIN_POINTS, PointClassifierConfig, PointNetClassifier
from cleanpose_core.segmentation.ground_truth import read_label
from cleanpose_core.segmentation.rescoring import box_slices, crop_intrinsics, mask_points

from .classification import train_classification

__all__ = ["jitter_mask", "load_instances", "train_point_classifier"]

log = logging.getLogger(__name__)


def jitter_mask(mask: np.ndarray, rng: np.random.Generator, max_px: int) -> np.ndarray:
    """The mask eroded (r < 0) or dilated (r > 0) by r pixels, r uniform in [-max_px, max_px]."""
    r = int(rng.integers(-max_px, max_px + 1)) if max_px > 0 else 0
    if r == 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(r) + 1, 2 * abs(r) + 1))
    op = cv2.dilate if r > 0 else cv2.erode
    return op(mask.astype(np.uint8), kernel).astype(bool)


# ----------------------------------------------------------------------------------------------------- data
@dataclass
class _Instance:
    depth: np.ndarray   # (h, w) float32 metres, a crop around the instance (margin for dilation)
    mask: np.ndarray    # (h, w) bool
    K: Intrinsics       # shifted to the crop
    label: int          # 0-based category
    model: str


def load_instances(root: str | Path, cfg: PointClassifierConfig) -> tuple[list[_Instance], dict[str, int]]:
    """Every ground-truth instance of the split, cropped; unreadable frames are skipped and counted."""
    layout = NOCSLayout.resolve(root, cfg.source, cfg.split)
    if not layout.list_file.is_file():
        raise FileNotFoundError(f"image list not found: {layout.list_file} (expected a NOCS/DPDN-layout "
                                f"{cfg.source} {cfg.split} split)")
    instances: list[_Instance] = []
    skipped: dict[str, int] = {}
    margin = cfg.mask_jitter_px + 1
    for line in read_image_list(layout.list_file):
        prefix = layout.image_base / line
        try:
            depth = read_depth_m(layout.depth_path(prefix))
            ids = read_instance_mask(f"{prefix}_mask.png")
            label = read_label(f"{prefix}_label.pkl")
            if ids.shape != depth.shape:
                raise ValueError(f"mask {ids.shape} and depth {depth.shape} sizes differ")
        except (SampleError, OSError, ValueError) as exc:
            key = getattr(exc, "reason", type(exc).__name__)
            skipped[key] = skipped.get(key, 0) + 1
            log.debug("skipping %s: %s", prefix, exc)
            continue
        models = label.get("model_list", [f"{line}#{i}" for i in range(len(label["class_ids"]))])
        for cid, iid, model in zip(label["class_ids"], label["instance_ids"], models):
            mask = ids == int(iid)
            box = box_slices(mask, margin)
            if box is None or not 1 <= int(cid) <= len(NOCS_CATEGORIES):
                skipped["empty mask or bad class"] = skipped.get("empty mask or bad class", 0) + 1
                continue
            if int((mask[box] & (depth[box] > 0)).sum()) < MIN_POINTS:
                skipped["too few valid depth pixels"] = skipped.get("too few valid depth pixels", 0) + 1
                continue
            r, c = box
            K = crop_intrinsics(layout.intrinsics, r.start, c.start, r.stop - r.start, c.stop - c.start)
            instances.append(_Instance(np.ascontiguousarray(depth[box]), np.ascontiguousarray(mask[box]), K,
                                       int(cid) - 1, str(model)))
    if not instances:
        raise ValueError(f"no usable instance in {layout.list_file} (skipped: {skipped})")
    return instances, skipped


def _draw(inst: _Instance, cfg: PointClassifierConfig, rng: np.random.Generator) -> np.ndarray | None:
    pts = mask_points(inst.depth, jitter_mask(inst.mask, rng, cfg.mask_jitter_px), inst.K, rng, cfg.points)
    if pts is None:  # eroded away: fall back to the exact mask
        pts = mask_points(inst.depth, inst.mask, inst.K, rng, cfg.points)
    if pts is not None and cfg.noise_m > 0:
        pts = pts + rng.normal(0.0, cfg.noise_m, pts.shape).astype(np.float32)
    return pts


def _batch(instances: list[_Instance], idx, cfg, rng) -> tuple[torch.Tensor, torch.Tensor]:
    pts, labels = [], []
    for i in idx:
        p = _draw(instances[i], cfg, rng)
        if p is not None:
            pts.append(p)
            labels.append(instances[i].label)
    return torch.from_numpy(np.stack(pts)), torch.tensor(labels)


# --------------------------------------------------------------------------------------------- training
@torch.no_grad()
def _evaluate(
    model: PointNetClassifier, instances: list[_Instance], cfg, device, seed: int
) -> dict[str, Any]:
    """Accuracy (percent) on one jittered draw per instance, overall and per category."""
    model.eval()
    rng = np.random.default_rng(seed)
    correct = np.zeros(len(NOCS_CATEGORIES))
    total = np.zeros(len(NOCS_CATEGORIES))
    for start in range(0, len(instances), 256):
        pts, labels = _batch(instances, range(start, min(start + 256, len(instances))), cfg, rng)
        pred = model(pts.to(device)).argmax(1).cpu()
        for c in range(len(NOCS_CATEGORIES)):
            sel = labels == c
            total[c] += int(sel.sum())
            correct[c] += int((pred[sel] == c).sum())
    model.train()
    per = {
        name: round(float(100.0 * correct[c] / total[c]), 2)
        for c, name in enumerate(NOCS_CATEGORIES)
        if total[c]
    }
    return {"accuracy": round(float(100.0 * correct.sum() / max(total.sum(), 1)), 2), "per_category": per,
            "instances": int(total.sum())}


def train_point_classifier(cfg: PointClassifierConfig, data_root: str | Path | Sequence[str | Path],
                           out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Train the classifier on the ground-truth instances of `data_root` (one dataset root or several, e.g.
    one per sensor domain, each with its own intrinsics) and save it to `out`; returns metrics. The same
    object models are held out of every root."""
    cfg.validate()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    roots = [data_root] if isinstance(data_root, (str, Path)) else list(data_root)
    instances, skipped = [], {}
    for root in roots:
        found, missed = load_instances(root, cfg)
        instances += found
        for reason, count in missed.items():
            skipped[reason] = skipped.get(reason, 0) + count
    models = sorted({inst.model for inst in instances})
    held_out = set(
        np.random.default_rng(cfg.seed).permutation(models)[: int(round(cfg.val_fraction * len(models)))]
    )
    train_set = [inst for inst in instances if inst.model not in held_out]
    val_set = [inst for inst in instances if inst.model in held_out]
    load_s = time.perf_counter() - t0
    model = PointNetClassifier(cfg).to(device)
    fit = train_classification(
        model,
        lambda it: _batch(train_set, rng.integers(0, len(train_set), cfg.batch_size), cfg, rng),
        iterations=cfg.iterations,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        device=device,
        name="point classifier",
        progress=progress,
    )
    metrics: dict[str, Any] = {
        "train_loss": round(fit["loss"], 4),
        "train_instances": len(train_set),
        "val_models": len(held_out),
        "skipped": skipped,
        "load_seconds": round(load_s, 1),
    }
    if val_set:
        metrics["val"] = _evaluate(model, val_set, cfg, device, cfg.seed + 1)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    model.eval()
    source = (f"{cfg.source} {cfg.split} of {', '.join(str(Path(r)) for r in roots)} ({cfg.iterations} it, "
              f"seed {cfg.seed})")
    save_artefact(out, CLASSIFIER_FORMAT, config=to_dict(cfg),
                  state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
                  categories=list(NOCS_CATEGORIES), metrics=metrics, source=source)
    return metrics
