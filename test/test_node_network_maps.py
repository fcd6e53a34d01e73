"""
The node over real DDS with a network smaller than the frame: full resolution only where an output needs it.

With only the ground outputs subscribed the engine is asked for the network-size maps
only (``full_size=False``) and the grid samples them through the homography scaled to
them; with an image output subscribed too, the image is at the frame's size and the grid
the same.  The hand-wired green-road model (conftest) runs at input width 64 here, so
96x128 frames run at 48x64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import green_road_checkpoint_file, HAVE_RCLPY, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import Image

    from icnet_ros.ground import geometry
    from icnet_ros.inference.upsample import frame_to_network
    from test_node import camera_info, image_publisher_with_info
    from test_node_drivable import grid_of, mono, ramp, send

H, W = 96, 128


def small_green_checkpoint(path):
    """Return the green-road model run at input width 64: 96x128 frames at 48x64."""
    from icnet_ros.inference.checkpoint import load_checkpoint, save_checkpoint

    model, meta, _ = load_checkpoint(green_road_checkpoint_file(path))
    meta.input_width = 64
    return save_checkpoint(path, model, meta)


def spy_full_size(engine) -> list:
    calls, real = [], engine.infer

    def infer(*args, **kwargs):
        calls.append(kwargs.get("full_size", True))
        return real(*args, **kwargs)

    engine.infer = infer
    return calls


def expected_grid(engine, rgb, spec):
    """Return the grid from the network-size maps (through the scaled homography) and from the frame's mask."""
    (r,) = engine.infer(rgb, full_size=False)
    hp = geometry.ground_homography(np.array(camera_info(H, W, 100.0).k).reshape(3, 3), 1.5)
    S = frame_to_network((H, W), r.net_drivable.shape)
    return geometry.occupancy_grid(r.net_drivable, S @ hp, spec), geometry.occupancy_grid(
        engine.infer(rgb)[0].drivable, hp, spec)


def test_a_planner_only_robot_gets_the_grid_from_the_network_size_maps(graph_factory, tmp_path):
    torch.set_num_threads(1)
    g = graph_factory(small_green_checkpoint(tmp_path / "g.pt"), qos_reliability="reliable", camera_height=1.5,
                      grid_x_max=30.0)
    grids = g.collect(OccupancyGrid, g.output("drivable_area"))
    g.pub = image_publisher_with_info(g, H, W, f=100.0)
    g.wait_matched(g.pub)
    calls = spy_full_size(g.node.engine)
    spec = geometry.GridSpec(x_max=30.0)
    (grid,) = send(g, g.pub, ramp(), 1, [grids])
    assert calls == [False]                                  # no full-resolution work for the planner
    want, full = expected_grid(g.node.engine, ramp(), spec)
    np.testing.assert_array_equal(grid_of(grid), want)
    seen = want != geometry.UNKNOWN
    assert seen.sum() > 100 and (want[seen] == full[seen]).mean() > 0.95   # the frame's mask: the same but borders
    assert (want != full).any()          # so the equality above tells which maps the grid came from
    assert (want == geometry.FREE).any() and (want == geometry.OCCUPIED).any()

    masks = g.collect(Image, g.output("mask"))               # an image output: the frame's size for it
    g.wait_matched(g.pub)
    assert wait_for(lambda: g.node.cameras[0].pubs["mask"].get_subscription_count() > 0, 5.0)
    calls.clear()
    mask, grid = send(g, g.pub, ramp(), 2, [masks, grids])
    assert calls == [True] and (mask.height, mask.width) == (H, W)
    np.testing.assert_array_equal(grid_of(grid), want)     # the grid still from the network-size maps
    assert mono(mask).shape == (H, W)


def test_the_ego_mask_and_drivable_connected_apply_at_the_network_size(graph_factory, tmp_path):
    from icnet_ros.ground.drivable import connected_to_vehicle
    from icnet_ros.ground.ego_mask import load

    torch.set_num_threads(1)
    g = graph_factory(small_green_checkpoint(tmp_path / "g.pt"), qos_reliability="reliable", camera_height=1.5,
                      grid_x_max=30.0, ego_mask=["bottom:0.25"], drivable_connected=True)
    grids = g.collect(OccupancyGrid, g.output("drivable_area"))
    g.pub = image_publisher_with_info(g, H, W, f=100.0)
    g.wait_matched(g.pub)
    (grid,) = send(g, g.pub, ramp(), 1, [grids])
    (r,) = g.node.engine.infer(ramp(), full_size=False)
    ego = load("bottom:0.25").at(r.net_drivable.shape)                  # 12 of 48 rows: the hood
    drivable = connected_to_vehicle(r.net_drivable & ~ego, ego)
    hp = geometry.ground_homography(np.array(camera_info(H, W, 100.0).k).reshape(3, 3), 1.5)
    want = geometry.occupancy_grid(drivable, frame_to_network((H, W), (48, 64)) @ hp, geometry.GridSpec(x_max=30.0),
                                   blind=ego)
    np.testing.assert_array_equal(grid_of(grid), want)
    assert (want == geometry.FREE).any() and (want == geometry.UNKNOWN).sum() > (grid_of(grid) != -1).sum() / 10
