"""
A STAND-IN for Nav2's costmap (nav2_costmap_2d), for this project's tests only: it is not Nav2.

Nav2 does not run here (no C++ ROS install), so the parts of the layered costmap that
decide whether the node's outputs hold an obstacle are ported, in small Python, from
navigation2's own source at the commits below: the rolling window (Costmap2D), the
ObservationBuffer (height window, persistence, expected_update_rate), the ObstacleLayer
(clearing every source before marking, Bresenham ray tracing with
raytrace_min/max_range, obstacle_min/max_range as each release checks it, updateWithMax)
and the StaticLayer (first map at once, later ones at the next update, trinary or graded
values, track_unknown_space, its bounds per release, the TF copy in a rolling window).
Not ported: TF itself (the caller gives points and origins in the global frame, as
tf2 gives them at the cloud's stamp: observation_buffer.cpp:103, :116), footprint
clearing, inflation, filters, LaserScan, VoxelLayer, threads and locks.

Citations are ``file:line`` on navigation2's release branches, read from a git mirror of
github.com/ros-navigation/navigation2 (files under nav2_costmap_2d/ unless said):

    humble  3c3db59d6969d8ecee8e68468693d006397f4a0c  (package 1.1.20 + 7 commits)
    jazzy   f4108e5b1c2bce804a1aa0c7be6673a8eb4a1501  (tag 1.3.13)
    kilted  71a1d84f49dc48e226c96619188ee12054824ff3  (package 1.4.2 + 12 commits)
    lyrical aa3dab8da45be5f899342f2f9002189aa4874a90  (package 1.5.1 + 11 commits)

Lines are humble's unless another release is named.  Where the releases differ, the
``Release`` entries say how, and the stand-in follows the one it is given.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from nav2_standin_grid import (Costmap2D, FREE_SPACE, INSCRIBED_INFLATED_OBSTACLE, LETHAL_OBSTACLE,  # noqa: F401
                               NO_INFORMATION, ObservationBuffer, raytrace_line, raytrace_lines)
from nav2_standin_layers import ObstacleLayer, OccupancyGrid, StaticLayer  # noqa: F401


@dataclass(frozen=True)
class Release:
    name: str
    commit: str
    # How ObstacleLayer::updateBounds drops a marking point by range:
    #   "cells": cell distance from the origin's cell, truncated (humble :491-506; not in 1.1.20)
    #   "world2d+cells": planar world distance first, then cells (jazzy :495-523, lyrical :547-575)
    #   "world3d": 3-D distance incl. z from the sensor origin (kilted :512-528; humble tag 1.1.20)
    marking_range: str
    # StaticLayer::updateBounds in a rolling window: True reports the whole window around
    # the robot (PR #6064: jazzy :372-386 from 1.3.12, lyrical :393-406); False the map's
    # own extent, in the map's frame but read as the global frame (humble :366-374, kilted :368-376)
    window_bounds: bool
    # StaticLayer::interpretValue: map value inscribed_obstacle_cost_value (99) -> 253 (lyrical :289)
    inscribed_value: bool = False


RELEASES = {
    "humble": Release("humble", "3c3db59d6969d8ecee8e68468693d006397f4a0c", "cells", False),
    "jazzy": Release("jazzy", "f4108e5b1c2bce804a1aa0c7be6673a8eb4a1501", "world2d+cells", True),
    "kilted": Release("kilted", "71a1d84f49dc48e226c96619188ee12054824ff3", "world3d", False),
    "lyrical": Release("lyrical", "aa3dab8da45be5f899342f2f9002189aa4874a90", "world2d+cells", True, True),
}


class Transforms:
    """TF in the plane: ``add(parent, child, x, y, yaw)``; ``lookup(target, source)`` maps source points to target."""

    def __init__(self):
        self._to_parent: dict[str, tuple[str, np.ndarray]] = {}

    def add(self, parent: str, child: str, x: float, y: float, yaw: float) -> None:
        c, s = math.cos(yaw), math.sin(yaw)
        self._to_parent[child] = (parent, np.array([[c, -s, x], [s, c, y], [0.0, 0.0, 1.0]]))

    def _to_root(self, frame: str) -> tuple[str, np.ndarray]:
        T = np.eye(3)
        while frame in self._to_parent:
            frame, step = self._to_parent[frame]
            T = step @ T
        return frame, T

    def lookup(self, target: str, source: str) -> np.ndarray:
        (rt, Tt), (rs, Ts) = self._to_root(target), self._to_root(source)
        if rt != rs:
            raise LookupError(f"no transform {target} <- {source}")
        return np.linalg.inv(Tt) @ Ts


# The costmap's own parameters and defaults: src/costmap_2d_ros.cpp:80-102 (lyrical :117-121, :403-431)
COSTMAP_DEFAULTS = {"global_frame": "map", "robot_base_frame": "base_link", "rolling_window": False,
                    "width": 5, "height": 5, "resolution": 0.1, "track_unknown_space": False,
                    "trinary_costmap": True, "lethal_cost_threshold": 100, "unknown_cost_value": 255,
                    "inscribed_obstacle_cost_value": 99, "use_maximum": False, "update_frequency": 5.0,
                    "transform_tolerance": 0.3, "publish_frequency": 1.0, "plugins": []}
LAYERS = {"nav2_costmap_2d::ObstacleLayer": ObstacleLayer, "nav2_costmap_2d::StaticLayer": StaticLayer}


class LayeredCostmap:
    """src/layered_costmap.cpp: the master grid and its plugins, updated by update_map()."""

    def __init__(self, params: dict, release: str, tf: Transforms | None = None, now: float = 0.0):
        self.release, self.tf, self.now = RELEASES[release], tf or Transforms(), now
        p = dict(COSTMAP_DEFAULTS)
        layer_params = {name: params[name] for name in params.get("plugins", [])}
        unknown = set(params) - set(p) - set(layer_params)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not costmap parameters here (inflation is not ported)")
        p.update({k: v for k, v in params.items() if k in p})
        for name in ("width", "height"):          # declared as integers: a double is refused (:81-82)
            if not isinstance(p[name], int):
                raise ValueError(f"costmap parameter {name!r} is an integer (metres), got {p[name]!r}")
        for key in ("global_frame", "robot_base_frame", "rolling_window", "track_unknown_space", "trinary_costmap",
                    "lethal_cost_threshold", "unknown_cost_value", "inscribed_obstacle_cost_value", "use_maximum"):
            setattr(self, key, p[key])
        default = NO_INFORMATION if self.track_unknown_space else FREE_SPACE       # :73-79
        res = p["resolution"]
        self.master = Costmap2D(int(p["width"] / res), int(p["height"] / res), res, 0.0, 0.0, default)  # ros.cpp:175
        self.plugins = {}
        for name in p["plugins"]:
            kind = layer_params[name].get("plugin")
            if kind not in LAYERS:
                raise ValueError(f"layer {name}: {kind!r} is not ported")
            self.plugins[name] = LAYERS[kind](self, layer_params[name])
        self.bounds = (0, 0, 0, 0)

    def update_map(self, robot_x: float, robot_y: float, robot_yaw: float = 0.0) -> tuple[int, int, int, int]:
        """:132-257: roll, collect the bounds, reset and update the cells inside them; returns those cells."""
        m = self.master
        if self.rolling_window:                                             # :140-145
            w, h = m.size_in_meters()
            m.update_origin(robot_x - w / 2, robot_y - h / 2)
        bounds = [math.inf, math.inf, -math.inf, -math.inf]
        for layer in self.plugins.values():                                 # :160-177
            layer.update_bounds(robot_x, robot_y, robot_yaw, bounds)
        if not all(math.isfinite(b) for b in bounds):    # no layer touched: max() < lowest(), :210
            return (0, 0, 0, 0)
        x0, y0 = m.world_to_map_enforce_bounds(bounds[0], bounds[1])       # :197-204
        xn, yn = m.world_to_map_enforce_bounds(bounds[2], bounds[3])
        x0, xn = max(0, x0), min(m.size_x, xn + 1)
        y0, yn = max(0, y0), min(m.size_y, yn + 1)
        if xn < x0 or yn < y0:                                              # :210-212
            return (0, 0, 0, 0)
        m.reset_map(x0, y0, xn, yn)                                         # :216-221
        for layer in self.plugins.values():
            layer.update_costs(m, x0, y0, xn, yn)
        self.bounds = (x0, y0, xn, yn)
        return self.bounds

    def is_current(self) -> bool:                                          # :259-273
        return all(layer.current or not layer.enabled for layer in self.plugins.values())

    def cost_at(self, wx: float, wy: float) -> int:
        mx, my, inside = self.master.world_to_map(wx, wy)
        return int(self.master.data[my, mx]) if inside else -1
