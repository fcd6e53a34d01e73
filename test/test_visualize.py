"""Colouring class maps and overlays: exact colours, ignore ids, the blend's rounding."""

import numpy as np
import pytest

from icnet_ros.visualize import colorize, overlay, palette_array

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30)]


def test_colorize_maps_ids_to_colours_and_unknown_ids_to_black():
    classes = np.array([[0, 1, 2], [3, 4, 255]], np.uint8)
    out = colorize(classes, COLORS)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], np.array(COLORS[:3], np.uint8))
    np.testing.assert_array_equal(out[1], [COLORS[3], (0, 0, 0), (0, 0, 0)])
    # other dtypes (dataset labels) give the same colours
    np.testing.assert_array_equal(colorize(classes.astype(np.int64), COLORS), out)
    # a non-contiguous view (a batch slice, a crop) is fine
    big = np.random.default_rng(0).integers(0, 4, (40, 60), dtype=np.uint8)
    np.testing.assert_array_equal(colorize(big[::2, 1::3], COLORS), palette_array(COLORS)[big[::2, 1::3]])


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_overlay_is_the_rounded_blend(alpha):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    classes = rng.integers(0, 4, (37, 53), dtype=np.uint8)
    out = overlay(image, classes, COLORS, alpha)
    exact = image * (1.0 - alpha) + palette_array(COLORS)[classes] * alpha
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.abs(out.astype(np.float64) - exact).max() <= 0.5 + 1e-6
    if alpha == 0.0:
        np.testing.assert_array_equal(out, image)


def test_overlay_of_a_grey_image():
    grey = np.full((8, 9), 100, np.uint8)
    out = overlay(grey, np.zeros((8, 9), np.uint8), COLORS, 0.5)
    np.testing.assert_array_equal(out[0, 0], [178, 50, 50])      # (100 + 255) / 2 = 177.5 rounds up
