"""sensor_msgs/CameraInfo -> the camera model the pose pipeline needs: intrinsics of the image as received,
and whether (and how) to undistort it first.

Semantics (sensor_msgs/CameraInfo, REP 104, as image_geometry applies them):
- k, d, p, width and height describe the camera at full resolution ("the image dimensions with which the
  camera was calibrated"). binning_x/y of 0 or 1 mean no binning. roi is given in full-resolution pixels; all
  zeros means the full image. The image actually received is roi (or width x height) divided by the binning,
  and its matrix is: cx -= x_offset, cy -= y_offset, then fx, cx divided by binning_x and fy, cy by binning_y.
- d describes the raw image. Rectified images (e.g. image_rect from image_proc) are not undistorted again, and
  their camera matrix is the left 3x3 of p ("projection matrix of the rectified image") when p is set.
- Raw images with non-zero d are undistorted with newCameraMatrix = k, so the output intrinsics are k's and
  the optical frame stays the camera's own (r, the stereo rectification rotation, is not applied: depth is
  registered to this camera, not to a rectified stereo pair).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from sensor_msgs.msg import CameraInfo

from cleanpose_core.geometry import distortion
from cleanpose_core.geometry.camera import Intrinsics


class CameraModelError(ValueError):
    """A CameraInfo that cannot describe the images; the message names the offending field."""


@dataclass(frozen=True, eq=False)  # eq=False: identity comparison (numpy fields), hashable by identity
class CameraModel:
    intrinsics: Intrinsics  # of the image as the node passes it on (after binning/ROI and undistortion)
    distortion_model: str
    D: np.ndarray
    needs_undistortion: bool
    matrix_source: str = field(default="k")  # where the intrinsics came from, for describe()

    @cached_property
    def _maps(self) -> distortion.RemapTables:
        # Built on first use and kept with the model: CameraModelCache hands out the same object while the
        # CameraInfo does not change, so the tables are computed once per camera, not per frame.
        K = self.intrinsics
        return distortion.undistortion_maps(K.matrix, self.D, self.distortion_model, K.width, K.height)

    def _check_size(self, image: np.ndarray, name: str) -> None:
        if image.shape[:2] != (self.intrinsics.height, self.intrinsics.width):
            raise CameraModelError(f"{name} is {image.shape[1]}x{image.shape[0]} but camera_info describes a "
                                   f"{self.intrinsics.width}x{self.intrinsics.height} image")

    def undistort(self, rgb: np.ndarray, depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rgb, depth) as a pinhole camera with `intrinsics` sees them: rgb bilinear, depth nearest (0 where
        nothing maps). Returns the inputs themselves when no undistortion is needed."""
        if not self.needs_undistortion:
            return rgb, depth_m
        self._check_size(rgb, "rgb")
        self._check_size(depth_m, "depth")
        return distortion.remap_linear(rgb, self._maps), distortion.remap_nearest(depth_m, self._maps)

    def undistort_nearest(self, image: np.ndarray) -> np.ndarray:
        """Any per-pixel label image (masks, instance ids, depth) undistorted without blending values."""
        if not self.needs_undistortion:
            return image
        self._check_size(image, "image")
        return distortion.remap_nearest(image, self._maps)

    def describe(self) -> str:
        K = self.intrinsics
        action = "undistorting every frame" if self.needs_undistortion else "no undistortion"
        return (f"camera model {self.distortion_model or '(none)'} D={np.round(self.D, 6).tolist()} "
                f"K=[fx {K.fx:.3f} fy {K.fy:.3f} cx {K.cx:.3f} cy {K.cy:.3f}] from {self.matrix_source}, "
                f"{K.width}x{K.height}: {action}")


def _matrix(values, size: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size != size:
        raise CameraModelError(f"camera_info.{name} must have {size} elements, got {array.size}")
    if not np.isfinite(array).all():
        raise CameraModelError(f"camera_info.{name} contains non-finite values: {array.tolist()}")
    return array


def _usable_p(p) -> np.ndarray | None:
    """p's left 3x3 when it is a camera matrix (drivers that do not rectify often leave p all zeros)."""
    P = np.asarray(p, dtype=np.float64).ravel()
    if P.size != 12 or not np.isfinite(P).all():
        return None
    P = P.reshape(3, 4)
    if P[0, 0] <= 0 or P[1, 1] <= 0 or not math.isclose(P[2, 2], 1.0, abs_tol=1e-6):
        return None
    return P[:, :3].copy()


def _received_size(info: CameraInfo, bx: int, by: int, image_size) -> tuple[int, int]:
    roi = info.roi
    full_roi = roi.x_offset == roi.y_offset == roi.width == roi.height == 0
    if not full_roi and (roi.width == 0 or roi.height == 0):
        raise CameraModelError(f"camera_info.roi has offsets ({roi.x_offset}, {roi.y_offset}) but size "
                               f"{roi.width}x{roi.height}; all zeros means the full image")
    if not full_roi and info.width and info.height and (
            roi.x_offset + roi.width > info.width or roi.y_offset + roi.height > info.height):
        raise CameraModelError(f"camera_info.roi ({roi.x_offset}, {roi.y_offset}, {roi.width}x{roi.height}) "
                               f"exceeds the {info.width}x{info.height} sensor")
    width, height = (info.width, info.height) if full_roi else (roi.width, roi.height)
    if width == 0 or height == 0:
        if image_size is None:  # some drivers leave width/height 0: then only the image can tell the size
            raise CameraModelError(f"camera_info.width/height are {info.width}x{info.height}: "
                                   "image size unknown")
        return int(image_size[0]), int(image_size[1])
    size = (width // bx, height // by)
    if image_size is not None and tuple(image_size) != size:
        raise CameraModelError(f"camera_info (width {info.width}, height {info.height}, binning {bx}x{by}, "
                               f"roi {roi.width}x{roi.height}) describes a {size[0]}x{size[1]} image but the "
                               f"image is {image_size[0]}x{image_size[1]}")
    return size


def camera_model_from_info(info: CameraInfo, images_rectified: bool,
                           image_size: tuple[int, int] | None = None) -> CameraModel:
    """The CameraModel of the images that come with `info`. `image_size` (width, height) of the received
    image, when given, is checked against info and stands in for width/height 0. Raises CameraModelError."""
    k = _matrix(info.k, 9, "k")
    if k[0] <= 0 or k[4] <= 0:
        raise CameraModelError(f"camera_info.k must have positive focal lengths, got fx={k[0]}, fy={k[4]}")
    try:
        D = np.asarray(info.d, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise CameraModelError(f"camera_info.d is not a list of numbers: {exc}") from exc
    if not np.isfinite(D).all():
        raise CameraModelError(f"camera_info.d contains non-finite values: {D.tolist()}")
    model = info.distortion_model.strip()
    bx, by = max(int(info.binning_x), 1), max(int(info.binning_y), 1)
    width, height = _received_size(info, bx, by, image_size)

    matrix, source = k.reshape(3, 3).copy(), "k"
    if images_rectified:
        P = _usable_p(info.p)
        if P is not None:
            matrix, source = P, "p (images rectified)"
        else:
            source = "k (images rectified, p unset)"
        needs = False
    else:
        # All-zero coefficients are the identity for the polynomial models, but not for equidistant: there
        # they still mean theta_d = theta, a fisheye projection, which has to be undistorted.
        needs = D.size > 0 and (bool(np.any(D != 0)) or model == distortion.EQUIDISTANT)
    if needs:
        problem = distortion.coefficient_problem(model, D)
        if problem:
            raise CameraModelError(f"camera_info: {problem}")

    roi = info.roi
    matrix[0, 2] = (matrix[0, 2] - roi.x_offset) / bx
    matrix[1, 2] = (matrix[1, 2] - roi.y_offset) / by
    matrix[0, 0] /= bx
    matrix[1, 1] /= by
    intrinsics = Intrinsics.from_matrix(matrix, width, height)
    problem = intrinsics.problem()
    if problem:
        raise CameraModelError(f"camera_info ({source}): {problem}")
    D = D.copy()
    D.flags.writeable = False  # the model is shared between frames: keep it immutable
    return CameraModel(intrinsics, model, D, needs, source)


class CameraModelCache:
    """The same CameraModel (and its undistortion tables) while the relevant CameraInfo fields stay the
    same."""

    def __init__(self):
        self._key = None
        self._model: CameraModel | None = None

    @staticmethod
    def _key_of(info: CameraInfo, images_rectified: bool, image_size) -> tuple:
        roi = info.roi
        return (tuple(info.k), tuple(info.d), tuple(info.p), info.distortion_model, info.width, info.height,
                info.binning_x, info.binning_y,
                (roi.x_offset, roi.y_offset, roi.width, roi.height, roi.do_rectify),
                bool(images_rectified), None if image_size is None else tuple(image_size))

    def get(self, info: CameraInfo, images_rectified: bool,
            image_size: tuple[int, int] | None = None) -> CameraModel:
        key = self._key_of(info, images_rectified, image_size)
        if self._model is None or key != self._key:
            # Build first, then remember: a bad CameraInfo raises every time instead of leaving a stale model.
            self._model = camera_model_from_info(info, images_rectified, image_size)
            self._key = key
        return self._model
