"""Colouring class maps and blending them over images (overlays, previews)."""

from __future__ import annotations

import numpy as np


def palette_array(colors) -> np.ndarray:
    """(256, 3) uint8 lookup table; ids past the class list (ignore labels) map to black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(colors)] = np.asarray(colors, np.uint8)
    return lut


def colorize(classes: np.ndarray, colors) -> np.ndarray:
    return palette_array(colors)[classes]


def overlay(image: np.ndarray, classes: np.ndarray, colors, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over an H x W x 3 uint8 image (same channel order as colors)."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    color = colorize(classes, colors).astype(np.float32)
    out = image.astype(np.float32) * (1.0 - alpha) + color * alpha
    return out.clip(0, 255).astype(np.uint8)
