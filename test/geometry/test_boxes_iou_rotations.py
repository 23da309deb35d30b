"""Boxes, the two 3D IoU variants and rotation errors: hand-computed values, properties, fast vs exact
twins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from cleanpose_core.geometry.boxes import (
    axis_aligned_extents,
    box_corners,
    metric_size,
    transformed_box_corners,
)
from cleanpose_core.geometry.iou import iou_3d, iou_3d_single
from cleanpose_core.geometry.rotations import (
    matrix_to_quaternion,
    matrix_to_similarity,
    quaternion_to_matrix,
    remove_scale,
    rotation_about_y,
    rotation_error_deg,
    similarity_to_matrix,
    translation_error_cm,
)


def rt_of(R=np.eye(3), t=(0.1, -0.05, 0.9), s=0.3):
    return similarity_to_matrix(np.asarray(R, float), np.asarray(t, float), s)


seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------- boxes
def test_box_corners_follow_official_nocs_order():
    c = box_corners(np.array([2.0, 4.0, 6.0]))
    assert c.shape == (8, 3)
    np.testing.assert_array_equal(c[0], [1, 2, 3])
    np.testing.assert_array_equal(c[1], [1, 2, -3])
    np.testing.assert_array_equal(c[2], [-1, 2, 3])
    np.testing.assert_array_equal(c[4], [1, -2, 3])
    np.testing.assert_array_equal(c[7], [-1, -2, -3])


def test_transformed_corners_and_extents_of_a_translated_scaled_box():
    rt = rt_of(t=(1.0, 2.0, 3.0), s=2.0)
    lo, hi = axis_aligned_extents(transformed_box_corners(rt, np.array([0.5, 0.5, 0.5])))
    np.testing.assert_allclose(lo, [0.5, 1.5, 2.5])
    np.testing.assert_allclose(hi, [1.5, 2.5, 3.5])
    np.testing.assert_allclose(metric_size(rt, np.array([0.6, 0.0, 0.8])), [1.2, 0.0, 1.6])


# ---------------------------------------------------------------- IoU
@pytest.mark.parametrize("method", ["nocs", "catre"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_identical_boxes_have_iou_one(method, symmetric):
    R = Rotation.from_euler("xyz", [0.3, -0.7, 1.1]).as_matrix()
    rt, scales = rt_of(R), np.array([0.5, 0.7, 0.5])
    assert iou_3d(rt[None], rt[None], scales[None], scales[None], symmetric, method)[0] == pytest.approx(1.0)


def test_catre_iou_of_unit_cubes_offset_by_half_is_one_third():
    scales = np.ones(3) / np.sqrt(3)  # unit-diagonal cube; s = sqrt(3) makes it a unit cube
    a, b = rt_of(t=(0, 0, 1), s=np.sqrt(3)), rt_of(t=(0.5, 0, 1), s=np.sqrt(3))
    assert iou_3d(a[None], b[None], scales[None], scales[None], method="catre")[0] == pytest.approx(1 / 3)
    c = rt_of(t=(0.5, 0.5, 1.5), s=np.sqrt(3))  # offset on all axes: 1/8 / (2 - 1/8)
    assert iou_3d(a[None], c[None], scales[None], scales[None], method="catre")[0] == pytest.approx(1 / 15)


def test_nocs_iou_uses_per_corner_extrema_not_the_geometric_box():
    # Hand computation of the historical quirk for two translated copies of one axis-aligned box.
    scales = np.array([0.2, 0.4, 0.6])
    a, b = rt_of(t=(0.1, 0.2, 1.0), s=1.0), rt_of(t=(0.15, 0.2, 1.0), s=1.0)
    ca, cb = transformed_box_corners(a, scales), transformed_box_corners(b, scales)
    lo_a, hi_a, lo_b, hi_b = ca.min(1), ca.max(1), cb.min(1), cb.max(1)  # per corner, over x, y, z
    inter = np.prod(np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b))
    expected = inter / (np.prod(hi_a - lo_a) + np.prod(hi_b - lo_b) - inter)
    got = iou_3d(a[None], b[None], scales[None], scales[None], method="nocs")[0]
    assert got == pytest.approx(expected)
    assert got != pytest.approx(iou_3d(a[None], b[None], scales[None], scales[None], method="catre")[0])


def test_disjoint_boxes_have_catre_iou_zero_but_not_nocs_iou():
    # The historical quirk in one picture: boxes 1 m apart still "overlap" under the per-corner extrema.
    s = np.array([[0.3, 0.3, 0.3]])
    a, b = rt_of(t=(0, 0, 1))[None], rt_of(t=(1, 0, 1))[None]
    assert iou_3d(a, b, s, s, method="catre")[0] == 0.0
    nocs = iou_3d(a, b, s, s, method="nocs")[0]
    assert nocs > 0.5
    assert nocs == pytest.approx(iou_3d_single(a[0], b[0], s[0], s[0], False, "nocs"))


def test_symmetric_sweep_recovers_a_prediction_turned_about_its_y_axis():
    R = Rotation.from_euler("xyz", [0.2, 0.4, -0.3]).as_matrix()
    gt = rt_of(R)
    pred = rt_of(R @ rotation_about_y(2 * math.pi * 3 / 20))  # exactly one of the 20 sweep angles
    scales = np.array([[0.3, 0.8, 0.5]])
    for method in ("nocs", "catre"):
        assert iou_3d(pred[None], gt[None], scales, scales, True, method)[0] == pytest.approx(1.0)
        assert iou_3d(pred[None], gt[None], scales, scales, False, method)[0] < 0.9


def test_iou_3d_rejects_unknown_method_and_mismatched_counts():
    with pytest.raises(ValueError, match="method"):
        iou_3d(np.eye(4)[None], np.eye(4)[None], np.ones((1, 3)), np.ones((1, 3)), method="giou")
    with pytest.raises(ValueError, match="pair counts"):
        iou_3d(np.stack([np.eye(4)] * 2), np.eye(4)[None], np.ones((2, 3)), np.ones((1, 3)))


def random_pair(seed):
    rng = np.random.default_rng(seed)
    R1, R2 = Rotation.random(2, random_state=rng).as_matrix()
    t1 = np.array([0.0, 0.0, 1.0]) + rng.normal(scale=0.05, size=3)
    t2 = t1 + rng.normal(scale=0.05, size=3)
    s1, s2 = rng.uniform(0.1, 0.4, 2)
    sc1, sc2 = rng.uniform(0.2, 1.0, (2, 3))
    return rt_of(R1, t1, s1), rt_of(R2, t2, s2), sc1 / np.linalg.norm(sc1), sc2 / np.linalg.norm(sc2)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, symmetric=st.booleans(), method=st.sampled_from(["nocs", "catre"]))
def test_vectorised_iou_equals_the_official_per_pair_arithmetic(seed, symmetric, method):
    a, b, sa, sb = random_pair(seed)
    fast = iou_3d(a[None], b[None], sa[None], sb[None], symmetric, method)[0]
    assert 0.0 <= fast <= 1.0
    assert fast == pytest.approx(iou_3d_single(a, b, sa, sb, symmetric, method), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, k=st.integers(0, 19), method=st.sampled_from(["nocs", "catre"]))
def test_symmetric_iou_is_invariant_to_sweep_rotations_and_bounds_the_plain_iou(seed, k, method):
    a, b, sa, sb = random_pair(seed)
    turned = a.copy()
    turned[:3, :3] = a[:3, :3] @ rotation_about_y(2 * math.pi * k / 20)
    sym = iou_3d(
        np.stack([a, turned]), np.stack([b, b]), np.stack([sa, sa]), np.stack([sb, sb]), True, method
    )
    assert sym[0] == pytest.approx(sym[1], abs=1e-9)
    assert sym[0] >= iou_3d(a[None], b[None], sa[None], sb[None], False, method)[0] - 1e-12


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_catre_iou_is_symmetric_in_its_arguments(seed):
    a, b, sa, sb = random_pair(seed)
    ab = iou_3d(a[None], b[None], sa[None], sb[None], method="catre")[0]
    assert ab == pytest.approx(iou_3d(b[None], a[None], sb[None], sa[None], method="catre")[0])


# ---------------------------------------------------------------- rotations
def test_rotation_error_of_known_rotations():
    R = Rotation.from_euler("zyx", [0.4, 0.1, -0.2]).as_matrix()
    Q = Rotation.from_rotvec([0, 0, np.deg2rad(30)]).as_matrix()
    assert rotation_error_deg(Q @ R, R) == pytest.approx(30.0)
    # Symmetric: only the y axis counts; a turn about the object's own y axis costs nothing.
    assert rotation_error_deg(R @ rotation_about_y(1.234), R, symmetric=True) == pytest.approx(0.0, abs=1e-6)
    tilt = Rotation.from_rotvec([np.deg2rad(12), 0, 0]).as_matrix()  # about x: tilts y by 12 degrees
    assert rotation_error_deg(R @ tilt, R, symmetric=True) == pytest.approx(12.0)


def test_rotation_error_removes_similarity_scale_and_is_batched():
    R = Rotation.random(5, random_state=1).as_matrix()
    err = rotation_error_deg(0.37 * R, R, symmetric=np.array([True, False, True, False, True]))
    np.testing.assert_allclose(err, 0.0, atol=1e-5)
    np.testing.assert_allclose(remove_scale(2.5 * R), R, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_rotation_error_invariants(seed):
    A, B, C = Rotation.random(3, random_state=seed).as_matrix()
    e_ab = rotation_error_deg(A, B)
    assert 0.0 <= e_ab <= 180.0
    assert e_ab == pytest.approx(rotation_error_deg(B, A), abs=1e-6)
    # invariant to a common frame change
    assert e_ab == pytest.approx(rotation_error_deg(C @ A, C @ B), abs=1e-6)
    # the y-axis angle never exceeds the full one
    assert rotation_error_deg(A, B, symmetric=True) <= e_ab + 1e-6


def test_quaternion_round_trip_and_wxyz_order():
    R = Rotation.random(10, random_state=3).as_matrix()
    q = matrix_to_quaternion(R)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(quaternion_to_matrix(q), R, atol=1e-12)
    about_z = matrix_to_quaternion(Rotation.from_rotvec([0, 0, np.pi / 2]).as_matrix())
    np.testing.assert_allclose(about_z, [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)], atol=1e-12)
    with pytest.raises(ValueError):
        quaternion_to_matrix(np.zeros(4))


def test_similarity_round_trip_and_translation_error():
    R = Rotation.random(random_state=4).as_matrix()
    R2, t2, s2 = matrix_to_similarity(similarity_to_matrix(R, np.array([0.1, 0.2, 0.3]), 0.25))
    np.testing.assert_allclose(R2, R, atol=1e-12)
    np.testing.assert_allclose(t2, [0.1, 0.2, 0.3])
    assert s2 == pytest.approx(0.25)
    assert translation_error_cm(np.array([0.0, 0.03, 0.04]), np.zeros(3)) == pytest.approx(5.0)
