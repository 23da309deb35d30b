"""Random result sets for the evaluator tests: accurate, noisy, missed, false-positive, symmetric,
hidden-handle.

Every set is a list of plain result dicts (the standard pickle keys) built from a seeded numpy Generator, so a
failing case can be replayed from its seed.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def random_gt_object(rng: np.random.Generator, upright: bool) -> tuple[np.ndarray, np.ndarray]:
    """One ground-truth box: (RT (4, 4) = [[s·R, t], [0, 0, 0, 1]], scales (3,) with unit diagonal)."""
    if upright:  # y axis close to the camera's -y, like objects standing on a table
        R = Rotation.from_euler(
            "xy", [rng.uniform(-0.3, 0.3) + np.pi, rng.uniform(-np.pi, np.pi)]
        ).as_matrix()
    else:
        R = Rotation.random(random_state=rng).as_matrix()
    s = rng.uniform(0.08, 0.3)
    t = np.array([rng.uniform(-0.25, 0.25), rng.uniform(-0.2, 0.2), rng.uniform(0.5, 1.2)])
    extents = rng.uniform(0.3, 1.0, size=3)
    rt = np.eye(4)
    rt[:3, :3] = s * R
    rt[:3, 3] = t
    return rt, extents / np.linalg.norm(extents)


def perturb(
    rng: np.random.Generator, rt: np.ndarray, scales: np.ndarray, deg: float, cm: float, rel_scale: float
):
    """A prediction near a GT: rotation noise of about `deg` degrees, translation `cm`, size `rel_scale`."""
    noise = Rotation.from_rotvec(rng.normal(size=3) * np.deg2rad(deg) / np.sqrt(3)).as_matrix()
    s = np.cbrt(np.linalg.det(rt[:3, :3])) * (1 + rng.normal() * rel_scale)
    out = np.eye(4)
    out[:3, :3] = abs(s) * noise @ (rt[:3, :3] / np.cbrt(np.linalg.det(rt[:3, :3])))
    out[:3, 3] = rt[:3, 3] + rng.normal(size=3) * cm / 100 / np.sqrt(3)
    new_scales = np.abs(scales * (1 + rng.normal(size=3) * rel_scale)) + 1e-3
    return out, new_scales / np.linalg.norm(new_scales)


def random_result_set(
    seed: int,
    num_images: int = 40,
    num_categories: int = 6,
    max_objects: int = 6,
    p_detect: float = 0.8,
    p_exact: float = 0.2,
    p_false_positive: float = 0.5,
    p_wrong_class: float = 0.05,
    noise_deg: float = 6.0,
    noise_cm: float = 2.5,
    tie_scores: bool = False,
    dtype=np.float64,
) -> list[dict]:
    """A result set mixing every case the official protocol treats specially (see module docstring)."""
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(num_images):
        n_gt = int(rng.integers(0, max_objects + 1))
        gt_ids = rng.integers(1, num_categories + 1, size=n_gt)
        gt = [random_gt_object(rng, upright=rng.random() < 0.7) for _ in range(n_gt)]
        handle = (rng.random(n_gt) < 0.6).astype(np.int64)  # 0 = hidden handle
        pred_ids, pred_rts, pred_scales = [], [], []
        for cid, (rt, sc) in zip(gt_ids, gt):
            if rng.random() > p_detect:
                continue  # missed
            if rng.random() < p_exact:
                prt, psc = rt.copy(), sc.copy()
            else:
                scale_noise = 0.1 * rng.random()
                prt, psc = perturb(
                    rng, rt, sc, noise_deg * rng.random() * 2, noise_cm * rng.random() * 2, scale_noise
                )
            pred_ids.append(cid if rng.random() > p_wrong_class else int(rng.integers(1, num_categories + 1)))
            pred_rts.append(prt)
            pred_scales.append(psc)
            if rng.random() < 0.1:  # a duplicate detection of the same object
                prt2, psc2 = perturb(rng, rt, sc, 10.0, 3.0, 0.1)
                pred_ids.append(cid)
                pred_rts.append(prt2)
                pred_scales.append(psc2)
        while rng.random() < p_false_positive:
            rt, sc = random_gt_object(rng, upright=rng.random() < 0.5)
            pred_ids.append(int(rng.integers(1, num_categories + 1)))
            pred_rts.append(rt)
            pred_scales.append(sc)
        n_pred = len(pred_ids)
        scores = rng.random(n_pred)
        if tie_scores:
            scores = np.round(scores, 1)
        results.append(
            {
                "gt_class_ids": np.asarray(gt_ids, dtype=np.int64),
                "gt_RTs": np.asarray([g[0] for g in gt], dtype=dtype).reshape(n_gt, 4, 4),
                "gt_scales": np.asarray([g[1] for g in gt], dtype=dtype).reshape(n_gt, 3),
                "gt_handle_visibility": handle,
                "pred_class_ids": np.asarray(pred_ids, dtype=np.int64),
                "pred_RTs": np.asarray(pred_rts, dtype=dtype).reshape(n_pred, 4, 4),
                "pred_scales": np.asarray(pred_scales, dtype=dtype).reshape(n_pred, 3),
                "pred_scores": scores.astype(dtype),
                "pred_bboxes": np.ones((n_pred, 4)),
            }
        )
    return results
