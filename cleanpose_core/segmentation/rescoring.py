"""Category re-scoring of detections by the point classifier, and the segmenter that does it once per frame.

Why: our Mask R-CNN, trained from scratch on 2,400 synthetic frames, finds objects better than it names them.
On the seed-2 test split, for 40 % of the ground-truth mugs (and 20-35 % of the other categories) the
detection overlapping them best carried another category, so the IoU25 AP of the full pipeline stayed 20
points below the ground-truth-mask one. Shape and metric size, which the RGB network never sees, tell these
categories
apart: the point classifier (`models/point_classifier.py`) on the mask's back-projected points gives category
probabilities q in a few ms per frame.

Fusion (`CategoryRescorer`): a detection (label l, score s) keeps its label and gets the score s^(1-w) ·
q_l^w, then the usual filter runs on the new scores. Mask R-CNN emits one region several times under different
labels; the point cloud now ranks these, and the wrong-label copies sink below the right one (or below the
threshold).
Letting the classifier replace l by argmax q instead did worse on a validation split (seed 7: IoU25 77.2
against
84.4): it turned correct, confidently detected cameras into cans. w = `weight`; 0 leaves the scores as the
segmenter gave them. Since q <= 1, no candidate with s < threshold^(1 / (1 - w)) can reach a final threshold.

`RescoredSegmenter` puts it together: its inner segmenter produces candidates at that permissive threshold
(`candidate_threshold`), duplicates included (at most `CANDIDATES_PER_FRAME`, no overlap cut: the points
re-rank them), the rescorer fuses their scores, and the segmenter's own filter, the one the user sets, runs
once on the result. The depth-tabletop backend, which has no categories of its own, uses the rescorer as its
`classifier` slot instead (argmax q and its probability).

File (`torch.save`, loads with ``weights_only=True``; written by `train/point_classifier.py`):
``{"format": io.CLASSIFIER_FORMAT, "config", "state_dict", "categories", "metrics", "source"}``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import ConfigError, from_dict
from cleanpose_core.data.instance import sample_choose
from cleanpose_core.geometry.camera import Intrinsics, pixels_to_points
from cleanpose_core.io import CLASSIFIER_FORMAT, WeightsError, read_artefact
from cleanpose_core.models.point_classifier import MIN_POINTS, PointClassifierConfig, PointNetClassifier
from cleanpose_core.segmentation.base import (
    UNKNOWN_CLASS,
    InstanceMasks,
    SegmentationFilter,
    Segmenter,
    check_frame,
)
from cleanpose_core.shipped import shipped_file

__all__ = ["DEFAULT_CLASSIFIER", "CANDIDATES_PER_FRAME", "mask_points", "crop_intrinsics", "box_slices",
           "load_point_classifier", "CategoryRescorer", "RescoredSegmenter"]

log = logging.getLogger(__name__)

# the shipped classifier (models/point_classifier.md)
DEFAULT_CLASSIFIER = shipped_file("point_classifier.pt")
CANDIDATES_PER_FRAME = 100  # candidates the inner segmenter may hand over for re-scoring


def mask_points(depth_m: np.ndarray, mask: np.ndarray, K: Intrinsics, rng: np.random.Generator,
                n_points: int) -> np.ndarray | None:
    """(n_points, 3) camera-frame points (m) drawn from the mask's valid depth pixels, or None if <
    MIN_POINTS.

    `depth_m` and `mask` may be a crop of the image if `K` is shifted to match (`crop_intrinsics`). The one
    point sampler of training and inference, so both draw alike.
    """
    rows, cols = np.nonzero(mask & np.isfinite(depth_m) & (depth_m > 0))
    if rows.size < MIN_POINTS:
        return None
    pick = sample_choose(rows.size, n_points, rng)
    return pixels_to_points(rows[pick], cols[pick], depth_m, K)


def crop_intrinsics(K: Intrinsics, row0: int, col0: int, height: int, width: int) -> Intrinsics:
    """The intrinsics of the crop whose top-left pixel is (row0, col0): the principal point moves."""
    return Intrinsics(K.fx, K.fy, K.cx - col0, K.cy - row0, width, height)


def box_slices(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """(rows, cols) slices of the mask's bounding box grown by `margin` pixels (clipped), or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    h, w = mask.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, w)))


def load_point_classifier(path: str | Path, device: str | torch.device = "cpu"
                          ) -> tuple[PointNetClassifier, PointClassifierConfig, dict[str, Any]]:
    """A saved classifier in eval mode, its config and the file's metadata. Raises WeightsError on a bad file
    (WeightsNotFoundError, also a FileNotFoundError, on a missing one)."""
    blob = read_artefact(path, CLASSIFIER_FORMAT)
    if list(blob.get("categories", [])) != list(NOCS_CATEGORIES):
        raise WeightsError(f"{path}: categories {blob.get('categories')} differ from {list(NOCS_CATEGORIES)}")
    try:
        cfg = from_dict(PointClassifierConfig, blob["config"])
        model = PointNetClassifier(cfg)
        model.load_state_dict(blob["state_dict"])
    except (ConfigError, KeyError, RuntimeError) as exc:
        raise WeightsError(f"{path}: weights do not fit their config: {exc}") from exc
    return model.to(device).eval(), cfg, {k: v for k, v in blob.items() if k != "state_dict"}


@dataclass
class CategoryRescorer:
    """Re-scores segmenter instances with the point classifier, and names unknown-category ones (module
    docstring)."""

    model: PointNetClassifier
    points: int
    weight: float = 0.5
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0  # point draws are seeded per call: the same frame gives the same result
    source: Path | None = None  # the weights file (its ONNX Runtime exports live beside it)

    @classmethod
    def from_file(
        cls, path: str | Path, weight: float = 0.5, device: str | torch.device = "cpu"
    ) -> "CategoryRescorer":
        model, cfg, _ = load_point_classifier(path, device)
        return cls(model, cfg.points, weight, torch.device(device), source=Path(path))

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight < 1.0:
            raise ValueError(f"category weight must be in [0, 1), got {self.weight}")

    def candidate_threshold(self, threshold: float) -> float:
        """The segmenter score below which no fused score can reach `threshold` (q <= 1)."""
        return threshold ** (1.0 / (1.0 - self.weight))

    @torch.inference_mode()
    def probabilities(self, clouds: list[np.ndarray]) -> np.ndarray:
        """(M, 6) category probabilities of M (points, 3) clouds."""
        if not clouds:
            return np.zeros((0, len(NOCS_CATEGORIES)), np.float32)
        logits = self.model(torch.from_numpy(np.stack(clouds)).to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def __call__(self, clouds: list[np.ndarray]) -> list[tuple[int, float]]:
        """The depth-tabletop backend's classifier slot: M (N, 3) clouds -> M (0-based class, probability), in
        one forward. Each cloud's points are drawn with a fresh generator, so a region's category does not
        depend on which other regions share the frame. Clouds with too few points are (unknown, 0)."""
        out: list[tuple[int, float]] = [(UNKNOWN_CLASS, 0.0)] * len(clouds)
        usable = [i for i, pts in enumerate(clouds) if len(pts) >= MIN_POINTS]
        draws = [clouds[i][sample_choose(len(clouds[i]), self.points, np.random.default_rng(self.seed))]
                 .astype(np.float32) for i in usable]
        for i, q in zip(usable, self.probabilities(draws)):
            out[i] = (int(q.argmax()), float(q.max()))
        return out

    def rescore(self, instances: InstanceMasks, depth_m: np.ndarray, K: Intrinsics) -> InstanceMasks:
        """Instances with fused scores (unsorted; run the filter after). Too few points: unchanged."""
        if len(instances) == 0 or self.weight == 0.0:
            return instances
        rng = np.random.default_rng(self.seed)
        clouds, which = [], []
        for i, mask in enumerate(instances.masks):
            box = box_slices(mask, 0)
            if box is None:
                continue
            r, c = box
            pts = mask_points(depth_m[box], mask[box], crop_intrinsics(K, r.start, c.start, r.stop - r.start,
                                                                       c.stop - c.start), rng, self.points)
            if pts is not None:
                clouds.append(pts)
                which.append(i)
        q = self.probabilities(clouds)
        class_ids = instances.class_ids.copy()
        scores = instances.scores.astype(np.float32).copy()
        for row, i in enumerate(which):
            if class_ids[i] < 0:  # a backend without categories: the classifier names it
                class_ids[i] = int(q[row].argmax())
            scores[i] = float(scores[i]) ** (1.0 - self.weight) * float(q[row][class_ids[i]]) ** self.weight
        return InstanceMasks(instances.masks, class_ids, scores, instances.boxes, instances.reason,
                             list(instances.skipped))


class RescoredSegmenter(Segmenter):
    """An inner segmenter's candidates, re-scored by the point classifier, then this segmenter's filter, once.

    The inner segmenter's filter is derived from this one's (`candidate_filter`): the score threshold below
    which no fused score can reach this filter's, at most `CANDIDATES_PER_FRAME` instances and no overlap cut;
    its area and depth-point limits are this filter's. Needs the depth and, before every frame, the intrinsics
    (`set_intrinsics`), with which the masks are back-projected.

    Args:
        inner: the segmenter that finds the candidates (Mask R-CNN); its filter is replaced here.
        rescorer: the point classifier and its weight.
        post_filter: the filter the user sets (default `SegmentationFilter()`).
    """

    def __init__(
        self, inner: Segmenter, rescorer: CategoryRescorer, post_filter: SegmentationFilter | None = None
    ):
        super().__init__(post_filter)
        self.inner = inner
        self.rescorer = rescorer
        self.name = f"{inner.name} re-scored"
        self.intrinsics: Intrinsics | None = None
        self.inner.set_filter(self.candidate_filter())

    def candidate_filter(self) -> SegmentationFilter:
        """The inner segmenter's filter: every instance whose fused score could still pass `self.filter`."""
        return dataclasses.replace(self.filter, score_threshold=self.rescorer.candidate_threshold(
            self.filter.score_threshold), max_objects=CANDIDATES_PER_FRAME, max_mask_overlap=1.0)

    def set_filter(self, post_filter: SegmentationFilter) -> None:
        post_filter.validate()
        self.filter, previous = post_filter, self.filter
        try:
            self.inner.set_filter(self.candidate_filter())
        except ValueError:
            self.filter = previous
            raise

    def retune(self, post_filter: SegmentationFilter, category_weight: float) -> None:
        if not 0.0 <= category_weight < 1.0:
            raise ValueError(f"category weight must be in [0, 1), got {category_weight}")
        post_filter = dataclasses.replace(post_filter, max_mask_overlap=self.filter.max_mask_overlap)
        post_filter.validate()
        previous = self.rescorer.weight
        self.rescorer.weight = category_weight  # the candidate threshold depends on it
        try:
            self.set_filter(post_filter)
        except ValueError:
            self.rescorer.weight = previous
            raise

    def set_intrinsics(self, K: Intrinsics) -> None:
        self.intrinsics = K
        self.inner.set_intrinsics(K)

    def segment(
        self, rgb: np.ndarray, depth_m: np.ndarray | None = None, *, checked: bool = False
    ) -> InstanceMasks:
        """The inner segmenter's candidates, re-scored, then filtered by `self.filter`; the frame is checked
        here unless `checked`, and never by the inner segmenter.

        An inner result without candidates comes back as it is (its reason and skip lines); a failure of the
        re-scoring becomes an empty result with a reason, as in every `Segmenter`.
        """
        problem = None if checked else check_frame(rgb, depth_m)
        if problem is not None:
            return InstanceMasks.empty(f"{self.name}: {problem}")
        try:
            candidates = self._predict(rgb, depth_m)
        except Exception as exc:  # a broken frame must not stop a node; the traceback goes to the log
            log.exception("%s failed", self.name)
            return InstanceMasks.empty(f"{self.name} failed: {type(exc).__name__}: {exc}", *rgb.shape[:2])
        if len(candidates) == 0:
            return candidates
        return self.filter.apply(candidates, depth_m)

    def _predict(self, rgb: np.ndarray, depth_m: np.ndarray | None) -> InstanceMasks:
        candidates = self.inner.segment(rgb, depth_m, checked=True)
        if len(candidates) == 0:
            return candidates
        if depth_m is None or self.intrinsics is None:
            need = "a depth image" if depth_m is None else "the intrinsics (set_intrinsics)"
            return InstanceMasks.empty(f"{self.name}: needs {need} to back-project the masks", *rgb.shape[:2])
        return self.rescorer.rescore(candidates, depth_m, self.intrinsics)
