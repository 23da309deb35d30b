"""Test-only oracle: the official NOCS evaluation re-expressed loop for loop (no vectorisation, no shortcuts).

It follows the structure and the arithmetic of `compute_independent_mAP` / `compute_3d_matches` /
`compute_3d_iou_new` / `compute_RT_degree_cm_symmetry` / `compute_RT_overlaps` /
`compute_match_from_degree_cm` / `compute_ap_from_matches_scores` (NOCS `utils.py` as kept in DPDN / AG-Pose /
CleanPose) and `compute_CATRE_IoU`, written independently from their description so the fast evaluator in
`cleanpose_core.eval.metrics` can be checked against it. The symmetric category sets are parameters so one
oracle covers NOCS, HouseCat6D and CATRE.
Input: a list of plain result dicts (standard keys), in file order.
"""

from __future__ import annotations

import math

import numpy as np


def _bbox(scale):
    # (3, 8) corners in the official order, built element by element.
    rows = []
    for sy in (+1, -1):
        for sx in (+1, -1):
            for sz in (+1, -1):
                rows.append([sx * scale[0] / 2, sy * scale[1] / 2, sz * scale[2] / 2])
    return np.array(rows).transpose()


def _transform(coords, RT):
    coords = np.vstack([coords, np.ones((1, coords.shape[1]), dtype=np.float32)])
    out = RT @ coords
    return out[:3, :] / out[3, :]


def ref_iou(
    RT_1, RT_2, scales_1, scales_2, handle_visibility, name_1, name_2, symmetric_names, mug_rule, axis
):
    def asymmetric(RT_a):
        box_1 = _transform(_bbox(scales_1), RT_a)
        box_2 = _transform(_bbox(scales_2), RT_2)
        max_1, min_1 = np.amax(box_1, axis=axis), np.amin(box_1, axis=axis)
        max_2, min_2 = np.amax(box_2, axis=axis), np.amin(box_2, axis=axis)
        lo, hi = np.maximum(min_1, min_2), np.minimum(max_1, max_2)
        if np.amin(hi - lo) < 0:
            inter = 0
        else:
            inter = np.prod(hi - lo)
        union = np.prod(max_1 - min_1) + np.prod(max_2 - min_2) - inter
        return inter / union

    symmetric = (name_1 in symmetric_names and name_1 == name_2) or (
        mug_rule and name_1 == "mug" and name_1 == name_2 and handle_visibility == 0
    )
    if not symmetric:
        return asymmetric(RT_1)
    best = 0
    for i in range(20):
        t = 2 * math.pi * i / float(20)
        rot = np.array(
            [[np.cos(t), 0, np.sin(t), 0], [0, 1, 0, 0], [-np.sin(t), 0, np.cos(t), 0], [0, 0, 0, 1]]
        )
        best = max(best, asymmetric(RT_1 @ rot))
    return best


def ref_3d_matches(gt_ids, gt_RTs, gt_scales, gt_hv, names, pred_ids, pred_scores, pred_RTs, pred_scales,
                   iou_thresholds, iou_kwargs):
    num_pred, num_gt = len(pred_ids), len(gt_ids)
    indices = np.zeros(0)
    if num_pred:
        indices = np.argsort(pred_scores)[::-1]
        pred_ids = pred_ids[indices].copy()
        pred_scales = pred_scales[indices].copy()
        pred_RTs = pred_RTs[indices].copy()
    overlaps = np.zeros((num_pred, num_gt), dtype=np.float32)
    for i in range(num_pred):
        for j in range(num_gt):
            overlaps[i, j] = ref_iou(pred_RTs[i], gt_RTs[j], pred_scales[i, :], gt_scales[j], gt_hv[j],
                                     names[pred_ids[i]], names[gt_ids[j]], **iou_kwargs)
    pred_matches = -1 * np.ones([len(iou_thresholds), num_pred])
    gt_matches = -1 * np.ones([len(iou_thresholds), num_gt])
    for s, thr in enumerate(iou_thresholds):
        for i in range(num_pred):
            for j in np.argsort(overlaps[i])[::-1]:
                if gt_matches[s, j] > -1:
                    continue
                iou = overlaps[i, j]
                if iou < thr:
                    break
                if not pred_ids[i] == gt_ids[j]:
                    continue
                if iou > thr:
                    gt_matches[s, j] = i
                    pred_matches[s, i] = j
                    break
    return gt_matches, pred_matches, indices


def ref_rt_error(RT_1, RT_2, class_id, handle_visibility, names, rot_symmetric):
    R1 = RT_1[:3, :3] / np.cbrt(np.linalg.det(RT_1[:3, :3]))
    T1 = RT_1[:3, 3]
    R2 = RT_2[:3, :3] / np.cbrt(np.linalg.det(RT_2[:3, :3]))
    T2 = RT_2[:3, 3]
    name = names[class_id]
    if name in rot_symmetric or (name == "mug" and handle_visibility == 0):
        y = np.array([0, 1, 0])
        y1, y2 = R1 @ y, R2 @ y
        with np.errstate(invalid="ignore"):
            theta = np.arccos(y1.dot(y2) / (np.linalg.norm(y1) * np.linalg.norm(y2)))
    else:
        theta = np.arccos(np.clip((np.trace(R1 @ R2.transpose()) - 1) / 2, -1.0, 1.0))
    theta *= 180 / np.pi
    return np.array([theta, np.linalg.norm(T1 - T2) * 100])


def ref_pose_matches(overlaps, pred_ids, gt_ids, degree_list, shift_list):
    num_pred, num_gt = len(pred_ids), len(gt_ids)
    pred_matches = -1 * np.ones((len(degree_list), len(shift_list), num_pred))
    gt_matches = -1 * np.ones((len(degree_list), len(shift_list), num_gt))
    if num_pred == 0 or num_gt == 0:
        return gt_matches, pred_matches
    for d, dthr in enumerate(degree_list):
        for s, sthr in enumerate(shift_list):
            for i in range(num_pred):
                for j in np.argsort(np.sum(overlaps[i, :, :], axis=-1)):
                    if gt_matches[d, s, j] > -1 or pred_ids[i] != gt_ids[j]:
                        continue
                    if overlaps[i, j, 0] > dthr or overlaps[i, j, 1] > sthr:
                        continue
                    gt_matches[d, s, j] = i
                    pred_matches[d, s, i] = j
                    break
    return gt_matches, pred_matches


def ref_ap(pred_match, pred_scores, gt_match):
    order = np.argsort(pred_scores)[::-1]
    pred_match = pred_match[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        precisions = np.cumsum(pred_match > -1) / (np.arange(len(pred_match)) + 1)
        recalls = np.cumsum(pred_match > -1).astype(np.float32) / len(gt_match)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = np.maximum(precisions[i], precisions[i + 1])
    idx = np.where(recalls[:-1] != recalls[1:])[0] + 1
    return np.sum((recalls[idx] - recalls[idx - 1]) * precisions[idx])


def ref_independent_map(results, synset_names, degree_thresholds, shift_thresholds, iou_thresholds,
                        iou_symmetric, rot_symmetric, force_handle_visible, catre=False):
    """Returns (iou_aps (C+2, T), pose_aps (C+2, D, S)) with the official layout: row 0 BG, row -1 the mean.

    catre=True reproduces compute_CATRE_IoU (axis=1, handle visibility forced to 1, no pose metrics).
    """
    num_classes = len(synset_names)
    degree_list = list(degree_thresholds) + [360]
    shift_list = list(shift_thresholds) + [100]
    iou_list = list(iou_thresholds)
    iou_kwargs = dict(symmetric_names=iou_symmetric, mug_rule=True, axis=1 if catre else 0)
    iou_aps = np.zeros((num_classes + 1, len(iou_list)))
    iou_pm = [np.zeros((len(iou_list), 0)) for _ in range(num_classes)]
    iou_ps = [np.zeros((len(iou_list), 0)) for _ in range(num_classes)]
    iou_gm = [np.zeros((len(iou_list), 0)) for _ in range(num_classes)]
    pose_aps = np.zeros((num_classes + 1, len(degree_list), len(shift_list)))
    pose_pm = [np.zeros((len(degree_list), len(shift_list), 0)) for _ in range(num_classes)]
    pose_gm = [np.zeros((len(degree_list), len(shift_list), 0)) for _ in range(num_classes)]
    pose_ps = [np.zeros((len(degree_list), len(shift_list), 0)) for _ in range(num_classes)]
    for result in results:
        gt_ids = np.asarray(result["gt_class_ids"]).astype(np.int32)
        gt_RTs = np.array(result["gt_RTs"])
        gt_scales = np.array(result["gt_scales"])
        hv = result.get("gt_handle_visibility")
        gt_hv = np.ones_like(gt_ids) if (hv is None or force_handle_visible) else np.asarray(hv)
        pred_ids = np.asarray(result["pred_class_ids"])
        pred_scales = np.asarray(result["pred_scales"])
        pred_scores = np.asarray(result["pred_scores"])
        pred_RTs = np.array(result["pred_RTs"])
        if len(gt_ids) == 0 and len(pred_ids) == 0:
            continue
        for cls_id in range(1, num_classes):
            c_gt_ids = gt_ids[gt_ids == cls_id] if len(gt_ids) else np.zeros(0)
            c_gt_scales = gt_scales[gt_ids == cls_id] if len(gt_ids) else np.zeros((0, 3))
            c_gt_RTs = gt_RTs[gt_ids == cls_id] if len(gt_ids) else np.zeros((0, 4, 4))
            c_pred_ids = pred_ids[pred_ids == cls_id] if len(pred_ids) else np.zeros(0)
            c_pred_scores = pred_scores[pred_ids == cls_id] if len(pred_ids) else np.zeros(0)
            c_pred_RTs = pred_RTs[pred_ids == cls_id] if len(pred_ids) else np.zeros((0, 4, 4))
            c_pred_scales = pred_scales[pred_ids == cls_id] if len(pred_ids) else np.zeros((0, 3))
            if catre or synset_names[cls_id] != "mug":
                c_gt_hv = np.ones_like(c_gt_ids)
            else:
                c_gt_hv = gt_hv[gt_ids == cls_id] if len(gt_ids) else np.ones(0)
            gm, pm, indices = ref_3d_matches(
                c_gt_ids,
                c_gt_RTs,
                c_gt_scales,
                c_gt_hv,
                synset_names,
                c_pred_ids,
                c_pred_scores,
                c_pred_RTs,
                c_pred_scales,
                iou_list,
                iou_kwargs,
            )
            if len(indices):
                c_pred_ids = c_pred_ids[indices]
                c_pred_RTs = c_pred_RTs[indices]
                c_pred_scores = c_pred_scores[indices]
            iou_pm[cls_id] = np.concatenate((iou_pm[cls_id], pm), axis=-1)
            iou_ps[cls_id] = np.concatenate(
                (iou_ps[cls_id], np.tile(c_pred_scores, (len(iou_list), 1))), axis=-1
            )
            iou_gm[cls_id] = np.concatenate((iou_gm[cls_id], gm), axis=-1)
            if catre:
                continue
            t = iou_list.index(0.1)
            keep_p, keep_g = pm[t, :], gm[t, :]
            c_pred_ids = c_pred_ids[keep_p > -1] if len(keep_p) > 0 else np.zeros(0)
            c_pred_RTs = c_pred_RTs[keep_p > -1] if len(keep_p) > 0 else np.zeros((0, 4, 4))
            c_pred_scores = c_pred_scores[keep_p > -1] if len(keep_p) > 0 else np.zeros(0)
            c_gt_ids = c_gt_ids[keep_g > -1] if len(keep_g) > 0 else np.zeros(0)
            c_gt_RTs = c_gt_RTs[keep_g > -1] if len(keep_g) > 0 else np.zeros((0, 4, 4))
            c_gt_hv = c_gt_hv[keep_g > -1] if len(keep_g) > 0 else np.zeros(0)
            overlaps = np.zeros((len(c_pred_ids), len(c_gt_ids), 2))
            for i in range(len(c_pred_ids)):
                for j in range(len(c_gt_ids)):
                    overlaps[i, j, :] = ref_rt_error(c_pred_RTs[i], c_gt_RTs[j], int(c_gt_ids[j]), c_gt_hv[j],
                                                     synset_names, rot_symmetric)
            pgm, ppm = ref_pose_matches(overlaps, c_pred_ids, c_gt_ids, degree_list, shift_list)
            pose_pm[cls_id] = np.concatenate((pose_pm[cls_id], ppm), axis=-1)
            tile = np.tile(c_pred_scores, (len(degree_list), len(shift_list), 1))
            pose_ps[cls_id] = np.concatenate((pose_ps[cls_id], tile), axis=-1)
            pose_gm[cls_id] = np.concatenate((pose_gm[cls_id], pgm), axis=-1)
    for cls_id in range(1, num_classes):
        for s in range(len(iou_list)):
            iou_aps[cls_id, s] = ref_ap(iou_pm[cls_id][s, :], iou_ps[cls_id][s, :], iou_gm[cls_id][s, :])
    iou_aps[-1, :] = np.mean(iou_aps[1:-1, :], axis=0)
    if not catre:
        for i in range(len(degree_list)):
            for j in range(len(shift_list)):
                for cls_id in range(1, num_classes):
                    pose_aps[cls_id, i, j] = ref_ap(pose_pm[cls_id][i, j, :], pose_ps[cls_id][i, j, :],
                                                    pose_gm[cls_id][i, j, :])
                pose_aps[-1, i, j] = np.mean(pose_aps[1:-1, i, j])
    return iou_aps, pose_aps
