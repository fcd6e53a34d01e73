"""
What a camera cannot see of the ground: its blind zone, and a pose that sees no ground.

No ROS.  A camera looking ahead sees the ground only from some distance on: the ground
between its own ground point (the point under its optical centre) and the ground seen
at the bottom edge of the image (or at the top of the robot's hood, ``ego_mask``) is
never seen.  A costmap that ray-traces free space from the camera (Nav2's ObstacleLayer,
``raytrace_min_range``) must not clear that zone, or it erases an obstacle the camera
saw a moment ago as soon as it comes close.

Nav2 clears along each ray from the sensor origin's (x, y) in the costmap's global
frame, from ``raytrace_min_range`` on, measured in the plane (obstacle_layer.cpp
raytraceFreespace; docs/nav2.md).  The unseen stretch of a ray that leaves the
ground point straight ahead is the shortest; a ray at the edge of the view crosses
more unseen ground before it reaches what the camera sees.  So the figure to copy,
``BlindZone.distance``, is the farthest of the nearest seen ground over every direction
the camera sees the ground in: the ground point of a bottom corner of the image for a
camera with no roll.  ``BlindZone.ahead`` is the nearest seen ground along the
camera's heading, ``nearest`` the nearest anywhere.

Pixels follow CameraInfo's convention: pixel (row r, column c) covers
``[c - 0.5, c + 0.5) x [r - 0.5, r + 0.5)``, so the image's bottom edge is ``v = H - 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import CameraPose, GeometryError, GroundProjector


@dataclass(frozen=True)
class BlindZone:
    """Horizontal distances (m) from the camera's ground point to the nearest ground it sees."""

    distance: float     # the farthest over the directions it sees ground in: raytrace_min_range
    ahead: float        # along its heading (NaN when it sees no ground straight ahead)
    nearest: float      # the nearest anywhere


def near_edge(K, pose: CameraPose, image_size: tuple[int, int], ego: np.ndarray | None = None) -> np.ndarray:
    """
    Return the nearest ground the camera sees in each column: N x 2 base_frame (X, Y), m.

    The nearest seen ground of a column is under the bottom edge of its lowest pixel
    that is not the robot's body (``ego``, H x W bool: the rows of the hood counted up
    from the bottom); both of that pixel's bottom corners are taken, so the edge of the
    view is in.  Columns whose lowest seen pixel looks above the horizon give nothing.
    """
    h, w = int(image_size[0]), int(image_size[1])
    if h <= 0 or w <= 0:
        raise GeometryError(f"image size must be positive, got {w}x{h}")
    K = np.asarray(K, np.float64).reshape(3, 3)
    if not (K[0, 0] > 0 and K[1, 1] > 0 and K[2, 2] != 0):
        raise GeometryError(f"camera matrix K has no focal length (fx={K[0, 0]}, fy={K[1, 1]})")
    lowest = np.full(w, h - 1, np.int64)
    if ego is not None:
        ego = np.asarray(ego, bool)
        if ego.shape != (h, w):
            raise GeometryError(f"ego mask is {ego.shape[1]}x{ego.shape[0]} but the image is {w}x{h}")
        # rows of the body counted from the bottom, per column (a column all body sees nothing)
        body = np.cumprod(ego[::-1], axis=0).sum(axis=0)
        lowest = h - 1 - body
    seen = lowest >= 0
    cols = np.flatnonzero(seen)
    u = np.concatenate([cols - 0.5, cols + 0.5])
    v = np.concatenate([lowest[cols], lowest[cols]]) + 0.5
    rays = np.asarray(pose.rotation, np.float64) @ (np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)]))
    centre = np.asarray(pose.position, np.float64)
    down = rays[2] < -1e-12
    t = -centre[2] / rays[2, down]
    return np.stack([centre[0] + t * rays[0, down], centre[1] + t * rays[1, down]], 1)


def blind_zone(K, pose: CameraPose, image_size: tuple[int, int], ego: np.ndarray | None = None) -> BlindZone | None:
    """
    Return the camera's blind zone (distances from its ground point), or None when it sees no ground.

    K: 3x3 intrinsics for frames of ``image_size`` (h, w); ego: the robot's body in the
    image (H x W bool) or None.
    """
    if not pose.position[2] > 0:
        raise GeometryError(f"camera height must be above the ground, got {pose.position[2]} m")
    edge = near_edge(K, pose, image_size, ego)
    if len(edge) == 0:
        return None
    gx, gy = pose.ground_point()
    dx, dy = edge[:, 0] - gx, edge[:, 1] - gy
    reach = np.hypot(dx, dy)
    heading = pose.heading()
    angle = np.arctan2(np.cos(heading) * dy - np.sin(heading) * dx, np.cos(heading) * dx + np.sin(heading) * dy)
    return BlindZone(distance=float(reach.max()), ahead=_ahead(angle, reach), nearest=float(reach.min()))


def _ahead(angle: np.ndarray, reach: np.ndarray) -> float:
    """Reach along angle 0, interpolated along the edge (whose angles run one way, column by column)."""
    order = np.argsort(angle)
    a, r = angle[order], reach[order]
    if not a[0] <= 0.0 <= a[-1]:
        return float("nan")
    return float(np.interp(0.0, a, r))


def sees_ground(projector: GroundProjector) -> bool:
    """Whether any cell of the projector's grid is seen by the camera."""
    return bool(projector.visible.any())


def no_ground_message(frame: str, pose: CameraPose | None) -> str:
    """
    One line for a camera whose pose sees no cell of the grid, naming its frame.

    A camera frame whose x axis points forward is the classic mistake: the image's
    ``frame_id`` (or ``camera_frame``) names the camera's body frame (``camera_link``,
    x forward, z up) instead of its optical frame (z forward, x right, y down; REP 103),
    so the camera seems to look at the sky.
    """
    name = frame or "(no frame_id)"
    if pose is not None and np.asarray(pose.rotation)[0, 0] > 0.7:     # optical x along base X
        return (f"camera '{name}' sees no ground cell: is it a body frame (x forward) rather than "
                f"the optical frame (REP 103)?")
    return f"camera '{name}' sees no ground cell: check its pose and the grid's extent (grid_x_min ... grid_y_max)"
