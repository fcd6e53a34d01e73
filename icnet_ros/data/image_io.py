"""
Raw camera pixel layouts <-> the network's 8-bit colour input, without ROS.

One table of the sensor_msgs/Image encodings real drivers publish, shared by the node's
message adapter (``ros/conversions.py``) and bag reading (``bags/``):

- rgb8, bgr8, rgba8, bgra8, mono8 (8UC1, 8UC3): numpy *views* of the buffer (no copy), any
  row padding; alpha is dropped by striding.
- rgb16, bgr16, rgba16, bgra16, mono16: views too.  16-bit camera values are full scale
  (the encoding says so), so the 8-bit image is the high byte of each sample, which is a
  strided view at byte offset 1 (little endian) or 0 (big endian).
- bayer_rggb8/bggr8/gbrg8/grbg8 (and their 16-bit twins): demosaiced by OpenCV.
- yuv422 / uyvy (UYVY) and yuv422_yuy2 / yuyv (YUYV), nv21, nv12 (4:2:0) and nv24 (4:4:4):
  converted by OpenCV with BT.601 video-range coefficients, as OpenCV's YUV codes do.

Depth and other non-image data (16UC1, 32FC1 ...) and layouts that do not fit (odd sizes
for Bayer/YUV, short data) raise ImageError with one sentence saying what is wrong.
``encode_raw`` is the reverse, for the replay player and the tests.

Image files and encoded bytes live here too, for datasets, bags, play and preview: the
extensions read (``IMAGE_EXTS``, ``list_images``), ``read_image`` / ``read_id_mask`` from a
path or an ``Encoded`` PNG/JPEG frame, and KITTI road colour ground truth
(``decode_kitti_gt``, ``read_kitti_gt``); a file that cannot be used raises DataError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re

import cv2
import numpy as np

from .cv_compat import quiet, rgb_to_yuv422

MAX_PIXELS = 64_000_000          # anything larger is a broken or hostile message

# 8-bit views: encoding -> (channels, colour order, channels kept)
DIRECT = {
    "rgb8": (3, "rgb", None),
    "bgr8": (3, "bgr", None),
    "rgba8": (4, "rgb", slice(0, 3)),
    "bgra8": (4, "bgr", slice(0, 3)),
    "mono8": (1, "rgb", None),
    "8uc1": (1, "rgb", None),
    "8uc3": (3, "bgr", None),   # OpenCV's default order
}
# 16-bit views of the high byte: encoding -> (channels, colour order, channels kept)
WIDE = {
    "rgb16": (3, "rgb", None),
    "bgr16": (3, "bgr", None),
    "rgba16": (4, "rgb", slice(0, 3)),
    "bgra16": (4, "bgr", slice(0, 3)),
    "mono16": (1, "rgb", None),
}
# OpenCV names a Bayer pattern by the 2x2 block starting at the second row and column,
# so ROS's rggb is OpenCV's BG (the mapping cv_bridge uses).
BAYER = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
         "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}
# channel (0 R, 1 G, 2 B) at (row % 2, column % 2) of each pattern
BAYER_SITES = {"rggb": ((0, 1), (1, 2)), "bggr": ((2, 1), (1, 0)),
               "gbrg": ((1, 2), (0, 1)), "grbg": ((1, 0), (2, 1))}
PACKED_422 = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
              "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2}
SEMI_PLANAR_420 = {"nv21": cv2.COLOR_YUV2RGB_NV21, "nv12": cv2.COLOR_YUV2RGB_NV12}
# BT.601 video range, the matrix OpenCV's NV21/UYVY conversions use (nv24 has no code)
_YUV_TO_RGB = np.array([[1.164, 0.0, 1.596, -1.164 * 16 - 1.596 * 128],
                        [1.164, -0.391, -0.813, -1.164 * 16 + (0.391 + 0.813) * 128],
                        [1.164, 2.018, 0.0, -1.164 * 16 - 2.018 * 128]], np.float32)

ACCEPTED = ("rgb8, bgr8, rgba8, bgra8, mono8, rgb16, bgr16, rgba16, bgra16, mono16, "
            "bayer_rggb8/bggr8/gbrg8/grbg8 (8 or 16 bit), yuv422 (uyvy), yuv422_yuy2 (yuyv), "
            "nv21, nv12, nv24")
_NOT_AN_IMAGE = re.compile(r"^(8s|16u|16s|32s|32f|64f)c\d+$|^8uc[24]$")


class ImageError(ValueError):
    """Pixels that cannot be turned into the network's input; the message says why."""


def check_size(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{what} has zero size ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{what} claims an absurd size of {width}x{height} pixels "
                         f"(more than {MAX_PIXELS // 1_000_000} megapixels)")


def _bayer(encoding: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"bayer_(rggb|bggr|gbrg|grbg)(8|16)", encoding)
    return (m.group(1), int(m.group(2)) // 8) if m else None


def is_known(encoding: str) -> bool:
    e = encoding.strip().lower()
    return (e in DIRECT or e in WIDE or e in PACKED_422 or e in SEMI_PLANAR_420 or e == "nv24"
            or _bayer(e) is not None)


def _plane(data, width: int, height: int, step: int, row: int, encoding: str,
           rows: int | None = None) -> np.ndarray:
    """Return the buffer as bytes after checking step and length for `rows` rows of `row` bytes."""
    rows = height if rows is None else rows
    if step < row:
        raise ImageError(f"image step {step} is smaller than the {row} bytes a row of a "
                         f"{width}x{height} {encoding} image needs")
    buf = np.frombuffer(data, np.uint8)
    needed = step * (rows - 1) + row
    if buf.size < needed:
        raise ImageError(f"image data is {buf.size} bytes, shorter than step x height = "
                         f"{step * rows} for {width}x{height} {encoding}")
    return buf


def _view(buf: np.ndarray, shape, strides, offset: int = 0) -> np.ndarray:
    # writeable only mirrors the buffer (torch warns on read-only arrays); nobody writes to it
    return np.lib.stride_tricks.as_strided(buf[offset:], shape, strides, writeable=buf.flags.writeable)


def _even(width: int, height: int, encoding: str, rows: bool = True) -> None:
    """4:2:x chroma and Bayer blocks pair pixels: 2 columns (and rows, unless rows=False)."""
    if width % 2 or (rows and height % 2):
        need = "an even width and height" if rows else "an even width"
        raise ImageError(f"{encoding} image of {width}x{height} pixels does not fit its layout: "
                         f"{encoding} needs {need}")


def decode_raw(encoding: str, width: int, height: int, step: int, data,
               bigendian: bool = False) -> tuple[np.ndarray, str]:
    """
    Return (array, colour order 'rgb' or 'bgr') from raw pixels.

    The array is H x W x 3 uint8, or H x W uint8 for grey encodings; a view of `data` for
    the 8- and 16-bit RGB/grey encodings.
    """
    enc = encoding.strip().lower()
    width, height, step = int(width), int(height), int(step)
    check_size(width, height, f"{encoding or 'unencoded'} image")
    if enc in DIRECT or enc in WIDE:
        size = 1 if enc in DIRECT else 2
        channels, order, keep = (DIRECT if size == 1 else WIDE)[enc]
        buf = _plane(data, width, height, step, width * channels * size, encoding)
        offset = 0 if size == 1 or bigendian else 1        # the high byte of each sample
        array = _view(buf, (height, width, channels), (step, channels * size, size), offset)
        if keep is not None:
            array = array[..., keep]
        return (array[..., 0] if channels == 1 else array), order
    bayer = _bayer(enc)
    if bayer is not None:
        pattern, size = bayer
        _even(width, height, encoding)
        buf = _plane(data, width, height, step, width * size, encoding)
        offset = 0 if size == 1 or bigendian else 1
        mosaic = _view(buf, (height, width), (step, size), offset)
        return cv2.cvtColor(mosaic, BAYER[pattern]), "rgb"
    if enc in PACKED_422:
        _even(width, height, encoding, rows=False)
        buf = _plane(data, width, height, step, width * 2, encoding)
        return cv2.cvtColor(_view(buf, (height, width, 2), (step, 2, 1)), PACKED_422[enc]), "rgb"
    if enc in SEMI_PLANAR_420:
        _even(width, height, encoding)
        buf = _plane(data, width, height, step, width, encoding, rows=height * 3 // 2)
        planes = _view(buf, (height * 3 // 2, width), (step, 1))
        return cv2.cvtColor(planes, SEMI_PLANAR_420[enc]), "rgb"
    if enc == "nv24":
        buf = _plane(data, width, height, step, width, encoding, rows=height * 3)
        y = _view(buf, (height, width), (step, 1))
        uv = _view(buf, (height, width, 2), (2 * step, 2, 1), step * height)
        return _yuv444_to_rgb(y, uv), "rgb"
    if _NOT_AN_IMAGE.match(enc):
        raise ImageError(f"image encoding {encoding!r} is depth or other non-camera data, not an "
                         f"image; accepted: {ACCEPTED}")
    raise ImageError(f"unknown image encoding {encoding!r}; accepted: {ACCEPTED}")


def _yuv444_to_rgb(y: np.ndarray, uv: np.ndarray) -> np.ndarray:
    yuv = np.dstack([y, uv]).astype(np.float32)
    return np.clip(cv2.transform(yuv, _YUV_TO_RGB), 0, 255).round().astype(np.uint8)


def to_rgb(array: np.ndarray, order: str) -> np.ndarray:
    """H x W x 3 in RGB order (grey expanded); a view where the input already is."""
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    return array[..., ::-1] if order == "bgr" else array


# --- the reverse: what a driver would send, for `play` and the tests ---------------------

def fit_size(encoding: str, height: int, width: int) -> tuple[int, int]:
    """
    Return the (height, width) an `encoding` message of this frame has.

    Bayer and 4:2:0 layouts need even sizes, 4:2:2 an even width; the odd last row or
    column is cut off.
    """
    enc = encoding.strip().lower()
    if _bayer(enc) is not None or enc in SEMI_PLANAR_420:
        return height // 2 * 2, width // 2 * 2
    if enc in PACKED_422:
        return height, width // 2 * 2
    return height, width


def encode_raw(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, int]:
    """
    Return (contiguous array holding the message bytes, step) for an RGB frame in `encoding`.

    The frame is H x W x 3 uint8; 16-bit samples are full scale, little endian.  An odd
    last row or column that a Bayer or YUV layout cannot hold is cut off (cameras have even
    sizes; KITTI's 375 rows do not), so check the message's height and width.
    """
    enc = encoding.strip().lower()
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"only H x W x 3 uint8 frames can be encoded, got {rgb.dtype} {rgb.shape}")
    h, w = fit_size(enc, *rgb.shape[:2])
    rgb = np.ascontiguousarray(rgb[:h, :w])
    if enc in DIRECT or enc in WIDE:
        channels, order, _ = (DIRECT if enc in DIRECT else WIDE)[enc]
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None] if channels == 1 else \
            (rgb[..., ::-1] if order == "bgr" else rgb)
        if channels == 4:
            out = np.dstack([out, np.full((h, w), 255, np.uint8)])
        if enc in WIDE:
            out = out.astype("<u2") * 257                    # full scale: 255 -> 65535
        out = np.ascontiguousarray(out).reshape(h, -1)
    elif _bayer(enc) is not None:
        pattern, size = _bayer(enc)
        out = np.empty((h, w), np.uint8)
        for r in (0, 1):
            for c in (0, 1):
                out[r::2, c::2] = rgb[r::2, c::2, BAYER_SITES[pattern][r][c]]
        if size == 2:
            out = out.astype("<u2") * 257
    elif enc in PACKED_422:
        out = rgb_to_yuv422(rgb, "uyvy" if PACKED_422[enc] == cv2.COLOR_YUV2RGB_UYVY else "yuyv")
    elif enc in SEMI_PLANAR_420:
        i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)   # Y, U, V planes
        u = i420[h * w:h * w * 5 // 4].reshape(h // 2, w // 2)
        v = i420[h * w * 5 // 4:].reshape(h // 2, w // 2)
        chroma = np.dstack([v, u] if enc == "nv21" else [u, v]).reshape(h // 2, w)
        out = np.vstack([i420[:h * w].reshape(h, w), chroma])
    elif enc == "nv24":
        rgb_to_yuv = np.linalg.inv(np.vstack([_YUV_TO_RGB, [0, 0, 0, 1]]))[:3].astype(np.float32)
        yuv = np.clip(cv2.transform(rgb.astype(np.float32), rgb_to_yuv), 0, 255).round().astype(np.uint8)
        out = np.vstack([yuv[..., 0], yuv[..., 1:].reshape(h, w * 2).reshape(h * 2, w)])
    else:
        raise ImageError(f"cannot encode into {encoding!r}; accepted: {ACCEPTED}")
    out = np.ascontiguousarray(out)
    return out, int(out.strides[0])


# --- image files and encoded frames (datasets, bags, play, preview) ----------------------

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")


class DataError(ValueError):
    """A dataset spec, folder, file or bag that cannot be used."""


@dataclass(frozen=True)
class Encoded:
    """An image held in memory as PNG/JPEG bytes (frames read from a bag)."""

    data: bytes
    name: str  # what error messages call it, e.g. "/camera/image in run.bag at 12.300 s"

    def __str__(self) -> str:
        return self.name


def list_images(folder: Path) -> list[Path]:
    """Return the image files of a folder (IMAGE_EXTS, any case), sorted."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def _decode(src, flags) -> np.ndarray | None:
    # OpenCV logs its own lines about broken files; our DataError says it in one sentence.
    with quiet():
        if isinstance(src, Encoded):
            return cv2.imdecode(np.frombuffer(src.data, np.uint8), flags)
        return cv2.imread(str(src), flags)


def read_image(src) -> np.ndarray:
    """RGB uint8 H x W x 3 from a file path or an Encoded frame."""
    img = _decode(src, cv2.IMREAD_COLOR)
    if img is None:
        missing = not isinstance(src, Encoded) and not Path(src).is_file()
        raise DataError(f"image {src} " + ("is missing" if missing else "cannot be decoded (corrupt or not an image)"))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_id_mask(src) -> np.ndarray:
    """Class ids uint8 H x W from a single-channel mask file or Encoded frame."""
    mask = _decode(src, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(f"mask {src} cannot be decoded (missing, corrupt or not an image)")
    if mask.ndim != 2:
        raise DataError(f"mask {src} has {mask.shape[2]} channels; class-id masks must be single-channel")
    if mask.dtype != np.uint8:
        if mask.max() > 255:
            raise DataError(f"mask {src} holds ids above 255")
        mask = mask.astype(np.uint8)
    return mask


def decode_kitti_gt(rgb: np.ndarray) -> np.ndarray:
    """
    Decode KITTI road colours as the devkit does.

    Road where blue > 0, evaluated where red > 0: magenta road -> 1, red not-road -> 0,
    black (outside the evaluated area) -> 255, ignored in training and in every metric.
    """
    valid, road = rgb[..., 0] > 0, rgb[..., 2] > 0
    out = np.full(rgb.shape[:2], 255, np.uint8)
    out[valid & ~road] = 0
    out[valid & road] = 1
    return out


def read_kitti_gt(src) -> np.ndarray:
    try:
        return decode_kitti_gt(read_image(src))
    except DataError:
        raise DataError(f"ground truth {src} cannot be decoded (missing, corrupt or not an image)") from None
