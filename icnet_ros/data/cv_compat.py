"""
What image_io needs from OpenCV, on every OpenCV it runs on (4.5.4 on Ubuntu 22.04 up).

Feature checks, not version numbers:

- ``quiet()``: silences what OpenCV and its codecs print about a broken file while one is
  decoded, so that the caller's one-line error is the only line.  ``cv2.utils.logging``
  does it where it exists (4.6 and newer, whose PNG reader routes libpng's messages
  through it); OpenCV 4.5 has no ``cv2.utils.logging`` and libpng prints its own
  ``libpng error: ...`` line there, so standard error itself is closed for the decode.
- ``rgb_to_yuv422``: RGB to packed YUV 4:2:2 (UYVY or YUYV).  OpenCV's
  ``COLOR_RGB2YUV_UYVY`` / ``COLOR_RGB2YUV_YUY2`` where present (4.7 and newer); NumPy
  with the same BT.601 video-range matrix elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import cv2
import numpy as np

try:
    import cv2.utils.logging as cv_log     # OpenCV 4.6 and newer
except ImportError:                         # OpenCV 4.5
    cv_log = None

_STDERR_LOCK = threading.Lock()   # one decode at a time has standard error closed


@contextlib.contextmanager
def quiet():
    """Silence OpenCV's (and its codecs') own messages for the block."""
    if cv_log is not None:
        level = cv_log.getLogLevel()
        cv_log.setLogLevel(cv_log.LOG_LEVEL_SILENT)
        try:
            yield
        finally:
            cv_log.setLogLevel(level)
        return
    # No logging API: libpng and OpenCV write to file descriptor 2 directly.  Pointed at
    # /dev/null for the decode only (a few milliseconds; used by the dataset, play and
    # preview readers, not the node's message path).
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


# Full-range RGB -> BT.601 video-range YUV, the inverse of the matrix image_io decodes with.
_RGB_TO_YUV = np.array([[0.257, 0.504, 0.098, 16.0],
                        [-0.148, -0.291, 0.439, 128.0],
                        [0.439, -0.368, -0.071, 128.0]], np.float32)


def rgb_to_yuv422(rgb: np.ndarray, layout: str) -> np.ndarray:
    """
    Return H x 2W uint8 packed YUV 4:2:2 of an H x W x 3 RGB frame (W even).

    layout "uyvy" (U Y0 V Y1, ROS's yuv422) or "yuyv" (Y0 U Y1 V, ROS's yuv422_yuy2).
    """
    h, w = rgb.shape[:2]
    code = getattr(cv2, "COLOR_RGB2YUV_UYVY" if layout == "uyvy" else "COLOR_RGB2YUV_YUY2", None)
    if code is not None:
        return cv2.cvtColor(rgb, code).reshape(h, w * 2)
    x = rgb.astype(np.float32)
    y = x @ _RGB_TO_YUV[0, :3] + _RGB_TO_YUV[0, 3]
    pairs = (x[:, 0::2] + x[:, 1::2]) / 2.0            # chroma: each pair of pixels shares it
    u = pairs @ _RGB_TO_YUV[1, :3] + _RGB_TO_YUV[1, 3]
    v = pairs @ _RGB_TO_YUV[2, :3] + _RGB_TO_YUV[2, 3]
    out = np.empty((h, w // 2, 4), np.float32)
    if layout == "uyvy":
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    return np.clip(out.round(), 0, 255).astype(np.uint8).reshape(h, w * 2)
