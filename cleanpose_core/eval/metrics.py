"""The NOCS evaluation protocol (mAP of 3D IoU and of rotation/translation error), as the official code
computes it.

Reproduces `compute_independent_mAP` (NOCS `utils.py`, as copied into DPDN, AG-Pose and CleanPose
`utils/evaluation_utils.py`), its HouseCat6D variant (`housecat6d_eval_utils.py`) and `compute_CATRE_IoU`
(`CATRE_evaluation_utils.py`), including their quirks:

* Per category, per image: predictions sorted by score (`argsort(scores)[::-1]`); each takes the unmatched
  ground truth (GT) of highest IoU; the match needs IoU **>** threshold (strict), compared in float32 because
  the official overlap matrix is float32. An unmatched GT of lower IoU ends the search.
* IoU "nocs" uses the per-corner extrema of `iou.py`; y-symmetric categories (and mugs whose handle is hidden,
  `gt_handle_visibility == 0`) sweep the prediction about y in 20 steps. IoU "catre" uses true axis-aligned
  boxes, symmetric set {bottle, bowl, can, glass}, handle visibility forced to 1 (mugs never symmetric).
* Pose AP uses only the predictions and GTs matched at NOCS-style IoU 0.10 (so a missed GT does not lower the
  pose recall). Each prediction (score order) takes the unmatched GT with the smallest degree + cm sum that is
  within both thresholds. Degree and cm threshold lists get 360 and 100 appended, so "5deg" is 5° at any
  translation and "2cm" 2 cm at any rotation.
* Rotation error: scale removed by cbrt(det); bottle/bowl/can (+glass for HouseCat6D) and hidden-handle
  mugs use the angle between the y axes, computed WITHOUT clipping: rounding can give arccos(1 + ε) = NaN,
  and NaN passes every `err > thr` test (counts as within threshold) while sorting last. Reproduced on
  purpose. Other categories: arccos(clip((tr(R̂Rᵀ) − 1)/2)). Translation error ‖t̂ − t‖·100 cm.
* AP: scores pooled over all images per category, VOC all-point interpolation (precision made monotone, summed
  over recall steps), recall cast to float32. A category with predictions but no GT gets NaN (0/0), as the
  official code does; the overall value is the plain mean over categories (NaN propagates).

What differs from the official code: everything is vectorised (IoU for all pairs at once, greedy matching
vectorised over thresholds) so REAL275's 2,754 images take seconds, not minutes. Values that fall within
rounding distance of a threshold (or of the arccos domain edge) are recomputed with the official per-pair
arithmetic, so match decisions agree bit for bit. `test/eval/reference_eval.py` keeps a loop-by-loop oracle of
the official code and the tests assert equality on random result sets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cleanpose_core.eval.protocol import NOCS, Protocol
from cleanpose_core.eval.results import ImageResult
from cleanpose_core.geometry.iou import iou_3d, iou_3d_single
from cleanpose_core.geometry.rotations import geodesic_cosine, remove_scale, symmetric_axis_cosine

log = logging.getLogger(__name__)

# Threshold lists the official `evaluate` passes (the plain ones) and the fine sweeps of its plots.
STANDARD_IOU_THRESHOLDS = (0.10, 0.25, 0.50, 0.75)
FINE_IOU_THRESHOLDS = tuple(i / 100 for i in range(101))
FINE_DEGREE_THRESHOLDS = tuple(float(d) for d in range(61))
FINE_SHIFT_THRESHOLDS = tuple(i / 2 for i in range(21))
ANY_DEGREE = 360.0  # appended to the degree list by the official code: "any rotation"
ANY_SHIFT = 100.0  # appended to the cm list: "any translation"

# Distances from a threshold below which a value is recomputed with the official per-pair arithmetic. They
# cover float32 result files (relative error ~1e-7) with a wide margin; values further away cannot flip a
# comparison.
_IOU_BAND = 1e-5
_DEGREE_BAND = 1e-3
_CM_BAND = 1e-3
_COSINE_BAND = 1e-6


@dataclass
class Evaluation:
    """APs (fractions in [0, 1], NaN where the official code gives NaN) per category.

    iou_aps, catre_iou_aps: (C, T) at `iou_thresholds`; pose_aps: (C, K) at `pose_thresholds` (K, 2) rows of
    (degrees, cm), where 360 / 100 mean "any". `num_gt`/`num_pred`: (C,) object counts.
    """

    protocol: Protocol
    iou_thresholds: np.ndarray
    iou_aps: np.ndarray
    catre_iou_aps: np.ndarray
    pose_thresholds: np.ndarray
    pose_aps: np.ndarray
    num_images: int
    num_gt: np.ndarray
    num_pred: np.ndarray
    categories: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.categories = self.protocol.categories

    def iou_index(self, threshold: float) -> int:
        hit = np.flatnonzero(np.isclose(self.iou_thresholds, threshold, rtol=0, atol=1e-9))
        if not hit.size:
            raise KeyError(
                f"IoU threshold {threshold} was not evaluated (have {self.iou_thresholds.tolist()})"
            )
        return int(hit[0])

    def iou_ap(self, threshold: float, method: str = "nocs") -> np.ndarray:
        """(C,) AP at a 3D IoU threshold, method "nocs" or "catre"."""
        aps = self.iou_aps if method == "nocs" else self.catre_iou_aps
        return aps[:, self.iou_index(threshold)]

    def pose_ap(self, degrees: float = ANY_DEGREE, cm: float = ANY_SHIFT) -> np.ndarray:
        """(C,) AP at a rotation (degrees) and translation (cm) threshold; the defaults mean "any"."""
        hit = np.flatnonzero(
            np.all(np.isclose(self.pose_thresholds, [degrees, cm], rtol=0, atol=1e-9), axis=1)
        )
        if not hit.size:
            raise KeyError(f"pose threshold ({degrees} deg, {cm} cm) was not evaluated")
        return self.pose_aps[:, int(hit[0])]


def average_precision(matched: np.ndarray, scores: np.ndarray, num_gt: int) -> np.ndarray:
    """VOC all-point AP of pooled predictions, for K match patterns at once (official
    `compute_ap_from_matches_scores`).

    Args:
        matched: (K, N) bool, prediction n is a true positive under setting k.
        scores: (N,) confidence; ranking uses `argsort(scores)[::-1]` like the official code (same tie order).
        num_gt: number of ground-truth objects (recall denominator).
    Returns:
        (K,) AP in [0, 1]; NaN when num_gt == 0 and N > 0 (the official 0/0), 0 when N == 0.
    """
    matched = np.atleast_2d(np.asarray(matched, dtype=bool))
    if matched.shape[1] != np.shape(scores)[0]:
        raise ValueError(
            f"average_precision: {matched.shape[1]} match flags for {np.shape(scores)[0]} scores"
        )
    n = matched.shape[1]
    order = np.argsort(np.asarray(scores, dtype=np.float64))[::-1]
    hits = np.cumsum(matched[:, order], axis=1)
    precision = hits / (np.arange(n) + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = hits.astype(np.float32) / np.float32(int(num_gt))  # float32 like the official code
    k = matched.shape[0]
    precision = np.concatenate([np.zeros((k, 1)), precision, np.zeros((k, 1))], axis=1)
    recall = np.concatenate([np.zeros((k, 1)), recall.astype(np.float64), np.ones((k, 1))], axis=1)
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    step = recall[:, 1:] != recall[:, :-1]
    return np.where(step, (recall[:, 1:] - recall[:, :-1]) * precision[:, 1:], 0.0).sum(axis=1)


def _greedy_iou_matches(overlaps: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Official IoU matching of one image and category, for all thresholds at once.

    Args:
        overlaps: (P, G) float32 IoU, predictions already in descending score order.
        thresholds: (T,) float32.
    Returns:
        pred_matched (T, P) bool, gt_matched (T, G) bool.
    """
    n_pred, n_gt = overlaps.shape
    gt_matched = np.zeros((thresholds.size, n_gt), dtype=bool)
    pred_matched = np.zeros((thresholds.size, n_pred), dtype=bool)
    for i in range(n_pred):
        order = np.argsort(overlaps[i])[::-1]
        values = overlaps[i, order]
        # The official loop skips matched GTs, stops at the first free GT with IoU < thr, matches one with
        # IoU > thr and skips IoU == thr (all later ones are <= thr) and NaN (fails both tests).
        free = ~gt_matched[:, order] & ~np.isnan(values)
        first = free.argmax(axis=1)
        ok = free.any(axis=1) & (values[first] > thresholds)
        gt_matched[ok, order[first[ok]]] = True
        pred_matched[ok, i] = True
    return pred_matched, gt_matched


def _greedy_pose_matches(degrees: np.ndarray, cm: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Official degree/cm matching (`compute_match_from_degree_cm`) of one image and category.

    Args:
        degrees, cm: (P, G) errors of IoU-matched predictions (score order) against IoU-matched GTs.
        limits: (K, 2) (degree, cm) thresholds.
    Returns:
        pred_matched (K, P) bool.
    """
    n_pred, n_gt = degrees.shape
    # `err > thr` is False for NaN, so a NaN error is within every threshold, as in the official code.
    # within: (P, K, G)
    within = ~(degrees[:, None, :] > limits[None, :, 0:1]) & ~(cm[:, None, :] > limits[None, :, 1:2])
    gt_matched = np.zeros((limits.shape[0], n_gt), dtype=bool)
    pred_matched = np.zeros((limits.shape[0], n_pred), dtype=bool)
    for i in range(n_pred):
        order = np.argsort(degrees[i] + cm[i])  # NaN sums sort last
        candidates = (within[i] & ~gt_matched)[:, order]
        first = candidates.argmax(axis=1)
        ok = candidates.any(axis=1)
        gt_matched[ok, order[first[ok]]] = True
        pred_matched[ok, i] = True
    return pred_matched


def pose_error_single(rt_pred: np.ndarray, rt_gt: np.ndarray, symmetric: bool) -> tuple[float, float]:
    """(degrees, cm) of one pair with the official `compute_RT_degree_cm_symmetry` arithmetic and dtypes.

    Slow; used to settle errors within rounding distance of a threshold and the symmetric arccos(1 + ε) = NaN
    case.
    """
    R_1 = rt_pred[:3, :3] / np.cbrt(np.linalg.det(rt_pred[:3, :3]))
    R_2 = rt_gt[:3, :3] / np.cbrt(np.linalg.det(rt_gt[:3, :3]))
    if symmetric:
        y = np.array([0, 1, 0])
        y_1, y_2 = R_1 @ y, R_2 @ y
        with np.errstate(invalid="ignore"):
            theta = np.arccos(y_1.dot(y_2) / (np.linalg.norm(y_1) * np.linalg.norm(y_2)))
    else:
        theta = np.arccos(np.clip((np.trace(R_1 @ R_2.transpose()) - 1) / 2, -1.0, 1.0))
    theta *= 180 / np.pi
    return float(theta), float(np.linalg.norm(rt_pred[:3, 3] - rt_gt[:3, 3]) * 100)


def _near(values: np.ndarray, thresholds: np.ndarray, band: float) -> np.ndarray:
    """(N,) mask of values within `band` of any threshold."""
    thresholds = np.sort(np.asarray(thresholds, dtype=np.float64))
    pos = np.clip(np.searchsorted(thresholds, values), 1, thresholds.size - 1) if thresholds.size > 1 else 0
    if thresholds.size == 1:
        return np.abs(values - thresholds[0]) < band
    return (np.abs(values - thresholds[pos]) < band) | (np.abs(values - thresholds[pos - 1]) < band)


@dataclass
class _Objects:
    """All GTs or all predictions of the data set, flattened (N objects)."""

    rts: np.ndarray  # (N, 4, 4) float64
    scales: np.ndarray  # (N, 3) float64
    image: np.ndarray  # (N,) image index
    local: np.ndarray  # (N,) index inside the image's arrays


def _flatten(results: Sequence[ImageResult], prefix: str) -> _Objects:
    counts = [getattr(r, f"{prefix}_class_ids").shape[0] for r in results]
    rts = [getattr(r, f"{prefix}_RTs").astype(np.float64) for r in results]
    scales = [getattr(r, f"{prefix}_scales").astype(np.float64) for r in results]
    return _Objects(
        rts=np.concatenate(rts) if rts else np.zeros((0, 4, 4)),
        scales=np.concatenate(scales) if scales else np.zeros((0, 3)),
        image=np.repeat(np.arange(len(results)), counts),
        local=np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, dtype=int),
    )


def evaluate(
    results: Sequence[ImageResult],
    protocol: Protocol = NOCS,
    iou_thresholds: Sequence[float] = STANDARD_IOU_THRESHOLDS,
    fine: bool = False,
) -> Evaluation:
    """Score a result set with the official protocol.

    Args:
        results: per-image results in the official order (sorted file names; ties in scores are broken by it).
        protocol: `NOCS` or `HOUSECAT6D`.
        iou_thresholds: 3D IoU thresholds; must contain `protocol.iou_pose_threshold`.
        fine: also evaluate the plot sweeps (IoU 0..1 by 0.01, 0..60°, 0..10 cm by 0.5).
    Returns:
        `Evaluation` with per-category APs.
    """
    categories = protocol.categories
    n_cat = len(categories)
    iou_list = sorted(set(float(t) for t in iou_thresholds) | (set(FINE_IOU_THRESHOLDS) if fine else set()))
    if not any(abs(t - protocol.iou_pose_threshold) < 1e-12 for t in iou_list):
        raise ValueError(
            f"iou_thresholds must contain the pose-matching threshold {protocol.iou_pose_threshold}"
        )
    iou_thr = np.asarray(iou_list, dtype=np.float64)
    iou_thr32 = iou_thr.astype(np.float32)  # the official comparison float32(IoU) > thr happens in float32
    pose_idx = int(np.argmin(np.abs(iou_thr - protocol.iou_pose_threshold)))
    degrees = list(protocol.degree_thresholds) + [ANY_DEGREE]
    shifts = list(protocol.shift_thresholds) + [ANY_SHIFT]
    combos = {(d, s) for d in degrees for s in shifts}
    if fine:
        combos |= {(d, ANY_SHIFT) for d in FINE_DEGREE_THRESHOLDS} | {
            (ANY_DEGREE, s) for s in FINE_SHIFT_THRESHOLDS
        }
    limits = np.asarray(sorted(combos), dtype=np.float64)  # (K, 2)

    gts, preds = _flatten(results, "gt"), _flatten(results, "pred")
    gt_offsets = np.concatenate([[0], np.cumsum([r.gt_class_ids.shape[0] for r in results])]).astype(int)
    pred_offsets = np.concatenate([[0], np.cumsum([r.pred_class_ids.shape[0] for r in results])]).astype(int)
    gt_class = np.concatenate([r.gt_class_ids for r in results]) if results else np.zeros(0, int)
    gt_handle = np.concatenate([r.gt_handle_visibility for r in results]) if results else np.zeros(0, int)
    names = np.asarray(("BG",) + tuple(categories))
    hidden_handle = protocol.hidden_handle(names[gt_class], gt_handle)
    rotation_symmetric = protocol.rotation_symmetric_objects(names[gt_class], gt_handle)

    # 1. Groups (image, category) with predictions in descending score order, and all their (pred, gt) pairs.
    # (image, class, gt idx, pred idx, pair offset)
    groups: list[tuple[int, int, np.ndarray, np.ndarray, int]] = []
    pair_pred, pair_gt = [], []
    n_pairs = 0
    for img, r in enumerate(results):
        if r.gt_class_ids.size == 0 and r.pred_class_ids.size == 0:
            continue
        for c in range(1, n_cat + 1):
            g_idx = gt_offsets[img] + np.flatnonzero(r.gt_class_ids == c)
            p_local = np.flatnonzero(r.pred_class_ids == c)
            p_idx = pred_offsets[img] + p_local[np.argsort(r.pred_scores[p_local])[::-1]]
            if g_idx.size == 0 and p_idx.size == 0:
                continue
            groups.append((img, c, g_idx, p_idx, n_pairs))
            if g_idx.size and p_idx.size:
                pair_pred.append(np.repeat(p_idx, g_idx.size))
                pair_gt.append(np.tile(g_idx, p_idx.size))
                n_pairs += p_idx.size * g_idx.size
    pp = np.concatenate(pair_pred) if pair_pred else np.zeros(0, dtype=int)
    pg = np.concatenate(pair_gt) if pair_gt else np.zeros(0, dtype=int)

    # 2. Overlaps and pose errors of every pair, vectorised; near-threshold values settled exactly.
    pair_name = names[gt_class[pg]]
    sym_nocs = np.isin(pair_name, list(protocol.iou_symmetric)) | hidden_handle[pg]
    sym_catre = np.isin(pair_name, list(protocol.catre_symmetric))
    sym_rot = rotation_symmetric[pg]
    ious = {}
    for method, sym in (("nocs", sym_nocs), ("catre", sym_catre)):
        value = iou_3d(preds.rts[pp], gts.rts[pg], preds.scales[pp], gts.scales[pg], sym, method)
        for k in np.flatnonzero(_near(value, iou_thr, _IOU_BAND)):
            value[k] = iou_3d_single(*_originals(results, preds, gts, pp[k], pg[k]), bool(sym[k]), method)
        ious[method] = value.astype(np.float32)
    rot_err, shift_err = _pose_errors(results, preds, gts, pp, pg, sym_rot, limits)

    # 3. Greedy matching per group, pooled per category in image order.
    iou_hits = {m: [[] for _ in range(n_cat)] for m in ("nocs", "catre")}
    iou_scores = [[] for _ in range(n_cat)]
    pose_hits = [[] for _ in range(n_cat)]
    pose_scores = [[] for _ in range(n_cat)]
    num_gt = np.zeros(n_cat, dtype=int)
    num_pose_gt = np.zeros(n_cat, dtype=int)
    for img, c, g_idx, p_idx, offset in groups:
        scores = results[img].pred_scores[p_idx - pred_offsets[img]].astype(np.float64)
        n_p, n_g = p_idx.size, g_idx.size
        num_gt[c - 1] += n_g
        iou_scores[c - 1].append(scores)
        block = slice(offset, offset + n_p * n_g)
        matched_gt_pose = np.zeros(n_g, dtype=bool)
        matched_pred_pose = np.zeros(n_p, dtype=bool)
        for method in ("nocs", "catre"):
            if n_g == 0:
                iou_hits[method][c - 1].append(np.zeros((iou_thr.size, n_p), dtype=bool))
                continue
            pm, gm = _greedy_iou_matches(ious[method][block].reshape(n_p, n_g), iou_thr32)
            iou_hits[method][c - 1].append(pm)
            if method == "nocs":
                matched_pred_pose, matched_gt_pose = pm[pose_idx], gm[pose_idx]
        num_pose_gt[c - 1] += int(matched_gt_pose.sum())
        if matched_pred_pose.any():
            sel = np.ix_(matched_pred_pose, matched_gt_pose)
            deg = rot_err[block].reshape(n_p, n_g)[sel]
            cm = shift_err[block].reshape(n_p, n_g)[sel]
            pose_hits[c - 1].append(_greedy_pose_matches(deg, cm, limits))
            pose_scores[c - 1].append(scores[matched_pred_pose])

    # 4. AP per category over the pooled predictions.
    iou_aps = np.zeros((n_cat, iou_thr.size))
    catre_aps = np.zeros((n_cat, iou_thr.size))
    pose_aps = np.zeros((n_cat, limits.shape[0]))
    num_pred = np.zeros(n_cat, dtype=int)
    for c in range(n_cat):
        scores = np.concatenate(iou_scores[c]) if iou_scores[c] else np.zeros(0)
        num_pred[c] = scores.size
        for method, out in (("nocs", iou_aps), ("catre", catre_aps)):
            hits = (
                np.concatenate(iou_hits[method][c], axis=1)
                if iou_hits[method][c]
                else np.zeros((iou_thr.size, 0), bool)
            )
            out[c] = average_precision(hits, scores, num_gt[c])
        p_scores = np.concatenate(pose_scores[c]) if pose_scores[c] else np.zeros(0)
        p_hits = (
            np.concatenate(pose_hits[c], axis=1) if pose_hits[c] else np.zeros((limits.shape[0], 0), bool)
        )
        pose_aps[c] = average_precision(p_hits, p_scores, num_pose_gt[c])
        if num_gt[c] == 0 and scores.size:
            log.warning("category %s has %d predictions but no ground truth: its IoU AP is NaN (as in the "
                        "official code), and so is the mean", categories[c], scores.size)
    return Evaluation(
        protocol=protocol,
        iou_thresholds=iou_thr,
        iou_aps=iou_aps,
        catre_iou_aps=catre_aps,
        pose_thresholds=limits,
        pose_aps=pose_aps,
        num_images=len(results),
        num_gt=num_gt,
        num_pred=num_pred,
    )


def _originals(results, preds: _Objects, gts: _Objects, p: int, g: int):
    """The file-dtype arrays of one pair: (pred RT, gt RT, pred scales, gt scales)."""
    rp, rg = results[preds.image[p]], results[gts.image[g]]
    return (rp.pred_RTs[preds.local[p]], rg.gt_RTs[gts.local[g]], rp.pred_scales[preds.local[p]],
            rg.gt_scales[gts.local[g]])


def _pose_errors(
    results, preds: _Objects, gts: _Objects, pp, pg, symmetric, limits
) -> tuple[np.ndarray, np.ndarray]:
    """(degrees, cm) of all pairs with the official quirks (unclipped symmetric arccos), settled near
    thresholds."""
    R_pred = remove_scale(preds.rts[pp, :3, :3])
    R_gt = remove_scale(gts.rts[pg, :3, :3])
    cos = np.where(
        symmetric, symmetric_axis_cosine(R_pred, R_gt), np.clip(geodesic_cosine(R_pred, R_gt), -1, 1)
    )
    with np.errstate(invalid="ignore"):
        degrees = np.arccos(cos) * (180 / np.pi)
    diff = preds.rts[pp, :3, 3] - gts.rts[pg, :3, 3]
    cm = np.sqrt((diff * diff).sum(-1)) * 100
    unsure = (symmetric & (np.abs(cos) > 1 - _COSINE_BAND)) | _near(degrees, limits[:, 0], _DEGREE_BAND)
    unsure |= _near(cm, limits[:, 1], _CM_BAND)
    for k in np.flatnonzero(unsure):
        rt_p, rt_g, _, _ = _originals(results, preds, gts, pp[k], pg[k])
        degrees[k], cm[k] = pose_error_single(rt_p, rt_g, bool(symmetric[k]))
    return degrees, cm
