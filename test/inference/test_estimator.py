"""The Estimator contract: batched detections from a frame, determinism, and no exception on any bad input."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_core.inference.estimator import Estimator, EstimatorConfig
from cleanpose_core.models.weights import WeightsError


@pytest.fixture(scope="module")
def estimator(lite_model_file):
    torch.set_num_threads(1)
    return Estimator(EstimatorConfig(model_weights=str(lite_model_file), segmenter="external", device="cpu",
                                     keep_masks=True))


def test_every_object_is_estimated_in_one_batched_forward(estimator, synthetic_frame):
    f = synthetic_frame
    calls = []
    handle = estimator.model.register_forward_hook(lambda m, i, o: calls.append(i[0]["pts"].shape[0]))
    try:
        result = estimator.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"])
    finally:
        handle.remove()
    assert result.reason is None, result.reason
    assert calls == [len(f["masks"])]  # one forward with all objects
    assert [d.category for d in result.detections] == f["labels"]
    for det in result.detections:
        np.testing.assert_allclose(det.rotation.T @ det.rotation, np.eye(3), atol=1e-5)
        assert np.linalg.det(det.rotation) == pytest.approx(1.0, abs=1e-5)
        assert det.keypoints.shape == (32, 3) and det.mask.shape == f["depth"].shape
        assert det.num_points > 0 and (det.size > 0).all()
    assert {"segmentation", "preprocess", "pose", "total"} <= set(result.timings_ms)
    assert result.timings_ms["total"] >= result.timings_ms["pose"] + result.timings_ms["preprocess"]


def test_same_frame_gives_identical_results(estimator, synthetic_frame):
    f = synthetic_frame
    a = estimator.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"])
    b = estimator.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"][::-1][::-1], labels=f["labels"])
    for da, db in zip(a.detections, b.detections):
        np.testing.assert_array_equal(da.rotation, db.rotation)
        np.testing.assert_array_equal(da.translation, db.translation)


def test_millimetre_depth_gives_the_same_points(estimator, synthetic_frame):
    f = synthetic_frame
    mm = np.round(f["depth"] * 1000).astype(np.uint16)
    a = estimator.estimate(f["rgb"], (mm / 1000).astype(np.float32), f["K"], "m", masks=f["masks"], labels=f["labels"])
    b = estimator.estimate(f["rgb"], mm, f["K"], "mm", masks=f["masks"], labels=f["labels"])
    for da, db in zip(a.detections, b.detections):
        np.testing.assert_allclose(da.translation, db.translation, atol=1e-5)


def bad_frames(f):
    rgb, depth, K, masks, labels = f["rgb"], f["depth"], f["K"], f["masks"], f["labels"]
    one_pixel = np.zeros_like(masks[:1])
    one_pixel[0, 240, 320] = True
    return {
        "nan depth": (rgb, np.full_like(depth, np.nan), K, "m", masks, labels, "no valid pixel"),
        "zero depth": (rgb, np.zeros_like(depth), K, "m", masks, labels, "no valid pixel"),
        "negative depth": (rgb, -depth, K, "m", masks, labels, "no valid pixel"),
        "size mismatch": (rgb, depth[:-10], K, "m", masks, labels, "does not match"),
        "mask size mismatch": (rgb, depth, K, "m", masks[:, :-1], labels, "mask size"),
        "empty masks": (rgb, depth, K, "m", np.zeros_like(masks), labels, ""),
        "one-pixel mask": (rgb, depth, K, "m", one_pixel, labels[:1], ""),
        "zero intrinsics": (rgb, depth, Intrinsics(0, 0, 0, 0), "m", masks, labels, "focal lengths"),
        "float rgb": (rgb.astype(np.float32), depth, K, "m", masks, labels, "uint8"),
        "int depth as metres": (rgb, depth.astype(np.int32), K, "m", masks, labels, "millimetres?"),
        "bad unit": (rgb, depth, K, "cm", masks, labels, "depth_unit"),
        "unknown label": (rgb, depth, K, "m", masks, ["spoon"] * len(masks), ""),
        "labels count mismatch": (rgb, depth, K, "m", masks, labels[:1], ""),
    }


BAD_CASES = ["nan depth", "zero depth", "negative depth", "size mismatch", "mask size mismatch", "empty masks",
             "one-pixel mask", "zero intrinsics", "float rgb", "int depth as metres", "bad unit", "unknown label",
             "labels count mismatch"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gives_an_empty_result_with_a_reason(estimator, synthetic_frame, case):
    rgb, depth, K, unit, masks, labels, expected = bad_frames(synthetic_frame)[case]
    result = estimator.estimate(rgb, depth, K, unit, masks=masks, labels=labels)
    assert result.detections == [] and result.reason, f"{case}: {result}"
    assert expected in result.reason


def test_partial_result_lists_the_dropped_object(estimator, synthetic_frame):
    f = synthetic_frame
    masks = f["masks"].copy()
    masks[0] = False
    masks[0, 0, 0] = True  # a one-pixel mask among good ones
    result = estimator.estimate(f["rgb"], f["depth"], f["K"], "m", masks=masks, labels=f["labels"])
    assert len(result.detections) == len(masks) - 1 and result.reason is None
    assert len(result.skipped) == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 40), w=st.integers(1, 40), fill=st.sampled_from([0.0, np.nan, np.inf, -1.0, 0.5, 1e9]),
       n_masks=st.integers(0, 3), fx=st.sampled_from([0.0, -5.0, np.nan, 500.0]))
def test_random_garbage_never_raises(estimator, h, w, fill, n_masks, fx):
    rng = np.random.default_rng(h * 100 + w)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    depth = np.where(rng.random((h, w)) < 0.5, fill, 0.7).astype(np.float32)
    masks = rng.random((n_masks, h, w)) < 0.5
    result = estimator.estimate(rgb, depth, Intrinsics(fx, fx, w / 2, h / 2, w, h), "m", masks=masks,
                                labels=["mug"] * n_masks)
    assert isinstance(result.detections, list)
    assert result.reason or result.detections or n_masks == 0  # no objects at all is a normal, reason-free result
    for det in result.detections:
        assert np.isfinite(det.rotation).all() and np.isfinite(det.translation).all()


def test_box_fit_backend_recovers_translation_from_ground_truth_masks(synthetic_frame, mean_sizes_file):
    f = synthetic_frame
    est = Estimator(EstimatorConfig(pose_backend="box_fit", segmenter="external", mean_sizes=str(mean_sizes_file)))
    result = est.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"])
    assert len(result.detections) == len(f["masks"])
    errors = [np.linalg.norm(d.translation - t) for d, (_, t) in zip(result.detections, f["poses"])]
    assert np.median(errors) < 0.05


def test_missing_or_corrupt_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        Estimator(EstimatorConfig(model_weights=str(tmp_path / "nothing.pt"), segmenter="external"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="bad.pt"):
        Estimator(EstimatorConfig(model_weights=str(bad), segmenter="external"))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(WeightsError, match="not a CleanPose model file"):
        Estimator(EstimatorConfig(model_weights=str(foreign), segmenter="external"))
