"""Regression floor for the shipped pose model (issue 18 item 7): a real drop in accuracy fails CI.

A small synthetic test split of unseen shape instances is rendered here (fixed seed, tmp_path), the shipped
`models/cleanpose_lite.pt` estimates every labelled object from its ground-truth mask through `cleanpose
predict`'s code path (default readout: keypoint solver, combined score, streamed queue sampling), and the
official NOCS protocol scores the results. The floors sit a few points under what this split gave when the
test was written, so that numerical noise across machines passes and a broken model, preprocessing, readout or
metric does not.
"""

from __future__ import annotations

import pytest
import torch

from cleanpose_core.eval.metrics import evaluate
from cleanpose_core.eval.protocol import NOCS
from cleanpose_core.eval.report import build_report
from cleanpose_core.eval.results import load_results
from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics

SEED, SCENES, FRAMES = 31, 10, 2  # a split no other test or result uses; SCENES x FRAMES images
MIN_OBJECTS = 30
# Measured on this split (55 objects; models/cleanpose_lite.pt, CPU): IoU50 94.14, 10°5cm 71.17, 5°5cm
# 42.65. The readout is deterministic, so the margin only absorbs numerical differences between machines;
# for scale, queue seeds 1-3 (other queue and point draws) gave IoU50 95.1-96.8, 10°5cm 68.0-80.7, 5°5cm
# 45.4-54.3.
FLOORS = {"iou_50": 90.0, "10deg_5cm": 66.0, "5deg_5cm": 37.0}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    from cleanpose_core.data.synthetic.config import SynthConfig
    from cleanpose_core.data.synthetic.generate import generate_split

    root = tmp_path_factory.mktemp("regression_split")
    generate_split(root, "test", SCENES, SEED, SynthConfig(frames_per_scene=FRAMES), progress=False,
                   contact_sheet_rows=0)
    return root


def test_shipped_model_keeps_its_accuracy_on_unseen_synthetic_instances(split, tmp_path):
    from cleanpose_core.inference.estimator import Estimator, EstimatorConfig
    from cleanpose_core.inference.predict import GT_MASK_SETTINGS, predict

    torch.set_num_threads(1)
    # as `--masks gt`
    estimator = Estimator(EstimatorConfig(segmenter="external", device="cpu", **GT_MASK_SETTINGS))
    counts = predict(split, "test", tmp_path / "results", estimator, "gt", Intrinsics(*REAL275_INTRINSICS),
                     progress=False)
    assert counts["skipped_objects"] == 0 and counts["failed_images"] == 0
    evaluation = evaluate(load_results(str(tmp_path / "results"), len(NOCS.categories)), NOCS)
    objects = int(evaluation.num_gt.sum())
    assert objects >= MIN_OBJECTS, f"the split holds only {objects} objects"
    overall = build_report(evaluation)["overall"]
    measured = {key: round(overall[key], 2) for key in FLOORS}
    print(f"[regression] {objects} objects: {measured}")
    below = {key: (measured[key], floor) for key, floor in FLOORS.items() if measured[key] < floor}
    assert not below, f"shipped model below its floors (measured, floor): {below}"
