"""
The Nav2 costmap stand-in's layers: ObstacleLayer and StaticLayer.

A stand-in, not Nav2: see test/nav2_standin.py for the commits read and what is ported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nav2_standin_grid import (_touch, Costmap2D, FREE_SPACE, INSCRIBED_INFLATED_OBSTACLE, LETHAL_OBSTACLE,
                               NO_INFORMATION, Observation, ObservationBuffer, raytrace_lines)

if TYPE_CHECKING:
    from nav2_standin import LayeredCostmap


# Per-source parameters and their defaults: plugins/obstacle_layer.cpp:137-150
SOURCE_DEFAULTS = {"topic": "", "sensor_frame": "", "observation_persistence": 0.0, "expected_update_rate": 0.0,
                   "data_type": "LaserScan", "min_obstacle_height": 0.0, "max_obstacle_height": 0.0,
                   "inf_is_valid": False, "marking": True, "clearing": False, "obstacle_max_range": 2.5,
                   "obstacle_min_range": 0.0, "raytrace_max_range": 3.0, "raytrace_min_range": 0.0}
BUFFER_KEYS = ("observation_persistence", "expected_update_rate", "min_obstacle_height", "max_obstacle_height",
               "obstacle_max_range", "obstacle_min_range", "raytrace_max_range", "raytrace_min_range")


class ObstacleLayer:
    """plugins/obstacle_layer.cpp: marks clouds, clears along rays from each cloud's sensor origin."""

    def __init__(self, layered: "LayeredCostmap", params: dict):
        params = dict(params)
        if params.pop("plugin", "nav2_costmap_2d::ObstacleLayer") != "nav2_costmap_2d::ObstacleLayer":
            raise ValueError("not an ObstacleLayer")
        self.layered, self.release = layered, layered.release
        self.enabled = params.pop("enabled", True)                            # :79-84
        params.pop("footprint_clearing_enabled", None)                        # not ported
        self.min_h = params.pop("min_obstacle_height", 0.0)
        self.max_h = params.pop("max_obstacle_height", 2.0)
        self.combination = params.pop("combination_method", 1)
        names = params.pop("observation_sources", "").split()
        self.buffers, self.marking, self.clearing = {}, [], []
        for name in names:                                                    # :131-286
            src = dict(SOURCE_DEFAULTS, topic=name)
            unknown = set(params.get(name, {})) - set(SOURCE_DEFAULTS)
            if unknown:
                raise ValueError(f"observation source {name}: {sorted(unknown)} are not ObstacleLayer parameters")
            src.update(params.pop(name, {}))
            if src["data_type"] != "PointCloud2":
                raise ValueError("the stand-in ports PointCloud2 sources only")
            buf = ObservationBuffer(src["topic"], **{k: src[k] for k in BUFFER_KEYS}, now=layered.now)
            buf.sensor_frame = src["sensor_frame"]
            self.buffers[src["topic"]] = buf
            (self.marking.append(buf) if src["marking"] else None)
            (self.clearing.append(buf) if src["clearing"] else None)
        if params:
            raise ValueError(f"{sorted(params)} are not ObstacleLayer parameters here")
        sx, sy = layered.master.size_x, layered.master.size_y                # matchSize, costmap_layer.cpp:56
        default = NO_INFORMATION if layered.track_unknown_space else FREE_SPACE       # :112-116
        self.grid = Costmap2D(sx, sy, layered.master.resolution, layered.master.origin_x,
                              layered.master.origin_y, default)
        self.current = True

    def on_cloud(self, topic: str, points, origin, stamp: float) -> None:
        """Take a cloud from the tf2 message filter (:265-274): points and sensor origin in the global frame."""
        self.buffers[topic].buffer_cloud(points, origin, stamp, self.layered.now)

    def update_bounds(self, robot_x: float, robot_y: float, robot_yaw: float, bounds: list) -> None:
        """:412-515: follow the window; clear along every clearing cloud, THEN mark every marking cloud."""
        g = self.grid
        if self.layered.rolling_window:                                       # :420-422
            w, h = g.size_in_meters()
            g.update_origin(robot_x - w / 2, robot_y - h / 2)
        if not self.enabled:
            return
        now = self.layered.now
        marking = [o for b in self.marking for o in b.get_observations(now)]
        clearing = [o for b in self.clearing for o in b.get_observations(now)]
        self.current = all(b.is_current(now) for b in self.marking + self.clearing)   # :428-438
        for obs in clearing:                                                  # :441-443
            self._raytrace_freespace(obs, bounds)
        for obs in marking:                                                   # :446-512
            self._mark(obs, bounds)

    def _mark(self, obs: Observation, bounds: list) -> None:
        g, p = self.grid, obs.points.astype(np.float64)
        ok = (p[:, 2] >= self.min_h) & (p[:, 2] <= self.max_h)              # :470-479, the layer's window
        mx, my, inside = g.world_to_map(p[:, 0], p[:, 1])
        d2 = (p[:, 0] - obs.origin[0]) ** 2 + (p[:, 1] - obs.origin[1]) ** 2
        rule = self.release.marking_range
        if rule == "world3d":                                                 # kilted :512-528
            d3 = d2 + (p[:, 2] - obs.origin[2]) ** 2
            ok &= (d3 < obs.obstacle_max_range ** 2) & ~(d3 < obs.obstacle_min_range ** 2) & inside
        else:
            ox, oy, o_in = g.world_to_map(obs.origin[0], obs.origin[1])
            if not o_in:                                                      # :456-460
                return
            if rule == "world2d+cells":                                       # jazzy :495-506
                ok &= ~(d2 > obs.obstacle_max_range ** 2) & ~(d2 < obs.obstacle_min_range ** 2)
            cells = np.trunc(np.hypot(mx - ox, my - oy))                      # :491-506
            ok &= inside & ~(cells > g.cell_distance(obs.obstacle_max_range)) & \
                ~(cells < g.cell_distance(obs.obstacle_min_range))
        g.data[my[ok], mx[ok]] = LETHAL_OBSTACLE                              # :508-510
        _touch(bounds, p[ok, 0], p[ok, 1])

    def _raytrace_freespace(self, obs: Observation, bounds: list) -> None:
        """:623-712, every point of one cloud at once."""
        g = self.grid
        ox, oy = obs.origin[0], obs.origin[1]
        x0, y0, o_in = g.world_to_map(ox, oy)
        if not o_in:
            return                                                            # :636-645, a warning
        end_x, end_y = g.origin_x + g.size_x * g.resolution, g.origin_y + g.size_y * g.resolution
        _touch(bounds, np.array([ox]), np.array([oy]))                        # :653
        wx, wy = obs.points[:, 0].astype(np.float64), obs.points[:, 1].astype(np.float64)
        a, b = wx - ox, wy - oy
        with np.errstate(divide="ignore", invalid="ignore"):                  # :666-691, clip to the window
            c = wx < g.origin_x
            wx, wy = np.where(c, g.origin_x, wx), np.where(c, oy + b * (g.origin_x - ox) / a, wy)
            c = wy < g.origin_y
            wx, wy = np.where(c, ox + a * (g.origin_y - oy) / b, wx), np.where(c, g.origin_y, wy)
            c = wx > end_x
            wx, wy = np.where(c, end_x - .001, wx), np.where(c, oy + b * (end_x - ox) / a, wy)
            c = wy > end_y
            wx, wy = np.where(c, ox + a * (end_y - oy) / b, wx), np.where(c, end_y - .001, wy)
        x1, y1, ok = g.world_to_map(wx, wy)                                   # :694-699
        cells = raytrace_lines(np.full(ok.sum(), x0), np.full(ok.sum(), y0), x1[ok], y1[ok], g.size_x,
                               g.cell_distance(obs.raytrace_max_range), g.cell_distance(obs.raytrace_min_range))
        g.data.reshape(-1)[cells] = FREE_SPACE                                # MarkCell(FREE_SPACE), :703-705
        # updateRaytraceBounds, :740-753
        full = np.hypot(wx[ok] - ox, wy[ok] - oy)
        far = ~(full < obs.raytrace_min_range)
        scale = np.minimum(1.0, obs.raytrace_max_range / np.where(full > 0, full, 1.0))[far]
        _touch(bounds, ox + (wx[ok][far] - ox) * scale, oy + (wy[ok][far] - oy) * scale)

    def update_costs(self, master: Costmap2D, i0: int, j0: int, i1: int, j1: int) -> None:
        """:532-563: combination_method 1 = updateWithMax (costmap_layer.cpp:109-136), 0 = overwrite."""
        if not self.enabled:
            return
        mine, out = self.grid.data[j0:j1, i0:i1], master.data[j0:j1, i0:i1]
        if self.combination == 1:
            take = (mine != NO_INFORMATION) & ((out == NO_INFORMATION) | (out < mine))
        elif self.combination == 0:                                           # costmap_layer.cpp:164-183
            take = mine != NO_INFORMATION
        else:
            raise ValueError(f"combination_method {self.combination} is not ported")
        out[take] = mine[take]


@dataclass
class OccupancyGrid:
    """nav_msgs/OccupancyGrid as the StaticLayer reads it: data[row, col], -1..100; the origin's yaw is never read."""

    frame_id: str
    resolution: float
    origin_x: float
    origin_y: float
    data: np.ndarray          # int8, height x width

    @classmethod
    def from_msg(cls, msg) -> "OccupancyGrid":
        """Take a nav_msgs/OccupancyGrid as processMap reads it (:179-247): origin position, not orientation."""
        info = msg.info
        data = np.asarray(msg.data, np.int8).reshape(info.height, info.width)
        return cls(msg.header.frame_id, info.resolution, info.origin.position.x, info.origin.position.y, data)


class StaticLayer:
    """plugins/static_layer.cpp: an OccupancyGrid copied into the costmap through TF."""

    def __init__(self, layered: "LayeredCostmap", params: dict):
        params = dict(params)
        if params.pop("plugin", "nav2_costmap_2d::StaticLayer") != "nav2_costmap_2d::StaticLayer":
            raise ValueError("not a StaticLayer")
        for name in ("map_topic", "map_subscribe_transient_local", "subscribe_to_updates", "transform_tolerance"):
            params.pop(name, None)          # topics and QoS are the test's business; see transform_tolerance below
        self.enabled = params.pop("enabled", True)
        if params.pop("footprint_clearing_enabled", False):
            raise ValueError("footprint clearing is not ported")
        if params:
            raise ValueError(f"{sorted(params)} are not StaticLayer parameters here")
        # the costmap's own parameters, read by the layer: :157-162 (not the layer's transform_tolerance)
        self.layered, self.release = layered, layered.release
        self.grid: Costmap2D | None = None
        self.map_frame, self.buffer = "", None
        self.map_received = self.map_received_in_update_bounds = False
        self.current = False

    def incoming_map(self, msg: OccupancyGrid) -> None:
        """:280-294: the first map at once, later ones at the next update (updateBounds :352-356)."""
        if not self.map_received:
            self._process_map(msg)
            self.map_received = True
            return
        self.buffer = msg

    def _process_map(self, msg: OccupancyGrid) -> None:
        """:179-247, in a rolling window: the layer's own grid becomes the map's (:210-223)."""
        if not self.layered.rolling_window:
            raise ValueError("the stand-in ports the StaticLayer in a rolling window only (:193-209)")
        data = np.asarray(msg.data, np.int8)
        self.grid = Costmap2D(data.shape[1], data.shape[0], msg.resolution, msg.origin_x, msg.origin_y)
        self.grid.data[:] = self.interpret(data.view(np.uint8))      # int8 -1 is read as unsigned 255
        self.map_frame = msg.frame_id
        self.current = True

    def interpret(self, value: np.ndarray) -> np.ndarray:
        """:262-278 (lyrical :282-299): map values 0..100 / 255 to costs."""
        lc = self.layered
        lethal = max(min(lc.lethal_cost_threshold, 100), 0)             # :165
        graded = (value.astype(np.float64) / lethal * LETHAL_OBSTACLE).astype(np.uint8)   # :276-277
        out = np.where(value >= lethal, LETHAL_OBSTACLE, FREE_SPACE if lc.trinary_costmap else graded)
        if self.release.inscribed_value:
            out = np.where(value == lc.inscribed_obstacle_cost_value, INSCRIBED_INFLATED_OBSTACLE, out)
        unknown = NO_INFORMATION if lc.track_unknown_space else FREE_SPACE
        return np.where(value == lc.unknown_cost_value, unknown, out).astype(np.uint8)

    def update_bounds(self, robot_x: float, robot_y: float, robot_yaw: float, bounds: list) -> None:
        """:337-379 (jazzy :344-396, lyrical :365-422)."""
        if not self.map_received:
            self.map_received_in_update_bounds = False
            return
        self.map_received_in_update_bounds = True
        if self.buffer is not None:
            self._process_map(self.buffer)
            self.buffer = None
        if self.release.window_bounds:                  # PR #6064: the window, in the global frame
            w, h = self.layered.master.size_in_meters()
            _touch(bounds, np.array([robot_x - w / 2, robot_x + w / 2]), np.array([robot_y - h / 2, robot_y + h / 2]))
        else:                                           # the map's extent in ITS frame, read as global
            g = self.grid
            xs, ys = g.map_to_world(np.array([0, g.size_x]), np.array([0, g.size_y]))
            _touch(bounds, xs, ys)

    def update_costs(self, master: Costmap2D, i0: int, j0: int, i1: int, j1: int) -> None:
        """:397-464, rolling: each master cell's centre through TF (latest, :433-436) into the map."""
        if not self.enabled or not self.map_received_in_update_bounds:
            return
        T = self.layered.tf.lookup(self.map_frame, self.layered.global_frame)
        ii, jj = np.meshgrid(np.arange(i0, i1), np.arange(j0, j1))
        wx, wy = master.map_to_world(ii, jj)
        px, py = T[0, 0] * wx + T[0, 1] * wy + T[0, 2], T[1, 0] * wx + T[1, 1] * wy + T[1, 2]
        mx, my, inside = self.grid.world_to_map(px, py)
        cost = self.grid.data[my, mx]
        if self.layered.use_maximum:                    # :456-457
            cost = np.maximum(cost, master.data[jj, ii])
        master.data[jj[inside], ii[inside]] = cost[inside]     # :453-455; outside the map: untouched
        self.current = True
