"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge.

Incoming 8-bit images become numpy *views* of the message buffer (no copy) whenever the
layout allows: rgb8/bgr8 with any row padding, rgba8/bgra8 (alpha dropped by striding),
mono8.  Only mono8 (expanded to three channels for the network) and compressed images
(decoded) allocate.  Every malformed message raises ConversionError with one sentence
saying what is wrong, so the node can log it, count it and go on.
"""

from __future__ import annotations

import array as pyarray

import numpy as np

# encoding -> (channels, colour order the engine is told, channel indices to keep)
ENCODINGS = {
    "rgb8": (3, "rgb", None),
    "bgr8": (3, "bgr", None),
    "rgba8": (4, "rgb", slice(0, 3)),
    "bgra8": (4, "bgr", slice(0, 3)),
    "mono8": (1, "rgb", None),
    "8uc1": (1, "rgb", None),
    "8uc3": (3, "bgr", None),   # OpenCV's default order
}
SIXTEEN_BIT = {"mono16", "rgb16", "bgr16", "rgba16", "bgra16", "16uc1", "16uc3", "16sc1",
               "32fc1", "32sc1", "64fc1"}
MAX_PIXELS = 64_000_000          # anything larger is a broken or hostile message
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


class ConversionError(ValueError):
    """A message that cannot be turned into an image."""


def _check_size(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ConversionError(f"{what} has zero size ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ConversionError(f"{what} claims an absurd size of {width}x{height} pixels "
                              f"(more than {MAX_PIXELS // 1_000_000} megapixels)")


def image_to_numpy(msg) -> tuple[np.ndarray, str]:
    """(array, colour order) for a sensor_msgs/Image.  The array is H x W x 3 uint8 ('rgb'
    or 'bgr' order) for colour encodings, H x W uint8 for mono8; a view where possible."""
    encoding = msg.encoding.strip().lower()
    _check_size(msg.width, msg.height, f"{msg.encoding or 'unencoded'} image")
    if encoding in SIXTEEN_BIT or "16" in encoding or "32" in encoding:
        raise ConversionError(f"image encoding {msg.encoding!r} is not 8-bit; only rgb8, bgr8, "
                              f"rgba8, bgra8 and mono8 are supported")
    if encoding not in ENCODINGS:
        raise ConversionError(f"unknown image encoding {msg.encoding!r}; use rgb8, bgr8, rgba8, "
                              f"bgra8 or mono8")
    channels, order, keep = ENCODINGS[encoding]
    row = msg.width * channels
    if msg.step < row:
        raise ConversionError(f"image step {msg.step} is smaller than width x channels = {row} "
                              f"for {msg.width}x{msg.height} {msg.encoding}")
    data = np.frombuffer(msg.data, np.uint8)
    needed = msg.step * (msg.height - 1) + row
    if data.size < needed:
        raise ConversionError(f"image data is {data.size} bytes, shorter than step x height = "
                              f"{msg.step * msg.height} for {msg.width}x{msg.height} {msg.encoding}")
    shape = (msg.height, msg.width, channels)
    strides = (msg.step, channels, 1)
    # writeable only mirrors the buffer (torch warns on read-only arrays); nobody writes to it
    array = np.lib.stride_tricks.as_strided(data, shape, strides, writeable=data.flags.writeable)
    if keep is not None:
        array = array[..., keep]
    if channels == 1:
        array = array[..., 0]
    return array, order


def compressed_to_numpy(msg) -> tuple[np.ndarray, str]:
    """(H x W x 3 uint8, 'bgr') for a sensor_msgs/CompressedImage holding JPEG or PNG.
    The format field may be plain ('jpeg') or image_transport's ('rgb8; jpeg compressed bgr8')."""
    import cv2

    fmt = msg.format.strip().lower()
    if fmt and not any(f in fmt for f in COMPRESSED_FORMATS):
        raise ConversionError(f"compressed image format {msg.format!r} is not jpeg or png")
    data = np.frombuffer(msg.data, np.uint8)
    if data.size == 0:
        raise ConversionError("compressed image has no data")
    _check_header_size(data)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ConversionError(f"compressed image ({data.size} bytes, format {msg.format!r}) "
                              f"is corrupt and could not be decoded")
    return image, "bgr"


def _check_header_size(data: np.ndarray) -> None:
    """Refuse absurd sizes before decoding allocates them (PNG IHDR, JPEG SOF)."""
    raw = data[:65536].tobytes()
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        _check_size(int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big"), "PNG image")
        return
    if raw[:2] != b"\xff\xd8":
        return
    i = 2
    while i + 9 < len(raw):
        if raw[i] != 0xFF:
            return
        marker = raw[i + 1]
        length = int.from_bytes(raw[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h = int.from_bytes(raw[i + 5:i + 7], "big")
            w = int.from_bytes(raw[i + 7:i + 9], "big")
            _check_size(w, h, "JPEG image")
            return
        i += 2 + length


def frame_from_msg(msg) -> tuple[np.ndarray, str]:
    """What the engine takes: H x W x 3 uint8 and its colour order, from either message."""
    if hasattr(msg, "format"):
        return compressed_to_numpy(msg)
    array, order = image_to_numpy(msg)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return array, order


def numpy_to_image(array: np.ndarray, encoding: str | None = None, header=None):
    """sensor_msgs/Image from an H x W (mono8) or H x W x 3/4 uint8 array."""
    from sensor_msgs.msg import Image

    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ConversionError(f"only uint8 arrays become Images, got {array.dtype}")
    channels = 1 if array.ndim == 2 else array.shape[2]
    if encoding is None:
        encoding = {1: "mono8", 3: "rgb8", 4: "rgba8"}.get(channels)
    if encoding not in ENCODINGS or ENCODINGS[encoding][0] != channels:
        raise ConversionError(f"encoding {encoding!r} does not fit a {channels}-channel array")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels
    # array.array is what the message stores: built straight from the numpy buffer it is
    # one copy, where bytes would be copied twice (and checked element by element in
    # Python when ROS_PYTHON_CHECK_FIELDS=1).
    data = pyarray.array("B")
    data.frombytes(np.ascontiguousarray(array).data)
    msg.data = data
    return msg


def numpy_to_compressed(array: np.ndarray, fmt: str = "jpeg", header=None, order: str = "rgb"):
    """sensor_msgs/CompressedImage (JPEG or PNG) from an H x W x 3 uint8 array."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    if fmt not in ("jpeg", "png"):
        raise ConversionError(f"compressed format must be jpeg or png, got {fmt!r}")
    bgr = array[..., ::-1] if (array.ndim == 3 and order == "rgb") else array
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(bgr))
    if not ok:
        raise ConversionError(f"could not encode a {array.shape} array as {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt
    msg.data = buf.tobytes()
    return msg
