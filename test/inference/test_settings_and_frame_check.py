"""Settings written once (EstimatorConfig's field metadata, read by the CLI) and a frame checked and converted
once, at the Estimator's door."""

import argparse
import dataclasses

import numpy as np
import pytest

from cleanpose_core.geometry.camera import depth_to_metres
from cleanpose_core.inference.estimator import RETUNABLE, SETTINGS, Estimator, EstimatorConfig
from cleanpose_core.inference.predict import BENCHMARK_SCORE_THRESHOLD, register


def test_every_run_time_setting_has_a_description_and_a_range_that_validate_enforces():
    assert set(RETUNABLE) == {
        "score_threshold",
        "category_weight",
        "max_objects",
        "min_mask_area",
        "min_points",
    }
    for name in RETUNABLE:
        low, high = SETTINGS[name].metadata["bounds"]
        assert SETTINGS[name].metadata["description"] and low <= SETTINGS[name].default <= high
        with pytest.raises(ValueError, match=rf"{name} must be in \["):
            EstimatorConfig(**{name: high * 2 + 1}).validate()
    with pytest.raises(
        ValueError, match=r"pose_solver must be one of \['keypoints', 'regression'\], got 'icp'"
    ):
        EstimatorConfig(pose_solver="icp").validate()


def test_the_cli_takes_its_defaults_from_the_config_except_the_benchmark_score_threshold():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["predict", "--data", "d", "--out", "o"])
    config = EstimatorConfig()
    # Each setting's flag stores under the field's own name, which is how `_run` builds the config.
    shared = {name for name in SETTINGS if hasattr(args, name)}
    assert shared == {"model_weights", "pose_backend", "pose_solver", "point_samples", "device", "runtime",
                      "segmenter", "segmenter_weights", "score_threshold", "max_mask_overlap",
                      "min_mask_area", "max_objects", "min_points", "category_classifier", "category_weight",
                      "queue_sampling", "queue_seed"}
    for name in shared - {"score_threshold"}:
        assert getattr(args, name) == getattr(config, name), name
    assert args.score_threshold == BENCHMARK_SCORE_THRESHOLD < config.score_threshold


def test_depth_is_converted_once_to_metres_with_the_invalid_and_out_of_range_pixels_zero():
    mm = np.array([[50, 700], [3500, 0]], np.uint16)
    out = depth_to_metres(mm, "mm", (0.1, 3.0))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.float32([[0, 700], [0, 0]]) * np.float32(1e-3))
    metres = np.array([[np.nan, -1.0], [np.inf, 1.5]], np.float32)
    np.testing.assert_array_equal(depth_to_metres(metres, "m"), np.float32([[0, 0], [0, 1.5]]))
    assert np.isnan(metres[0, 0])  # the caller's array is left as it was


def _box_fit(mean_sizes_file, **settings) -> Estimator:
    return Estimator(EstimatorConfig(pose_backend="box_fit", mean_sizes=str(mean_sizes_file),
                                     segmenter="external", device="cpu", strict=True, **settings))


@pytest.fixture(scope="module")
def box_fit(mean_sizes_file):
    return _box_fit(mean_sizes_file)


def test_raw_millimetres_with_a_depth_range_give_what_gated_metres_give(box_fit, synthetic_frame):
    f = synthetic_frame
    mm = np.round(f["depth"] * 1000).astype(np.uint16)
    gated = mm.astype(np.float32) * np.float32(1e-3)
    gated[(gated < 0.1) | (gated > 1.0)] = 0.0
    args = dict(masks=f["masks"], labels=f["labels"])
    a = box_fit.estimate(f["rgb"], mm, f["K"], "mm", depth_range=(0.1, 1.0), **args)
    b = box_fit.estimate(f["rgb"], gated, f["K"], "m", **args)
    assert [d.num_points for d in a.detections] == [d.num_points for d in b.detections]
    for da, db in zip(a.detections, b.detections):
        np.testing.assert_array_equal(da.translation, db.translation)


def test_a_rejected_frame_says_why_with_a_kind_for_counting(box_fit, synthetic_frame):
    f = synthetic_frame
    rgb, depth, K = f["rgb"], f["depth"], f["K"]
    cases = {
        "size_mismatch": (rgb, depth[:-1], K, "m", None),
        "depth_empty": (rgb, depth, K, "m", (5.0, 6.0)),  # nothing within the sensor's range
        "depth_invalid": (rgb, depth.astype(bool), K, "mm", None),
        "rgb_invalid": (rgb[:, :, 0], depth, K, "m", None),
        "intrinsics_invalid": (rgb, depth, dataclasses.replace(K, fx=-1.0), "m", None),
    }
    for kind, (r, d, k, unit, depth_range) in cases.items():
        result = box_fit.estimate(
            r, d, k, unit, masks=f["masks"], labels=f["labels"], depth_range=depth_range
        )
        assert result.detections == [] and result.frame_problem == kind and result.reason, (kind, result)
    assert box_fit.estimate(rgb, depth, K, "m", masks=f["masks"], labels=f["labels"]).frame_problem is None


def test_kept_objects_carry_their_measured_points(mean_sizes_file, synthetic_frame):
    f = synthetic_frame
    est = _box_fit(mean_sizes_file, keep_masks=True)
    depth = f["depth"].copy()
    depth[::7] = 0.0  # holes the Estimator fills for the network but that have no measured point
    result = est.estimate(f["rgb"], depth, f["K"], "m", masks=f["masks"], labels=f["labels"])
    for det in result.detections:
        assert det.points.shape == (int((det.mask & (depth > 0)).sum()), 3)
        assert (det.points[:, 2] > 0).all()
