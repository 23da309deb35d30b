"""Image message conversion: round trips, encodings, units and every malformed-message check."""

import numpy as np
import pytest
from sensor_msgs.msg import Image

from cleanpose_ros.image_conversion import (
    COLOUR_ENCODINGS,
    DEPTH_ENCODINGS,
    ImageConversionError,
    depth_from_image,
    image_problem,
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


def test_depth_leaves_as_the_sensor_gave_it_with_the_unit_of_its_encoding_or_the_override():
    # The Estimator converts to metres (once); here depth keeps its values and dtype, and gets its unit.
    mm = np.array([[1000, 0], [2500, 65535]], np.uint16)
    depth, unit = depth_from_image(numpy_to_image(mm, "16UC1"))
    assert unit == "mm" and depth.dtype == np.uint16
    np.testing.assert_array_equal(depth, mm)
    metres = np.array([[1.5, np.nan], [-1.0, np.inf]], np.float32)
    depth, unit = depth_from_image(numpy_to_image(metres, "32FC1"))
    assert unit == "m"
    np.testing.assert_array_equal(depth, metres)
    # A driver that writes millimetres into 32FC1: the override says so.
    assert depth_from_image(numpy_to_image(metres * 1000, "32FC1"), unit="mm")[1] == "mm"


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
def test_malformed_images_are_named_by_the_check_the_node_makes_on_arrival(msg, match):
    assert match in image_problem(msg)


def test_wrong_kind_of_image_is_rejected():
    assert "unsupported encoding 'rgb8'; accepted: 16UC1" in image_problem(
        numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8"), DEPTH_ENCODINGS)
    assert "unsupported encoding '32FC1'; accepted: rgb8" in image_problem(
        numpy_to_image(np.zeros((2, 2), np.float32), "32FC1"), COLOUR_ENCODINGS)


def test_an_array_that_does_not_fit_the_encoding_is_refused():
    with pytest.raises(ImageConversionError, match="does not fit encoding rgb8"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "rgb8")
