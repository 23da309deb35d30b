"""IP-Basic multi-scale depth completion, as the official CleanPose / AG-Pose / DPDN readers run it on each
frame.

Ku, Harakeh and Waslander, "In Defense of Classical Image Processing: Fast Depth Completion on the CPU" (CRV
2018). The official readers call `fill_missing(depth_mm, 1000, 1)`, i.e. IP-Basic's `fill_in_multiscale` on
metres with `max_depth = 3.0`, bins near (0.01, 1] m / medium (1, 2] m / far > 2 m, bilateral final blur and
no extrapolation, at train and test time alike ([CP utils/data_utils.py], architecture-facts §1.2 step 2).

The algorithm works on "inverted" depth (max_depth − d), so that dilation (a max filter) lets nearer surfaces
win:
1. invert valid pixels (> 0.01 m); 2. dilate each depth bin with its own cross kernel (7×7 near, 5×5 medium,
3×3 far) and paste far → medium → near; 3. close small holes (5×5); 4. median-blur valid pixels (5×5);
5. fill the empty pixels below each column's first valid pixel with a 9×9 dilation; 6. six rounds of masked
5×5 dilation for the large holes, again only below the top valid pixel; 7. median then bilateral blur of the
valid pixels; 8. invert back.

Differences from the official code (outputs are the same for every pixel a reader can use):
- it works on metres directly instead of mm → m → mm;
- pixels deeper than `max_depth` invert to negative values; the official code leaves them negative in its
output,
  here they come out as 0 (invalid), which is what every caller's `depth > 0` test already made of them;
- the per-column Python loops are vectorised.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["fill_missing", "fill_missing_in_columns", "REACH_PX"]

_FULL_5 = np.ones((5, 5), np.uint8)
_FULL_9 = np.ones((9, 9), np.uint8)


def _cross(size: int) -> np.ndarray:
    k = np.zeros((size, size), np.uint8)
    k[size // 2, :] = 1
    k[:, size // 2] = 1
    return k


_CROSS_3, _CROSS_5, _CROSS_7 = _cross(3), _cross(5), _cross(7)
# How far (px) across columns an output pixel of `fill_missing` depends on its input: the kernel half-widths
# of steps 2-7 (3 + 4 + 2 + 4 + 6 x 2 + 2 + 2). The top-of-column mask looks along whole columns, never
# across.
REACH_PX = 29
_VALID = 0.01  # metres (inverted depth): IP-Basic's "is this pixel filled" threshold


def _below_top_valid(valid: np.ndarray) -> np.ndarray:
    """(H, W) bool: True at and below the first True pixel of each column (all True for an empty column).

    IP-Basic never fills the region above a column's topmost measurement (no extrapolation); an empty column
    has argmax 0, so it is fully "below", exactly as the reference loop behaves.
    """
    top = np.argmax(valid, axis=0)  # (W,) first valid row per column, 0 when none
    return np.arange(valid.shape[0])[:, None] >= top[None, :]


def fill_missing(depth_m: np.ndarray, max_depth: float = 3.0, near_max: float = 1.0,
                 med_max: float = 2.0) -> np.ndarray:
    """Complete a depth image: (H, W) metres, 0 = missing -> (H, W) float32 metres, 0 = still missing.

    Args:
        depth_m: (H, W) depth in metres; 0, negative and non-finite values are treated as missing.
        max_depth: inversion offset in metres (official 3.0); deeper measurements are dropped (become 0).
        near_max, med_max: upper bounds (m) of the near and medium dilation bins (official 1.0 and 2.0).
    Returns:
        (H, W) float32 completed depth in metres. Valid input pixels keep their value up to the median and
        bilateral smoothing (exactly on locally planar-constant regions); holes below the first measurement of
        their column are filled from their neighbours.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"fill_missing expects a (H, W) depth image, got shape {depth.shape}")
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0.0)).astype(np.float32)
    max_depth = np.float32(max_depth)

    # Bin masks before inversion.
    near = (depth > _VALID) & (depth <= near_max)
    med = (depth > near_max) & (depth <= med_max)
    far = depth > med_max

    # 1. Invert (and offset).
    inv = depth.copy()
    valid = inv > _VALID
    np.copyto(inv, max_depth - inv, where=valid)

    # 2. Multi-scale dilation, pasted from far to near so that nearer surfaces win.
    s2 = inv.copy()
    for bin_mask, kernel in ((far, _CROSS_3), (med, _CROSS_5), (near, _CROSS_7)):
        dilated = cv2.dilate(inv * bin_mask, kernel)
        filled = dilated > _VALID
        np.copyto(s2, dilated, where=filled)

    # 3. Small hole closure; 4. median blur of the valid pixels (outlier removal).
    s3 = cv2.morphologyEx(s2, cv2.MORPH_CLOSE, _FULL_5)
    s4 = s3.copy()
    blurred = cv2.medianBlur(s3, 5)
    valid = s3 > _VALID
    np.copyto(s4, blurred, where=valid)

    # 5. Hole fill below each column's top measurement.
    empty = ~(s4 > _VALID) & _below_top_valid(s4 > _VALID)
    dilated = cv2.dilate(s4, _FULL_9)
    s5 = s4.copy()
    np.copyto(s5, dilated, where=empty)

    # 6. Large holes: repeated masked dilations (the top mask is recomputed after step 5, as in IP-Basic).
    top_mask = _below_top_valid(s5 > _VALID)
    s7 = s5.copy()
    for _ in range(6):
        empty = (s7 < _VALID) & top_mask
        dilated = cv2.dilate(s7, _FULL_5)
        np.copyto(s7, dilated, where=empty)

    # 7. Median, then bilateral blur of the valid pixels (the same mask for both, as in IP-Basic).
    valid = (s7 > _VALID) & top_mask
    blurred = cv2.medianBlur(s7, 5)
    np.copyto(s7, blurred, where=valid)
    blurred = cv2.bilateralFilter(s7, 5, 0.5, 2.0)
    np.copyto(s7, blurred, where=valid)

    # 8. Invert back; anything that was never filled (or lay beyond max_depth) is 0.
    out = np.zeros_like(s7)
    filled = s7 > _VALID
    np.copyto(out, max_depth - s7, where=filled)
    out[out < 0] = 0.0
    return out


def fill_missing_in_columns(depth_m: np.ndarray, c0: int, c1: int, **options) -> np.ndarray:
    """`fill_missing` for the columns [c0, c1); other columns may be left unfilled (missing depth as 0).

    The values in [c0, c1) are identical to those of the whole-frame `fill_missing`: it runs on that column
    band widened by more than `REACH_PX` on each side, over the full height (each column's topmost measurement
    matters). The Estimator fills only the columns its objects' crop windows use.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    width = depth.shape[1] if depth.ndim == 2 else 0
    c0, c1 = max(int(c0), 0), min(int(c1), width)
    lo, hi = max(c0 - REACH_PX - 3, 0), min(c1 + REACH_PX + 3, width)
    if c1 <= c0 or (lo == 0 and hi == width):
        return fill_missing(depth, **options) if c1 > c0 else depth.copy()
    out = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0.0)).astype(np.float32)
    out[:, c0:c1] = fill_missing(depth[:, lo:hi], **options)[:, c0 - lo:c1 - lo]
    return out
