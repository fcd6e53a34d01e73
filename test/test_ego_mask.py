"""The robot's own body in the image (no ROS): loading, resizing, refusing, and what it does to the outputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from icnet_ros import node_config
from icnet_ros.ground import ego_mask
from icnet_ros.ground.drivable import connected_to_vehicle


def test_bottom_fraction_at_any_size():
    mask = ego_mask.load("bottom:0.2")
    for h, w in ((100, 50), (96, 128), (375, 1242)):
        m = mask.at((h, w))
        rows = h - int(round(h * 0.2))
        assert m.shape == (h, w) and m[rows:].all() and not m[:rows].any()


def test_a_png_is_resized_nearest(tmp_path):
    image = np.zeros((40, 80), np.uint8)
    image[30:, 20:60] = 255                       # a hood in the bottom quarter, middle half
    cv2.imwrite(str(tmp_path / "hood.png"), image)
    mask = ego_mask.load(str(tmp_path / "hood.png"))
    np.testing.assert_array_equal(mask.at((40, 80)), image > 0)
    big = mask.at((80, 160))
    assert big[60:, 40:120].all() and big[:60].sum() == 0 and big[:, :40].sum() == 0
    assert mask.at((80, 160)) is big              # kept for the next frame of that size


def test_no_mask():
    assert ego_mask.load("") is None and ego_mask.load("  ") is None


@pytest.mark.parametrize("spec,expected", [
    ("bottom:abc", "the bottom fraction must be a number between 0 and 1"),
    ("bottom:1.5", "the bottom fraction must be a number between 0 and 1"),
    ("bottom:0", "the bottom fraction must be a number between 0 and 1"),
    ("{tmp}/none.png", "ego mask file {tmp}/none.png does not exist"),
    ("{tmp}/text.png", "ego mask file {tmp}/text.png is not an image OpenCV can read"),
    ("{tmp}/full.png", "ego mask file {tmp}/full.png covers the whole frame"),
])
def test_unusable_masks_are_refused_in_one_line(tmp_path, spec, expected):
    (tmp_path / "text.png").write_text("not a png")
    cv2.imwrite(str(tmp_path / "full.png"), np.full((4, 4), 255, np.uint8))
    with pytest.raises(ego_mask.EgoMaskError) as e:
        ego_mask.load(spec.format(tmp=tmp_path))
    assert expected.format(tmp=tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_config_loads_one_per_camera_or_one_for_all(tmp_path):
    cfg = node_config.from_params({"device": "cpu", "cameras": ["left", "right"], "ego_mask": ["bottom:0.1", ""]})
    assert cfg.ego_masks[0].spec == "bottom:0.1" and cfg.ego_masks[1] is None
    cfg = node_config.from_params({"device": "cpu", "cameras": ["left", "right"], "ego_mask": ["bottom:0.1"]})
    assert [m.spec for m in cfg.ego_masks] == ["bottom:0.1", "bottom:0.1"]
    assert node_config.from_params({"device": "cpu"}).ego_masks == (None,)
    with pytest.raises(node_config.ConfigError, match=r"^parameter 'ego_mask': 3 masks for 2 cameras"):
        node_config.from_params({"device": "cpu", "cameras": ["a", "b"], "ego_mask": ["", "", ""]})
    with pytest.raises(node_config.ConfigError, match=r"^parameter 'ego_mask': ego mask file .*missing.png does not"):
        node_config.from_params({"device": "cpu", "ego_mask": [str(tmp_path / "missing.png")]})


def test_ego_pixels_are_never_drivable_and_have_no_confidence():
    drivable = np.ones((10, 8), bool)
    prob = np.full((10, 8), 0.9, np.float32)
    ego = ego_mask.load("bottom:0.3").at((10, 8))
    d, p = ego_mask.apply(drivable, prob, ego)
    assert not d[7:].any() and d[:7].all() and (p[7:] == 0).all() and (p[:7] == np.float32(0.9)).all()
    assert p.dtype == np.float32
    d, p = ego_mask.apply(drivable, None, ego)
    assert p is None and not d[7:].any()


def test_connected_starts_where_the_hood_ends():
    # the hood (bottom rows) is not road; the road above it touches it; an island beyond a barrier does not
    drivable = np.zeros((40, 40), bool)
    drivable[20:32, 10:30] = True
    drivable[2:6, 2:8] = True
    ego = ego_mask.load("bottom:0.2").at((40, 40))
    assert not connected_to_vehicle(drivable).any()           # without the mask: nothing at the seed rows
    kept = connected_to_vehicle(drivable, ego)
    assert kept[20:32, 10:30].all() and not kept[2:6, 2:8].any() and not (kept & ego).any()
