"""
The rolling drivable map's core (icnet_ros/ground/drivable_map.py), without ROS.

Frames come from test/driving.py: docs/robot.md's example camera on a vehicle driving on a
synthetic road.  The map is checked against a brute-force projection of every cell, and
for what a planner relies on: fusion that a bad frame does not flip, decay to unknown,
the blind zone kept after driving forward, the window moving in whole cells, and memory
that stays fixed however far the vehicle drives.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import driving
from icnet_ros.ground import geometry
from icnet_ros.ground.drivable_map import FREE, L_MAX, map_homography, MapError, OCCUPIED, P_MAX, P_MIN
from icnet_ros.ground.drivable_map import RollingMap, trinary_threshold, UNKNOWN, view_footprint

SIZE = (120, 160)       # a small frame with the example camera's field of view: fast tests


def brute_force(m: RollingMap, H: np.ndarray, size: tuple[int, int]):
    """Return (pixel row, pixel column, seen, margin) of every window cell, in float64, no footprint."""
    x0, y0 = m.origin
    X, Y = np.meshgrid(x0 + (np.arange(m.n) + 0.5) * m.resolution, y0 + (np.arange(m.n) + 0.5) * m.resolution)
    u, v, front = geometry.project(H, X, Y)
    col, row = np.floor(u + 0.5), np.floor(v + 0.5)
    seen = front & (col >= 0) & (col < size[1]) & (row >= 0) & (row < size[0])
    # cells within a hair of a pixel edge or the image border may go either way in float32
    margin = front & ((np.abs(u + 0.5 - np.round(u + 0.5)) < 1e-3) | (np.abs(v + 0.5 - np.round(v + 0.5)) < 1e-3))
    return row.astype(int), col.astype(int), seen, margin


@pytest.mark.parametrize("robot", [(0.0, 0.0, 0.0), (100.0, -3.0, 0.3), (-2520.4, 7713.9, -2.5), (5.0, 5.0, 0.785)],
                         ids=["origin", "odom_100", "far_turned", "diagonal"])
def test_one_frame_gives_each_seen_cell_its_pixel_and_leaves_the_rest_unknown(robot):
    m = RollingMap(40.0, 0.1, 10.0)
    m.move_to(robot[0], robot[1])
    H = map_homography(driving.base_homography(SIZE[1], SIZE[0]), *robot)
    rows = np.linspace(0.02, 0.98, SIZE[0], dtype=np.float32)[:, None]     # smooth: a pixel's neighbour is close
    prob = np.broadcast_to(rows * np.linspace(1.0, 0.5, SIZE[1], dtype=np.float32), SIZE).copy()
    touched = m.fuse(prob, H, 5.0)
    got = m.render(5.0, "graded")
    row, col, seen, margin = brute_force(m, H, SIZE)
    assert seen.sum() > 5000 and touched == np.count_nonzero(got != UNKNOWN)
    sure = ~margin
    np.testing.assert_array_equal((got != UNKNOWN)[sure], seen[sure])   # the footprint dropped no cell
    p = np.clip(prob[row[seen & sure], col[seen & sure]], P_MIN, P_MAX)
    expected = np.rint(100.0 * (1.0 - p))
    assert np.abs(got[seen & sure] - expected).max() <= 1
    assert (got[~seen & sure] == UNKNOWN).all()


def test_a_wide_camera_looking_diagonally_marks_no_cell_behind_it():
    # 150 degrees across, heading 45 degrees: the box around the footprint reaches behind the
    # camera, where projections flip through the centre and may land on the image
    K = np.array([[80 / math.tan(math.radians(75)), 0.0, 80.0], [0.0, 80 / math.tan(math.radians(75)), 60.0],
                  [0.0, 0.0, 1.0]])
    H = map_homography(geometry.ground_homography(K, 1.5, 0.3), 0.0, 0.0, 0.785)
    m = RollingMap(20.0, 0.1, 10.0)
    m.move_to(0.0, 0.0)
    x0, y0 = m.origin
    r0, r1, c0, c1 = m._box(H @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]]), SIZE)
    corners_x = x0 + (np.array([c0, c1 - 1]) + 0.5) * m.resolution
    corners_y = y0 + (np.array([r0, r1 - 1]) + 0.5) * m.resolution
    assert not geometry.project(H, *np.meshgrid(corners_x, corners_y))[2].all()   # a corner behind the camera
    m.fuse(np.full(SIZE, 0.9, np.float32), H, 0.0)
    got = m.render(0.0) != UNKNOWN
    _, _, seen, margin = brute_force(m, H, SIZE)
    cx, cy = x0 + (np.arange(m.n) + 0.5) * 0.1, y0 + (np.arange(m.n) + 0.5) * 0.1
    u, v, front = geometry.project(H, *np.meshgrid(cx, cy))
    flipped = ~front & (u >= -0.5) & (u < SIZE[1] - 0.5) & (v >= -0.5) & (v < SIZE[0] - 0.5)
    assert flipped.sum() > 100 and not got[flipped].any()          # such cells exist, and none is marked
    np.testing.assert_array_equal(got[~margin], seen[~margin])


def test_the_view_footprint_is_exact():
    H = map_homography(driving.base_homography(SIZE[1], SIZE[0]), 3.0, 4.0, 0.7)
    poly = np.array(view_footprint(H, SIZE, 60.0))
    assert len(poly) >= 3
    u, v, front = geometry.project(H, poly[:, 0], poly[:, 1])      # its corners land on the image's edges
    assert front.all() and (u >= -0.5 - 1e-6).all() and (u <= SIZE[1] - 0.5 + 1e-6).all()
    assert (v >= -0.5 - 1e-6).all() and (v <= SIZE[0] - 0.5 + 1e-6).all()
    assert view_footprint(H, SIZE, 0.5) == []      # a square behind the camera: nothing seen


def test_a_frame_at_another_resolution_samples_through_the_scaled_homography():
    # A network-size map (half the frame) and the frame-size map it would be resized to
    # (each network pixel repeated 2 x 2) give the same cells through S @ H.
    m_full, m_net = RollingMap(30.0, 0.1, 10.0), RollingMap(30.0, 0.1, 10.0)
    for m in (m_full, m_net):
        m.move_to(0.0, 0.0)
    rng = np.random.default_rng(1)
    small = rng.random((60, 80)).astype(np.float32)
    full = np.repeat(np.repeat(small, 2, 0), 2, 1)
    H = map_homography(driving.base_homography(160, 120), 0.0, 0.0, 0.0)
    S = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]])    # half-pixel centres
    m_full.fuse(full, H, 1.0)
    m_net.fuse(small, S @ H, 1.0)
    a, b = m_full.render(1.0, "graded"), m_net.render(1.0, "graded")
    assert (a != UNKNOWN).sum() > 2000
    assert (a != b).mean() < 0.002        # only cells on a pixel edge, where rounding goes either way


def test_a_settled_cell_needs_two_contrary_frames_to_flip_and_comes_back():
    m = RollingMap(20.0, 0.1, 10.0)
    m.move_to(0.0, 0.0)
    H = map_homography(driving.base_homography(160, 120), 0.0, 0.0, 0.0)
    road, car = np.full((120, 160), 0.99, np.float32), np.full((120, 160), 0.01, np.float32)
    states = []
    # a settled road cell, one bad frame, a car parked for a while, the car gone
    for t, frame in enumerate([road, road, road, car, car, car, car, car, road, road]):
        m.fuse(frame, H, t * 0.1)
        grid = m.render(t * 0.1)
        states.append(set(np.unique(grid[grid != UNKNOWN]).tolist()))
    assert states == [{FREE}] * 4 + [{OCCUPIED}] * 5 + [{FREE}]
    for frame, settled in ((road, 3), (car, 97)):     # the graded extremes: the clamp at 0.97
        for t in (2.0, 2.1, 2.2, 2.3):
            m.fuse(frame, H, t)
        grid = m.render(2.3, "graded")
        assert set(np.unique(grid[grid != UNKNOWN]).tolist()) == {settled}
    assert m._logodds.max() <= L_MAX + 1e-6 and m._logodds.min() >= -L_MAX - 1e-6


def test_evidence_fades_to_unknown_over_the_decay_time():
    m = RollingMap(20.0, 0.1, 4.0)
    m.move_to(0.0, 0.0)
    m.fuse(np.full((120, 160), 0.99, np.float32), map_homography(driving.base_homography(160, 120), 0, 0, 0), 10.0)
    seen = m.render(10.0, "graded") != UNKNOWN
    costs = [m.render(10.0 + dt, "graded")[seen] for dt in (0.0, 1.0, 2.0, 3.9, 4.0)]
    expected = [int(round(100 / (1 + math.exp(math.log(9) * k)))) for k in (1.0, 0.75, 0.5, 0.025)]
    assert [int(np.median(c)) for c in costs[:4]] == expected == [10, 16, 25, 49]
    assert (costs[4] == UNKNOWN).all() and m.known_cells(14.0) == 0
    assert (m.render(13.9, "trinary")[seen] == FREE).all()    # trinary: drivable until it is unknown


def test_the_trinary_threshold_follows_drivable_threshold():
    assert trinary_threshold(0.0) == 0.5 and trinary_threshold(0.7) == 0.7
    m = RollingMap(20.0, 0.1, 10.0)
    m.move_to(0.0, 0.0)
    m.fuse(np.full((120, 160), 0.6, np.float32), map_homography(driving.base_homography(160, 120), 0, 0, 0), 0.0)
    seen = m.render(0.0, "graded") != UNKNOWN
    assert (m.render(0.0, "trinary", trinary_threshold(0.0))[seen] == FREE).all()
    assert (m.render(0.0, "trinary", trinary_threshold(0.7))[seen] == OCCUPIED).all()
    assert (m.render(0.0, "graded")[seen] == 40).all()
    m.fuse(np.full((120, 160), 0.95, np.float32), map_homography(driving.base_homography(160, 120), 0, 0, 0), 0.0)
    # p 0.93 fused (0.6, then 0.9), fading toward 0.5: the trinary map keeps it drivable (no
    # obstacle appears where evidence merely ages) until it is unknown; the graded cost rises toward 50
    assert (m.render(9.0, "trinary", 0.7)[seen] == FREE).all() and (m.render(10.0, "trinary", 0.7) == UNKNOWN).all()
    assert (m.render(9.0, "graded")[seen] == 44).all()


def drive(m: RollingMap, scene, x_from: float, x_to: float, speed: float = 10.0, hz: float = 10.0,
          size=(240, 320), blind=None) -> float:
    """Drive along X from x_from to x_to, fusing every frame; return the last stamp."""
    t, x = 0.0, x_from
    while x <= x_to + 1e-9:
        prob, H = driving.probability_frame(scene, x, 0.0, 0.0, size)
        m.move_to(x, 0.0)
        m.fuse(prob, H, t, blind)
        t, x = t + 1.0 / hz, x + speed / hz
    return t - 1.0 / hz


def cell(m: RollingMap, grid: np.ndarray, x: float, y: float) -> int:
    x0, y0 = m.origin
    return int(grid[int((y - y0) // m.resolution), int((x - x0) // m.resolution)])


def test_the_blind_zone_keeps_what_was_seen_after_driving_forward():
    blind_end = driving.nearest_ground_ahead(320, 240)           # ~3.9 m ahead of the base
    assert 3.5 < blind_end < 4.5
    m = RollingMap(60.0, 0.1, 10.0)
    t = drive(m, driving.road(), 90.0, 110.0)
    grid = m.render(t)
    for ahead in (-1.5, 0.0, 1.0, 2.0, 3.0):                     # behind, under and in front of the vehicle
        assert cell(m, grid, 110.0 + ahead, 0.0) == FREE, ahead
        assert cell(m, grid, 110.0 + ahead, 5.0) == OCCUPIED, ahead     # off the road, seen earlier
    assert cell(m, grid, 89.0, 0.0) == UNKNOWN                   # behind where the drive began: never seen
    fresh = RollingMap(60.0, 0.1, 10.0)                         # one frame alone: the zone is unknown
    drive(fresh, driving.road(), 110.0, 110.0)
    grid = fresh.render(0.0)
    assert all(cell(fresh, grid, 110.0 + a, 0.0) == UNKNOWN for a in (-1.5, 0.0, 1.0, 2.0, 3.0))
    assert cell(fresh, grid, 110.0 + blind_end + 0.3, 0.0) == FREE


def test_ego_pixels_add_nothing():
    hood = np.zeros((240, 320), bool)
    hood[180:] = True                                            # the bottom quarter: the hood
    m, plain = RollingMap(40.0, 0.1, 10.0), RollingMap(40.0, 0.1, 10.0)
    drive(m, driving.road(), 0.0, 0.0, blind=hood)
    drive(plain, driving.road(), 0.0, 0.0)
    a, b = m.render(0.0), plain.render(0.0)
    prob, H = driving.probability_frame(driving.road(), 0.0, 0.0, 0.0, (240, 320))
    through_hood = (b != UNKNOWN) & (a == UNKNOWN)
    assert through_hood.sum() > 200
    row, col, seen, _ = brute_force(m, H, (240, 320))
    assert hood[row[through_hood], col[through_hood]].all()      # exactly the cells seen through the hood
    np.testing.assert_array_equal(a[a != UNKNOWN], b[a != UNKNOWN])


def test_the_window_moves_in_whole_cells_and_keeps_what_stays():
    m = RollingMap(20.0, 0.1, 10.0)
    m.move_to(0.04, 0.0)
    assert m.origin == pytest.approx((-10.0, -10.0))
    m.fuse(*driving.probability_frame(driving.band_across(6.0, 7.0), 0.0, 0.0, 0.0, (120, 160)), 0.0)
    before = m.render(0.0)
    m.move_to(2.37, -1.02)                                       # 23 columns forward, 11 rows to the right
    assert m.origin == pytest.approx((-7.7, -11.1))
    after = m.render(0.0)
    np.testing.assert_array_equal(after[11:, :-23], before[:-11, 23:])
    assert (after[:11] == UNKNOWN).all() and (after[:, -23:] == UNKNOWN).all()
    m.move_to(500.0, 0.0)                                        # further than the window: all unknown
    assert (m.render(0.0) == UNKNOWN).all()


def test_memory_stays_fixed_over_a_long_drive():
    # 4 km, a frame every 4 m (every 2 s, so the stored times are rebased twice) on a 20 m
    # map whose evidence lasts 0.5 s: the ring buffer wraps 200 times; the arrays stay the
    # same ones, nothing else is kept, and the map after the drive is exactly the one frame
    # a fresh map gives.
    m = RollingMap(20.0, 0.1, 0.5)
    arrays, nbytes = (m._logodds, m._seen), m.nbytes
    prob = np.full((60, 80), 0.9, np.float32)
    Hb = driving.base_homography(80, 60)
    x, t = 0.0, 0.0
    for step in range(1001):
        if step == 800:                  # traced from here on only: tracemalloc slows numpy down
            tracemalloc.start()
            start = tracemalloc.get_traced_memory()[0]
        m.move_to(x, 0.3 * math.sin(x / 50.0))
        m.fuse(prob, map_homography(Hb, x, 0.3 * math.sin(x / 50.0), 0.01 * step), t)
        x, t = x + 4.0, t + 2.0
    grown = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    assert x > 4000 and (m._logodds, m._seen) == arrays and m.nbytes == nbytes == 200 * 200 * 8
    assert grown < 64 * 1024
    x, t, step = x - 4.0, t - 2.0, 1000
    y = 0.3 * math.sin(x / 50.0)
    fresh = RollingMap(20.0, 0.1, 0.5)
    fresh.move_to(x, y)
    fresh.fuse(prob, map_homography(Hb, x, y, 0.01 * step), 0.0)
    np.testing.assert_array_equal(m.render(t), fresh.render(0.0))


def test_time_going_back_starts_over():
    m = RollingMap(20.0, 0.1, 10.0)
    t = drive(m, driving.road(), 0.0, 20.0)
    assert t > 1.5 and m.known_cells(t) > 0 and m.restarts == 0
    m.move_to(0.0, 0.0)
    m.fuse(*driving.probability_frame(driving.road(), 0.0, 0.0, 0.0, (240, 320)), 0.02)   # the bag again
    assert m.restarts == 1 and m.known_cells(0.02) == np.count_nonzero(m.render(0.02) != UNKNOWN) > 0


@pytest.mark.parametrize("args, message", [
    ((1000.0, 0.1, 10.0), "a map of 1000 m at 0.1 m is 10000 x 10000 cells, more than 4,000,000: "
                          "use a smaller size or a coarser resolution"),
    ((0.1, 0.1, 10.0), "map size must be at least two cells (0.2 m), got 0.1"),
    ((10.0, 0.0, 10.0), "map resolution must be a positive number of metres, got 0.0"),
    ((10.0, float("nan"), 10.0), "map resolution must be a positive number of metres, got nan"),
    ((10.0, 0.1, 0.0), "map decay time must be a positive number of seconds, got 0.0"),
])
def test_a_map_that_cannot_be_made_says_why(args, message):
    with pytest.raises(MapError) as e:
        RollingMap(*args)
    assert str(e.value) == message


def test_bad_poses_stamps_and_values_are_refused_in_one_line():
    m = RollingMap(10.0, 0.1, 10.0)
    prob, H = driving.probability_frame(driving.road(), 0.0, 0.0, 0.0, (120, 160))
    with pytest.raises(MapError, match="^the map has no window yet: move_to the robot's position first$"):
        m.fuse(prob, H, 0.0)
    with pytest.raises(MapError, match=r"^robot position \(nan, 0.0\) is not finite$"):
        m.move_to(float("nan"), 0.0)
    m.move_to(0.0, 0.0)
    with pytest.raises(MapError, match="^stamp inf is not finite$"):
        m.fuse(prob, H, float("inf"))
    with pytest.raises(MapError, match="^map values must be 'trinary' or 'graded', got 'binary'$"):
        m.render(0.0, "binary")
