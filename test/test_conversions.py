"""Image / CompressedImage <-> numpy without cv_bridge: views, round trips, bad messages."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import HAVE_RCLPY

pytestmark = pytest.mark.skipif(not HAVE_RCLPY, reason="sensor_msgs does not import")

if HAVE_RCLPY:
    from sensor_msgs.msg import CompressedImage, Image

    from icnet_ros.ros.conversions import (ConversionError, compressed_to_numpy, frame_from_msg, frame_to_image,
                                           image_to_numpy, numpy_to_compressed, numpy_to_image)

RNG = np.random.default_rng(0)


def msg(height, width, encoding, step, data):
    m = Image()
    m.height, m.width, m.encoding, m.step, m.data = height, width, encoding, step, data
    return m


@pytest.mark.parametrize("encoding,channels,order", [("rgb8", 3, "rgb"), ("bgr8", 3, "bgr"),
                                                     ("rgba8", 4, "rgb"), ("bgra8", 4, "bgr"),
                                                     ("mono8", 1, "rgb")])
def test_round_trip_and_zero_copy(encoding, channels, order):
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    a = RNG.integers(0, 256, shape, dtype=np.uint8)
    m = numpy_to_image(a, encoding)
    assert (m.height, m.width, m.step, m.encoding) == (5, 7, 7 * channels, encoding)
    out, got_order = image_to_numpy(m)
    assert got_order == order
    expected = a[..., :3] if channels == 4 else a
    np.testing.assert_array_equal(out, expected)
    assert np.shares_memory(out, np.frombuffer(m.data, np.uint8)), "not a view of the message"
    f, _ = frame_from_msg(m)
    assert f.shape == (5, 7, 3) and f.dtype == np.uint8


def test_padded_rows_are_a_view():
    a = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :18] = a.reshape(4, 18)
    m = msg(4, 6, "rgb8", 20, padded.tobytes())
    out, _ = image_to_numpy(m)
    np.testing.assert_array_equal(out, a)
    assert np.shares_memory(out, np.frombuffer(m.data, np.uint8))
    # the last row need not carry its padding
    m2 = msg(4, 6, "rgb8", 20, padded.tobytes()[:-2])
    np.testing.assert_array_equal(image_to_numpy(m2)[0], a)


def test_mono8_becomes_three_channels():
    a = RNG.integers(0, 256, (3, 4), dtype=np.uint8)
    f, order = frame_from_msg(numpy_to_image(a))
    assert f.shape == (3, 4, 3) and (f == a[..., None]).all() and order == "rgb"


@pytest.mark.parametrize("make,words", [
    (lambda: msg(4, 6, "rgb8", 18, bytes(18 * 4 - 1)), "shorter than step x height"),
    (lambda: msg(4, 6, "rgb8", 10, bytes(100)), "step 10 is smaller"),
    (lambda: msg(4, 6, "16UC1", 12, bytes(48)), "depth or other non-camera data"),
    (lambda: msg(4, 6, "32FC1", 24, bytes(96)), "depth or other non-camera data"),
    (lambda: msg(4, 6, "64FC1", 48, bytes(192)), "depth or other non-camera data"),
    (lambda: msg(4, 6, "yuv9000", 18, bytes(72)), "unknown image encoding"),
    (lambda: msg(4, 6, "mono16", 12, bytes(47)), "shorter than step x height"),
    (lambda: msg(4, 6, "rgb16", 20, bytes(200)), "step 20 is smaller"),
    (lambda: msg(5, 6, "bayer_rggb8", 6, bytes(30)), "needs an even width and height"),
    (lambda: msg(4, 5, "yuv422", 10, bytes(40)), "needs an even width"),
    (lambda: msg(4, 6, "nv21", 6, bytes(24)), "shorter than step x height"),
    (lambda: msg(4, 6, "nv24", 6, bytes(60)), "shorter than step x height"),
    (lambda: msg(4, 6, "", 18, bytes(72)), "unknown image encoding"),
    (lambda: msg(0, 6, "rgb8", 18, b""), "zero size"),
    (lambda: msg(4, 0, "rgb8", 0, b""), "zero size"),
    (lambda: msg(100000, 100000, "rgb8", 300000, bytes(10)), "absurd size"),
])
def test_bad_images_give_one_clear_error(make, words):
    with pytest.raises(ConversionError, match=words):
        image_to_numpy(make())


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_round_trip(fmt):
    a = RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    m = numpy_to_compressed(a, fmt)
    assert m.format == fmt
    out, order = compressed_to_numpy(m)
    assert order == "bgr" and out.shape == (16, 24, 3)
    if fmt == "png":
        np.testing.assert_array_equal(out[..., ::-1], a)
    # image_transport's format string is understood too
    m.format = f"rgb8; {fmt} compressed bgr8"
    assert compressed_to_numpy(m)[0].shape == (16, 24, 3)


def _compressed(data, fmt="jpeg"):
    m = CompressedImage()
    m.format, m.data = fmt, data
    return m


def test_bad_compressed_images():
    png = bytes(numpy_to_compressed(np.zeros((8, 8, 3), np.uint8), "png").data)
    with pytest.raises(ConversionError, match="corrupt"):
        compressed_to_numpy(_compressed(b"\xff\xd8\xff" + bytes(500)))
    with pytest.raises(ConversionError, match="no data"):
        compressed_to_numpy(_compressed(b""))
    with pytest.raises(ConversionError, match="not jpeg or png"):
        compressed_to_numpy(_compressed(png, "theora"))
    huge = png[:16] + (70000).to_bytes(4, "big") * 2 + png[24:]
    with pytest.raises(ConversionError, match="absurd size"):
        compressed_to_numpy(_compressed(huge, "png"))
    jpeg = bytes(numpy_to_compressed(np.zeros((8, 8, 3), np.uint8), "jpeg").data)
    sof = jpeg.index(b"\xff\xc0")
    huge_jpeg = jpeg[:sof + 5] + (60000).to_bytes(2, "big") * 2 + jpeg[sof + 9:]
    with pytest.raises(ConversionError, match="absurd size"):
        compressed_to_numpy(_compressed(huge_jpeg))


def test_numpy_to_image_errors():
    with pytest.raises(ConversionError, match="uint8"):
        numpy_to_image(np.zeros((2, 2), np.float32))
    with pytest.raises(ConversionError, match="does not fit"):
        numpy_to_image(np.zeros((2, 2, 3), np.uint8), "mono8")
    with pytest.raises(ConversionError, match="jpeg or png"):
        numpy_to_compressed(np.zeros((2, 2, 3), np.uint8), "gif")


def test_outgoing_data_is_the_message_array_type_and_passes_field_checks():
    import array

    mask = np.arange(6 * 5, dtype=np.uint8).reshape(6, 5)[:, ::-1]  # not contiguous
    msg = numpy_to_image(mask, "mono8")
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    assert bytes(msg.data) == np.ascontiguousarray(mask).tobytes()
    # Jazzy and newer check fields when asked (what ROS_PYTHON_CHECK_FIELDS=1 turns on);
    # Humble's messages take no check_fields and always check (under __debug__).
    checked = Image(check_fields=True) if "_check_fields" in Image.__slots__ else Image()
    checked.data = msg.data
    assert bytes(checked.data) == bytes(msg.data)


def smooth_frame(h=48, w=64):
    """Return a camera-like frame (smooth, so demosaicing and chroma subsampling lose little)."""
    import cv2

    coarse = np.random.default_rng(1).integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


# encoding -> (largest mean absolute error against the RGB frame, zero-copy view?)
DRIVER_ENCODINGS = {
    "rgb16": (0, True), "bgr16": (0, True), "rgba16": (0, True), "bgra16": (0, True),
    "bayer_rggb8": (2, False), "bayer_bggr8": (2, False), "bayer_gbrg8": (2, False),
    "bayer_grbg8": (2, False), "bayer_rggb16": (2, False),
    "yuv422": (5, False), "uyvy": (5, False), "yuv422_yuy2": (5, False), "yuyv": (5, False),
    "nv21": (8, False), "nv12": (8, False), "nv24": (1, False),
}


@pytest.mark.parametrize("encoding", DRIVER_ENCODINGS)
def test_driver_encodings_give_the_rgb_frame(encoding):
    """
    Check that what Bayer, YUV 4:2:2, NV21/NV24 and 16-bit cameras publish comes out as the frame.

    Bayer from Spinnaker/Pylon/Aravis, YUV 4:2:2 from usb_cam/v4l2_camera.  The frame comes
    out colour order and all, as a view for 16 bit.
    """
    rgb = smooth_frame()
    m = frame_to_image(rgb, encoding)
    assert (m.height, m.width, m.encoding, m.is_bigendian) == (48, 64, encoding, 0)
    array, order = image_to_numpy(m)
    got = array if order == "rgb" else array[..., ::-1]
    tolerance, view = DRIVER_ENCODINGS[encoding]
    assert got.shape == (48, 64, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - rgb).mean() <= tolerance, encoding
    assert np.shares_memory(array, np.frombuffer(m.data, np.uint8)) == view
    # the wrong colour order would be far off: the check above sees swaps
    assert np.abs(got[..., ::-1].astype(int) - rgb).mean() > 10


def test_mono16_is_the_high_byte_and_big_endian_is_read():
    grey = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) % 256
    samples = (grey * 256 + 100).astype(np.uint16)       # high byte: the grey value
    for order, big in (("<u2", 0), (">u2", 1)):
        m = msg(48, 64, "mono16", 128, samples.astype(order).tobytes())
        m.is_bigendian = big
        array, _ = image_to_numpy(m)
        np.testing.assert_array_equal(array, grey)
        assert np.shares_memory(array, np.frombuffer(m.data, np.uint8))
        assert frame_from_msg(m)[0].shape == (48, 64, 3)


def test_padded_rows_for_bayer_and_yuv():
    rgb = smooth_frame()
    for encoding in ("bayer_rggb8", "yuv422_yuy2", "rgb16"):
        tight = frame_to_image(rgb, encoding)
        rows = np.frombuffer(tight.data, np.uint8).reshape(48, tight.step)
        padded = np.zeros((48, tight.step + 12), np.uint8)
        padded[:, :tight.step] = rows
        m = msg(48, 64, encoding, tight.step + 12, padded.tobytes())
        np.testing.assert_array_equal(image_to_numpy(m)[0], image_to_numpy(tight)[0])


def test_encoding_names_are_case_insensitive_and_refusals_list_what_is_accepted():
    m = frame_to_image(smooth_frame(), "bayer_rggb8")
    m.encoding = "BAYER_RGGB8"
    assert image_to_numpy(m)[0].shape == (48, 64, 3)
    with pytest.raises(ConversionError, match=r"^unknown image encoding 'h264'; accepted: .*bayer_rggb8.*nv21"):
        image_to_numpy(msg(4, 6, "h264", 18, bytes(72)))
    with pytest.raises(ConversionError, match="cannot encode"):
        frame_to_image(smooth_frame(), "32FC1")


@pytest.mark.parametrize("encoding,size", [("nv21", (46, 62)), ("bayer_gbrg8", (46, 62)),
                                           ("yuv422", (47, 62)), ("rgb16", (47, 63))])
def test_odd_frames_lose_the_row_or_column_the_layout_cannot_hold(encoding, size):
    """KITTI frames are 375 rows high: `play` still sends them as Bayer or NV21."""
    rgb = smooth_frame()[:47, :63]
    m = frame_to_image(rgb, encoding)
    assert (m.height, m.width) == size
    array, order = image_to_numpy(m)
    got = array if order == "rgb" else array[..., ::-1]
    assert np.abs(got.astype(int) - rgb[:size[0], :size[1]]).mean() < 8
