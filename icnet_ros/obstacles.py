"""
From a drivable grid to the obstacle points a costmap marks: the edge of the drivable area.

No ROS.  The ground around the camera's ground point is cut into ``max_points`` equal
angular sectors spanning the cells the camera sees; in each, the nearest cell the camera
sees as not drivable is one point (its centre), like one beam of a laser scan.  A
costmap's ObstacleLayer marks these points and, ray tracing from the sensor to each,
clears the drivable cells in front of them.  Sectors with no such cell give no point, so
a frame gives at most ``max_points`` points, and an all-drivable frame none.  Cells the
grid calls unseen (-1: outside the image, behind the camera, or seen only through the
robot's own body) and drivable cells never give a point.
"""

from __future__ import annotations

import numpy as np

from .geometry import GridSpec, OCCUPIED


class BoundaryScanner:
    """
    Nearest non-drivable cell per angular sector, for one grid, ground point and field of view.

    Built once per pose and grid (the sectors and the cells' order by distance are
    precomputed); each frame then costs one gather and one unique over its non-drivable
    cells.
    """

    def __init__(self, spec: GridSpec, origin: tuple[float, float], heading: float,
                 visible: np.ndarray, max_points: int):
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, got {max_points}")
        self.spec = spec
        X, Y = spec.cell_centers()
        dx, dy = X - origin[0], Y - origin[1]
        # angle from the camera's heading, in (-pi, pi]: a forward camera's view never wraps
        c, s = np.cos(heading), np.sin(heading)
        angle = np.arctan2(c * dy - s * dx, c * dx + s * dy)
        seen = np.asarray(visible, bool)
        if seen.any():
            lo, hi = float(angle[seen].min()), float(angle[seen].max())
        else:
            lo, hi = -np.pi, np.pi
        width = max(hi - lo, 1e-9) / max_points
        sector = np.clip(((angle - lo) / width).astype(np.int64), 0, max_points - 1)
        self.order = np.argsort((dx * dx + dy * dy).ravel(), kind="stable")   # near to far
        self.sector = sector.ravel()[self.order]
        self._xy = np.stack([X.ravel()[self.order], Y.ravel()[self.order]], 1).astype(np.float32)

    def points(self, grid: np.ndarray, z: float) -> np.ndarray:
        """Return the points of one grid: N x 3 float32 (x, y, z) in base_frame, N <= max_points."""
        if grid.shape != (self.spec.height, self.spec.width):
            raise ValueError(f"grid is {grid.shape[1]}x{grid.shape[0]} cells but the scanner was built "
                             f"for {self.spec.width}x{self.spec.height}")
        blocked = grid.ravel()[self.order] == OCCUPIED
        idx = np.flatnonzero(blocked)
        _, first = np.unique(self.sector[idx], return_index=True)    # nearest per sector
        keep = idx[first]
        out = np.empty((len(keep), 3), np.float32)
        out[:, :2] = self._xy[keep]
        out[:, 2] = z
        return out


def boundary_points(grid: np.ndarray, spec: GridSpec, origin: tuple[float, float], heading: float,
                    max_points: int, z: float = 0.1) -> np.ndarray:
    """One-shot: obstacle points of a grid (cells other than -1 count as seen)."""
    return BoundaryScanner(spec, origin, heading, grid != -1, max_points).points(grid, z)
