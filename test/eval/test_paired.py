"""Per-object paired comparison (cleanpose_core/eval/paired.py) on hand-made results with known errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cleanpose_core.eval.paired import mcnemar, object_successes, seed_ttest
from cleanpose_core.eval.results import ImageResult
from cleanpose_core.geometry.rotations import similarity_to_matrix

# NOCS categories, 1-based: bottle 1, bowl 2, camera 3, can 4, laptop 5, mug 6
GT_CLASSES = np.array([3, 1, 6, 6])
GT_T = np.array([[0.0, 0.0, 0.6], [0.2, 0.0, 0.7], [-0.2, 0.0, 0.8], [0.0, 0.1, 0.9]])


def _result(name, errors_deg_cm, handle=(1, 1, 1, 0), axis="x", drop=()):
    """One image: the four objects above, each prediction off by (degrees about `axis`, cm along x)."""
    gt = similarity_to_matrix(np.repeat(np.eye(3)[None], 4, 0), GT_T, np.full(4, 0.3))
    keep = [i for i in range(4) if i not in drop]
    rot = np.stack([Rotation.from_euler(axis, errors_deg_cm[i][0], degrees=True).as_matrix() for i in keep])
    shift = GT_T[keep] + np.array([[errors_deg_cm[i][1] / 100, 0, 0] for i in keep])
    pred = similarity_to_matrix(rot, shift, np.full(len(keep), 0.3))
    return ImageResult(gt_class_ids=GT_CLASSES, gt_RTs=gt, gt_scales=np.full((4, 3), 0.5),
                       gt_handle_visibility=np.array(handle), pred_class_ids=GT_CLASSES[keep], pred_RTs=pred,
                       pred_scales=np.full((len(keep), 3), 0.5), pred_scores=np.ones(len(keep)),
                       image_path=name)


def test_object_successes_apply_both_limits_symmetry_and_missing_predictions():
    # camera 4 deg / 1 cm: ok; bottle 30 deg about y (symmetric): ok; mug 30 deg about y, handle visible:
    # fails;
    # mug with hidden handle (symmetric) 30 deg about y but 6 cm off: fails on distance
    r = _result("a.png", [(4, 1), (30, 0), (30, 0), (30, 6)], axis="y")
    assert object_successes([r], 10, 5) == {("a.png", 0): True, ("a.png", 1): True, ("a.png", 2): False,
                                            ("a.png", 3): False}
    assert object_successes([r], 5, 0.5)[("a.png", 0)] is False  # 1 cm > 0.5 cm
    assert object_successes([r], 10, 7)[("a.png", 3)] is True  # hidden handle: the y-rotation does not count
    assert object_successes([_result("c.png", [(4, 1)] * 4, axis="y")], 10, 5)[("c.png", 3)] is True
    tilted = _result("d.png", [(30, 0)] * 4, axis="x")  # about x the symmetric axis moves: all fail
    assert not any(object_successes([tilted], 10, 5).values())
    # a missing prediction fails; the remaining mug prediction goes to the mug it is nearest to
    r = _result("b.png", [(1, 0)] * 4, drop=(2,))
    assert object_successes([r], 10, 5) == {("b.png", 0): True, ("b.png", 1): True, ("b.png", 2): False,
                                            ("b.png", 3): True}


def test_results_without_image_paths_pair_by_file_name():
    a = dataclasses.replace(_result(None, [(1, 0)] * 4), source="/runs/a/results_0001.pkl")
    b = dataclasses.replace(_result(None, [(30, 0)] * 4), source="/runs/b/results_0001.pkl")
    t = mcnemar(object_successes([a], 10, 5), object_successes([b], 10, 5))
    assert (t.objects, t.a_only, t.b_only) == (4, 4, 0)  # the same four objects; B's 30 deg about x fail


def test_mcnemar_counts_discordant_pairs_and_tests_them():
    a = {i: i < 60 for i in range(100)}  # A right on 60 objects
    b = {i: 10 <= i < 50 for i in range(100)}  # B right on 40 of them, never where A fails
    t = mcnemar(a, b)
    assert (t.objects, t.a_only, t.b_only) == (100, 20, 0)
    assert t.difference == pytest.approx(20.0)
    assert t.p_value == pytest.approx(2 * 0.5 ** 20)
    same = mcnemar(a, dict(a))
    assert (same.a_only, same.b_only, same.p_value) == (0, 0, 1.0)
    assert mcnemar(a, {i: b[i] for i in range(50)}).objects == 50  # only shared keys pair


def test_seed_ttest():
    diff, p = seed_ttest([70.0, 72.0, 71.0], [65.0, 68.0, 64.0])
    assert diff == pytest.approx(5.333, abs=1e-3) and 0 < p < 0.05
    assert np.isnan(seed_ttest([1.0], [0.0])[1])
    with pytest.raises(ValueError, match="differ in number"):
        seed_ttest([1.0, 2.0], [1.0])
