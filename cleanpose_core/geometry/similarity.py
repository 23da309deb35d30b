"""Closed-form similarity fit dst ≈ s·R·src + t between corresponding 3D points (Umeyama 1991).

The rotation is scipy's `Rotation.align_vectors` on the centred sets (Kabsch, never a reflection); given it,
the least-squares scale and translation are closed-form: s = Σ dst_c·(R src_c) / Σ |src_c|², t = mean(dst) −
s·R·mean(src).
This is the NOCS / DPDN-style pose solver: it turns predicted object coordinates of observed points into a
pose.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class Similarity:
    rotation: np.ndarray     # (3, 3) proper rotation
    scale: float             # > 0
    translation: np.ndarray  # (3,)
    rms: float               # root-mean-square residual |dst − (s·R·src + t)|, in dst units


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity | None:
    """Least-squares similarity mapping `src` (N, 3) onto `dst` (N, 3); None when it is undefined.

    Undefined: fewer than 3 points, non-finite input, or either set (nearly) collinear, since a rotation about
    the line is then free; a non-positive scale (the sets are mirror images) counts as undefined too.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"fit_similarity: src and dst must both be (N, 3), got {src.shape} and {dst.shape}")
    if len(src) < 3 or not (np.isfinite(src).all() and np.isfinite(dst).all()):
        return None
    src_c, dst_c = src - src.mean(0), dst - dst.mean(0)
    for pts in (src_c, dst_c):
        sv = np.linalg.svd(pts, compute_uv=False)
        if sv[1] <= 1e-9 * max(sv[0], 1e-300):  # rank < 2
            return None
    with warnings.catch_warnings():  # scipy warns on poorly conditioned sets; rank was checked above
        warnings.simplefilter("ignore", UserWarning)
        rot, _ = Rotation.align_vectors(dst_c, src_c)
    R = rot.as_matrix()
    scale = float(np.sum(dst_c * (src_c @ R.T)) / np.sum(src_c ** 2))
    if not scale > 0:
        return None
    t = dst.mean(0) - scale * R @ src.mean(0)
    rms = float(np.sqrt(np.mean(np.sum((dst - (scale * src @ R.T + t)) ** 2, axis=1))))
    return Similarity(R, scale, t, rms)
