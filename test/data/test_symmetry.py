"""Symmetric ground-truth canonicalisation about the y axis (geometry/symmetry.py)."""

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from cleanpose_core.geometry.rotations import rotation_about_y
from cleanpose_core.geometry.symmetry import canonicalize_y_symmetric, y_symmetry_angle

quaternions = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 0.1)


def test_pure_y_rotation_becomes_identity():
    for theta in np.linspace(-3.1, 3.1, 13):
        np.testing.assert_allclose(canonicalize_y_symmetric(rotation_about_y(theta)), np.eye(3), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(quaternions, st.floats(-np.pi, np.pi))
def test_result_is_proper_idempotent_and_invariant_to_y_spin(q, spin):
    R = Rotation.from_quat(q).as_matrix()
    # (R00 + R22)^2 + (R02 - R20)^2 = (1 + R11)^2: the angle is undefined for an object y axis along camera
    # -y.
    assume(R[1, 1] > -0.999)
    C = canonicalize_y_symmetric(R)
    np.testing.assert_allclose(C @ C.T, np.eye(3), atol=1e-9)
    assert np.isclose(np.linalg.det(C), 1.0)
    np.testing.assert_allclose(canonicalize_y_symmetric(C), C, atol=1e-9)  # idempotent
    # Same symmetric object pose, spun about its own y axis: same canonical label, same y axis as R.
    np.testing.assert_allclose(canonicalize_y_symmetric(R @ rotation_about_y(spin)), C, atol=1e-7)
    np.testing.assert_allclose(C[:, 1], R[:, 1], atol=1e-9)


def test_canonical_form_has_zero_residual_angle_and_keeps_float32():
    R = Rotation.from_euler("xyz", [0.3, -1.2, 0.5]).as_matrix().astype(np.float32)
    C = canonicalize_y_symmetric(R)
    assert C.dtype == np.float32
    assert abs(y_symmetry_angle(C)) < 1e-6


def test_degenerate_upside_down_rotation_is_left_unchanged_not_nan():
    for R in (
        Rotation.from_euler("x", np.pi).as_matrix(),
        Rotation.from_euler("zy", [np.pi, 0.4]).as_matrix(),
    ):
        np.testing.assert_allclose(canonicalize_y_symmetric(R), R, atol=1e-12)  # official: division by 0, NaN


def test_batched_input():
    Rs = Rotation.random(5, random_state=1).as_matrix()
    out = canonicalize_y_symmetric(Rs)
    for R, C in zip(Rs, out):
        np.testing.assert_allclose(C, canonicalize_y_symmetric(R))
