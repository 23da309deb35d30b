"""The point-cloud category classifier: shared point sampler, training on NOCS-format data, fusion, the
re-scoring segmenter and its factory, Estimator use."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from seg_fixtures import write_nocs_dataset

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import ConfigError, to_dict
from cleanpose_core.geometry.camera import Intrinsics, depth_to_points
from cleanpose_core.io import CLASSIFIER_FORMAT, WeightsError
from cleanpose_core.segmentation import SegmenterConfig, build_segmenter
from cleanpose_core.segmentation.base import InstanceMasks, SegmentationFilter, Segmenter
from cleanpose_core.models.point_classifier import PointClassifierConfig, PointNetClassifier
from cleanpose_core.segmentation.rescoring import (CANDIDATES_PER_FRAME, CategoryRescorer, RescoredSegmenter,
                                                   crop_intrinsics, load_point_classifier, mask_points)
from cleanpose_core.train.point_classifier import train_point_classifier

REPO = Path(__file__).resolve().parents[2]
K = Intrinsics(500.0, 500.0, 80.0, 60.0, 160, 120)


def forced_classifier_file(path: Path, category: str) -> Path:
    """A classifier file whose network answers `category` for every input (a huge bias on that logit)."""
    cfg = PointClassifierConfig(widths=(8,), head=(8,), points=64)
    model = PointNetClassifier(cfg)
    with torch.no_grad():
        model.head[-1].bias.zero_()
        model.head[-1].bias[NOCS_CATEGORIES.index(category)] = 50.0
        model.head[-1].weight.zero_()
    torch.save({"format": CLASSIFIER_FORMAT, "config": to_dict(cfg), "state_dict": model.state_dict(),
                "categories": list(NOCS_CATEGORIES), "metrics": {}, "source": "test"}, path)
    return path


def test_points_of_a_crop_equal_those_of_the_full_image():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 1.5, (120, 160)).astype(np.float32)
    mask = np.zeros((120, 160), bool)
    mask[30:70, 50:90] = True
    full = mask_points(depth, mask, K, np.random.default_rng(1), 2000)
    crop = mask_points(depth[25:80, 45:100], mask[25:80, 45:100], crop_intrinsics(K, 25, 45, 55, 55),
                       np.random.default_rng(1), 2000)
    expected = depth_to_points(depth, K)[mask]
    np.testing.assert_allclose(np.sort(full, axis=0), np.sort(crop, axis=0), atol=1e-6)
    assert {tuple(p) for p in np.round(full, 5)} <= {tuple(p) for p in np.round(expected, 5)}


def test_too_few_valid_points_give_none():
    depth = np.zeros((120, 160), np.float32)
    depth[0, :10] = 1.0
    assert mask_points(depth, np.ones((120, 160), bool), K, np.random.default_rng(0), 64) is None


def test_rescore_fuses_scores_and_leaves_pointless_instances_alone(tmp_path):
    rescorer = CategoryRescorer.from_file(forced_classifier_file(tmp_path / "c.pt", "mug"), weight=0.5)
    depth = np.full((120, 160), 0.8, np.float32)
    depth[:, 120:] = 0.0  # the third instance has no depth
    masks = np.zeros((4, 120, 160), bool)
    masks[0, 10:40, 10:40] = masks[1, 12:42, 12:42] = masks[2, 50:90, 125:155] = masks[3, 60:90, 40:70] = True
    # one region twice (as a bottle and as a mug), an instance without depth, one of unknown category
    found = InstanceMasks(masks, np.array([0, 5, 1, -1]), np.array([0.64, 0.36, 0.9, 0.49], np.float32))
    out = rescorer.rescore(found, depth, K)
    assert out.class_ids.tolist() == [0, 5, 1, 5]  # labels kept; the unknown one is named by the classifier
    np.testing.assert_allclose(out.scores, [0.0, 0.6, 0.9, 0.7], atol=1e-5)  # sqrt(s * q_label)
    kept = SegmentationFilter(score_threshold=0.5, min_points=0).apply(out, None)
    assert kept.class_ids.tolist() == [1, 5, 5]  # the mug copy now outranks the bottle one, which is gone
    assert rescorer.candidate_threshold(0.5) == pytest.approx(0.25)
    assert found.scores.tolist() == pytest.approx([0.64, 0.36, 0.9, 0.49])  # the input is not modified


def test_weight_zero_is_identity_and_bad_weights_are_rejected(tmp_path):
    path = forced_classifier_file(tmp_path / "c.pt", "can")
    found = InstanceMasks(np.ones((1, 120, 160), bool), np.array([0]), np.array([0.7], np.float32))
    out = CategoryRescorer.from_file(path, weight=0.0).rescore(found, np.full((120, 160), 1.0, np.float32), K)
    assert out.class_ids.tolist() == [0] and out.scores.tolist() == pytest.approx([0.7])
    with pytest.raises(ValueError, match="category weight"):
        CategoryRescorer.from_file(path, weight=1.0)


def test_classifier_slot_of_the_tabletop_backend(tmp_path):
    rescorer = CategoryRescorer.from_file(forced_classifier_file(tmp_path / "c.pt", "bowl"))
    cloud = np.random.default_rng(0).normal(0, 0.05, (500, 3)).astype(np.float32)
    named = rescorer([cloud, np.zeros((3, 3), np.float32), cloud])  # one forward for the frame's regions
    # too few: unknown
    assert [(cls, round(score, 3)) for cls, score in named] == [(1, 1.0), (-1, 0.0), (1, 1.0)]
    assert rescorer([]) == []


def test_a_regions_category_does_not_depend_on_the_other_regions():
    torch.manual_seed(0)
    rescorer = CategoryRescorer(
        PointNetClassifier(PointClassifierConfig(widths=(16, 32), head=(16,))).eval(), 64
    )
    rng = np.random.default_rng(1)
    a, b = (rng.normal(0, s, (300, 3)).astype(np.float32) for s in (0.03, 0.2))
    alone = rescorer([a])[0]
    assert rescorer([b, a])[1] == pytest.approx(alone)
    assert rescorer([a])[0] == pytest.approx(alone)  # deterministic


class _Fixed(Segmenter):
    """Serves fixed instances through the usual template (its filter applies), counting its calls."""

    name = "fixed"

    def __init__(self, instances):
        super().__init__()
        self.instances, self.calls = instances, 0

    def _predict(self, rgb, depth_m):
        self.calls += 1
        return self.instances


def _duplicates():
    masks = np.zeros((3, 120, 160), bool)
    masks[0, 10:40, 10:40] = masks[1, 12:42, 12:42] = masks[2, 60:90, 40:70] = True
    # one region as a bottle and as a mug; a camera at a score no fused score above 0.5 can come from
    return InstanceMasks(masks, np.array([0, 5, 2]), np.array([0.64, 0.36, 0.2], np.float32))


def test_rescored_segmenter_cuts_candidates_permissively_and_filters_once_after_rescoring(tmp_path):
    rescorer = CategoryRescorer.from_file(forced_classifier_file(tmp_path / "c.pt", "mug"), weight=0.5)
    inner = _Fixed(_duplicates())
    seg = RescoredSegmenter(inner, rescorer, SegmentationFilter(score_threshold=0.5, min_points=0))
    assert inner.filter == SegmentationFilter(
        score_threshold=0.25, max_objects=CANDIDATES_PER_FRAME, min_points=0, max_mask_overlap=1.0
    )
    rgb, depth = np.zeros((120, 160, 3), np.uint8), np.full((120, 160), 0.8, np.float32)
    seg.set_intrinsics(K)
    out = seg.segment(rgb, depth)
    assert inner.calls == 1
    assert out.class_ids.tolist() == [5] and out.scores.tolist() == pytest.approx([0.6], abs=1e-5)
    # the camera never became a candidate; the bottle copy was re-scored to 0 and cut by the one real filter
    assert [line.split(":")[1].strip() for line in out.skipped] == ["score below threshold 0.25",
                                                                    "score below threshold 0.5"]
    assert len(seg.segment(rgb, None)) == 0 and "depth" in seg.segment(rgb, None).reason


def test_rescored_segmenter_retunes_both_filters_and_the_weight_or_nothing(tmp_path):
    rescorer = CategoryRescorer.from_file(forced_classifier_file(tmp_path / "c.pt", "mug"), weight=0.5)
    inner = _Fixed(_duplicates())
    seg = RescoredSegmenter(inner, rescorer, SegmentationFilter(score_threshold=0.5, max_mask_overlap=0.7))
    seg.retune(SegmentationFilter(score_threshold=0.6, max_objects=3, min_mask_area=10, min_points=5), 0.75)
    assert rescorer.weight == 0.75
    assert seg.filter == SegmentationFilter(0.6, 3, 10, 5, max_mask_overlap=0.7)  # its overlap is kept
    assert inner.filter == SegmentationFilter(0.6 ** 4, CANDIDATES_PER_FRAME, 10, 5, max_mask_overlap=1.0)
    for bad_filter, bad_weight in (
        (SegmentationFilter(score_threshold=2.0), 0.5),
        (SegmentationFilter(), 1.0),
    ):
        with pytest.raises(ValueError):
            seg.retune(bad_filter, bad_weight)
        assert (
            rescorer.weight == 0.75 and seg.filter.score_threshold == 0.6 and inner.filter.min_mask_area == 10
        )


def test_factory_builds_the_rescored_mask_rcnn_from_a_config(tmp_path):
    forced = str(forced_classifier_file(tmp_path / "c.pt", "mug"))
    final = SegmentationFilter(score_threshold=0.5, max_objects=4)
    seg = build_segmenter("maskrcnn", random_weights=True, device="cpu", category_classifier=forced,
                          category_weight=0.5, score_threshold=0.5, max_objects=4)
    assert isinstance(seg, RescoredSegmenter) and seg.filter == final
    assert (
        seg.inner.model.roi_heads.score_thresh == pytest.approx(0.25) and seg.inner.filter.max_objects == 100
    )
    plain = build_segmenter(SegmenterConfig(kind="maskrcnn", filter=final, device="cpu", category_weight=0.0,
                                            backend={"random_weights": True}))
    assert not isinstance(plain, RescoredSegmenter) and plain.model.roi_heads.score_thresh == 0.5
    with pytest.raises(ValueError, match="restart"):  # no classifier loaded: a weight cannot be raised later
        plain.retune(final, 0.5)
    tabletop = build_segmenter("depth_tabletop", category_classifier=forced, category_weight=0.5)
    assert isinstance(tabletop.classifier, CategoryRescorer)  # names its regions, no re-scoring composite
    assert build_segmenter("ground_truth", category_weight=0.5).name == "ground_truth"  # categories given
    with pytest.raises(ConfigError, match="only the maskrcnn segmenter takes a weights file"):
        build_segmenter(SegmenterConfig(kind="depth_tabletop", weights="x.pt"))
    with pytest.raises(ConfigError, match="put them in it"):
        build_segmenter(SegmenterConfig(), score_threshold=0.3)
    with pytest.raises(ConfigError, match="category_weight"):
        build_segmenter("maskrcnn", random_weights=True, category_weight=1.0)


def test_the_network_has_one_logit_per_nocs_category():
    # models/ may not import the package root, so the network spells the count out; it must stay in step.
    logits = PointNetClassifier(PointClassifierConfig(widths=(8,), head=(8,))).eval()(torch.zeros(2, 32, 3))
    assert logits.shape == (2, len(NOCS_CATEGORIES))


def test_training_learns_the_fixture_and_the_file_round_trips(tmp_path):
    root = tmp_path / "data"
    write_nocs_dataset(root, "train", n_images=12, seed=3)
    cfg = PointClassifierConfig(widths=(32, 64), head=(32,), points=64, iterations=60, batch_size=16,
                                lr=3e-3, val_fraction=0.0, mask_jitter_px=1)
    metrics = train_point_classifier(cfg, root, tmp_path / "pc.pt", progress=False)
    assert metrics["train_instances"] == 36 and metrics["train_loss"] < np.log(6)  # below chance
    model, loaded_cfg, meta = load_point_classifier(tmp_path / "pc.pt")
    assert loaded_cfg.points == 64 and meta["metrics"]["train_instances"] == 36
    assert not model.training


def test_unreadable_frames_and_pointless_instances_are_skipped_and_counted(tmp_path):
    from cleanpose_core.train.point_classifier import load_instances

    root = tmp_path / "data"
    records = write_nocs_dataset(root, "train", n_images=3, seed=1)
    (root / f"{records[0]['prefix']}_depth.png").write_bytes(b"not a png")
    depth = (records[1]["depth_m"] * 1000).astype(np.uint16)
    depth[records[1]["instance_map"] == records[1]["instance_ids"][0]] = 0  # one object without depth
    cv2.imwrite(str(root / f"{records[1]['prefix']}_depth.png"), depth)
    instances, skipped = load_instances(root, PointClassifierConfig())
    assert len(instances) == 5
    assert skipped == {"unreadable file": 1, "too few valid depth pixels": 1}


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_point_classifier(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="other.pt is not a point classifier file.*'something-else'"):
        load_point_classifier(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError):
        load_point_classifier(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="image list"):
        train_point_classifier(PointClassifierConfig(iterations=1), tmp_path / "nowhere", tmp_path / "x.pt",
                               progress=False)


@pytest.mark.skipif(not all((REPO / "models" / f).is_file() for f in ("segmenter_maskrcnn_mobilenet_v3.pt",
                                                                      "cleanpose_lite.pt")),
                    reason="needs the shipped segmenter and pose model")
def test_estimator_rescores_mask_rcnn_detections(tmp_path, synthetic_frame):
    from cleanpose_core.inference.estimator import Estimator, EstimatorConfig

    rgb, depth, K_frame = synthetic_frame["rgb"], synthetic_frame["depth"], synthetic_frame["K"]
    forced = forced_classifier_file(tmp_path / "laptop.pt", "laptop")
    base = dict(device="cpu", score_threshold=0.3)
    plain = Estimator(EstimatorConfig(**base, category_weight=0.0)).estimate(rgb, depth, K_frame, "m")
    fused = Estimator(EstimatorConfig(**base, category_classifier=str(forced))).estimate(
        rgb, depth, K_frame, "m"
    )
    assert {d.category for d in plain.detections} - {"laptop"}, "the segmenter alone finds other categories"
    # a classifier sure that everything is a laptop sends every other detection's score to ~0
    assert {d.category for d in fused.detections} <= {"laptop"}
    assert len(fused.detections) < len(plain.detections)


def test_cli_trains_and_reports_bad_data(tmp_path, capsys):
    from cleanpose_core.cli import main

    write_nocs_dataset(tmp_path / "data", "train", n_images=2)
    rc = main(["train-classifier", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "pc.pt"),
               "--iterations", "3", "--batch-size", "4", "--no-progress"])
    assert rc == 0 and (tmp_path / "pc.pt").is_file()
    assert '"train_instances"' in capsys.readouterr().out
    assert (
        main(["train-classifier", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.pt")]) == 2
    )
    assert "image list not found" in capsys.readouterr().err


def test_several_roots_train_on_their_instances_together(tmp_path, capsys):
    import json

    from cleanpose_core.cli import main

    write_nocs_dataset(tmp_path / "a", "train", n_images=2, seed=1)
    write_nocs_dataset(tmp_path / "b", "train", n_images=3, seed=2)
    (tmp_path / "cfg.yaml").write_text("val_fraction: 0.0\n")  # every instance trains: counts add up
    counts = {}
    for name, roots in (("a", ["a"]), ("b", ["b"]), ("ab", ["a", "b"])):
        rc = main(["train-classifier", "--data", *(str(tmp_path / r) for r in roots), "--out",
                   str(tmp_path / f"{name}.pt"), "--config", str(tmp_path / "cfg.yaml"), "--iterations", "2",
                   "--batch-size", "4", "--no-progress"])
        assert rc == 0
        counts[name] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["train_instances"]
    assert counts["ab"] == counts["a"] + counts["b"] > max(counts["a"], counts["b"])
