"""The Estimator contract: batched detections from a frame, determinism, and no exception on any bad input."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_core.geometry.rotations import rotation_error_deg
from cleanpose_core.geometry.similarity import fit_similarity
from cleanpose_core.inference.estimator import POSE_AGREEMENT_DEG, Estimator, EstimatorConfig
from cleanpose_core.io import WeightsError


@pytest.fixture(scope="module")
def estimator(lite_model_file):
    torch.set_num_threads(1)
    # per_frame queue sampling: a frame's result does not depend on the frames the module's tests ran before
    # it
    return Estimator(EstimatorConfig(model_weights=str(lite_model_file), segmenter="external", device="cpu",
                                     keep_masks=True, strict=True,  # an internal error fails the test
                                     queue_sampling="per_frame"))


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
    b = estimator.estimate(
        f["rgb"], f["depth"], f["K"], "m", masks=f["masks"][::-1][::-1], labels=f["labels"]
    )
    for da, db in zip(a.detections, b.detections):
        np.testing.assert_array_equal(da.rotation, db.rotation)
        np.testing.assert_array_equal(da.translation, db.translation)


def _translations(result):
    return np.stack([d.translation for d in result.detections])


def test_stream_queue_sampling_draws_anew_at_every_frame_from_one_seeded_generator(
    lite_model_file, synthetic_frame
):
    # The official test code: the queue sampler is seeded once, and every forward draws fresh entries.
    f = synthetic_frame
    args = (f["rgb"], f["depth"], f["K"], "m")
    config = EstimatorConfig(
        model_weights=str(lite_model_file),
        segmenter="external",
        device="cpu",
        strict=True,
        pose_solver="regression",
    )
    assert config.queue_sampling == "stream"  # the default
    first = Estimator(config)
    run = [_translations(first.estimate(*args, masks=f["masks"], labels=f["labels"])) for _ in range(3)]
    assert not np.array_equal(run[0], run[1]) and not np.array_equal(run[1], run[2])  # the draws moved on
    again = Estimator(config)  # a fresh Estimator replays the same sequence, frame for frame
    for expected in run:
        np.testing.assert_array_equal(
            _translations(again.estimate(*args, masks=f["masks"], labels=f["labels"])), expected
        )
    again.reset_queue_sampling()  # back to the start of the sequence
    np.testing.assert_array_equal(
        _translations(again.estimate(*args, masks=f["masks"], labels=f["labels"])), run[0]
    )
    other_seed = Estimator(dataclasses.replace(config, queue_seed=5))
    assert not np.array_equal(
        _translations(other_seed.estimate(*args, masks=f["masks"], labels=f["labels"])), run[0]
    )
    # per_frame re-seeds before every forward: the first frame's draw, every time
    per_frame = Estimator(dataclasses.replace(config, queue_sampling="per_frame"))
    for _ in range(2):
        np.testing.assert_array_equal(
            _translations(per_frame.estimate(*args, masks=f["masks"], labels=f["labels"])), run[0])
    with pytest.raises(ValueError, match="queue_sampling"):
        EstimatorConfig(queue_sampling="random").validate()


def test_millimetre_depth_gives_the_same_points(lite_model_file, synthetic_frame):
    # The head's translation follows the points' centre; the keypoint fit of a random-weight network amplifies
    # the 0.5 mm rounding into centimetres, so the comparison uses the head.
    estimator = Estimator(
        EstimatorConfig(
            model_weights=str(lite_model_file),
            segmenter="external",
            device="cpu",
            pose_solver="regression",
            queue_sampling="per_frame",
        )
    )
    f = synthetic_frame
    mm = np.round(f["depth"] * 1000).astype(np.uint16)
    a = estimator.estimate(
        f["rgb"], (mm / 1000).astype(np.float32), f["K"], "m", masks=f["masks"], labels=f["labels"]
    )
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
        "empty masks": (rgb, depth, K, "m", np.zeros_like(masks), labels, "instances were filtered out"),
        "one-pixel mask": (rgb, depth, K, "m", one_pixel, labels[:1], "all 1 instances were filtered"),
        "zero intrinsics": (rgb, depth, Intrinsics(0, 0, 0, 0), "m", masks, labels, "focal lengths"),
        "float rgb": (rgb.astype(np.float32), depth, K, "m", masks, labels, "uint8"),
        "int depth as metres": (rgb, depth.astype(np.int32), K, "m", masks, labels, "millimetres?"),
        "bad unit": (rgb, depth, K, "cm", masks, labels, "depth_unit"),
        "unknown label": (rgb, depth, K, "m", masks, ["spoon"] * len(masks), "unknown category name 'spoon'"),
        "labels count mismatch": (rgb, depth, K, "m", masks, labels[:1], "1 class ids given for 4 masks"),
    }


BAD_CASES = [
    "nan depth",
    "zero depth",
    "negative depth",
    "size mismatch",
    "mask size mismatch",
    "empty masks",
    "one-pixel mask",
    "zero intrinsics",
    "float rgb",
    "int depth as metres",
    "bad unit",
    "unknown label",
    "labels count mismatch",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gives_an_empty_result_with_a_reason(estimator, synthetic_frame, case):
    rgb, depth, K, unit, masks, labels, expected = bad_frames(synthetic_frame)[case]
    result = estimator.estimate(rgb, depth, K, unit, masks=masks, labels=labels)
    assert result.detections == [] and result.reason, f"{case}: {result}"
    assert expected in result.reason and "internal error" not in result.reason


def test_partial_result_lists_the_dropped_object(estimator, synthetic_frame):
    f = synthetic_frame
    masks = f["masks"].copy()
    masks[0] = False
    masks[0, 0, 0] = True  # a one-pixel mask among good ones
    result = estimator.estimate(f["rgb"], f["depth"], f["K"], "m", masks=masks, labels=f["labels"])
    assert len(result.detections) == len(masks) - 1 and result.reason is None
    assert len(result.skipped) == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    fill=st.sampled_from([0.0, np.nan, np.inf, -1.0, 0.5, 1e9]),
    n_masks=st.integers(0, 3),
    fx=st.sampled_from([0.0, -5.0, np.nan, 500.0]),
)
def test_random_garbage_never_raises(estimator, h, w, fill, n_masks, fx):
    rng = np.random.default_rng(h * 100 + w)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    depth = np.where(rng.random((h, w)) < 0.5, fill, 0.7).astype(np.float32)
    masks = rng.random((n_masks, h, w)) < 0.5
    result = estimator.estimate(rgb, depth, Intrinsics(fx, fx, w / 2, h / 2, w, h), "m", masks=masks,
                                labels=["mug"] * n_masks)
    assert isinstance(result.detections, list)
    # no objects at all is a normal, reason-free result
    assert result.reason or result.detections or n_masks == 0
    for det in result.detections:
        assert np.isfinite(det.rotation).all() and np.isfinite(det.translation).all()


def test_box_fit_backend_recovers_translation_from_ground_truth_masks(synthetic_frame, mean_sizes_file):
    f = synthetic_frame
    est = Estimator(
        EstimatorConfig(pose_backend="box_fit", segmenter="external", mean_sizes=str(mean_sizes_file))
    )
    result = est.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"])
    assert len(result.detections) == len(f["masks"])
    errors = [np.linalg.norm(d.translation - t) for d, (_, t) in zip(result.detections, f["poses"])]
    assert np.median(errors) < 0.05
    assert all(d.pose_confidence == 1.0 for d in result.detections)  # one pose, nothing to compare it with


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


def _capture_outputs(estimator):
    outputs = []
    handle = estimator.model.register_forward_hook(
        lambda m, i, o: outputs.append({k: v.double() for k, v in o.items()})
    )
    return outputs, handle


def test_pose_solvers_and_their_agreement_as_pose_confidence(lite_model_file, synthetic_frame):
    f = synthetic_frame
    results, heads = {}, None
    for solver in ("keypoints", "regression"):
        est = Estimator(
            EstimatorConfig(
                model_weights=str(lite_model_file), segmenter="external", device="cpu", pose_solver=solver
            )
        )
        outputs, handle = _capture_outputs(est)
        try:
            results[solver] = est.estimate(
                f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"]
            )
        finally:
            handle.remove()
        heads = outputs[0]
    kp, reg = results["keypoints"].detections, results["regression"].detections
    assert len(kp) == len(reg) == len(f["masks"])
    for b, (a, r) in enumerate(zip(kp, reg)):
        # regression: the head's pose as it is; keypoints: the similarity fit of the keypoint NOCS to the
        # keypoints
        np.testing.assert_allclose(r.rotation, heads["pred_rotation"][b].numpy(), atol=1e-9)
        fit = fit_similarity(heads["kpt_nocs"][b].numpy(), heads["pred_kpt_3d"][b].numpy())
        np.testing.assert_allclose(a.rotation, fit.rotation, atol=1e-9)
        np.testing.assert_allclose(a.translation, fit.translation, atol=1e-9)
        np.testing.assert_array_equal(a.size, r.size)  # both take the size from the head
        expected = np.exp(-rotation_error_deg(a.rotation, r.rotation, a.symmetric) / POSE_AGREEMENT_DEG)
        assert a.pose_confidence == pytest.approx(expected) == pytest.approx(r.pose_confidence)
        assert a.confidence == pytest.approx(a.score * a.pose_confidence)
    assert min(d.pose_confidence for d in kp) < 0.99  # random weights: the two solvers disagree


def test_degenerate_keypoints_fall_back_to_the_head_with_zero_confidence(lite_model_file, synthetic_frame):
    f = synthetic_frame
    est = Estimator(EstimatorConfig(model_weights=str(lite_model_file), segmenter="external", device="cpu"))

    def collapse(module, inputs, out):
        out["kpt_nocs"] = torch.zeros_like(out["kpt_nocs"])  # every keypoint at one NOCS point: no fit exists
        out_head.append(out["pred_rotation"].double().clone())
        return out

    out_head = []
    handle = est.model.register_forward_hook(collapse)
    try:
        result = est.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"])
    finally:
        handle.remove()
    assert len(result.detections) == len(f["masks"])
    for b, det in enumerate(result.detections):
        assert det.pose_confidence == 0.0
        np.testing.assert_allclose(det.rotation, out_head[0][b].numpy(), atol=1e-9)


def test_unknown_pose_solver_is_rejected():
    with pytest.raises(ValueError, match="pose_solver"):
        EstimatorConfig(pose_solver="icp").validate()


def test_tabletop_segmenter_needs_the_point_classifier_for_categories():
    EstimatorConfig(segmenter="depth_tabletop").validate()
    with pytest.raises(ValueError, match="category_weight must be > 0"):
        EstimatorConfig(segmenter="depth_tabletop", category_weight=0.0).validate()


def test_retune_changes_thresholds_without_reloading_and_refuses_bad_values(mean_sizes_file, synthetic_frame):
    f = synthetic_frame
    est = Estimator(
        EstimatorConfig(
            pose_backend="box_fit", mean_sizes=str(mean_sizes_file), segmenter="external", device="cpu"
        )
    )
    scores = np.linspace(0.3, 0.9, len(f["masks"]))

    def count():
        return len(est.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"],
                                scores=scores).detections)

    assert count() == int((scores >= 0.5).sum())
    est.retune(score_threshold=0.0, max_objects=2)
    assert count() == min(2, len(scores))
    with pytest.raises(ValueError, match="run-time settings"):
        est.retune(device="cuda")
    with pytest.raises(ValueError, match="category_weight"):
        est.retune(category_weight=1.5)
    # a refused change leaves all as it was
    assert est.config.score_threshold == 0.0 and est.filter.max_objects == 2


def test_retune_moves_the_mask_rcnn_box_threshold_and_needs_a_loaded_classifier_to_raise_the_weight():
    est = Estimator(
        EstimatorConfig(pose_backend="box_fit", segmenter="maskrcnn", category_weight=0.0, device="cpu")
    )
    est.retune(score_threshold=0.2)
    assert est.segmenter.filter.score_threshold == 0.2 and est.segmenter.model.roi_heads.score_thresh == 0.2
    with pytest.raises(ValueError, match="restart"):
        est.retune(category_weight=0.5)


def test_strict_mode_re_raises_internal_errors_that_the_default_turns_into_a_reason(mean_sizes_file,
                                                                                       synthetic_frame):
    f = synthetic_frame
    for strict in (False, True):
        est = Estimator(EstimatorConfig(pose_backend="box_fit", mean_sizes=str(mean_sizes_file),
                                        segmenter="external", device="cpu", strict=strict))
        est._estimate_instances = lambda *args: 1 / 0  # a bug inside the Estimator, not a bad input
        if strict:
            with pytest.raises(ZeroDivisionError):
                est.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"])
        else:
            result = est.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"])
            assert result.detections == [] and result.reason.startswith("internal error: ZeroDivisionError")


def test_point_samples_run_in_one_batch_and_pool_their_keypoints(lite_model_file, synthetic_frame):
    f = synthetic_frame
    n = len(f["masks"])
    est = Estimator(EstimatorConfig(model_weights=str(lite_model_file), segmenter="external", device="cpu",
                                    point_samples=3))
    outputs, handle = _capture_outputs(est)
    calls = []
    hook = est.model.register_forward_hook(lambda m, i, o: calls.append(dict(i[0])))
    try:
        result = est.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"])
    finally:
        handle.remove()
        hook.remove()
    batch = calls[0] if len(calls) == 1 else None
    assert batch is not None and batch["pts"].shape[0] == 3 * n  # every sample of every object in one forward
    assert not torch.equal(batch["pts"][0], batch["pts"][1])  # an object's samples draw different points
    # one image crop per object: the image backbone runs once per object, not once per sample
    assert batch["rgb"].shape[0] == n
    assert batch["rgb_index"].tolist() == [b for b in range(n) for _ in range(3)]
    heads = outputs[0]
    assert [d.category for d in result.detections] == f["labels"]
    for b, det in enumerate(result.detections):
        rows = slice(3 * b, 3 * b + 3)  # object b's samples, next to each other
        fit = fit_similarity(heads["kpt_nocs"][rows].reshape(-1, 3).numpy(),
                             heads["pred_kpt_3d"][rows].reshape(-1, 3).numpy())
        np.testing.assert_allclose(det.rotation, fit.rotation, atol=1e-9)
        np.testing.assert_allclose(det.translation, fit.translation, atol=1e-9)
        mean = {k: heads[k][rows].mean(0).numpy() for k in ("pred_size", "pred_kpt_3d")}
        np.testing.assert_allclose(det.size, np.abs(mean["pred_size"]), atol=1e-9)
        np.testing.assert_allclose(det.keypoints, mean["pred_kpt_3d"], atol=1e-9)


def test_point_samples_average_the_heads_pose_for_the_regression_readout(lite_model_file, synthetic_frame):
    from scipy.spatial.transform import Rotation

    f = synthetic_frame
    est = Estimator(EstimatorConfig(model_weights=str(lite_model_file), segmenter="external", device="cpu",
                                    point_samples=2, pose_solver="regression"))
    outputs, handle = _capture_outputs(est)
    try:
        result = est.estimate(f["rgb"], f["depth"], f["K"], "m", masks=f["masks"], labels=f["labels"])
    finally:
        handle.remove()
    heads = outputs[0]
    for b, det in enumerate(result.detections):
        rows = slice(2 * b, 2 * b + 2)
        mean = Rotation.from_matrix(heads["pred_rotation"][rows].numpy()).mean().as_matrix()
        np.testing.assert_allclose(det.rotation, mean, atol=1e-9)
        translation = heads["pred_translation"][rows].mean(0).numpy()
        np.testing.assert_allclose(det.translation, translation, atol=1e-9)
        # the mean lies between the two samples' rotations
        spread = rotation_error_deg(*heads["pred_rotation"][rows].numpy(), False)
        assert rotation_error_deg(det.rotation, heads["pred_rotation"][2 * b].numpy(), False) <= spread + 1e-6
