"""Lens distortion of the ROS CameraInfo models, as OpenCV remap tables (no ROS here).

Models and coefficient order follow sensor_msgs/CameraInfo (REP 104), which are OpenCV's:
  plumb_bob            k1 k2 p1 p2 [k3]                  (cv2.initUndistortRectifyMap)
  rational_polynomial  k1 k2 p1 p2 k3 k4 k5 k6 [s1..s4 [tx ty]]  (some drivers, e.g. OAK, send 14)
  equidistant          k1 k2 k3 k4                       (cv2.fisheye)
A pair of remap tables maps every pixel of the OUTPUT image to where it is sampled in the INPUT image. Tables
are fixed-point (CV_16SC2 + CV_16UC1): cv2.remap is fastest with them, and with the second table INTER_NEAREST
rounds to the nearest pixel (without it, it would truncate: a half-pixel shift).
"""

from __future__ import annotations

import cv2
import numpy as np

PLUMB_BOB, RATIONAL_POLYNOMIAL, EQUIDISTANT = "plumb_bob", "rational_polynomial", "equidistant"
COEFFICIENT_COUNTS = {PLUMB_BOB: (4, 5), RATIONAL_POLYNOMIAL: (8, 12, 14), EQUIDISTANT: (4,)}
# The iterative inversion used to simulate a distorted camera: OpenCV's default (5 iterations) leaves
# pixel-level errors at strong wide-angle distortion; this converges to well below 1e-3 px.
_INVERSE_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)

RemapTables = tuple[np.ndarray, np.ndarray]


def coefficient_problem(model: str, D: np.ndarray) -> str | None:
    """Why (model, D) cannot be used to undistort, or None when it can."""
    if model not in COEFFICIENT_COUNTS:
        return f"unknown distortion_model {model!r} (known: {', '.join(COEFFICIENT_COUNTS)})"
    if D.size not in COEFFICIENT_COUNTS[model]:
        return f"distortion_model {model!r} takes {' or '.join(map(str, COEFFICIENT_COUNTS[model]))} " \
               f"coefficients in d, got {D.size}"
    if not np.isfinite(D).all():
        return f"d contains non-finite values: {D.tolist()}"
    return None


def _check(model: str, D: np.ndarray) -> np.ndarray:
    D = np.asarray(D, np.float64).ravel()
    problem = coefficient_problem(model, D)
    if problem:
        raise ValueError(problem)
    return D


def _fixed_point(map_x: np.ndarray, map_y: np.ndarray) -> RemapTables:
    # A lens model that folds back at the image edge can leave positions non-finite: send them outside (-1).
    map_x, map_y = (np.nan_to_num(m, nan=-1.0, posinf=-1.0, neginf=-1.0).astype(np.float32)
                    for m in (map_x, map_y))
    return cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)


def undistortion_maps(K: np.ndarray, D: np.ndarray, model: str, width: int, height: int) -> RemapTables:
    """Tables that turn a distorted image into the pinhole image of the SAME camera matrix K (width x height).

    The output keeps K (newCameraMatrix = K), so the intrinsics downstream code uses do not change; pixels
    whose source falls outside the distorted image come out empty.
    """
    K = np.asarray(K, np.float64).reshape(3, 3)
    D = _check(model, D)
    size = (int(width), int(height))
    if model == EQUIDISTANT:
        return cv2.fisheye.initUndistortRectifyMap(K, D, np.eye(3), K, size, cv2.CV_16SC2)
    return cv2.initUndistortRectifyMap(K, D, None, K, size, cv2.CV_16SC2)


def _pinhole_positions(K: np.ndarray, D: np.ndarray, model: str, width: int, height: int,
                       source_K: np.ndarray) -> np.ndarray:
    """(height, width, 2): where each pixel of the distorted camera (K, D) lies in the pinhole image of camera
    matrix source_K."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pixels = np.stack([u.ravel(), v.ravel()], axis=-1)[:, None, :]
    if model == EQUIDISTANT:
        pinhole = cv2.fisheye.undistortPoints(pixels, K, D, R=np.eye(3), P=source_K,
                                              criteria=_INVERSE_CRITERIA)
    else:
        pinhole = cv2.undistortPointsIter(pixels, K, D, np.eye(3), source_K, _INVERSE_CRITERIA)
    return pinhole.reshape(height, width, 2)


def distortion_maps(K: np.ndarray, D: np.ndarray, model: str, width: int, height: int,
                    source_K: np.ndarray | None = None) -> RemapTables:
    """The inverse: tables that turn a pinhole image (camera matrix `source_K`, default K) into the
    width x height image a camera with (K, D) records.

    For each distorted pixel, its undistorted position comes from OpenCV's iterative inversion of the model,
    so this is exactly the camera that `undistortion_maps` corrects. Used to simulate distorted cameras.
    """
    K = np.asarray(K, np.float64).reshape(3, 3)
    source_K = K if source_K is None else np.asarray(source_K, np.float64).reshape(3, 3)
    pinhole = _pinhole_positions(K, _check(model, D), model, width, height, source_K)
    return _fixed_point(pinhole[..., 0], pinhole[..., 1])


def pinhole_canvas(K: np.ndarray, D: np.ndarray, model: str, width: int, height: int,
                   max_margin: float = 0.5) -> tuple[np.ndarray, int, int]:
    """(camera matrix, width, height) of the pinhole image, with K's focal lengths, that holds every pixel the
    distorted camera (K, D) sees: a barrel lens sees more than the pinhole image of the same size, and a
    simulation that rendered only that would leave the distorted image's corners empty. Each side grows by at
    most `max_margin` of the image size (strong distortion would otherwise ask for a huge canvas)."""
    K = np.asarray(K, np.float64).reshape(3, 3)
    pinhole = _pinhole_positions(K, _check(model, D), model, width, height, K)
    pad_x, pad_y = int(np.ceil(max_margin * width)), int(np.ceil(max_margin * height))
    # + 1: bilinear sampling at a position reads the pixel beyond it too
    left = int(np.clip(np.ceil(1 - np.nanmin(pinhole[..., 0])), 0, pad_x))
    right = int(np.clip(np.ceil(np.nanmax(pinhole[..., 0]) - (width - 1) + 1), 0, pad_x))
    top = int(np.clip(np.ceil(1 - np.nanmin(pinhole[..., 1])), 0, pad_y))
    bottom = int(np.clip(np.ceil(np.nanmax(pinhole[..., 1]) - (height - 1) + 1), 0, pad_y))
    canvas = K.copy()
    canvas[0, 2] += left
    canvas[1, 2] += top
    return canvas, width + left + right, height + top + bottom


def remap_linear(image: np.ndarray, maps: RemapTables) -> np.ndarray:
    """Bilinear resampling (colour images); outside the source: 0."""
    return cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def remap_nearest(image: np.ndarray, maps: RemapTables) -> np.ndarray:
    """Nearest-pixel resampling for depth, masks and label images: values are moved, never blended (a depth
    interpolated across an object's edge would be a point floating between object and background). Outside the
    source: 0 (= no depth). Boolean images stay boolean."""
    if image.dtype == np.bool_:
        return remap_nearest(image.view(np.uint8), maps).astype(bool)
    return cv2.remap(image, maps[0], maps[1], cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)
