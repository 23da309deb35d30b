"""Pinhole camera geometry: intrinsics, depth units, back-projection and projection.

Conventions: camera optical frame x right, y down, z forward; pixel (u, v) = (column, row); metres.
Depth images are (H, W); 0 (or non-finite) means "no measurement".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

DepthUnit = Literal["m", "mm"]
DEPTH_SCALE = {"m": 1.0, "mm": 1e-3}  # metres per unit

# REAL275 (and our synthetic default) and CAMERA25 intrinsics, (fx, fy, cx, cy) at 640x480.
REAL275_INTRINSICS = (591.0125, 590.16775, 322.525, 244.11084)
CAMERA25_INTRINSICS = (577.5, 577.5, 319.5, 239.5)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, for an image of `width` x `height` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 640
    height: int = 480

    @classmethod
    def from_matrix(cls, K: np.ndarray, width: int, height: int) -> "Intrinsics":
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def problem(self) -> str | None:
        """A human-readable reason these intrinsics are unusable, or None when they are fine."""
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(values)):
            return f"intrinsics contain non-finite values: {values}"
        if self.fx <= 0 or self.fy <= 0:
            return f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}"
        if self.width <= 0 or self.height <= 0:
            return f"image size must be positive, got {self.width}x{self.height}"
        return None


def depth_to_metres(
    depth: np.ndarray, unit: DepthUnit, valid_range: tuple[float, float] | None = None
) -> np.ndarray:
    """(H, W) depth in `unit` ("mm" for uint16 sensors, "m" for float images) -> (H, W) float32 metres.

    Non-finite and negative values, and with `valid_range` (min, max) metres those outside it, become 0 (=
    invalid), so downstream code only has to test `> 0`. The input is not changed. The Estimator calls this
    once per frame, after checking the frame, so it checks nothing itself.
    """
    out = np.asarray(depth).astype(np.float32) * np.float32(DEPTH_SCALE[unit])
    invalid = ~np.isfinite(out) | (out < 0)
    if valid_range is not None:
        invalid |= (out < valid_range[0]) | (out > valid_range[1])
    out[invalid] = 0.0
    return out


def depth_to_points(depth_m: np.ndarray, K: Intrinsics) -> np.ndarray:
    """Back-project every pixel: (H, W) metres -> (H, W, 3) camera-frame points (x, y, z) in metres.

    x = (u - cx) z / fx, y = (v - cy) z / fy; invalid pixels (z = 0) map to the origin.
    """
    h, w = depth_m.shape
    u = np.arange(w, dtype=np.float32)[None, :]
    v = np.arange(h, dtype=np.float32)[:, None]
    z = depth_m.astype(np.float32)
    x = (u - np.float32(K.cx)) * z / np.float32(K.fx)
    y = (v - np.float32(K.cy)) * z / np.float32(K.fy)
    return np.stack([x, y, z], axis=-1)


def pixels_to_points(rows: np.ndarray, cols: np.ndarray, depth_m: np.ndarray, K: Intrinsics) -> np.ndarray:
    """Back-project selected pixels: rows/cols (N,) ints -> (N, 3) camera-frame points in metres."""
    z = depth_m[rows, cols].astype(np.float32)
    x = (cols.astype(np.float32) - np.float32(K.cx)) * z / np.float32(K.fx)
    y = (rows.astype(np.float32) - np.float32(K.cy)) * z / np.float32(K.fy)
    return np.stack([x, y, z], axis=-1)


def project_points(points: np.ndarray, K: Intrinsics) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) pixel coordinates (u, v) as float; z <= 0 gives NaN."""
    points = np.asarray(points, dtype=np.float64)
    z = points[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K.fx * points[:, 0] / z + K.cx
        v = K.fy * points[:, 1] / z + K.cy
    uv = np.stack([u, v], axis=-1)
    uv[z <= 0] = np.nan
    return uv
