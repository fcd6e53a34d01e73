"""
The Nav2 costmap stand-in itself (test/nav2_standin.py), against what navigation2's source does.

Each test names the behaviour of the C++ it checks; the stand-in's docstrings cite file
and line at the pinned commits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import nav2_standin as N


def costmap(release="humble", **params) -> N.LayeredCostmap:
    base = {"global_frame": "odom", "robot_base_frame": "base_link", "rolling_window": True, "width": 20,
            "height": 20, "resolution": 0.1}
    base.update(params)
    return N.LayeredCostmap(base, release)


def cloud_source(**overrides) -> dict:
    src = {"topic": "/pts", "data_type": "PointCloud2", "marking": True, "clearing": True,
           "min_obstacle_height": 0.0, "max_obstacle_height": 0.5, "obstacle_max_range": 20.0,
           "raytrace_max_range": 25.0}
    src.update(overrides)
    return src


def obstacle_costmap(release="humble", width=20, **source) -> N.LayeredCostmap:
    layer = {"plugin": "nav2_costmap_2d::ObstacleLayer", "observation_sources": "src", "src": cloud_source(**source)}
    return costmap(release, width=width, height=width, plugins=["obs"], obs=layer)


def layer_cost(cm: N.LayeredCostmap, x: float, y: float) -> int:
    """Return the ObstacleLayer's own cost at a world point."""
    grid = cm.plugins["obs"].grid
    mx, my, inside = grid.world_to_map(x, y)
    assert inside
    return int(grid.data[my, mx])


# --- ray tracing ----------------------------------------------------------------------

def test_raytrace_by_hand():
    # a horizontal ray from cell (2, 3) to (9, 3) in a 20-wide grid visits 2..9, the end cell too
    assert N.raytrace_line(2, 3, 9, 3, 20) == [3 * 20 + x for x in range(2, 10)]
    # min_length 4: starts 4 cells along; shorter rays are skipped whole (dist < min_length)
    assert N.raytrace_line(2, 3, 9, 3, 20, min_length=4) == [3 * 20 + x for x in range(6, 10)]
    assert N.raytrace_line(2, 3, 5, 3, 20, min_length=4) == []
    # max_length 3: three steps, then the cell it stopped on
    assert N.raytrace_line(2, 3, 9, 3, 20, max_length=3) == [3 * 20 + x for x in range(2, 6)]
    # a diagonal, and a single cell
    assert N.raytrace_line(0, 0, 3, 3, 10) == [0, 11, 22, 33]
    assert N.raytrace_line(4, 4, 4, 4, 10) == [44]


def test_vectorised_raytrace_is_the_scalar_port():
    rng = np.random.default_rng(3)
    n, size = 400, 150
    x0, y0, x1, y1 = (rng.integers(0, size, n) for _ in range(4))
    for max_len, min_len in ((2 ** 32 - 1, 0), (40, 0), (200, 17), (30, 31)):
        expected = sorted(c for i in range(n) for c in N.raytrace_line(x0[i], y0[i], x1[i], y1[i], size,
                                                                       max_len, min_len))
        got = sorted(N.raytrace_lines(x0, y0, x1, y1, size, max_len, min_len).tolist())
        assert got == expected


# --- the rolling window -----------------------------------------------------------------

def test_update_origin_keeps_what_overlaps_in_the_world():
    g = N.Costmap2D(10, 10, 1.0, 0.0, 0.0, N.NO_INFORMATION)
    g.data[5, 7] = N.LETHAL_OBSTACLE                       # world (7.5, 5.5)
    g.update_origin(3.4, -1.7)                             # whole cells: origin (3, -1)
    assert (g.origin_x, g.origin_y) == (3.0, -1.0)
    mx, my, inside = g.world_to_map(7.5, 5.5)
    assert inside and g.data[my, mx] == N.LETHAL_OBSTACLE and (g.data == N.LETHAL_OBSTACLE).sum() == 1
    assert g.data[0, 9] == N.NO_INFORMATION                # new cells get the default value
    assert g.world_to_map_enforce_bounds(-50.0, 100.0) == (0, 9)


# --- ObservationBuffer ------------------------------------------------------------------

def test_height_window_per_source_default_drops_points_above_the_ground():
    buf = N.ObservationBuffer("/pts")                      # max_obstacle_height defaults to 0.0
    buf.buffer_cloud([[5.0, 0.0, 0.1]], [0.0, 0.0, 1.5], 0.0, 0.0)
    assert len(buf.get_observations(0.0)[0].points) == 0
    buf = N.ObservationBuffer("/pts", max_obstacle_height=0.5)
    buf.buffer_cloud([[5.0, 0.0, 0.1], [5.0, 0.0, 0.6], [5.0, 0.0, -0.1]], [0.0, 0.0, 1.5], 0.0, 0.0)
    np.testing.assert_allclose(buf.get_observations(0.0)[0].points, [[5.0, 0.0, 0.1]], rtol=1e-6)


def test_persistence_and_expected_update_rate_is_a_period():
    buf = N.ObservationBuffer("/pts", max_obstacle_height=1.0, expected_update_rate=0.3)
    for t in (0.0, 0.1, 0.2):
        buf.buffer_cloud([[1.0, 0.0, 0.1]], [0, 0, 0], t, t)
    assert len(buf.get_observations(0.2)) == 1             # persistence 0: the latest only
    assert buf.is_current(0.45) and not buf.is_current(0.55)      # 0.3 s since the last cloud
    # "1.5 / the camera period" at 10 Hz is 15: a node that stopped ten seconds ago still counts as current
    stale = N.ObservationBuffer("/pts", expected_update_rate=1.5 / 0.1)
    assert stale.is_current(10.0)
    keep = N.ObservationBuffer("/pts", max_obstacle_height=1.0, observation_persistence=0.25)
    for t in (0.0, 0.1, 0.2, 0.3):
        keep.buffer_cloud([[1.0, 0.0, 0.1]], [0, 0, 0], t, t)
    assert [o.stamp for o in keep.get_observations(0.3)] == [0.3, 0.2, 0.1]


# --- ObstacleLayer ----------------------------------------------------------------------

def test_clearing_before_marking_and_raytrace_min_range():
    for rmin, cleared in ((0.0, True), (3.0, False)):
        cm = obstacle_costmap(raytrace_min_range=rmin)
        layer = cm.plugins["obs"]
        layer.on_cloud("/pts", [[102.05, 0.05, 0.1]], [100.05, 0.05, 1.5], 0.0)   # 2 m ahead of the sensor
        cm.update_map(100.0, 0.0)
        assert cm.cost_at(102.05, 0.05) == N.LETHAL_OBSTACLE
        # the next cloud sees farther along the same line: its ray crosses the old mark
        layer.on_cloud("/pts", [[106.05, 0.05, 0.1]], [100.05, 0.05, 1.5], 0.1)
        cm.update_map(100.0, 0.0)
        assert cm.cost_at(106.05, 0.05) == N.LETHAL_OBSTACLE
        assert (cm.cost_at(102.05, 0.05) == N.FREE_SPACE) is cleared
        assert cm.cost_at(104.05, 0.05) == N.FREE_SPACE     # beyond raytrace_min_range: cleared either way


def test_a_point_is_marked_after_its_own_ray_cleared_it():
    cm = obstacle_costmap()
    layer = cm.plugins["obs"]
    layer.on_cloud("/pts", [[103.05, 1.05, 0.1], [107.05, 2.45, 0.1]], [100.05, 0.05, 1.5], 0.0)
    cm.update_map(100.0, 0.0)
    assert cm.cost_at(103.05, 1.05) == cm.cost_at(107.05, 2.45) == N.LETHAL_OBSTACLE


@pytest.mark.parametrize("release,marked", [("humble", True), ("jazzy", True), ("kilted", False),
                                            ("lyrical", True)])
def test_obstacle_max_range_per_release(release, marked):
    # 19.96 m away in the plane, 1.4 m below the sensor: 20.01 m in 3-D (kilted's check)
    cm = obstacle_costmap(release, width=60, obstacle_max_range=20.0)
    cm.plugins["obs"].on_cloud("/pts", [[120.01, 0.05, 0.1]], [100.05, 0.05, 1.5], 0.0)
    cm.update_map(100.0, 0.0)
    assert (cm.cost_at(120.01, 0.05) == N.LETHAL_OBSTACLE) is marked


def test_marks_stay_in_odom_as_the_window_rolls():
    cm = obstacle_costmap()
    cm.plugins["obs"].on_cloud("/pts", [[105.05, 0.05, 0.1]], [100.05, 0.05, 1.5], 0.0)
    cm.update_map(100.0, 0.0)
    cm.plugins["obs"].buffers["/pts"].observations.clear()
    for x in (101.0, 102.5, 104.0):
        cm.update_map(x, 0.3)
        assert layer_cost(cm, 105.05, 0.05) == N.LETHAL_OBSTACLE
        assert (cm.plugins["obs"].grid.data == N.LETHAL_OBSTACLE).sum() == 1


def test_unknown_parameters_are_refused():
    with pytest.raises(ValueError, match=r"\['raytrace_min_rnage'\] are not ObstacleLayer parameters"):
        obstacle_costmap(raytrace_min_rnage=3.0)
    with pytest.raises(ValueError, match="'width' is an integer"):
        costmap(width=20.0)
    with pytest.raises(ValueError, match="not ported"):
        costmap(plugins=["inflation"], inflation={"plugin": "nav2_costmap_2d::InflationLayer"})


# --- StaticLayer ------------------------------------------------------------------------

def static_costmap(release="humble", tf=None, **params) -> N.LayeredCostmap:
    layer = {"plugin": "nav2_costmap_2d::StaticLayer", "map_topic": "/icnet/drivable_map",
             "map_subscribe_transient_local": False}
    p = {"global_frame": "odom", "robot_base_frame": "base_link", "rolling_window": True, "width": 20,
         "height": 20, "resolution": 0.1, "track_unknown_space": True, "plugins": ["map"], "map": layer}
    p.update(params)
    return N.LayeredCostmap(p, release, tf)


@pytest.mark.parametrize("release", sorted(N.RELEASES))
def test_trinary_and_graded_values(release):
    values = np.array([0, 30, 50, 99, 100, -1], np.int8).view(np.uint8)
    # lyrical reads 99 (inscribed_obstacle_cost_value) as inscribed, 253, before the trinary test
    tri = static_costmap(release).plugins["map"].interpret(values)
    assert tri.tolist() == [0, 0, 0, 253 if release == "lyrical" else 0, 254, 255]
    graded = static_costmap(release, trinary_costmap=False).plugins["map"].interpret(values)
    assert graded.tolist() == [0, 76, 127, 253 if release == "lyrical" else 251, 254, 255]
    free = static_costmap(release, track_unknown_space=False).plugins["map"].interpret(values)
    assert free.tolist()[-1] == 0                                # unknown becomes free without tracking


def band_map(frame: str, x0: float, y0: float, size_m: float, band_x: float) -> N.OccupancyGrid:
    """Return a map with a lethal band across X = band_x (its own frame), free elsewhere, unknown beyond |y| 8."""
    n = int(round(size_m / 0.1))
    data = np.zeros((n, n), np.int8)
    xs, ys = x0 + (np.arange(n) + 0.5) * 0.1, y0 + (np.arange(n) + 0.5) * 0.1
    data[:, (xs >= band_x) & (xs < band_x + 0.3)] = 100
    data[np.abs(ys) > 8.0] = -1
    return N.OccupancyGrid(frame, 0.1, x0, y0, data)


@pytest.mark.parametrize("release", sorted(N.RELEASES))
def test_map_in_the_global_frame_is_copied_on_every_release(release):
    cm = static_costmap(release)
    cm.plugins["map"].incoming_map(band_map("odom", 60.0, -40.0, 80.0, 106.0))   # robot at odom (100, 0)
    cm.update_map(100.0, 0.0)
    assert cm.cost_at(106.05, 0.05) == N.LETHAL_OBSTACLE and cm.cost_at(104.0, 0.0) == N.FREE_SPACE
    assert cm.cost_at(104.0, 9.0) == N.NO_INFORMATION           # unknown in the map stays unknown
    # the robot moves on, a new map comes: applied at the next update, not before
    cm.update_map(102.0, 0.0)
    cm.plugins["map"].incoming_map(band_map("odom", 62.0, -40.0, 80.0, 109.0))
    assert cm.cost_at(109.05, 0.05) != N.LETHAL_OBSTACLE
    cm.update_map(102.0, 0.0)
    assert cm.cost_at(109.05, 0.05) == N.LETHAL_OBSTACLE and cm.cost_at(106.05, 0.05) == N.FREE_SPACE


@pytest.mark.parametrize("release,fresh", [("humble", False), ("jazzy", True), ("kilted", False),
                                           ("lyrical", True)])
def test_map_in_base_link_goes_stale_away_from_the_origin(release, fresh):
    tf = N.Transforms()
    for robot_x, stale_expected in ((0.0, False), (100.0, not fresh)):
        tf.add("odom", "base_link", robot_x, 0.0, 0.0)
        cm = static_costmap(release, tf)
        layer = cm.plugins["map"]
        layer.incoming_map(band_map("base_link", 0.0, -10.0, 20.0, 99.0))      # first map: no band
        cm.update_map(robot_x, 0.0)
        layer.incoming_map(band_map("base_link", 0.0, -10.0, 20.0, 6.0))       # then a band 6 m ahead
        cm.update_map(robot_x, 0.0)
        stale = cm.cost_at(robot_x + 6.05, 0.05) != N.LETHAL_OBSTACLE
        assert stale is stale_expected, (release, robot_x)


def test_occupancy_grid_from_a_message():
    from types import SimpleNamespace as NS

    msg = NS(header=NS(frame_id="odom"), data=[0, 100, -1, 0, 0, 100],
             info=NS(width=3, height=2, resolution=0.1, origin=NS(position=NS(x=60.0, y=-40.0))))
    grid = N.OccupancyGrid.from_msg(msg)
    assert (grid.frame_id, grid.resolution, grid.origin_x, grid.origin_y) == ("odom", 0.1, 60.0, -40.0)
    assert grid.data.tolist() == [[0, 100, -1], [0, 0, 100]] and grid.data.dtype == np.int8


def test_transforms():
    tf = N.Transforms()
    tf.add("odom", "base_link", 100.0, 2.0, math.pi / 2)
    T = tf.lookup("odom", "base_link")
    np.testing.assert_allclose(T @ [1.0, 0.0, 1.0], [100.0, 3.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(tf.lookup("base_link", "odom") @ [100.0, 3.0, 1.0], [1.0, 0.0, 1.0], atol=1e-12)
    with pytest.raises(LookupError, match="no transform map <- odom"):
        tf.lookup("map", "odom")
