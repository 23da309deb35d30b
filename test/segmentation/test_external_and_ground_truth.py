"""Caller-supplied masks and NOCS-format ground-truth masks, on fixtures in the DPDN layout."""

import numpy as np
import pytest

from cleanpose_core.segmentation import SegmentationFilter, build_segmenter
from cleanpose_core.segmentation.external import (
    ExternalSegmenter,
    external_instances,
    masks_from_instance_map,
)
from cleanpose_core.segmentation.ground_truth import (
    GroundTruthSegmenter,
    instances_from_segmentation_result,
    read_instance_map,
    resolve_prefix,
)

H, W = 30, 40
RGB = np.zeros((H, W, 3), np.uint8)


def _masks(n=2):
    m = np.zeros((n, H, W), np.uint8)
    for i in range(n):
        m[i, 2 + 10 * i: 10 + 10 * i, 5:20] = 1
    return m


def test_external_accepts_integer_masks_and_category_names():
    out = ExternalSegmenter(SegmentationFilter(0.0, 10, 1, 0)).segment_with(
        RGB, None, _masks(), ["mug", 2], [0.4, 0.8]
    )
    assert out.reason is None and out.masks.dtype == bool
    assert out.class_ids.tolist() == [2, 5]  # sorted by score: camera (0.8) first
    assert out.category_names == ["camera", "mug"]


@pytest.mark.parametrize("masks, ids, scores, fragment", [
    (_masks(), [0, 7], None, "out of range"),
    (_masks(), ["mug", "teapot"], None, "unknown category name"),
    (_masks(), [0], None, "1 class ids given for 2 masks"),
    (_masks(), [0, 1], [0.5, 1.5], "in [0, 1]"),
    (_masks(), [0, 1], [0.5], "1 scores given"),
    (_masks()[0], [0], None, "(M, H, W)"),
    (_masks().astype(np.float32), [0, 1], None, "bool or integer"),
    (_masks(), [0.5, 1], None, "neither an integer"),
    (_masks(), "mug", None, "not a single string"),
])
def test_external_rejects_malformed_instances_with_a_reason(masks, ids, scores, fragment):
    out = ExternalSegmenter().segment_with(RGB, None, masks, ids, scores)
    assert len(out) == 0 and fragment in out.reason


def test_external_masks_of_another_image_size_are_rejected():
    out = ExternalSegmenter().segment_with(np.zeros((H + 2, W, 3), np.uint8), None, _masks(), [0, 1])
    assert len(out) == 0 and "does not match the image size" in out.reason


def test_external_without_masks_says_so():
    out = ExternalSegmenter().segment(RGB, None)
    assert len(out) == 0 and "set_instances" in out.reason


def test_external_instances_keeps_given_boxes():
    inst = external_instances(_masks(1), [1], boxes=[[1, 2, 3, 4]])
    np.testing.assert_array_equal(inst.boxes, [[1, 2, 3, 4]])


def test_masks_from_instance_map_skips_background_ids():
    idmap = np.full((4, 4), 255, np.uint8)
    idmap[0, 0], idmap[1, 1], idmap[2, 2] = 3, 1, 0
    masks, ids = masks_from_instance_map(idmap)
    assert ids.tolist() == [1, 3] and masks.sum() == 2 and masks[1, 0, 0]


def test_ground_truth_frame_masks_match_the_mask_png_and_label(nocs_fixture):
    root, records = nocs_fixture
    seg = build_segmenter("ground_truth", data_root=str(root))
    rec = records[1]
    assert seg.use_frame(rec["prefix"]) is None
    out = seg.segment(rec["rgb"], rec["depth_m"])
    assert out.reason is None and len(out) == len(rec["instance_ids"])
    assert sorted(out.class_ids.tolist()) == sorted(c - 1 for c in rec["class_ids"])
    for mask, cls in zip(out.masks, out.class_ids):
        inst = rec["instance_ids"][rec["class_ids"].index(cls + 1)]
        np.testing.assert_array_equal(mask, rec["instance_map"] == inst)


def test_ground_truth_from_segmentation_results_converts_ids_and_boxes(nocs_fixture):
    root, records = nocs_fixture
    rec = records[0]
    scene, stem = rec["prefix"].split("/")[1:]
    inst = instances_from_segmentation_result(
        root / "segmentation_results" / "train" / f"results_{scene}_{stem}.pkl"
    )
    assert inst.class_ids.tolist() == [c - 1 for c in rec["class_ids"]]
    for mask, box in zip(inst.masks, inst.boxes):  # (x1, y1, x2, y2) from the pickle's (y1, x1, y2, x2)
        ys, xs = np.nonzero(mask)
        np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    seg = GroundTruthSegmenter()
    assert seg.use_result(root / "segmentation_results" / "train" / f"results_{scene}_{stem}.pkl") is None
    assert len(seg.segment(rec["rgb"], rec["depth_m"])) == len(rec["class_ids"])


def test_ground_truth_missing_files_give_a_reason_not_an_exception(tmp_path):
    seg = GroundTruthSegmenter(tmp_path)
    reason = seg.use_frame("test/scene_0001/0000")
    assert reason and "not found" in reason
    out = seg.segment(RGB, None)
    assert len(out) == 0 and "not found" in out.reason


def test_resolve_prefix_drops_the_official_data_folder(nocs_fixture):
    root, records = nocs_fixture
    resolved = resolve_prefix(root, "data/" + records[0]["prefix"])
    assert resolved == root / records[0]["prefix"]


def test_read_instance_map_takes_channel_2_of_a_colour_mask(tmp_path):
    import cv2

    img = np.zeros((5, 6, 3), np.uint8)
    img[..., 2] = 7  # red channel on disk = channel 2 of cv2's BGR
    cv2.imwrite(str(tmp_path / "m.png"), img)
    assert (read_instance_map(tmp_path / "m.png") == 7).all()
