"""The shared post-filter and the never-raise contract of `Segmenter.segment`."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanpose_core.segmentation import InstanceMasks, SegmentationFilter, Segmenter, masks_to_boxes
from cleanpose_core.segmentation.external import ExternalSegmenter

H, W = 40, 60


def _instances(areas, scores, class_ids=None, disjoint=True):
    """Masks of the given pixel counts: side by side (disjoint) or all starting at pixel 0."""
    masks = np.zeros((len(areas), H, W), bool)
    start = 0
    for i, a in enumerate(areas):
        masks[i].reshape(-1)[start:start + a] = True
        start += a if disjoint else 0
    ids = np.zeros(len(areas), np.int64) if class_ids is None else np.asarray(class_ids, np.int64)
    return InstanceMasks(masks, ids, np.asarray(scores, np.float32))


def test_filter_drops_scores_below_threshold():
    out = SegmentationFilter(score_threshold=0.5, min_mask_area=0, min_points=0).apply(
        _instances([100] * 3, [0.2, 0.5, 0.9])
    )
    np.testing.assert_allclose(out.scores, [0.9, 0.5])
    assert any("below threshold" in s for s in out.skipped)


def test_filter_keeps_the_highest_scores_up_to_max_objects():
    out = SegmentationFilter(score_threshold=0.0, max_objects=2, min_mask_area=0, min_points=0).apply(
        _instances([100] * 4, [0.3, 0.9, 0.1, 0.7], class_ids=[0, 1, 2, 3]))
    np.testing.assert_allclose(out.scores, [0.9, 0.7])
    assert out.class_ids.tolist() == [1, 3]
    assert sum("max_objects" in s for s in out.skipped) == 2


def test_filter_drops_masks_below_min_area():
    out = SegmentationFilter(score_threshold=0.0, min_mask_area=50, min_points=0).apply(
        _instances([10, 49, 50], [1, 1, 1])
    )
    assert len(out) == 1 and out.masks[0].sum() == 50


def test_filter_counts_only_finite_positive_depth_as_points():
    inst = _instances([200, 200], [0.9, 0.8], disjoint=False)
    depth = np.ones((H, W), np.float32)
    flat = depth.reshape(-1)
    flat[:150] = np.nan      # first 150 pixels: invalid for both masks
    flat[150:170] = 0.0      # 20 more invalid
    flat[170:180] = -1.0     # negative: invalid
    # Each mask covers pixels 0..199 -> 20 valid points.
    out = SegmentationFilter(score_threshold=0.0, min_mask_area=0, min_points=21, max_mask_overlap=1.0).apply(
        inst, depth
    )
    assert len(out) == 0 and out.reason and "filtered out" in out.reason
    out = SegmentationFilter(score_threshold=0.0, min_mask_area=0, min_points=20, max_mask_overlap=1.0).apply(
        inst, depth
    )
    assert len(out) == 2


def test_filter_drops_a_mask_mostly_inside_higher_scoring_ones_of_its_category():
    masks = np.zeros((3, H, W), bool)
    masks[0, :, :30] = True    # the best-scoring object
    masks[1, :, 5:25] = True   # a duplicate of it: wholly inside
    masks[2, :, 20:50] = True  # a neighbour: a third of it overlaps the first
    out = SegmentationFilter(score_threshold=0, min_mask_area=0, min_points=0).apply(
        InstanceMasks(masks, np.zeros(3, np.int64), np.array([0.9, 0.8, 0.7], np.float32)))
    np.testing.assert_allclose(out.scores, [0.9, 0.7])
    assert any("inside higher-scoring" in s for s in out.skipped)
    kept_all = SegmentationFilter(
        score_threshold=0, min_mask_area=0, min_points=0, max_mask_overlap=1.0
    ).apply(InstanceMasks(masks, np.zeros(3, np.int64), np.array([0.9, 0.8, 0.7], np.float32)))
    assert len(kept_all) == 3
    # Only within a category: another category's mask over the same pixels is the backend's second guess.
    other = SegmentationFilter(score_threshold=0, min_mask_area=0, min_points=0).apply(
        InstanceMasks(masks, np.array([0, 1, 0]), np.array([0.9, 0.8, 0.7], np.float32)))
    np.testing.assert_allclose(other.scores, [0.9, 0.8, 0.7])


def test_filter_fills_in_mask_boxes_with_exclusive_ends():
    m = np.zeros((1, H, W), bool)
    m[0, 5:10, 20:31] = True
    np.testing.assert_array_equal(masks_to_boxes(m), [[20, 5, 31, 10]])
    out = SegmentationFilter(score_threshold=0, min_mask_area=0, min_points=0).apply(
        InstanceMasks(m, np.array([2]), np.array([1.0], np.float32)))
    np.testing.assert_array_equal(out.boxes, [[20, 5, 31, 10]])


@pytest.mark.parametrize("bad", [dict(score_threshold=1.5), dict(max_objects=-1), dict(min_mask_area=-2),
                                 dict(max_mask_overlap=0.0)])
def test_filter_rejects_invalid_settings(bad):
    with pytest.raises(ValueError):
        SegmentationFilter(**bad).validate()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 300), st.floats(0, 1)), max_size=8),
    st.floats(0, 1),
    st.integers(0, 5),
    st.integers(0, 200),
    st.integers(0, 200),
)
def test_filter_output_always_satisfies_every_constraint(items, thr, max_obj, min_area, min_pts):
    inst = _instances([a for a, _ in items], [s for _, s in items])
    depth = np.zeros((H, W), np.float32)
    depth.reshape(-1)[::2] = 1.0  # every other pixel valid
    out = SegmentationFilter(thr, max_obj, min_area, min_pts).apply(inst, depth)
    assert out.problem() is None and len(out) <= max_obj
    assert np.all(out.scores >= np.float32(thr)) and np.all(np.diff(out.scores) <= 0)
    assert np.all(out.masks.sum(axis=(1, 2)) >= min_area)
    assert np.all((out.masks & (depth > 0)).sum(axis=(1, 2)) >= min_pts)
    assert len(out) + len(out.skipped) == len(items)


RGB = np.zeros((H, W, 3), np.uint8)


@pytest.mark.parametrize("rgb, depth, fragment", [
    (RGB.astype(np.float32), None, "uint8"),
    (RGB[..., 0], None, "(H, W, 3)"),
    (np.zeros((H, W, 4), np.uint8), None, "(H, W, 3)"),
    ([[0]], None, "numpy array"),
    (None, None, "numpy array"),
    (np.zeros((1, 1, 3), np.uint8), None, "too small"),
    (RGB, np.zeros((H, W), np.uint16), "metres"),
    (RGB, np.zeros((H + 1, W), np.float32), "does not match"),
    (RGB, np.zeros((H, W, 1), np.float32), "(H, W)"),
])
def test_bad_frames_return_empty_with_a_reason(rgb, depth, fragment):
    seg = ExternalSegmenter()
    seg.set_instances(np.ones((1, H, W), bool), [0])
    out = seg.segment(rgb, depth)
    assert len(out) == 0 and out.reason is not None and fragment in out.reason


class _Broken(Segmenter):
    name = "broken"

    def _predict(self, rgb, depth_m):
        raise RuntimeError("out of memory")


class _WrongSize(Segmenter):
    name = "wrong_size"

    def _predict(self, rgb, depth_m):
        return InstanceMasks(np.ones((1, 3, 3), bool), np.array([0]), np.array([1.0], np.float32))


def test_backend_exception_becomes_an_empty_result_with_the_reason():
    out = _Broken().segment(RGB, None)
    assert len(out) == 0 and "RuntimeError: out of memory" in out.reason
    assert out.masks.shape == (0, H, W)


def test_backend_masks_of_the_wrong_size_are_rejected():
    out = _WrongSize().segment(RGB, None)
    assert len(out) == 0 and "does not match the frame size" in out.reason
