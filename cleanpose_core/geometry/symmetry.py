"""Symmetric ground truth: canonicalise a rotation about the object's y (symmetry) axis.

Conventions: column vectors; R (3, 3) maps the object frame to the camera frame (x_cam = R x_obj + t); camera
optical frame x right / y down / z forward; the NOCS canonical frame has y up, which is the symmetry axis of
the rotationally symmetric categories; angles in radians.

For an object that is symmetric about its y axis, R and R·Ry(θ) are the same pose for every θ. Training labels
therefore pick one representative: φ = atan2(R02 − R20, R00 + R22) and R ← R·Ry(−φ), where
Ry(θ) = [[cos θ, 0, sin θ], [0, 1, 0], [−sin θ, 0, cos θ]]. A pure y rotation becomes the identity, and the
result satisfies R02 = R20 with R00 + R22 ≥ 0, so applying it twice changes nothing. ([CP
provider/nocs_dataset.py], architecture-facts §1.2 step 9.)

Right-multiplying R by Ry(s) rotates the vector (R00 + R22, R02 − R20) by s, so φ grows by s and the label is
the same for every spin about y, except where that vector is zero: its squared length is (1 + R11)², i.e. when
the object's y axis points along the camera's −y. Difference from the official code: it divides by that
length, so such a label becomes NaN; here atan2(0, 0) = 0 leaves the rotation unchanged.
"""

from __future__ import annotations

import numpy as np

from .rotations import rotation_about_y

__all__ = ["y_symmetry_angle", "canonicalize_y_symmetric"]


def y_symmetry_angle(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (...,) angle φ (radians) of the y spin that `canonicalize_y_symmetric`
    removes."""
    R = np.asarray(R, dtype=np.float64)
    return np.arctan2(R[..., 0, 2] - R[..., 2, 0], R[..., 0, 0] + R[..., 2, 2])


def canonicalize_y_symmetric(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3, 3) R·Ry(−φ), the canonical representative about the y axis.

    The output keeps the input's floating dtype (float32 labels stay float32); it is still a proper rotation.
    """
    R = np.asarray(R)
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"expected (..., 3, 3) rotation matrices, got shape {R.shape}")
    out = np.asarray(R, dtype=np.float64) @ rotation_about_y(-y_symmetry_angle(R))
    return out.astype(R.dtype if np.issubdtype(R.dtype, np.floating) else np.float64)
