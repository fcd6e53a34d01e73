"""
The robot's own body in a camera's frame: pixels that are never drivable.

No ROS.  A dash camera sees the vehicle's hood, a bumper or its own mount at the bottom of
the frame, and the network may call them road.  An ego mask names those pixels, either as
an image file (PNG or any format OpenCV reads; non-zero = the robot) or as
``bottom:<fraction>`` (that share of the rows at the bottom).  It is resized (nearest
neighbour) to each frame's size.  Those pixels are never drivable (drivable mask 0,
confidence 0) and do not see the ground: the grid cells seen only through them are
unknown, so they give no obstacle points either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class EgoMaskError(ValueError):
    """An ego mask that cannot be used; the message names it."""


class EgoMask:
    """One camera's ego mask: a source image (or bottom fraction) and its resized copies per frame size."""

    def __init__(self, spec: str, image: np.ndarray | None = None, bottom: float = 0.0):
        self.spec = spec
        self._image = image          # H x W bool, or None for a bottom fraction
        self._bottom = bottom
        self._sized: dict = {}

    def at(self, size: tuple[int, int]) -> np.ndarray:
        """Return the H x W bool mask (True = the robot) for frames of size (h, w)."""
        size = (int(size[0]), int(size[1]))
        mask = self._sized.get(size)
        if mask is None:
            if self._image is None:
                mask = np.zeros(size, bool)
                mask[size[0] - int(round(size[0] * self._bottom)):] = True
            else:
                import cv2

                mask = cv2.resize(self._image.view(np.uint8), (size[1], size[0]),
                                  interpolation=cv2.INTER_NEAREST) > 0
            mask.setflags(write=False)
            # a camera's frame size and its network size (the ground outputs read the network-size
            # maps, the image outputs the frame's); a few more, but never without end
            if len(self._sized) >= 4:
                self._sized.pop(next(iter(self._sized)))
            self._sized[size] = mask
        return mask


def load(spec: str) -> EgoMask | None:
    """Return the ego mask a parameter value names ('' = none), or raise EgoMaskError saying why in one line."""
    spec = spec.strip()
    if not spec:
        return None
    if spec.startswith("bottom:"):
        text = spec[len("bottom:"):]
        try:
            fraction = float(text)
        except ValueError:
            fraction = float("nan")
        if not 0.0 < fraction < 1.0:
            raise EgoMaskError(f"ego mask {spec!r}: the bottom fraction must be a number between 0 and 1 "
                               f"(exclusive), e.g. bottom:0.15")
        return EgoMask(spec, bottom=fraction)
    import cv2

    path = Path(spec).expanduser()
    if not path.is_file():
        raise EgoMaskError(f"ego mask file {path} does not exist (a PNG, non-zero = the robot, "
                           f"or bottom:<fraction>)")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise EgoMaskError(f"ego mask file {path} is not an image OpenCV can read")
    mask = image > 0
    if mask.all():
        raise EgoMaskError(f"ego mask file {path} covers the whole frame: no pixel would see the ground")
    return EgoMask(spec, image=mask)


def apply(drivable: np.ndarray, prob: np.ndarray | None, ego: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the drivable mask and probability with the ego pixels set to not drivable and 0."""
    drivable = drivable & ~ego
    if prob is not None:
        prob = np.where(ego, np.float32(0.0), prob).astype(prob.dtype, copy=False)
    return drivable, prob
