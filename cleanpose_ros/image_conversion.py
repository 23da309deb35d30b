"""sensor_msgs/Image <-> numpy for the encodings the node accepts, with the checks cv_bridge would make.

ROS 2 `cv_bridge` is not available from the PyPI wheels (and its PyPI namesakes are ROS 1 ports), and we need
only five encodings, so this is a small numpy implementation that validates width, height, step, buffer size
and byte order instead of trusting them (a wrong `step` is a classic source of sheared images). The node
checks every message once, where it enters (`image_problem`: subscriptions and the ~/estimate service); the
conversions take checked messages. Depth leaves here as the sensor gave it, with its unit: the Estimator
converts it.
"""

from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import Image

from cleanpose_core.inference.estimator import DepthUnit

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "16UC1": (np.uint16, 1),
    "mono16": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


class ImageConversionError(ValueError):
    """An array that cannot become an image message of the encoding asked for; the message says why."""


def image_problem(msg: Image, accepted=ENCODINGS) -> str | None:
    """Why the message cannot be read as an image of one of the `accepted` encodings, or None. Cheap (no
    copy): the node checks every arriving message with it, so a malformed one never displaces a good one."""
    if msg.encoding not in accepted:
        return f"unsupported encoding {msg.encoding!r}; accepted: {', '.join(accepted)}"
    dtype, channels = ENCODINGS[msg.encoding]
    h, w = int(msg.height), int(msg.width)
    if h <= 0 or w <= 0:
        return f"empty image ({w}x{h})"
    row_bytes = w * channels * np.dtype(dtype).itemsize
    if msg.step < row_bytes:
        return f"step {msg.step} is smaller than width*channels*bytes = {row_bytes}"
    if len(msg.data) < msg.step * h:
        return f"buffer holds {len(msg.data)} bytes, step*height needs {msg.step * h}"
    return None


def image_to_numpy(msg: Image) -> np.ndarray:
    """Image message that `image_problem` accepted -> (H, W) or (H, W, C) array in the message's own encoding
    and dtype (a copy)."""
    dtype, channels = ENCODINGS[msg.encoding]
    h, w = int(msg.height), int(msg.width)
    itemsize = np.dtype(dtype).itemsize
    row_bytes = w * channels * itemsize
    data = np.frombuffer(
        bytes(msg.data) if not isinstance(msg.data, (bytes, bytearray)) else msg.data, np.uint8
    )
    rows = data[: msg.step * h].reshape(h, msg.step)[:, :row_bytes]
    big_endian_data = bool(msg.is_bigendian)
    order = ">" if big_endian_data else "<"
    array = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order) if itemsize > 1 else dtype)
    array = array.astype(dtype, copy=False)  # to native byte order
    return array.reshape(h, w, channels) if channels > 1 else array.reshape(h, w)


def rgb_from_image(msg: Image) -> np.ndarray:
    """Colour image message (checked, one of COLOUR_ENCODINGS) -> (H, W, 3) uint8 RGB."""
    array = image_to_numpy(msg)
    if msg.encoding == "mono8":
        return np.repeat(array[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        array = array[:, :, 2::-1]
    return np.ascontiguousarray(array[:, :, :3])


def depth_from_image(msg: Image, unit: str = "auto") -> tuple[np.ndarray, DepthUnit]:
    """Depth image message (checked, one of DEPTH_ENCODINGS) -> ((H, W) array as the sensor gave it, its
    unit).

    unit: "auto" takes 16UC1/mono16 as millimetres and 32FC1 as metres (REP 118); "mm" or "m" override it for
    drivers that do otherwise.
    """
    if unit == "auto":
        unit = "m" if msg.encoding == "32FC1" else "mm"
    return image_to_numpy(msg), unit


def numpy_to_image(array: np.ndarray, encoding: str, header=None) -> Image:
    """(H, W) or (H, W, C) array -> Image message in `encoding` (native byte order, tightly packed)."""
    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding {encoding!r}")
    dtype, channels = ENCODINGS[encoding]
    array = np.asarray(array)
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        raise ImageConversionError(f"array of shape {array.shape} does not fit encoding {encoding}")
    array = np.ascontiguousarray(array.astype(dtype, copy=False))
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = int(array.shape[1] * channels * array.dtype.itemsize)
    msg.data = array.tobytes()
    return msg
