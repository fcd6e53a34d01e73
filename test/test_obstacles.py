"""Obstacle points from the drivable grid (no ROS): on non-drivable cells only, the drivable area's edge, bounded."""

from __future__ import annotations

import numpy as np
import pytest

from icnet_ros.ground import geometry as G
from icnet_ros.ground.obstacles import boundary_points, BoundaryScanner

SPEC = G.GridSpec(x_min=0.0, x_max=30.0, y_min=-10.0, y_max=10.0, resolution=0.1)


def cells(points, spec=SPEC):
    """Row (Y) and column (X) of each point's cell."""
    rows = np.floor((points[:, 1] - spec.y_min) / spec.resolution).astype(int)
    cols = np.floor((points[:, 0] - spec.x_min) / spec.resolution).astype(int)
    return rows, cols


def road_between_sidewalks():
    """Seen from 2 m to 30 m ahead: road for |Y| < 3 m, sidewalk (not drivable) out to 6 m, unseen beyond."""
    X, Y = SPEC.cell_centers()
    grid = np.full(X.shape, G.UNKNOWN, np.int8)
    seen = (X > 2.0) & (np.abs(Y) < 6.0)
    grid[seen] = G.OCCUPIED
    grid[seen & (np.abs(Y) < 3.0)] = G.FREE
    return grid


def test_a_straight_road_gives_points_along_both_edges():
    grid = road_between_sidewalks()
    pts = boundary_points(grid, SPEC, (0.0, 0.0), 0.0, max_points=500, z=0.1)
    rows, cols = cells(pts)
    assert (grid[rows, cols] == G.OCCUPIED).all()
    assert pts.dtype == np.float32 and (pts[:, 2] == np.float32(0.1)).all()
    left = pts[(pts[:, 1] > 3.0) & (pts[:, 1] < 3.1)]      # the first sidewalk cell on each side
    right = pts[(pts[:, 1] < -3.0) & (pts[:, 1] > -3.1)]
    for edge in (left, right):
        assert len(edge) > 50 and edge[:, 0].min() < 5.0 and edge[:, 0].max() > 25.0
    # every other point looks past the road's start, at the sidewalk's near side where the view begins
    others = pts[np.abs(np.abs(pts[:, 1]) - 3.05) > 0.01]
    assert len(others) and (np.abs(others[:, 0] - 2.05) < 0.01).all() and (np.abs(others[:, 1]) > 3.0).all()


def first_hits_by_hand(grid, origin, angles, spec=SPEC):
    """Return the first non-drivable cell along each ray, marched in small steps in plain Python."""
    hits = set()
    for a in angles:
        for r in np.arange(0.0, 45.0, spec.resolution / 20):
            x, y = origin[0] + r * np.cos(a), origin[1] + r * np.sin(a)
            col = int(np.floor((x - spec.x_min) / spec.resolution))
            row = int(np.floor((y - spec.y_min) / spec.resolution))
            if 0 <= row < spec.height and 0 <= col < spec.width and grid[row, col] == G.OCCUPIED:
                hits.add((row, col))
                break
    return hits


def test_every_point_is_the_first_non_drivable_cell_along_a_ray():
    rng = np.random.default_rng(1)
    grid = rng.choice(np.array([G.FREE, G.OCCUPIED, G.UNKNOWN], np.int8), size=(SPEC.height, SPEC.width),
                      p=[0.93, 0.02, 0.05])
    grid[:, :20] = G.UNKNOWN
    origin, heading, n = (-1.0, 0.5), 0.3, 64
    scanner = BoundaryScanner(SPEC, origin, heading, grid != G.UNKNOWN, n)
    pts = scanner.points(grid, 0.1)
    rows, cols = cells(pts)
    assert 0 < len(pts) <= n and (grid[rows, cols] == G.OCCUPIED).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) == len(pts)
    by_hand = first_hits_by_hand(grid, origin, scanner.angles)
    found = set(zip(rows.tolist(), cols.tolist()))
    # half-cell steps can cut a cell's corner that the fine march catches: nearly all agree
    assert len(found & by_hand) >= 0.9 * len(by_hand) and len(found - by_hand) <= 0.1 * len(found)


@pytest.mark.parametrize("value", [G.FREE, G.UNKNOWN], ids=["all_drivable", "all_unseen"])
def test_no_points_where_nothing_is_seen_as_not_drivable(value):
    grid = np.full((SPEC.height, SPEC.width), value, np.int8)
    pts = boundary_points(grid, SPEC, (0.0, 0.0), 0.0, max_points=1000)
    assert pts.shape == (0, 3)


def test_the_count_is_bounded():
    grid = np.full((SPEC.height, SPEC.width), G.OCCUPIED, np.int8)
    for n in (1, 10, 100):      # from 5 m behind the grid, each ray meets the near edge (200 cells) at its own
        assert len(boundary_points(grid, SPEC, (-5.0, 0.0), 0.0, max_points=n)) == n
    # from inside a non-drivable cell, every ray stops there: one point
    assert len(boundary_points(grid, SPEC, (0.0, 0.0), 0.0, max_points=300)) == 1


def test_a_grid_of_another_size_is_refused_in_one_line():
    scanner = BoundaryScanner(SPEC, (0.0, 0.0), 0.0, np.ones((SPEC.height, SPEC.width), bool), 10)
    with pytest.raises(ValueError, match="grid is 10x5 cells but the scanner was built for 300x200"):
        scanner.points(np.zeros((5, 10), np.int8), 0.1)


def test_free_ends_close_the_rays_that_meet_no_obstacle():
    # road ahead to the grid's far edge for |Y| < 3 m, a wall of not drivable at X = 20 m for Y > 0
    X, Y = SPEC.cell_centers()
    grid = np.full(X.shape, G.UNKNOWN, np.int8)
    grid[(X > 2.0) & (np.abs(Y) < 3.0)] = G.FREE
    grid[(X > 20.0) & (X < 21.0) & (Y > 0.0) & (Y < 3.0)] = G.OCCUPIED
    scanner = BoundaryScanner(SPEC, (0.0, 0.0), 0.0, grid != G.UNKNOWN, 400)
    ends, hits = scanner.free_ends(grid, 0.1), scanner.points(grid, 0.1)
    rows, cols = cells(ends)
    assert len(ends) > 10 and (grid[rows, cols] == G.FREE).all() and ends.dtype == np.float32
    assert not ((ends[:, 0] > 20.0) & (ends[:, 1] > 0.0)).any()      # never behind the wall
    assert ((np.abs(np.abs(ends[:, 1]) - 2.95) < 0.01) | (ends[:, 0] > 29.0)).all()   # the road's sides or far end
    assert (np.abs(hits[:, 0] - 20.05) < 0.01).sum() > 10   # and the wall is in the obstacles
    far = ends[ends[:, 0] > 29.0]                           # straight ahead: the road's far end at the edge
    assert len(far) > 5 and (far[:, 1] < 0).all()
    assert len(scanner.free_ends(np.full_like(grid, G.OCCUPIED), 0.1)) == 0
    assert len(scanner.free_ends(np.full_like(grid, G.UNKNOWN), 0.1)) == 0


@pytest.mark.parametrize("name,value,expected", [
    ("obstacles_max_points", 0, "value 0 is invalid (must be within [1, 100000])"),
    ("obstacles_max_points", 10.0, "value 10.0 is invalid (expected a int)"),
    ("obstacles_z", 11.0, "value 11.0 is invalid (must be within [-10.0, 10.0])"),
    ("publish_obstacles", "yes", "value 'yes' is invalid (expected a bool)"),
])
def test_bad_obstacle_parameters_are_refused_naming_them(name, value, expected):
    from icnet_ros import node_config

    with pytest.raises(node_config.ConfigError) as e:
        node_config.from_params({"device": "cpu", name: value})
    assert str(e.value) == f"parameter '{name}': {expected}"


def test_a_cell_repeated_along_a_ray_is_gathered_once_and_changes_nothing(monkeypatch):
    """The runs of one cell kept once (obstacles._without_repeats) give what every quarter-cell step gives."""
    from icnet_ros.ground import obstacles

    index = np.array([[4, 4, 5, 5, 5, 9, 9], [1, 2, 2, 2, 2, 2, 2]])
    np.testing.assert_array_equal(obstacles._without_repeats(index, 99), [[4, 5, 9], [1, 2, 99]])
    X, Y = SPEC.cell_centers()
    seen = (X > 2.0) & (np.abs(Y) < 8.0)
    fast = BoundaryScanner(SPEC, (-1.0, 0.5), 0.2, seen, 400)
    monkeypatch.setattr(obstacles, "_without_repeats", lambda index, sentinel: index)
    every = BoundaryScanner(SPEC, (-1.0, 0.5), 0.2, seen, 400)
    assert fast._index.shape[1] < every._index.shape[1] / 2
    rng = np.random.default_rng(5)
    for share in (0.0, 0.005, 0.05, 0.3):
        grid = np.where(rng.random(X.shape) < share, G.OCCUPIED, G.FREE).astype(np.int8)
        grid[~seen | (rng.random(X.shape) < 0.05)] = G.UNKNOWN
        for method in ("points", "free_ends"):
            np.testing.assert_array_equal(getattr(fast, method)(grid, 0.1), getattr(every, method)(grid, 0.1))
