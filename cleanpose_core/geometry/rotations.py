"""Rotations: errors as the NOCS evaluation measures them, scale removal, y-axis rotations, quaternions.

Conventions: column vectors, R (3, 3) maps the object frame to the camera frame (x_cam = R x_obj + t); the
NOCS canonical frame has y up, which is the symmetry axis of bottle, bowl and can; angles in radians unless a
name says `deg`; quaternions are (w, x, y, z) (scalar first) here and become ROS (x, y, z, w) only in
`cleanpose_ros`.
A wrong-order caller of `quaternion_to_matrix` gets a different, still valid rotation, so the order is in the
name of every argument's docstring.

Pose errors follow the official NOCS `compute_RT_degree_cm_symmetry`: the similarity's scale is removed by
dividing by cbrt(det); for y-symmetric objects the error is the angle between the two y axes, otherwise the
geodesic angle arccos((tr(R1 R2^T) - 1) / 2). Unlike the official symmetric branch, `rotation_error_deg` clips
the cosine, so it never returns NaN; `symmetric_axis_cosine` returns the raw, unclipped value for the
evaluator that must reproduce the official NaN.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def rotation_about_y(theta: np.ndarray | float) -> np.ndarray:
    """(...,) angles in radians -> (..., 3, 3) rotations about the y axis ([[c, 0, s], [0, 1, 0], [-s, 0,
    c]])."""
    theta = np.asarray(theta, dtype=np.float64)
    c, s = np.cos(theta), np.sin(theta)
    out = np.zeros(theta.shape + (3, 3))
    out[..., 0, 0] = c
    out[..., 0, 2] = s
    out[..., 1, 1] = 1.0
    out[..., 2, 0] = -s
    out[..., 2, 2] = c
    return out


def remove_scale(sR: np.ndarray) -> np.ndarray:
    """(..., 3, 3) s·R with s > 0 -> (..., 3, 3) R, dividing by cbrt(det) exactly as the NOCS evaluation does.

    The result keeps the input's dtype, so float32 result files give the same bits as the official code.
    """
    sR = np.asarray(sR)
    return sR / np.cbrt(np.linalg.det(sR))[..., None, None]


def similarity_to_matrix(
    rotation: np.ndarray, translation: np.ndarray, scale: np.ndarray | float
) -> np.ndarray:
    """(..., 3, 3) R, (..., 3) t in metres, (...,) s -> (..., 4, 4) [[s·R, t], [0, 0, 0, 1]] (the result-file
    RT)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    out = np.zeros(rotation.shape[:-2] + (4, 4))
    out[..., :3, :3] = rotation * scale[..., None, None]
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def matrix_to_similarity(rt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 4, 4) [[s·R, t], [0, 0, 0, 1]] -> R (..., 3, 3), t (..., 3) metres, s (...,) with s =
    cbrt(det(s·R))."""
    rt = np.asarray(rt, dtype=np.float64)
    scale = np.cbrt(np.linalg.det(rt[..., :3, :3]))
    return rt[..., :3, :3] / scale[..., None, None], rt[..., :3, 3].copy(), scale


def symmetric_axis_cosine(R_1: np.ndarray, R_2: np.ndarray) -> np.ndarray:
    """(..., 3, 3) x2 -> (...,) cosine of the angle between the object y axes R_1·ŷ and R_2·ŷ, NOT clipped.

    Rounding can push it just above 1 for identical axes; the official evaluation then takes arccos of it and
    gets NaN, which its threshold tests (`err > thr`) count as a pass. Callers that must reproduce that keep
    the value.
    """
    y_1 = np.asarray(R_1, dtype=np.float64)[..., :, 1]
    y_2 = np.asarray(R_2, dtype=np.float64)[..., :, 1]
    dot = (y_1 * y_2).sum(-1)
    return dot / (np.sqrt((y_1 * y_1).sum(-1)) * np.sqrt((y_2 * y_2).sum(-1)))


def geodesic_cosine(R_1: np.ndarray, R_2: np.ndarray) -> np.ndarray:
    """(..., 3, 3) x2 -> (...,) (tr(R_1 R_2^T) - 1) / 2, the cosine of the relative rotation angle
    (unclipped)."""
    R_1 = np.asarray(R_1, dtype=np.float64)
    R_2 = np.asarray(R_2, dtype=np.float64)
    # tr(R_1 R_2^T) = sum_ij R_1[i, j] R_2[i, j]: no matrix product needed.
    return ((R_1 * R_2).sum((-1, -2)) - 1.0) / 2.0


def rotation_error_deg(
    R_pred: np.ndarray, R_gt: np.ndarray, symmetric: np.ndarray | bool = False
) -> np.ndarray:
    """Rotation error in degrees, as the NOCS evaluation defines it.

    Args:
        R_pred, R_gt: (..., 3, 3) rotations, or similarity blocks s·R (the scale is removed by cbrt(det)).
        symmetric: (...,) or scalar; True uses the angle between the y axes (bottle, bowl, can, mug with
        hidden
            handle), False the geodesic angle.
    Returns:
        (...,) float64 degrees in [0, 180] (a float for unbatched input).
    """
    R_pred = remove_scale(np.asarray(R_pred, dtype=np.float64))
    R_gt = remove_scale(np.asarray(R_gt, dtype=np.float64))
    cos = np.where(
        np.asarray(symmetric, dtype=bool), symmetric_axis_cosine(R_pred, R_gt), geodesic_cosine(R_pred, R_gt)
    )
    out = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return out if out.ndim else float(out)


def translation_error_cm(t_pred: np.ndarray, t_gt: np.ndarray) -> np.ndarray:
    """(..., 3) translations in metres -> (...,) Euclidean distance in centimetres."""
    diff = np.asarray(t_pred, dtype=np.float64) - np.asarray(t_gt, dtype=np.float64)
    return np.sqrt((diff * diff).sum(-1)) * 100.0


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions (w, x, y, z), w >= 0 (scipy, scalar-first)."""
    R = np.asarray(R, dtype=np.float64)
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat(scalar_first=True)
    q = np.where(q[:, :1] < 0, -q, q)  # one canonical sign, so round trips compare equal
    return q.reshape(R.shape[:-2] + (4,))


def quaternion_to_matrix(q_wxyz: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3) rotations.

    Passing ROS order (x, y, z, w) instead silently yields another rotation; convert in `cleanpose_ros`.
    """
    q = np.asarray(q_wxyz, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(~np.isfinite(norm)) or np.any(norm < 1e-12):
        raise ValueError("quaternion_to_matrix: quaternions must be finite and non-zero")
    R = Rotation.from_quat((q / norm).reshape(-1, 4), scalar_first=True).as_matrix()
    return R.reshape(q.shape[:-1] + (3, 3))
