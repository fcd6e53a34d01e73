"""
sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge.

The ROS adapter of ``icnet_ros/data/image_io.py``, which holds the pixel layouts (no ROS
there, bags use it too).

Incoming images become numpy *views* of the message buffer (no copy) whenever the layout
allows: rgb8/bgr8 with any row padding, rgba8/bgra8 (alpha dropped by striding), mono8,
and the 16-bit rgb16/bgr16/rgba16/bgra16/mono16 (their high bytes, by striding).  Bayer
(bayer_rggb8 ...), YUV 4:2:2 (yuv422/uyvy, yuv422_yuy2/yuyv) and NV21/NV12/NV24 are
converted by OpenCV; mono is expanded to three channels for the network and compressed
images are decoded.  Every malformed message raises ConversionError with one sentence
saying what is wrong, so the node can log it, count it and go on.
"""

from __future__ import annotations

import array as pyarray

import numpy as np

from ..data import image_io
from ..data.image_io import check_size as _check_size
from ..data.image_io import DIRECT as ENCODINGS  # the 8-bit layouts numpy_to_image writes
from ..data.image_io import ImageError as ConversionError  # one error type for ROS and bag readers

COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


def uint8_array(data) -> pyarray.array:
    """
    Return what a message's uint8[] field stores, array('B'), from bytes or any uint8 buffer.

    Assigned as array('B') the field keeps it as is; bytes would be checked element by
    element in Python (always on Humble; with ROS_PYTHON_CHECK_FIELDS=1 later), which for
    a 1.4 MB frame costs far more than the one copy made here.
    """
    out = pyarray.array("B")
    out.frombytes(data if isinstance(data, (bytes, bytearray)) else np.ascontiguousarray(data, np.uint8).data)
    return out


def image_to_numpy(msg) -> tuple[np.ndarray, str]:
    """
    (array, colour order) for a sensor_msgs/Image.

    The array is H x W x 3 uint8 ('rgb' or 'bgr' order) for colour encodings, H x W uint8
    for grey ones; a view where possible.
    """
    return image_io.decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.data,
                               bool(msg.is_bigendian))


def compressed_to_numpy(msg) -> tuple[np.ndarray, str]:
    """
    (H x W x 3 uint8, 'bgr') for a sensor_msgs/CompressedImage holding JPEG or PNG.

    The format field may be plain ('jpeg') or image_transport's ('rgb8; jpeg compressed bgr8').
    """
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
    """Return what the engine takes: H x W x 3 uint8 and its colour order, from either message."""
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
    msg.data = uint8_array(array)   # one copy, where bytes would be two (and checked, uint8_array)
    return msg


def frame_to_image(frame: np.ndarray, encoding: str, order: str = "rgb", header=None):
    """
    Return a sensor_msgs/Image in any encoding image_io accepts from an H x W x 3 uint8 frame.

    Encodings such as bayer_rggb8, yuv422, nv21, rgb16 ...: what a camera driver would
    publish.  Bayer and YUV 4:2:0 messages of an odd-sized frame leave out its last row
    or column.
    """
    from sensor_msgs.msg import Image

    data, step = image_io.encode_raw(frame[..., ::-1] if order == "bgr" else frame, encoding)
    msg = Image()
    if header is not None:
        msg.header = header
    # an odd last row or column is cut off for Bayer and YUV layouts
    msg.height, msg.width = image_io.fit_size(encoding, int(frame.shape[0]), int(frame.shape[1]))
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, step
    msg.data = uint8_array(data.view(np.uint8))
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
    msg.data = uint8_array(buf)
    return msg
