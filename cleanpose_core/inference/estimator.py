"""The Estimator: one RGB-D frame (+ masks, or a segmenter) -> category-level 9DoF detections.

Contract (DESIGN.md §4): RGB (H, W, 3) uint8, depth (H, W) in explicitly stated units (metres float or
millimetres uint16), intrinsics, and either caller-supplied masks + labels or a segmenter; returns one
`Detection` per object, all objects of a frame in ONE batched forward; never raises on bad input — a bad frame
gives an empty `FrameResult` whose `reason` says why, a bad object is dropped and listed in `skipped`.

Per-object preprocessing is `cleanpose_core.data.instance`, the same code the training readers use.
Segmentation: `segmentation.build_segmenter` builds the segmenter these settings describe (Mask R-CNN
re-scored by the point classifier, `segmentation/rescoring.py`), which filters its instances once per frame;
caller-supplied masks pass the same filter here.
Pose backends: `cleanpose` (the network) and `box_fit` (the non-learned baseline of `box_fit.py`). The network
gives two poses: its pose head's regression (the official output) and the closed-form similarity fit of its
predicted keypoint object coordinates to its camera-frame keypoints (`pose_solver`); how far the two rotations
agree is each detection's `pose_confidence`.
Determinism: each frame's points are sampled from a generator seeded with `queue_seed`. The confounder-queue
entries are drawn, as in the official test code, from one generator seeded once (when the Estimator is built,
or by `reset_queue_sampling`) that advances at every forward (`queue_sampling: stream`), so a result depends
on how many forwards came before it; `queue_sampling: per_frame` re-seeds it before every forward instead, so
a frame's result does not depend on what was estimated before it (tests that need bit-identical outputs use
it).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from cleanpose_core import NOCS_CATEGORIES, NOCS_SYMMETRIC
from cleanpose_core.config import ConfigError
from cleanpose_core.data import instance as instance_prep
from cleanpose_core.data.depth_completion import fill_missing_in_columns
from cleanpose_core.device import resolve_device
from cleanpose_core.geometry.camera import (  # noqa: F401  (DepthUnit: offered to the ROS node)
    DEPTH_SCALE, DepthUnit, Intrinsics, depth_to_metres, pixels_to_points)
from cleanpose_core.geometry.rotations import rotation_error_deg
from cleanpose_core.geometry.similarity import fit_similarity
from cleanpose_core.inference.box_fit import fit_oriented_box
# The settings live in config.py; they are offered here too, the layer the CLI and the ROS node import.
from cleanpose_core.inference.config import (  # noqa: F401
    FRAME_SEGMENTERS, POSE_SOLVERS, QUEUE_SAMPLING, RETUNABLE, SETTINGS, EstimatorConfig, setting)
from cleanpose_core.inference.runtime import SHIPPED_POSE_MODEL_NAME, apply_runtime
from cleanpose_core.inference.types import Detection, FrameResult
from cleanpose_core.io.pose_model import load_pose_model
from cleanpose_core.segmentation.base import InstanceMasks, Segmenter, SegmentationFilter
from cleanpose_core.segmentation.external import external_instances
from cleanpose_core.segmentation.factory import SegmenterConfig, build_segmenter
from cleanpose_core.shipped import shipped_file

log = logging.getLogger(__name__)

SHIPPED_POSE_MODEL = shipped_file(SHIPPED_POSE_MODEL_NAME)
SHIPPED_MEAN_SIZES = shipped_file("category_mean_sizes.json")
POSE_AGREEMENT_DEG = 10.0  # pose_confidence = exp(-angle between the two solvers' rotations / this)


class Estimator:
    """Turns RGB-D frames into detections. Build once, call `estimate` per frame."""

    def __init__(self, config: EstimatorConfig | None = None, segmenter: Segmenter | None = None):
        self.config = cfg = config or EstimatorConfig()
        cfg.validate()
        self.torch_device = resolve_device(cfg.device, fallback_to_cpu=True)
        self.device = str(self.torch_device)
        self.categories = NOCS_CATEGORIES
        self.filter = SegmentationFilter(
            cfg.score_threshold, cfg.max_objects, cfg.min_mask_area, cfg.min_points, cfg.max_mask_overlap
        )
        self.filter.validate()
        self.model = None
        if cfg.pose_backend == "cleanpose":
            self.model, trained_points = load_pose_model(
                cfg.model_weights or SHIPPED_POSE_MODEL, self.torch_device
            )
            self.n_points = cfg.n_points or trained_points
            self.image_size = self.model.cfg.image.image_size
            self.reset_queue_sampling()
        else:  # box_fit
            self.mean_sizes = load_mean_sizes(cfg.mean_sizes or SHIPPED_MEAN_SIZES)
            # The baseline uses only the points; a tiny RGB crop keeps the shared preprocessing cheap.
            self.n_points, self.image_size = cfg.n_points or 1024, 32
        # `self.filter` serves the caller's masks; a segmenter built here filters its own instances, once.
        if segmenter is not None or cfg.segmenter == "external":
            self.segmenter = segmenter
        else:
            self.segmenter = build_segmenter(
                SegmenterConfig(
                    kind=cfg.segmenter,
                    filter=dataclasses.replace(self.filter),
                    device=cfg.device,
                    weights=cfg.segmenter_weights,
                    category_classifier=cfg.category_classifier,
                    category_weight=cfg.category_weight,
                )
            )
        self.runtime = apply_runtime(self, cfg.runtime)  # "eager" or "onnx": what the dense parts run in

    def retune(self, **changes) -> None:
        """Change the detection thresholds (`RETUNABLE` fields of the config) without reloading any model:
        what a node's run-time parameters need. Raises ValueError (nothing changed) on an invalid value or
        when `category_weight` > 0 asks for a point classifier that was not loaded at construction."""
        unknown = sorted(set(changes) - set(RETUNABLE))
        if unknown:
            raise ValueError(f"cannot retune {unknown}; run-time settings are {list(RETUNABLE)}")
        cfg = dataclasses.replace(self.config, **changes)
        cfg.validate()
        new_filter = dataclasses.replace(
            self.filter,
            score_threshold=cfg.score_threshold,
            max_objects=cfg.max_objects,
            min_mask_area=cfg.min_mask_area,
            min_points=cfg.min_points,
        )
        new_filter.validate()
        # The segmenter refuses, changing nothing, what it cannot do (a weight > 0 without a loaded
        # classifier).
        if self.segmenter is not None:
            self.segmenter.retune(new_filter, cfg.category_weight)
        self.config, self.filter = cfg, new_filter

    def reset_queue_sampling(self) -> None:
        """Re-seed the test-time queue sampler with `queue_seed`: the next frames draw what a fresh
        Estimator's would."""
        if self.model is not None and self.model.queue_generator is not None:
            self.model.queue_generator.manual_seed(self.config.queue_seed)

    # ------------------------------------------------------------------------------------------------ API
    def estimate(
        self,
        rgb: np.ndarray,
        depth: np.ndarray,
        K: Intrinsics,
        depth_unit: DepthUnit,
        masks: np.ndarray | None = None,
        labels=None,
        scores=None,
        depth_range: tuple[float, float] | None = None,
    ) -> FrameResult:
        """Detect and estimate every object of one frame. Never raises on bad input.

        The frame is checked here, once, and its depth converted to metres here, once; the steps after this
        trust both (segmenters and the per-object preprocessing check nothing of the frame again).

        Args:
            rgb: (H, W, 3) uint8 RGB.
            depth: (H, W) depth registered to `rgb` as the sensor gives it, in `depth_unit` ("m": floating
                point; "mm": any numeric type, e.g. uint16); 0, NaN and negative values = missing.
            K: intrinsics of `rgb`.
            masks, labels, scores: optional caller-supplied instances — (M, H, W) bool masks, (M,) category
                names or 0-based ids, (M,) scores (default 1) — used instead of the segmenter.
            depth_range: (min, max) metres outside which depth counts as missing (a sensor's trusted range);
                None = any.
        Returns:
            The detections; on an unusable frame none, with `reason` and the short `frame_problem` kind.
        """
        t0 = time.perf_counter()
        try:
            problem = frame_problem(rgb, depth, K, depth_unit)
            if problem is None:
                depth_m = depth_to_metres(depth, depth_unit, depth_range)
                if not (depth_m > 0).any():
                    problem = (
                        "depth_empty",
                        "depth has no valid pixel (all zero, negative, NaN or outside depth_range)",
                    )
            if problem is not None:
                return FrameResult([], reason=problem[1], frame_problem=problem[0])
            instances = self._segment(rgb, depth_m, K, masks, labels, scores)
            t1 = time.perf_counter()
            timings = {"segmentation": (t1 - t0) * 1e3}
            if len(instances) == 0:
                return FrameResult(
                    [], reason=instances.reason, skipped=list(instances.skipped), timings_ms=timings
                )
            detections, skipped = self._estimate_instances(rgb, depth_m, K, instances, timings)
            result = FrameResult(detections, skipped=list(instances.skipped) + skipped, timings_ms=timings)
            timings["total"] = (time.perf_counter() - t0) * 1e3
            if not detections:
                result.reason = "no object could be estimated: " + "; ".join(result.skipped)
            return result
        except Exception as exc:  # the contract: never raise out of the Estimator
            if self.config.strict:
                raise
            log.exception("estimation failed")
            return FrameResult([], reason=f"internal error: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------------------------------------ steps
    def _segment(self, rgb, depth_m, K, masks, labels, scores) -> InstanceMasks:
        if masks is not None:
            supplied = external_instances(masks, labels, scores)
            if supplied.reason is not None:
                return supplied
            if supplied.masks.shape[1:] != rgb.shape[:2]:
                return InstanceMasks.empty(
                    f"mask size {supplied.masks.shape[1:]} does not match rgb {rgb.shape[:2]}"
                )
            return self.filter.apply(supplied, depth_m)
        if self.segmenter is None:
            return InstanceMasks.empty("segmenter 'external' needs masks and labels with every frame")
        self.segmenter.set_intrinsics(K)
        return self.segmenter.segment(rgb, depth_m, checked=True)

    def _estimate_instances(self, rgb, depth_m, K, instances: InstanceMasks, timings) -> tuple[list, list]:
        t0 = time.perf_counter()
        measured = depth_m  # the kept objects' points are the measured ones, not the hole-filled
        boxes = [instance_prep.bbox_from_mask(m) for m in instances.masks]  # (y1, x1, y2, x2); None if empty
        if self.config.fill_depth:  # only the columns the objects' crop windows use (the same values there)
            windows = [instance_prep.get_bbox(box, *depth_m.shape) for box in boxes if box]
            if windows:
                depth_m = fill_missing_in_columns(
                    depth_m, min(w.cmin for w in windows), max(w.cmax for w in windows)
                )
        rng = np.random.default_rng(self.config.queue_seed)  # same frame -> same points -> same result
        prepared, skipped = [], []
        for i in range(len(instances)):
            category_id = int(instances.class_ids[i])
            name = instances.category_names[i]
            if category_id < 0:
                skipped.append(f"object {i}: unknown category (the segmenter gave no label)")
                continue
            samples = []
            for _ in range(self.config.point_samples):  # each draws its own points from the same mask
                inp, reason = instance_prep.prepare_instance(
                    rgb,
                    depth_m,
                    instances.masks[i],
                    K,
                    rng,
                    bbox=boxes[i],
                    n_points=self.n_points,
                    image_size=self.image_size,
                    min_valid_pixels=max(self.config.min_points - 1, 0),
                    checked=True,
                )
                if inp is None:
                    break
                samples.append(inp)
            if inp is None:
                skipped.append(f"object {i} ({name}): {reason}")
                continue
            prepared.append((i, category_id, samples))
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        if not prepared:
            return [], skipped
        t1 = time.perf_counter()
        if self.model is not None:
            poses = self._forward([p[2] for p in prepared], [p[1] for p in prepared])
        else:
            poses = [
                fit_oriented_box(samples[0].pts, self.mean_sizes[self.categories[c]]) + (None, 1.0)
                for _, c, samples in prepared
            ]
        timings["pose"] = (time.perf_counter() - t1) * 1e3
        detections = []
        for (i, category_id, (inp, *_)), (R, t, size, keypoints, pose_confidence) in zip(prepared, poses):
            if not (np.isfinite(R).all() and np.isfinite(t).all() and np.isfinite(size).all()):
                skipped.append(f"object {i}: non-finite pose from the model")
                continue
            mask = instances.masks[i]
            y0, x0, y1, x1 = boxes[i]  # not empty: the object has points
            category = self.categories[category_id]
            keep = self.config.keep_masks
            points = pixels_to_points(*np.nonzero(mask & (measured > 0)), measured, K) if keep else None
            detections.append(
                Detection(
                    category=category,
                    category_id=category_id,
                    score=float(instances.scores[i]),
                    rotation=R,
                    translation=t,
                    size=np.abs(size),
                    keypoints=keypoints,
                    pose_confidence=pose_confidence,
                    mask_bbox=(x0, y0, x1 - 1, y1 - 1),
                    num_points=inp.n_valid,
                    symmetric=category in NOCS_SYMMETRIC,
                    mask=mask if keep else None,
                    points=points,
                )
            )
        return detections, skipped

    @torch.inference_mode()
    def _forward(self, groups: list[list], category_ids: list[int]) -> list[tuple]:
        """All objects of the frame, every point sample of each, in one batch -> [(R (3, 3), t (3,),
        size (3,), keypoints (K, 3), confidence)] per object. Several samples of an object (`point_samples`)
        pool their keypoint correspondences into one similarity fit and average the head's outputs."""
        dev = self.torch_device
        inputs = [x for group in groups for x in group]
        labels = [c for group, c in zip(groups, category_ids) for _ in group]
        batch = {
            "pts": torch.from_numpy(np.stack([x.pts for x in inputs])).to(dev),
            # the samples of an object differ in their points only: one crop per object, shared by its rows
            "rgb": torch.from_numpy(np.stack([group[0].rgb for group in groups])).to(dev),
            "rgb_index": torch.tensor([g for g, group in enumerate(groups) for _ in group], device=dev),
            "choose": torch.from_numpy(np.stack([x.choose for x in inputs])).to(dev),
            "category_label": torch.tensor(labels, dtype=torch.long, device=dev),
        }
        if self.config.queue_sampling == "per_frame":
            self.reset_queue_sampling()
        out = self.model(batch)  # stream: the queue sampler advances
        R = out["pred_rotation"].double().cpu().numpy()
        t = out["pred_translation"].double().cpu().numpy()
        s = out["pred_size"].double().cpu().numpy()
        k = out["pred_kpt_3d"].double().cpu().numpy()
        k_nocs = out["kpt_nocs"].double().cpu().numpy()
        poses, start = [], 0
        for group, category_id in zip(groups, category_ids):
            b = slice(start, start + len(group))
            start = b.stop
            # Keypoint j of every sample comes from the same learned query, so their mean is that keypoint.
            R_head = R[b][0] if len(group) == 1 else Rotation.from_matrix(R[b]).mean().as_matrix()
            rotation, translation, confidence = self._solve(
                R_head, t[b].mean(0), k_nocs[b].reshape(-1, 3), k[b].reshape(-1, 3), category_id)
            poses.append((rotation, translation, s[b].mean(0), k[b].mean(0), confidence))
        return poses

    def _solve(self, R_head, t_head, kpt_nocs, kpt_3d, category_id: int) -> tuple:
        """(R, t, pose_confidence) of one object from the head's pose and the keypoint similarity fit."""
        fit = fit_similarity(kpt_nocs, kpt_3d)
        if fit is None:  # degenerate keypoints: only the head's pose exists, and nothing confirms it
            return R_head, t_head, 0.0
        symmetric = self.categories[category_id] in NOCS_SYMMETRIC
        confidence = float(np.exp(-rotation_error_deg(fit.rotation, R_head, symmetric) / POSE_AGREEMENT_DEG))
        if self.config.pose_solver == "keypoints":
            return fit.rotation, fit.translation, confidence
        return R_head, t_head, confidence


def frame_problem(rgb, depth, K, depth_unit) -> tuple[str, str] | None:
    """(kind, reason) when (rgb, depth, K, depth_unit) is not a usable frame, else None: the Estimator's one
    check of a frame. The kind is short and fixed, for counting (a ROS node's /diagnostics)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        return "rgb_invalid", (
            f"rgb must be a (H, W, 3) uint8 array, got {getattr(rgb, 'dtype', type(rgb).__name__)} "
            f"{getattr(rgb, 'shape', '')}"
        )
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        return "rgb_invalid", f"rgb is too small: {rgb.shape[0]}x{rgb.shape[1]} pixels"
    if not isinstance(depth, np.ndarray) or depth.ndim != 2:
        shape = getattr(depth, "shape", type(depth).__name__)
        return "depth_invalid", f"depth must be a (H, W) array, got shape {shape}"
    if depth.shape != rgb.shape[:2]:
        return "size_mismatch", (
            f"depth size {depth.shape} does not match rgb size {rgb.shape[:2]} (register depth to rgb)"
        )
    if depth_unit not in DEPTH_SCALE:
        return "depth_invalid", f"depth_unit must be one of {list(DEPTH_SCALE)}, got {depth_unit!r}"
    if depth_unit == "m" and not np.issubdtype(depth.dtype, np.floating):
        return (
            "depth_invalid",
            f"depth in metres must be floating point, got {depth.dtype} (millimetres? pass depth_unit='mm')",
        )
    if not np.issubdtype(depth.dtype, np.number):
        return "depth_invalid", f"depth must be numeric, got {depth.dtype}"
    if not isinstance(K, Intrinsics):
        return "intrinsics_invalid", f"intrinsics must be an Intrinsics, got {type(K).__name__}"
    problem = K.problem()
    return None if problem is None else ("intrinsics_invalid", problem)


def load_mean_sizes(path: str | Path) -> dict[str, np.ndarray]:
    """{category: (3,) mean metric extents in metres} from a JSON file (the box-fit baseline's prior)."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return {c: np.asarray(data[c], float).reshape(3) for c in NOCS_CATEGORIES}
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"{path}: cannot read category mean sizes ({exc}); expected JSON "
            f"{{category: [x, y, z] metres}} for {list(NOCS_CATEGORIES)}"
        ) from exc
