"""
The node's drivable area over real DDS: drivable_threshold, ~/drivable_confidence, drivable_connected.

Also: frames of any shape (issue 17) never stop the node.  The hand-wired green-road
model makes green pixels road with a probability that rises with the green value, so a
green ramp gives every drivable probability from 0 to 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import green_road_checkpoint_file, HAVE_RCLPY, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from nav_msgs.msg import OccupancyGrid
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from icnet_ros.ground import geometry
    from icnet_ros.ros.conversions import numpy_to_image
    from test_node import camera_info, image_publisher_with_info

H, W = 96, 128


def ramp():
    """Red above row 40; below it green rising from 0 (left) to 255 (right)."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:40, :, 0] = 255
    rgb[40:, :, 1] = np.linspace(0, 255, W).astype(np.uint8)[None]
    return rgb


def send(g, pub, rgb, sec, boxes):
    msg = numpy_to_image(rgb)
    msg.header.stamp.sec, msg.header.frame_id = sec, "cam"
    pub.publish(msg)
    assert wait_for(lambda: all(b and b[-1].header.stamp.sec == sec for b in boxes), 10.0), "no output"
    return [b[-1] for b in boxes]


def mono(msg):
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width)


def grid_of(msg):
    return np.array(msg.data, np.int8).reshape(msg.info.height, msg.info.width)


@pytest.fixture
def green(graph_factory, tmp_path):
    g = graph_factory(green_road_checkpoint_file(tmp_path / "green.pt"), qos_reliability="reliable",
                      camera_height=1.5, grid_x_max=30.0)
    g.boxes = [g.collect(Image, g.output("drivable_mask")), g.collect(Image, g.output("drivable_confidence")),
               g.collect(OccupancyGrid, g.output("drivable_area"))]
    g.pub = image_publisher_with_info(g, H, W, f=100.0)
    g.wait_matched(g.pub)
    return g


def test_threshold_moves_the_mask_and_grid_live_and_confidence_is_published(green):
    g = green
    mask, conf, grid = send(g, g.pub, ramp(), 1, g.boxes)
    assert conf.encoding == "mono8" and conf.header.frame_id == "cam" and (conf.height, conf.width) == (H, W)
    confidence = mono(conf)
    assert confidence[80, 0] < 5 and confidence[80, -1] > 250          # a soft cost from 0 to 255
    argmax = mono(mask) > 0
    hp = geometry.ground_homography(np.array(camera_info(H, W, 100.0).k).reshape(3, 3), 1.5)
    spec = geometry.GridSpec(x_max=30.0)
    np.testing.assert_array_equal(grid_of(grid), geometry.occupancy_grid(argmax, hp, spec))

    result = g.node.set_parameters([Parameter("drivable_threshold", value=0.9)])[0]
    assert result.successful, result.reason
    mask, conf, grid = send(g, g.pub, ramp(), 2, g.boxes)
    strict = mono(mask) > 0
    confidence = mono(conf).astype(int)
    sure = np.abs(confidence - 0.9 * 255) > 1                          # away from rounding at the edge
    np.testing.assert_array_equal(strict[sure], (confidence >= 0.9 * 255)[sure])
    assert strict.sum() < argmax.sum() and not (strict & ~argmax).any()
    np.testing.assert_array_equal(grid_of(grid), geometry.occupancy_grid(strict, hp, spec))   # the grid follows

    for bad in (1.5, -0.1):
        result = g.node.set_parameters([Parameter("drivable_threshold", value=bad)])[0]
        assert not result.successful and "drivable_threshold" in result.reason
    assert g.node.get_parameter("drivable_threshold").value == 0.9


def test_connected_option_drops_islands_beyond_a_barrier(green):
    g = green
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 255                  # red everywhere: not road
    rgb[75:, :, :] = (0, 255, 0)       # the road under the vehicle
    rgb[25:40, 20:60] = (0, 255, 0)    # an island across a red barrier
    mask, _, _ = send(g, g.pub, rgb, 1, g.boxes)
    assert (mono(mask)[33:38, 30:50] > 0).all()
    assert g.node.set_parameters([Parameter("drivable_connected", value=True)])[0].successful
    mask, _, grid = send(g, g.pub, rgb, 2, g.boxes)
    kept = mono(mask) > 0
    assert kept[80:].all() and not kept[20:55].any()
    hp = geometry.ground_homography(np.array(camera_info(H, W, 100.0).k).reshape(3, 3), 1.5)
    np.testing.assert_array_equal(grid_of(grid), geometry.occupancy_grid(kept, hp, geometry.GridSpec(x_max=30.0)))


def test_a_bad_threshold_fails_configure_naming_it(graph_factory):
    g = graph_factory(autostart=False, drivable_threshold=2.0)
    assert not g.configure()
    assert "'drivable_threshold'" in g.node.last_error and "\n" not in g.node.last_error


def test_int8_with_an_unusable_calibration_folder_fails_configure_naming_it(graph_factory, tmp_path):
    g = graph_factory(autostart=False, precision="int8", device="cpu", calibration_images=str(tmp_path / "none"))
    assert not g.configure()
    assert g.node.last_error.startswith("parameter 'calibration_images': calibration folder")
    assert "does not exist" in g.node.last_error and "\n" not in g.node.last_error


def test_frames_of_any_shape_never_stop_the_node(graph_factory, tmp_path):
    """
    A good frame, then 16x4000, 4000x16 and portrait 1080x1920 frames, then a good one again.

    With an input_width model (as the shipped one), the portrait frame is answered at its
    own size and the two sliver frames are skipped with one line each naming the size and
    the limit.
    """
    import torch

    from icnet_ros.classes import CAMVID
    from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint
    from icnet_ros.nn.model import icnet

    path = tmp_path / "wide.pt"
    torch.manual_seed(0)
    save_checkpoint(path, icnet(CAMVID.num_classes, "r18", 0.25), ModelMeta(CAMVID, "r18", 0.25, input_width=64))
    g = graph_factory(path, qos_reliability="reliable")
    masks = g.collect(Image, g.output("mask"))
    pub = g.publisher(Image, g.topic("image"))
    g.wait_matched(pub)

    def publish(h, w, sec):
        msg = numpy_to_image(np.random.default_rng(sec).integers(0, 256, (h, w, 3), dtype=np.uint8))
        msg.header.stamp.sec = sec
        pub.publish(msg)

    publish(375, 1242, 1)
    assert wait_for(lambda: masks and masks[-1].header.stamp.sec == 1, 10.0)
    bad_before = g.node.stats()["bad"]
    publish(4000, 16, 2)
    assert wait_for(lambda: g.node.stats()["bad"] == bad_before + 1, 10.0)
    assert "16x4000" in g.node.stats()["last_error"] and "8:1" in g.node.stats()["last_error"]
    publish(16, 4000, 3)
    assert wait_for(lambda: g.node.stats()["bad"] == bad_before + 2, 10.0)
    assert "4000x16" in g.node.stats()["last_error"] and "\n" not in g.node.stats()["last_error"]
    publish(1920, 1080, 4)
    assert wait_for(lambda: masks[-1].header.stamp.sec == 4, 20.0), "the portrait frame was not answered"
    assert (masks[-1].height, masks[-1].width) == (1920, 1080)
    publish(375, 1242, 5)
    assert wait_for(lambda: masks[-1].header.stamp.sec == 5, 10.0)
    assert g.node.state == "active" and [m.header.stamp.sec for m in masks] == [1, 4, 5]
