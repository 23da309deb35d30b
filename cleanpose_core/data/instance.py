"""Per-instance preprocessing shared by training readers and the inference engine: frame + mask -> network
input.

Conventions: camera optical frame x right / y down / z forward, metres; pixel (u, v) = (column, row); image
boxes are (y1, x1, y2, x2) with y2/x2 exclusive, as NOCS label files store them; N points, S = crop side in
pixels.

What one instance becomes ([CP provider/nocs_dataset.py], architecture-facts §1.2 steps 3-8 and §1.4):
1. a square crop window around the instance box (`get_bbox`): side (max(h, w) // 40 + 1) · 40, capped at 440,
   centred on the box centre and shifted (not clipped) to lie inside the image;
2. the valid pixels: instance mask AND depth > 0 inside the window; N of them are drawn (`sample_choose`),
with
   replacement when there are at most N, without replacement otherwise;
3. their back-projection with the intrinsics (`pts`, camera frame, not centred: the network centres them);
4. the RGB window resized to S × S (bilinear) and ImageNet-normalised (`rgb`), optionally colour-augmented
first;
5. every point's flat index in the S × S crop (`choose`): floor(row · S / side) · S + floor(col · S / side),
with
   (row, col) the pixel's position inside the window.

Everything is numpy in, numpy out (no torch); randomness comes only from the `numpy.random.Generator` passed
in. Bad input never raises: `prepare_instance` returns `(None, reason)` (empty mask, no valid depth, too few
valid pixels, mismatched shapes, bad intrinsics) and callers count and skip.

Differences from the official code:
- the window side is also capped at the image's smaller side, so images smaller than 440 px (our tests, small
  synthetic cameras) still get an in-image window; for 480 × 640 and 852 × 1096 images nothing changes;
- points are back-projected in float32 (official: float64, then cast to float32); they differ by < 1e-6 m.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from cleanpose_core.geometry.camera import Intrinsics, pixels_to_points

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CropWindow",
    "InstanceInput",
    "get_bbox",
    "bbox_from_mask",
    "sample_choose",
    "remap_choose",
    "crop_rgb",
    "normalize_rgb",
    "prepare_instance",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MAX_WINDOW = 440  # px, official cap of the crop side
WINDOW_STEP = 40  # px, the crop side is a multiple of this


@dataclass(frozen=True)
class CropWindow:
    """Square crop window in pixels: rows rmin:rmax, columns cmin:cmax (end exclusive)."""

    rmin: int
    rmax: int
    cmin: int
    cmax: int

    @property
    def side(self) -> int:
        """Window side in pixels (rmax − rmin = cmax − cmin)."""
        return self.rmax - self.rmin


@dataclass(frozen=True)
class InstanceInput:
    """One instance ready for the network (add a batch axis to stack several).

    Attributes:
        pts: (N, 3) float32 camera-frame points in metres (not centred).
        rgb: (3, S, S) float32 crop, ImageNet-normalised ((x / 255 − mean) / std, RGB order).
        choose: (N,) int64 flat index of each point's pixel in the S × S crop.
        window: the crop window in the full image.
        n_valid: number of valid (mask AND depth > 0) pixels in the window the N points were drawn from.
    """

    pts: np.ndarray
    rgb: np.ndarray
    choose: np.ndarray
    window: CropWindow
    n_valid: int


def get_bbox(bbox, image_height: int = 480, image_width: int = 640, max_window: int = MAX_WINDOW,
             step: int = WINDOW_STEP) -> CropWindow:
    """Square crop window for an instance box.

    Args:
        bbox: (y1, x1, y2, x2) box in pixels (y2/x2 exclusive, as NOCS labels store them).
        image_height, image_width: image size in pixels (NOCS 480 × 640, HouseCat6D 852 × 1096).
        max_window: cap of the side (official 440 px); also capped at min(image_height, image_width).
        step: the side is rounded up to the next multiple of `step` strictly above max(h, w).
    Returns:
        A window of side min((max(h, w) // step + 1) · step, cap), centred on the box centre (integer
        division) and shifted to lie inside the image.
    """
    y1, x1, y2, x2 = (int(v) for v in bbox)
    side = (max(y2 - y1, x2 - x1) // step + 1) * step
    side = min(side, max_window, image_height, image_width)
    half = side // 2
    rc, cc = (y1 + y2) // 2, (x1 + x2) // 2
    rmin, cmin = rc - half, cc - half
    # Shift (keep the side) so that the window lies inside the image; the cap above makes this always
    # possible.
    rmin = min(max(rmin, 0), image_height - side)
    cmin = min(max(cmin, 0), image_width - side)
    return CropWindow(rmin, rmin + side, cmin, cmin + side)


def bbox_from_mask(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(H, W) bool mask -> tight (y1, x1, y2, x2) box (y2/x2 exclusive), or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def sample_choose(n_valid: int, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """(n_points,) int64 indices into n_valid candidates, with replacement iff n_valid <= n_points
    (official)."""
    if n_valid <= 0:
        raise ValueError("sample_choose needs at least one candidate")
    return rng.choice(n_valid, n_points, replace=n_valid <= n_points).astype(np.int64)


def remap_choose(choose: np.ndarray, window_side: int, image_size: int) -> np.ndarray:
    """(N,) flat indices into the window (row · side + col) -> (N,) int64 flat indices into the S × S crop.

    new = floor(row · S / side) · S + floor(col · S / side), computed in float64 as the official code does.
    """
    choose = np.asarray(choose, dtype=np.int64)
    ratio = image_size / window_side
    rows, cols = choose // window_side, choose % window_side
    return (np.floor(rows * ratio) * image_size + np.floor(cols * ratio)).astype(np.int64)


def crop_rgb(rgb: np.ndarray, window: CropWindow, image_size: int) -> np.ndarray:
    """(H, W, 3) uint8 image -> (S, S, 3) uint8 crop of `window`, resized bilinearly (cv2.INTER_LINEAR)."""
    crop = np.ascontiguousarray(rgb[window.rmin:window.rmax, window.cmin:window.cmax])
    return cv2.resize(crop, (image_size, image_size), interpolation=cv2.INTER_LINEAR)


def normalize_rgb(crop: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 RGB -> (3, S, S) float32, (x / 255 − ImageNet mean) / ImageNet std (torchvision's
    ToTensor + Normalize)."""
    # A lookup of the 256 possible values per channel (the same float32 arithmetic, done once): 3x faster.
    planes = np.ascontiguousarray(crop.transpose(2, 0, 1))
    return np.stack([_NORMALIZE_LUT[c][planes[c]] for c in range(3)])


_NORMALIZE_LUT = ((np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0) - IMAGENET_MEAN[:, None])
                  / IMAGENET_STD[:, None]).astype(np.float32)  # (3, 256)


def _input_problem(rgb: np.ndarray, depth_m: np.ndarray, mask: np.ndarray, K: Intrinsics) -> str | None:
    if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
        kind = getattr(rgb, "dtype", type(rgb).__name__)
        return f"bad input: rgb must be a (H, W, 3) uint8 array, got {kind} {np.shape(rgb)}"
    if not (isinstance(depth_m, np.ndarray) and depth_m.ndim == 2):
        return f"bad input: depth must be a (H, W) array in metres, got shape {np.shape(depth_m)}"
    if not (isinstance(mask, np.ndarray) and mask.ndim == 2):
        return f"bad input: mask must be a (H, W) array, got shape {np.shape(mask)}"
    if depth_m.shape != rgb.shape[:2] or mask.shape != rgb.shape[:2]:
        return f"bad input: image sizes differ: rgb {rgb.shape[:2]}, depth {depth_m.shape}, mask {mask.shape}"
    problem = K.problem()
    return None if problem is None else f"bad input: {problem}"


def prepare_instance(
    rgb: np.ndarray,
    depth_m: np.ndarray,
    mask: np.ndarray,
    K: Intrinsics,
    rng: np.random.Generator,
    *,
    bbox=None,
    n_points: int = 1024,
    image_size: int = 224,
    min_valid_pixels: int = 0,
    rgb_augment: Callable[[np.ndarray], np.ndarray] | None = None,
    max_window: int = MAX_WINDOW,
    checked: bool = False,
) -> tuple[InstanceInput | None, str | None]:
    """One object of a frame -> network input, or None and the reason it cannot be used.

    Args:
        rgb: (H, W, 3) uint8 RGB image.
        depth_m: (H, W) depth in metres (0 or non-finite = missing). The official pipeline runs
            `depth_completion.fill_missing` on the whole frame first; do that once per frame, not here.
        mask: (H, W) bool (or 0/1) instance mask.
        K: pinhole intrinsics of the image.
        rng: the generator that draws the points.
        bbox: (y1, x1, y2, x2) instance box (label or detector box, y2/x2 exclusive); None = the mask's box.
        n_points: N points to draw (official 1024).
        image_size: S, side of the RGB crop (official 224).
        min_valid_pixels: the instance needs MORE than this many valid pixels in its window (official: 0 in
            training, 16 at test time).
        rgb_augment: optional (S, S, 3) uint8 -> (S, S, 3) uint8 colour augmentation applied to the resized
            crop before normalisation (training only).
        max_window: cap of the crop side in pixels (official 440).
        checked: the caller has checked rgb, depth_m, mask and K (the Estimator checks a frame once, at its
            door, and its masks as they arrive), so they are not checked again for every object.
    Returns:
        (InstanceInput, None) on success, (None, reason) otherwise. The text of `reason` before its first ':'
        is a short key for counting: 'bad input', 'empty mask', 'no valid depth in the mask', 'no valid pixels
        in the crop window', 'too few valid pixels'.
    """
    problem = None if checked else _input_problem(rgb, depth_m, mask, K)
    if problem is not None:
        return None, problem
    if n_points < 1 or image_size < 1:
        return None, f"bad input: n_points and image_size must be >= 1, got {n_points}, {image_size}"
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        return None, "empty mask"
    if bbox is None:
        bbox = bbox_from_mask(mask)
    try:
        bbox = tuple(int(v) for v in np.asarray(bbox).reshape(4))
    except (TypeError, ValueError):
        return None, f"bad input: bbox must hold 4 numbers (y1, x1, y2, x2), got {bbox!r}"
    h, w = depth_m.shape
    window = get_bbox(bbox, h, w, max_window)

    depth_win = depth_m[window.rmin:window.rmax, window.cmin:window.cmax]
    valid = mask[window.rmin:window.rmax, window.cmin:window.cmax] & np.isfinite(depth_win) & (depth_win > 0)
    candidates = np.flatnonzero(valid)  # flat indices into the window, row-major (width = side)
    if candidates.size == 0:
        # Tell the two causes apart: missing depth, or a box that does not cover the mask (bad detection).
        anywhere = (mask & np.isfinite(depth_m) & (depth_m > 0)).any()
        return None, "no valid pixels in the crop window" if anywhere else "no valid depth in the mask"
    if candidates.size <= min_valid_pixels:
        return None, f"too few valid pixels: {candidates.size} <= {min_valid_pixels}"

    choose = candidates[sample_choose(candidates.size, n_points, rng)]
    rows = window.rmin + choose // window.side
    cols = window.cmin + choose % window.side
    pts = pixels_to_points(rows, cols, depth_m, K).astype(np.float32)

    crop = crop_rgb(rgb, window, image_size)
    if rgb_augment is not None:
        crop = rgb_augment(crop)
    return InstanceInput(
        pts=pts,
        rgb=normalize_rgb(crop),
        choose=remap_choose(choose, window.side, image_size),
        window=window,
        n_valid=int(candidates.size),
    ), None
