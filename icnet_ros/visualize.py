"""Colouring class maps and blending them over images (overlays, previews)."""

from __future__ import annotations

import numpy as np


def palette_array(colors) -> np.ndarray:
    """(256, 3) uint8 lookup table; ids past the class list (ignore labels) map to black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(colors)] = np.asarray(colors, np.uint8)
    return lut


def colorize(classes: np.ndarray, colors) -> np.ndarray:
    """H x W class ids -> H x W x 3 uint8 colours."""
    lut = palette_array(colors)
    if classes.dtype != np.uint8:                  # labels with other dtypes (ignore ids)
        return lut[np.clip(classes, 0, 255).astype(np.intp)]
    import cv2

    # One 256-entry table per channel: 0.3 ms at 375x1242 against 4.6 ms for lut[classes].
    classes = np.ascontiguousarray(classes)
    return cv2.merge([cv2.LUT(classes, np.ascontiguousarray(lut[:, c])) for c in range(3)])


def overlay(image: np.ndarray, classes: np.ndarray, colors, alpha: float = 0.5) -> np.ndarray:
    """
    Blend class colours over an H x W x 3 uint8 image (same channel order as colors), rounded to the nearest level.

    uint8 arithmetic in OpenCV: about 0.5 ms a KITTI frame in all, where float32 numpy
    took 6 ms of the node's frame.
    """
    import cv2

    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return cv2.addWeighted(np.ascontiguousarray(image), 1.0 - alpha, colorize(classes, colors), alpha, 0.0)
