"""The fast evaluator equals the loop-by-loop oracle of the official code on random result sets."""

from __future__ import annotations

import numpy as np
import pytest

from cleanpose_core.eval.metrics import STANDARD_IOU_THRESHOLDS, evaluate
from cleanpose_core.eval.protocol import HOUSECAT6D, NOCS
from cleanpose_core.eval.results import validate_result

from reference_eval import ref_independent_map
from synthetic_sets import random_result_set

CASES = {
    "nocs-noisy": (NOCS, dict(seed=11)),
    "nocs-float32-tied-scores": (NOCS, dict(seed=12, dtype=np.float32, tie_scores=True)),
    "nocs-accurate-crowded": (NOCS, dict(seed=13, p_exact=0.9, max_objects=9, noise_deg=1.0, noise_cm=0.5)),
    "nocs-many-false-positives-and-misses": (NOCS, dict(seed=14, p_detect=0.5, p_false_positive=0.8,
                                                        p_wrong_class=0.2)),
    "housecat6d": (HOUSECAT6D, dict(seed=15)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_evaluation_equals_reference_oracle(name):
    protocol, kwargs = CASES[name]
    n_cat = len(protocol.categories)
    dicts = random_result_set(num_categories=n_cat, num_images=30, **kwargs)
    evaluation = evaluate([validate_result(d, n_cat, f"img{i}") for i, d in enumerate(dicts)], protocol)
    names = ["BG", *protocol.categories]
    iou_ref, pose_ref = ref_independent_map(
        dicts,
        names,
        protocol.degree_thresholds,
        protocol.shift_thresholds,
        STANDARD_IOU_THRESHOLDS,
        protocol.iou_symmetric,
        protocol.rotation_symmetric,
        protocol.force_handle_visible,
    )
    catre_ref, _ = ref_independent_map(
        dicts,
        names,
        [],
        [],
        STANDARD_IOU_THRESHOLDS,
        protocol.catre_symmetric,
        protocol.rotation_symmetric,
        True,
        catre=True,
    )
    for k, thr in enumerate(STANDARD_IOU_THRESHOLDS):
        np.testing.assert_allclose(evaluation.iou_ap(thr), iou_ref[1:-1, k], atol=1e-12, err_msg=f"IoU {thr}")
        np.testing.assert_allclose(evaluation.iou_ap(thr, "catre"), catre_ref[1:-1, k], atol=1e-12,
                                   err_msg=f"CATRE IoU {thr}")
    degrees = [*protocol.degree_thresholds, 360]
    shifts = [*protocol.shift_thresholds, 100]
    for i, d in enumerate(degrees):
        for j, s in enumerate(shifts):
            np.testing.assert_allclose(evaluation.pose_ap(d, s), pose_ref[1:-1, i, j], atol=1e-12,
                                       err_msg=f"{d} deg {s} cm")
    assert np.mean(evaluation.iou_ap(0.5)) == pytest.approx(iou_ref[-1, 2])  # mean over categories


def test_fine_sweeps_contain_the_standard_values():
    dicts = random_result_set(seed=3, num_images=20)
    results = [validate_result(d, 6) for d in dicts]
    plain, fine = evaluate(results, NOCS), evaluate(results, NOCS, fine=True)
    np.testing.assert_array_equal(fine.iou_ap(0.75), plain.iou_ap(0.75))
    np.testing.assert_array_equal(fine.pose_ap(10, 5), plain.pose_ap(10, 5))
    assert fine.iou_thresholds.size == 101
    assert fine.pose_ap(60, 100).shape == (6,)
