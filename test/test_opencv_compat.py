"""
OpenCV 4.5 (Ubuntu 22.04's python3-opencv is 4.5.4): what it lacks, the core does without.

It has no ``cv2.utils.logging`` (the core imported it at start, so nothing ran) and no
RGB -> YUV 4:2:2 codes (``play encoding:=yuv422`` failed).  Here the newer OpenCV is
installed, so each test hides what 4.5 lacks; ``make test-floor`` runs them again on the
real opencv-python-headless 4.5.5.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from icnet_ros.data import cv_compat, image_io

ROOT = Path(__file__).resolve().parent.parent
OPENCV_45_LACKS = ("COLOR_RGB2YUV_UYVY", "COLOR_RGB2YUV_YUY2")

CORRUPT_PNG = textwrap.dedent("""
    import sys
    sys.modules["cv2.utils.logging"] = None     # as on OpenCV 4.5: importing it fails
    from icnet_ros.data.image_io import DataError, read_image
    open(sys.argv[1], "wb").write(b"\\x89PNG\\r\\n\\x1a\\n this is not really a png")
    try:
        read_image(sys.argv[1])
    except DataError as e:
        print(e)
""")


def test_a_corrupt_png_is_one_line_without_cv2_utils_logging(tmp_path):
    bad = tmp_path / "bad.png"
    run = subprocess.run([sys.executable, "-c", CORRUPT_PNG, str(bad)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"image {bad} cannot be decoded (corrupt or not an image)\n"
    assert run.stderr == ""        # neither OpenCV's [ERROR] lines nor libpng's own


def test_quiet_silences_opencv_and_its_codecs_either_way(tmp_path, capfd, monkeypatch):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    cv2.imread(str(bad))
    loud = capfd.readouterr().err
    for logging in (cv_compat.cv_log, None):       # None: OpenCV 4.5, no logging API
        monkeypatch.setattr(cv_compat, "cv_log", logging)
        with pytest.raises(image_io.DataError, match="cannot be decoded"):
            image_io.read_image(bad)
        assert capfd.readouterr().err == ""
    assert loud, "OpenCV printed nothing about a corrupt PNG: the checks above could not fail"


def _smooth(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)]).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_is_encoded_without_opencvs_codes(encoding, monkeypatch):
    rgb = _smooth()
    with_opencv = image_io.encode_raw(rgb, encoding)[0] if hasattr(cv2, OPENCV_45_LACKS[0]) else None
    for name in OPENCV_45_LACKS:
        monkeypatch.delattr(cv2, name, raising=False)
    data, step = image_io.encode_raw(rgb, encoding)
    assert data.shape == (48, 128) and step == 128
    back, order = image_io.decode_raw(encoding, 64, 48, step, data.tobytes())
    assert order == "rgb" and np.abs(back.astype(int) - rgb).mean() <= 5
    if with_opencv is not None:                     # the same bytes as OpenCV's, to rounding
        assert np.abs(with_opencv.astype(int) - data).max() <= 1
