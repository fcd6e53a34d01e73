"""
docs/nav2.md's recipes, run through the Nav2 costmap stand-in (test/nav2_standin.py; not Nav2).

A vehicle with docs/robot.md's example camera (1.5 m up, 1.2 m ahead of base_footprint,
pitched down 0.1 rad, 60 deg across 640 x 480) drives at 10 m/s along a 7 m wide road
toward a non-drivable band across it.  Its frames go through the node's ground pipeline
(the calls ros/camera.py makes: GroundProjector.occupancy, BoundaryScanner.points and
free_ends) into the costmap the documented YAML builds, at every release ported.
"""

from __future__ import annotations

import math
from pathlib import Path
import re

import numpy as np
import pytest
import yaml

from icnet_ros.ground import blind_zone, geometry as G
from icnet_ros.ground.obstacles import BoundaryScanner
from icnet_ros.node_config import NodeConfig
import nav2_standin as N

DOCS = Path(__file__).resolve().parent.parent / "docs" / "nav2.md"
F = 320 / math.tan(math.radians(30))
K = np.array([[F, 0.0, 319.5], [0.0, F, 239.5], [0.0, 0.0, 1.0]])
SIZE = (480, 640)
POSE = G.CameraPose.from_parameters(1.5, 0.1, x=1.2)     # what TF gives for the example's optical frame
FRONT = 1.5            # the vehicle's front, m ahead of base_footprint (0.3 m ahead of the camera mount)
ROAD = 3.5             # half-width of the road (m)
BAND, DEPTH = 130.0, 0.3                                  # the band across the road: odom X 130 .. 130.3
SPEED, CAMERA_HZ = 10.0, 10.0
NOT_PORTED = {"nav2_costmap_2d::InflationLayer"}          # inflation changes no cell's lethality here


def recipe(name: str, **changes) -> dict:
    """Return the costmap parameters of docs/nav2.md's YAML block marked ``# recipe: NAME``, inflation left out."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    found = [b for b in blocks if re.match(rf"# recipe: {name}\b", b)]
    assert len(found) == 1, f"docs/nav2.md has {len(found)} YAML blocks marked '# recipe: {name}'"
    params = yaml.safe_load(found[0])["local_costmap"]["local_costmap"]["ros__parameters"]
    for layer in [p for p in params["plugins"] if params[p]["plugin"] in NOT_PORTED]:
        params["plugins"].remove(layer)
        del params[layer]
    params.update(changes)
    return params


class Vehicle:
    """The scene, the camera and the node's ground pipeline, in one place."""

    def __init__(self):
        config = NodeConfig()
        self.z = config.obstacles_z
        self.projector = G.GroundProjector(G.pose_homography(K, POSE), config.grid, SIZE)
        self.scanner = BoundaryScanner(config.grid, POSE.ground_point(), POSE.heading(), self.projector.visible,
                                       config.obstacles_max_points)
        # every pixel's ray, and where it meets the ground in base_footprint (pixels above the horizon: none)
        u, v = np.meshgrid(np.arange(SIZE[1], dtype=float), np.arange(SIZE[0], dtype=float))
        rays = POSE.rotation @ np.linalg.solve(K, np.stack([u.ravel(), v.ravel(), np.ones(u.size)]))
        self.down = (rays[2] < 0).reshape(SIZE)
        t = -POSE.position[2] / np.where(rays[2] < 0, rays[2], -1.0)
        self.ground = np.stack([POSE.position[0] + t * rays[0], POSE.position[1] + t * rays[1]], -1).reshape(*SIZE, 2)

    def drivable(self, x: float, y: float) -> np.ndarray:
        """Return the frame's drivable mask as a perfect network gives it, the vehicle at odom (x, y)."""
        X, Y = self.ground[..., 0] + x, self.ground[..., 1] + y
        return self.down & (np.abs(Y) <= ROAD) & ~((X >= BAND) & (X < BAND + DEPTH))

    def grid(self, x: float, y: float) -> np.ndarray:
        return self.projector.occupancy(self.drivable(x, y))

    def clouds(self, x: float, y: float):
        """~/obstacles and ~/free_space in odom (TF at the image's stamp), and the optical frame's origin there."""
        grid = self.grid(x, y)
        out = []
        for pts in (self.scanner.points(grid, self.z), self.scanner.free_ends(grid, self.z)):
            pts = pts.astype(np.float64)
            pts[:, 0] += x
            pts[:, 1] += y
            out.append(pts)
        return out[0], out[1], POSE.position + [x, y, 0.0]


@pytest.fixture(scope="module")
def vehicle():
    return Vehicle()


def band_rows(cm: N.LayeredCostmap) -> np.ndarray:
    """For each costmap row across the road, whether the band there holds a lethal cell."""
    xs = np.arange(BAND - 0.25, BAND + DEPTH + 0.05, 0.1)
    ys = np.arange(-ROAD + 0.05, ROAD, 0.1)
    X, Y = np.meshgrid(xs, ys)
    mx, my, inside = cm.master.world_to_map(X, Y)
    return ((cm.master.data[my, mx] == N.LETHAL_OBSTACLE) & inside).any(axis=1)


def drive_obstacle_recipe(vehicle: Vehicle, params: dict, release: str, phase: float, y: float = 0.0):
    """Drive toward the band; return [(front-to-band distance, band rows lethal)] at each costmap update."""
    cm = N.LayeredCostmap(params, release)
    layer = cm.plugins["icnet_layer"]
    topics = [layer.buffers[t] for t in ("/icnet/obstacles", "/icnet/free_space")]
    period, next_update = 1.0 / params["update_frequency"], 0.0
    seen, x, t = [], BAND - FRONT - 18.0 + phase, 0.0
    while BAND - (x + FRONT) >= 1.0:
        obstacles, free, origin = vehicle.clouds(x, y)
        cm.now = t
        for buf, pts in zip(topics, (obstacles, free)):
            layer.on_cloud(buf.topic, pts, origin, t)
        if t >= next_update - 1e-9:
            cm.update_map(x, y, 0.0)
            assert cm.is_current(), "expected_update_rate: the clouds come every camera period"
            seen.append((BAND - (x + FRONT), band_rows(cm), cm))
            next_update += period
        t += 1.0 / CAMERA_HZ
        x += SPEED / CAMERA_HZ
    return seen


def first_gap(seen) -> float | None:
    """Front-to-band distance at which the band, lethal across the road once within 8 m, first lost a row."""
    armed = False
    for dist, rows, _ in seen:
        if dist <= 8.0 and not armed:
            assert rows.all(), f"the band is not lethal across the road {dist:.1f} m ahead"
            armed = True
        elif armed and not rows.all():
            return dist
    assert armed
    return None


def test_documented_raytrace_min_range_covers_the_blind_zone():
    zone = blind_zone.blind_zone(K, POSE, SIZE)
    p = recipe("obstacles")
    res = p["resolution"]
    needed = math.ceil(zone.distance / res - 1e-9) * res + res          # rounded up, plus one cell
    for source in p["icnet_layer"]["observation_sources"].split():
        assert p["icnet_layer"][source]["raytrace_min_range"] >= needed - 1e-9
    text = DOCS.read_text()
    assert f"{zone.distance:.2f} m ({zone.ahead:.2f} m straight ahead)" in text


@pytest.mark.parametrize("release,phase", [("humble", 0.03), ("jazzy", 0.53), ("kilted", 0.23), ("lyrical", 0.73)])
def test_obstacle_recipe_holds_the_band_until_one_metre(vehicle, release, phase):
    seen = drive_obstacle_recipe(vehicle, recipe("obstacles"), release, phase)
    assert first_gap(seen) is None
    assert seen[-1][0] < 2.0                      # it was checked to the end
    # the blind zone in front of the vehicle is known (cleared while it lay farther ahead), not unknown
    cm, x = seen[-1][2], BAND - seen[-1][0] - FRONT
    gap_ahead = BAND - x - FRONT                 # between the front and the band, all in the blind zone
    ahead = [cm.cost_at(x + FRONT + f * gap_ahead, y) for f in (0.1, 0.5, 0.8) for y in (-1.0, 0.0, 1.0)]
    assert ahead == [N.FREE_SPACE] * len(ahead)


def without_min_range(params: dict, value: float | None = None) -> dict:
    layer = params["icnet_layer"]
    for source in layer["observation_sources"].split():
        if value is None:
            del layer[source]["raytrace_min_range"]
        else:
            layer[source]["raytrace_min_range"] = value
    return params


@pytest.mark.parametrize("release,phase", [("humble", 0.53), ("kilted", 0.93)])
def test_old_recipe_erases_the_band(vehicle, release, phase):
    gap = first_gap(drive_obstacle_recipe(vehicle, without_min_range(recipe("obstacles")), release, phase))
    assert gap is not None and 1.0 <= gap < 3.0, gap


def test_straight_ahead_distance_is_not_enough(vehicle):
    # the nearest ground straight ahead (2.69 m; the node's first grid cell, the 2.75 m) leaves the
    # rays at the edge of the view free to clear the band; the farthest over every direction does not
    zone = blind_zone.blind_zone(K, POSE, SIZE)
    for value in (round(zone.ahead, 1), 2.75):
        gap = first_gap(drive_obstacle_recipe(vehicle, without_min_range(recipe("obstacles"), value), "humble", 0.93))
        assert gap is not None and gap < 3.0, (value, gap)
    exact = without_min_range(recipe("obstacles"), zone.distance)
    assert first_gap(drive_obstacle_recipe(vehicle, exact, "humble", 0.93)) is None


# --- the StaticLayer recipes: a map in odom, and the old per-frame grid in base_link ------

def drivable_map(robot_x: float, robot_y: float, size: float = 80.0, res: float = 0.1) -> N.OccupancyGrid:
    """
    Return a ~/drivable_map as the interface gives it.

    In odom, axis-aligned, centred on the robot: the road 0, the band and the verges 100,
    -1 beyond 8 m to either side.
    """
    n = int(round(size / res))
    x0, y0 = robot_x - size / 2, robot_y - size / 2
    X, Y = np.meshgrid(x0 + (np.arange(n) + 0.5) * res, y0 + (np.arange(n) + 0.5) * res)
    data = np.where((np.abs(Y) <= ROAD) & ~((X >= BAND) & (X < BAND + DEPTH)), 0, 100).astype(np.int8)
    data[np.abs(Y) > 8.0] = -1                    # never seen: beyond the verges
    return N.OccupancyGrid("odom", res, x0, y0, data)


@pytest.mark.parametrize("release", sorted(N.RELEASES))
def test_drivable_map_recipe_at_odom_100(release):
    cm = N.LayeredCostmap(recipe("drivable_map"), release)
    layer = cm.plugins["icnet_map"]
    for robot_x in (100.0, 112.0, 121.0, BAND - FRONT - 1.0):     # the last: the front 1 m from the band
        layer.incoming_map(drivable_map(robot_x, 0.0))
        cm.update_map(robot_x, 0.0)          # the first map is taken at once, later ones at the next update
        cm.update_map(robot_x, 0.0)
        if BAND - robot_x < 20.0:                                   # inside the 40 m window
            assert band_rows(cm).all(), (release, robot_x)
        assert cm.cost_at(robot_x + FRONT + 0.5, 0.0) == N.FREE_SPACE  # the blind zone: known, drivable
        assert cm.cost_at(robot_x, 0.0) == N.FREE_SPACE
        assert cm.cost_at(robot_x, 9.0) == N.NO_INFORMATION            # -1 stays unknown
        assert cm.cost_at(robot_x + 5.0, 5.0) == N.LETHAL_OBSTACLE     # the verge


@pytest.mark.parametrize("release,stale", [("humble", True), ("jazzy", False), ("kilted", True), ("lyrical", False)])
def test_drivable_area_in_base_link_goes_stale_away_from_the_origin(vehicle, release, stale):
    spec = NodeConfig().grid
    for robot_x, expect_stale in ((0.0, False), (100.0, stale)):
        tf = N.Transforms()
        tf.add("odom", "base_footprint", robot_x, 0.0, 0.0)
        cm = N.LayeredCostmap(recipe("drivable_map", width=20, height=20), release, tf)
        layer = cm.plugins["icnet_map"]
        for band_ahead in (30.0, 6.0):          # the first grid, then one with the band 6 m ahead
            grid = vehicle.grid(BAND - band_ahead, 0.0)
            layer.incoming_map(N.OccupancyGrid("base_footprint", spec.resolution, spec.x_min, spec.y_min, grid))
            cm.update_map(robot_x, 0.0)
        lethal = cm.cost_at(robot_x + 6.05, 0.05) == N.LETHAL_OBSTACLE
        assert lethal is not expect_stale, (release, robot_x)


# --- end to end: frames -> the node's map core -> the StaticLayer recipe ------------------

def drive_map_recipe(vehicle: Vehicle, release: str, phase: float, decay_s: float | None = None):
    """
    Drive from odom (100, 0) toward the band: each frame fused into ~/drivable_map's core, fed to the recipe.

    The map has the node's defaults (80 m at 0.1 m, map_decay_s 10, trinary at 0.5);
    returns ([(front-to-band distance, band rows lethal, costmap)] at each costmap update, the map).
    """
    from icnet_ros.ground.drivable_map import map_homography, RollingMap, trinary_threshold

    config = NodeConfig()
    m = RollingMap(config.map_size, config.map_resolution, decay_s or config.map_decay_s)
    params = recipe("drivable_map")
    cm = N.LayeredCostmap(params, release)
    layer = cm.plugins["icnet_map"]
    H_base = G.pose_homography(K, POSE)
    period, next_update = 1.0 / params["update_frequency"], 0.0
    seen, x, t = [], 100.0 + phase, 0.0
    while BAND - (x + FRONT) >= 1.0:
        prob = np.where(vehicle.drivable(x, 0.0), np.float32(0.95), np.float32(0.05))   # a sure network
        m.move_to(x, 0.0)
        m.fuse(prob, map_homography(H_base, x, 0.0, 0.0), t)
        x0, y0 = m.origin
        grid = m.render(t, config.map_values, trinary_threshold(config.drivable_threshold))
        layer.incoming_map(N.OccupancyGrid(config.map_frame, m.resolution, x0, y0, grid))
        if t >= next_update - 1e-9:
            cm.update_map(x, 0.0)
            seen.append((BAND - (x + FRONT), band_rows(cm), cm))
            next_update += period
        t += 1.0 / CAMERA_HZ
        x += SPEED / CAMERA_HZ
    return seen, m


@pytest.mark.parametrize("release,phase", [("humble", 0.03), ("jazzy", 0.53), ("kilted", 0.23), ("lyrical", 0.73)])
def test_drivable_map_recipe_end_to_end_holds_the_band_until_one_metre(vehicle, release, phase):
    seen, m = drive_map_recipe(vehicle, release, phase)
    assert seen[0][0] > 25.0 and seen[-1][0] < 2.0                # from odom (100, 0) to the front 1-2 m away
    assert first_gap(seen) is None                                # lethal across the road all the way in
    assert next(d for d, rows, _ in seen if rows.all()) > 15.0    # and from well before 8 m
    cm = seen[-1][2]
    x = BAND - seen[-1][0] - FRONT
    assert m.origin == pytest.approx((round(x, 1) - 40.0, -40.0), abs=0.11)   # the window follows the robot
    ahead = [cm.cost_at(x + FRONT + f * seen[-1][0], y) for f in (0.1, 0.5, 0.8) for y in (-1.0, 0.0, 1.0)]
    assert ahead == [N.FREE_SPACE] * len(ahead)                   # the blind zone ahead: known, drivable
    assert [cm.cost_at(x + dx, 0.0) for dx in (-3.0, 0.0, 1.0)] == [N.FREE_SPACE] * 3    # behind and under it
    assert cm.cost_at(x + 5.0, ROAD + 0.5) == N.LETHAL_OBSTACLE   # the verge


def test_without_the_maps_memory_the_band_is_lost_in_the_blind_zone(vehicle):
    # map_decay_s shorter than a camera period: each map holds the last frame alone, like a
    # per-frame grid; the band's ends leave the side of the view and its middle enters the
    # blind zone (2.4 m ahead of the front) while the vehicle is still metres away: unknown
    gap = first_gap(drive_map_recipe(vehicle, "humble", 0.03, decay_s=0.05)[0])
    assert gap is not None and gap > 2.0, gap
