"""Image message conversion: round trips, encodings, units and every malformed-message error path."""

import numpy as np
import pytest
from sensor_msgs.msg import Image

from cleanpose_ros.image_conversion import (
    ImageConversionError,
    depth_from_image,
    image_to_numpy,
    numpy_to_image,
    rgb_from_image,
)

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("encoding,shape,dtype", [
    ("rgb8", (5, 7, 3), np.uint8), ("bgra8", (4, 3, 4), np.uint8), ("mono8", (6, 2), np.uint8),
    ("16UC1", (5, 9), np.uint16), ("32FC1", (3, 8), np.float32),
])
def test_round_trip_is_exact(encoding, shape, dtype):
    array = (RNG.random(shape) * 60000).astype(dtype)
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(array, encoding)), array)


def test_bgr_becomes_rgb_and_mono_is_replicated():
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 10  # blue
    bgr[..., 2] = 200  # red
    rgb = rgb_from_image(numpy_to_image(bgr, "bgr8"))
    assert rgb[0, 0].tolist() == [200, 0, 10]
    mono = rgb_from_image(numpy_to_image(np.full((2, 3), 7, np.uint8), "mono8"))
    assert mono.shape == (2, 3, 3) and (mono == 7).all()


def test_depth_units_follow_encoding_and_override():
    mm = np.array([[1000, 0], [2500, 65535]], np.uint16)
    np.testing.assert_allclose(depth_from_image(numpy_to_image(mm, "16UC1")), [[1.0, 0.0], [2.5, 65.535]])
    metres = np.array([[1.5, np.nan], [-1.0, np.inf]], np.float32)
    np.testing.assert_allclose(depth_from_image(numpy_to_image(metres, "32FC1")), [[1.5, 0], [0, 0]])
    # A driver that writes millimetres into 32FC1: the override fixes it.
    np.testing.assert_allclose(depth_from_image(numpy_to_image(metres * 1000, "32FC1"), unit="mm")[0, 0], 1.5)


def test_padded_rows_and_big_endian_are_honoured():
    depth = np.array([[1, 2, 3], [4, 5, 6]], np.uint16)
    msg = Image(height=2, width=3, encoding="16UC1", is_bigendian=1, step=8)
    rows = [depth[r].astype(">u2").tobytes() + b"\xff\xff" for r in range(2)]  # 2 bytes of padding per row
    msg.data = b"".join(rows)
    np.testing.assert_array_equal(image_to_numpy(msg), depth)


@pytest.mark.parametrize("msg,match", [
    (Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8)), "unsupported encoding"),
    (Image(height=0, width=2, encoding="mono8", step=2), "empty image"),
    (Image(height=2, width=4, encoding="rgb8", step=6, data=bytes(24)), "step 6 is smaller"),
    (Image(height=4, width=4, encoding="mono8", step=4, data=bytes(10)), "buffer holds 10 bytes"),
])
def test_malformed_images_raise_a_clear_error(msg, match):
    with pytest.raises(ImageConversionError, match=match):
        image_to_numpy(msg)


def test_wrong_kind_of_image_is_rejected():
    with pytest.raises(ImageConversionError, match="expected 16UC1"):
        depth_from_image(numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8"))
    with pytest.raises(ImageConversionError, match="colour image has encoding '32FC1'"):
        rgb_from_image(numpy_to_image(np.zeros((2, 2), np.float32), "32FC1"))
