"""
The Nav2 costmap stand-in's grid: Costmap2D, Bresenham ray tracing and the ObservationBuffer.

A stand-in, not Nav2: see test/nav2_standin.py for the commits read and what is ported.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

# include/nav2_costmap_2d/cost_values.hpp
NO_INFORMATION, LETHAL_OBSTACLE, INSCRIBED_INFLATED_OBSTACLE, FREE_SPACE = 255, 254, 253, 0


class Costmap2D:
    """src/costmap_2d.cpp: a grid of uint8 costs, data[my, mx], origin at its lower-left corner."""

    def __init__(self, size_x: int, size_y: int, resolution: float, origin_x: float, origin_y: float,
                 default_value: int = FREE_SPACE):
        self.size_x, self.size_y, self.resolution = int(size_x), int(size_y), float(resolution)
        self.origin_x, self.origin_y, self.default_value = float(origin_x), float(origin_y), default_value
        self.data = np.full((self.size_y, self.size_x), default_value, np.uint8)

    def size_in_meters(self) -> tuple[float, float]:
        return self.size_x * self.resolution, self.size_y * self.resolution

    def map_to_world(self, mx, my):                    # :281, the cell's centre
        return self.origin_x + (np.asarray(mx) + 0.5) * self.resolution, \
            self.origin_y + (np.asarray(my) + 0.5) * self.resolution

    def world_to_map(self, wx, wy):
        """:287; returns (mx, my, inside) arrays (a cell is inside when both indices are)."""
        wx, wy = np.asarray(wx, np.float64), np.asarray(wy, np.float64)
        mx = np.trunc((wx - self.origin_x) / self.resolution)
        my = np.trunc((wy - self.origin_y) / self.resolution)
        inside = (wx >= self.origin_x) & (wy >= self.origin_y) & (mx < self.size_x) & (my < self.size_y)
        return np.where(inside, mx, 0).astype(np.int64), np.where(inside, my, 0).astype(np.int64), inside

    def world_to_map_enforce_bounds(self, wx: float, wy: float) -> tuple[int, int]:   # :308
        def one(w, origin, size):
            if w < origin:
                return 0
            if w > self.resolution * size + origin:
                return size - 1
            return int((w - origin) / self.resolution)
        return one(wx, self.origin_x, self.size_x), one(wy, self.origin_y, self.size_y)

    def cell_distance(self, world_dist: float) -> int:           # :255
        return int(max(0.0, math.ceil(world_dist / self.resolution)))

    def reset_map(self, x0: int, y0: int, xn: int, yn: int) -> None:     # :130-143
        self.data[y0:yn, x0:xn] = self.default_value

    def update_origin(self, new_origin_x: float, new_origin_y: float) -> None:
        """:330-384: move the window, keep what overlaps, the rest to the default value."""
        cell_ox = int((new_origin_x - self.origin_x) / self.resolution)      # truncation, as static_cast<int>
        cell_oy = int((new_origin_y - self.origin_y) / self.resolution)
        new_ox = self.origin_x + cell_ox * self.resolution
        new_oy = self.origin_y + cell_oy * self.resolution
        llx, lly = min(max(cell_ox, 0), self.size_x), min(max(cell_oy, 0), self.size_y)
        urx = min(max(cell_ox + self.size_x, 0), self.size_x)
        ury = min(max(cell_oy + self.size_y, 0), self.size_y)
        kept = self.data[lly:ury, llx:urx].copy()
        self.data[:] = self.default_value
        self.origin_x, self.origin_y = new_ox, new_oy
        sx, sy = llx - cell_ox, lly - cell_oy
        self.data[sy:sy + kept.shape[0], sx:sx + kept.shape[1]] = kept


# --- ray tracing: include/nav2_costmap_2d/costmap_2d.hpp:430-515 (jazzy :440, kilted :476;
# lyrical: nav2_util/include/nav2_util/raytrace_line_2d.hpp:49-132), the same on every release

def raytrace_line(x0: int, y0: int, x1: int, y1: int, size_x: int, max_length: int = 2 ** 32 - 1,
                  min_length: int = 0) -> list[int]:
    """Return the cells (flat offsets) raytraceLine visits on one ray, step by step as the C++ does."""
    dx_full, dy_full = x1 - x0, y1 - y0
    dist = math.hypot(dx_full, dy_full)
    if dist < min_length:
        return []
    if dist > 0.0:     # start min_length cells along the ray (unsigned truncation)
        min_x0, min_y0 = int(x0 + dx_full / dist * min_length), int(y0 + dy_full / dist * min_length)
    else:
        min_x0, min_y0 = x0, y0
    offset = min_y0 * size_x + min_x0
    dx, dy = x1 - min_x0, y1 - min_y0
    sign = lambda v: 1 if v > 0 else -1                 # noqa: E731  (sign(0) is -1, :512-515)
    scale = 1.0 if dist == 0.0 else min(1.0, max_length / dist)
    if abs(dx) >= abs(dy):
        da, db, error, step_a, step_b = abs(dx), abs(dy), abs(dx) // 2, sign(dx), sign(dy) * size_x
    else:
        da, db, error, step_a, step_b = abs(dy), abs(dx), abs(dy) // 2, sign(dy) * size_x, sign(dx)
    out = []                                            # bresenham2D, :490-510
    for _ in range(min(int(scale * da), da)):
        out.append(offset)
        offset += step_a
        error += db
        if error >= da:
            offset += step_b
            error -= da
    out.append(offset)                                  # the end cell is visited too
    return out


def raytrace_lines(x0, y0, x1, y1, size_x: int, max_length: int, min_length: int) -> np.ndarray:
    """raytrace_line for many rays at once (the same integer steps, vectorised): every offset visited."""
    x0, y0, x1, y1 = (np.asarray(a, np.int64) for a in (x0, y0, x1, y1))
    dx_full, dy_full = x1 - x0, y1 - y0
    dist = np.hypot(dx_full, dy_full)
    keep = ~(dist < min_length)
    x0, y0, x1, y1, dx_full, dy_full, dist = (a[keep] for a in (x0, y0, x1, y1, dx_full, dy_full, dist))
    safe = np.where(dist > 0, dist, 1.0)
    min_x0 = np.where(dist > 0, np.trunc(x0 + dx_full / safe * min_length), x0).astype(np.int64)
    min_y0 = np.where(dist > 0, np.trunc(y0 + dy_full / safe * min_length), y0).astype(np.int64)
    offset = min_y0 * size_x + min_x0
    dx, dy = x1 - min_x0, y1 - min_y0
    sx, sy = np.where(dx > 0, 1, -1), np.where(dy > 0, 1, -1) * size_x
    scale = np.where(dist == 0, 1.0, np.minimum(1.0, max_length / safe))
    x_major = np.abs(dx) >= np.abs(dy)
    da = np.where(x_major, np.abs(dx), np.abs(dy))
    db = np.where(x_major, np.abs(dy), np.abs(dx))
    step_a, step_b = np.where(x_major, sx, sy), np.where(x_major, sy, sx)
    error = da // 2
    end = np.minimum(np.trunc(scale * da).astype(np.int64), da)
    out = []
    for i in range(int(end.max()) if len(end) else 0):
        on = i < end
        out.append(offset[on])
        offset = offset + np.where(on, step_a, 0)
        error = error + np.where(on, db, 0)
        wrap = on & (error >= da)
        offset = offset + np.where(wrap, step_b, 0)
        error = error - np.where(wrap, da, 0)
    out.append(offset)
    return np.concatenate(out)


@dataclass
class Observation:                    # include/nav2_costmap_2d/observation.hpp
    origin: np.ndarray                # the sensor origin in the global frame (x, y, z)
    points: np.ndarray                # N x 3 float32, global frame, inside the height window
    stamp: float
    obstacle_max_range: float
    obstacle_min_range: float
    raytrace_max_range: float
    raytrace_min_range: float


class ObservationBuffer:
    """src/observation_buffer.cpp (lyrical's only reshuffles it): one source's latest clouds."""

    def __init__(self, topic: str, observation_persistence: float = 0.0, expected_update_rate: float = 0.0,
                 min_obstacle_height: float = 0.0, max_obstacle_height: float = 0.0,
                 obstacle_max_range: float = 2.5, obstacle_min_range: float = 0.0,
                 raytrace_max_range: float = 3.0, raytrace_min_range: float = 0.0, now: float = 0.0):
        self.topic, self.keep_time, self.expected_update_rate = topic, observation_persistence, expected_update_rate
        self.min_h, self.max_h = min_obstacle_height, max_obstacle_height
        self.ranges = (obstacle_max_range, obstacle_min_range, raytrace_max_range, raytrace_min_range)
        self.observations: list[Observation] = []
        self.last_updated = now                            # :76

    def buffer_cloud(self, points, origin, stamp: float, now: float) -> None:
        """:83-172, after TF: ``points`` (N x 3) and ``origin`` already in the global frame."""
        pts = np.asarray(points, np.float32).reshape(-1, 3)
        keep = (pts[:, 2] <= self.max_h) & (pts[:, 2] >= self.min_h)      # :143-144, per source
        self.observations.insert(0, Observation(np.asarray(origin, np.float64), pts[keep], stamp, *self.ranges))
        self.last_updated = now                                            # :168
        self._purge(now)

    def get_observations(self, now: float) -> list[Observation]:        # :175-185
        self._purge(now)
        return list(self.observations)

    def _purge(self, now: float) -> None:                                # :187-210
        if self.keep_time == 0.0:
            del self.observations[1:]                  # persistence 0: the latest cloud only
            return
        for i, obs in enumerate(self.observations):
            if now - obs.stamp > self.keep_time:
                del self.observations[i:]
                return

    def is_current(self, now: float) -> bool:
        """:212-230: expected_update_rate is a PERIOD in seconds (0: never stale)."""
        return self.expected_update_rate == 0.0 or (now - self.last_updated) <= self.expected_update_rate


def _touch(bounds: list, xs, ys) -> None:                 # costmap_layer.cpp:47-54
    if len(xs):
        bounds[0], bounds[1] = min(bounds[0], float(np.min(xs))), min(bounds[1], float(np.min(ys)))
        bounds[2], bounds[3] = max(bounds[2], float(np.max(xs))), max(bounds[3], float(np.max(ys)))
