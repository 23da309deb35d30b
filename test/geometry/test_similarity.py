"""The closed-form similarity fit behind the keypoint pose solver."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from cleanpose_core.geometry.similarity import fit_similarity


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 64), scale=st.floats(0.01, 10.0))
def test_recovers_an_exact_similarity(seed, n, scale):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(n, 3))
    R = Rotation.random(random_state=seed).as_matrix()
    t = rng.normal(size=3)
    fit = fit_similarity(src, scale * src @ R.T + t)
    assert fit is not None
    np.testing.assert_allclose(fit.rotation, R, atol=1e-6)
    assert fit.scale == pytest.approx(scale, rel=1e-6)
    np.testing.assert_allclose(fit.translation, t, atol=1e-6 * max(scale, 1.0))
    assert fit.rms < 1e-6 * max(scale, 1.0)
    assert np.linalg.det(fit.rotation) == pytest.approx(1.0)


def test_noise_shows_in_the_residual_and_barely_moves_the_pose():
    rng = np.random.default_rng(0)
    src = rng.uniform(-0.5, 0.5, size=(32, 3))
    R = Rotation.from_euler("xyz", [20, -40, 75], degrees=True).as_matrix()
    dst = 0.3 * src @ R.T + [0.1, -0.05, 0.8] + rng.normal(scale=0.002, size=(32, 3))
    fit = fit_similarity(src, dst)
    angle = np.degrees(Rotation.from_matrix(fit.rotation @ R.T).magnitude())
    assert angle < 2.0 and fit.scale == pytest.approx(0.3, rel=0.03)
    assert 0.001 < fit.rms < 0.004  # ~ the noise's sqrt(3) * 0.002 minus the fitted degrees of freedom


@pytest.mark.parametrize("src", [
    np.zeros((8, 3)),                                  # all points coincide
    np.outer(np.linspace(0, 1, 8), [1.0, 2.0, 3.0]),   # collinear: the rotation about the line is free
    np.random.default_rng(2).normal(size=(2, 3)),      # too few points
    np.array([[0, 0, 0], [1, 0, 0], [0, 1, np.nan]]),  # non-finite
])
def test_undefined_fits_return_none(src):
    assert fit_similarity(src, np.nan_to_num(src) + 1.0) is None


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="must both be"):
        fit_similarity(np.zeros((4, 3)), np.zeros((5, 3)))
