"""Readers for the per-image files of the NOCS/DPDN and HouseCat6D layouts, failing with a reason, never an
assert.

Formats (architecture-facts §1.1, §1.5):
- colour `*_color.png` / `rgb/*.png`: 8-bit BGR on disk (OpenCV order); returned as (H, W, 3) uint8 RGB;
- depth `*_depth.png`, `camera_full_depths/*_composed.png`, `depth/*.png`: (H, W) uint16 millimetres, or
NOCS's
  3-channel encoded variant where depth = G·256 + R of the RGB image (channels 1 and 2 of OpenCV's BGR array)
  and 32001 marks "no depth"; returned as (H, W) float32 metres, 0 = missing;
- instance masks `*_mask.png` / `instance/*.png`: instance ids read from channel 2 of OpenCV's 3-channel read
  (for the usual grayscale PNG every channel holds the id), 255 = background; returned as (H, W) uint8;
- label pickles `*_label.pkl` and segmentation-result pickles: plain Python dicts of numpy arrays and lists.

Every reader raises `SampleError` (a `ValueError`) naming the file and what is wrong, so dataset readers can
skip and count a bad sample instead of crashing in a worker. The official loaders assert (unsupported depth
format) or crash on `None` from `cv2.imread`.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "SampleError",
    "read_color_rgb",
    "read_depth_m",
    "decode_depth_mm",
    "read_instance_mask",
    "read_pickle",
]

ENCODED_NO_DEPTH = 32001  # NOCS's "missing" value in 3-channel encoded depth images


class SampleError(ValueError):
    """A sample that cannot be used; `reason` is a short key for counting, the message says which file."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _imread(path: str | Path, flags: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise SampleError("missing file", str(path))
    image = cv2.imread(str(path), flags)
    if image is None:
        raise SampleError("unreadable file", f"OpenCV could not decode {path}")
    return image


def read_color_rgb(path: str | Path) -> np.ndarray:
    """Colour image file -> (H, W, 3) uint8 RGB (the file holds BGR as OpenCV writes it)."""
    image = _imread(path, cv2.IMREAD_COLOR)
    if image.dtype != np.uint8:
        raise SampleError("unsupported image", f"{path}: expected 8-bit colour, got {image.dtype}")
    return np.ascontiguousarray(image[:, :, ::-1])


def decode_depth_mm(raw: np.ndarray, where: str = "<array>") -> np.ndarray:
    """A depth image as read by `cv2.imread(path, -1)` -> (H, W) uint16 millimetres, 0 = missing.

    Accepts (H, W) uint16 millimetres, or the 3-channel encoded variant (depth = channel 1 · 256 + channel 2
    of the BGR array, 32001 = missing), as NOCS's `load_depth`.
    """
    if raw.ndim == 3 and raw.shape[2] >= 3:
        depth = raw[:, :, 1].astype(np.uint32) * 256 + raw[:, :, 2].astype(np.uint32)
        depth[depth == ENCODED_NO_DEPTH] = 0
        return depth.astype(np.uint16)
    if raw.ndim == 2 and raw.dtype == np.uint16:
        return raw
    raise SampleError("unsupported depth", f"{where}: expected uint16 (H, W) or 3-channel encoded depth, "
                                           f"got {raw.dtype} {raw.shape}")


def read_depth_m(path: str | Path) -> np.ndarray:
    """Depth image file (uint16 mm or 3-channel encoded) -> (H, W) float32 metres, 0 = missing."""
    return decode_depth_mm(_imread(path, cv2.IMREAD_UNCHANGED), str(path)).astype(np.float32) * np.float32(
        1e-3
    )


def read_instance_mask(path: str | Path) -> np.ndarray:
    """Instance-id image -> (H, W) uint8 ids (channel 2 of OpenCV's colour read, as the official readers)."""
    image = _imread(path, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(image[:, :, 2])


def read_pickle(path: str | Path) -> Any:
    """Unpickle a label or segmentation-result file; a missing or corrupt file raises SampleError."""
    path = Path(path)
    if not path.is_file():
        raise SampleError("missing file", str(path))
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception as exc:  # truncated files raise EOFError, UnpicklingError, ValueError, ...
        raise SampleError("unreadable file", f"{path}: {type(exc).__name__}: {exc}") from exc
