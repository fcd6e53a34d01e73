"""
A vehicle driving on a synthetic flat world, seen by one forward camera: frames for the map tests.

The camera is docs/robot.md's example: 1.2 m ahead of the base, 1.5 m high, pitched down
0.1 rad, 60 degrees of horizontal field of view, 640x480 (or any size with the same field
of view).  A scene is a function of map-frame (X, Y) saying whether the ground there is
drivable; a frame is what the camera sees of it with the robot at (x, y, yaw): the
drivable probability per pixel (or green/red pixels for the hand-wired green-road model
of test/conftest.py).  Pixels above the horizon see no ground and are not drivable.
"""

from __future__ import annotations

import math

import numpy as np

from icnet_ros.ground import geometry
from icnet_ros.ground.drivable_map import map_homography

HEIGHT, PITCH, AHEAD = 1.5, 0.1, 1.2
FOV = math.radians(60.0)


def intrinsics(w: int = 640, h: int = 480) -> np.ndarray:
    """K of a pinhole camera with a 60 degree horizontal field of view, centre in the middle (CameraInfo's)."""
    f = (w / 2) / math.tan(FOV / 2)
    return np.array([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])


def base_homography(w: int = 640, h: int = 480) -> np.ndarray:
    """Base-frame ground -> pixels of the example camera."""
    return geometry.ground_homography(intrinsics(w, h), HEIGHT, PITCH, x=AHEAD)


def ground_points(H_map: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (X, Y, on_ground) of each pixel centre: where its ray meets the ground in the map frame."""
    h, w = size
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    P = np.linalg.inv(H_map) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    ground = P[2] > 1e-12                              # rays that go down meet the ground ahead
    z = np.where(ground, P[2], 1.0)
    return (P[0] / z).reshape(h, w), (P[1] / z).reshape(h, w), ground.reshape(h, w)


def probability_frame(scene, x: float, y: float, yaw: float, size=(480, 640), p_road: float = 0.95,
                      p_other: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Return (h x w float32 drivable probability, map plane -> pixel homography) with the robot at (x, y, yaw)."""
    H_map = map_homography(base_homography(size[1], size[0]), x, y, yaw)
    X, Y, ground = ground_points(H_map, size)
    road = ground & scene(X, Y)
    return np.where(road, np.float32(p_road), np.float32(p_other)).astype(np.float32), H_map


def rgb_frame(scene, x: float, y: float, yaw: float, size=(480, 640)) -> np.ndarray:
    """Return the frame the green-road model reads: green where the ground is drivable, red elsewhere."""
    prob, _ = probability_frame(scene, x, y, yaw, size, 1.0, 0.0)
    rgb = np.zeros((*size, 3), np.uint8)
    rgb[..., 0] = np.where(prob > 0.5, 0, 255)
    rgb[..., 1] = np.where(prob > 0.5, 255, 0)
    return rgb


def road(half_width: float = 4.0):
    """Return a scene: a straight road along X, |Y| < half_width."""
    return lambda X, Y: np.abs(Y) < half_width


def band_across(x_from: float, x_to: float, half_width: float = 4.0):
    """Return a scene: the road, with a non-drivable band across it between x_from and x_to."""
    return lambda X, Y: (np.abs(Y) < half_width) & ~((X >= x_from) & (X < x_to))


def nearest_ground_ahead(w: int = 640, h: int = 480) -> float:
    """Return the nearest ground the camera sees straight ahead, in base-frame X (m): the blind zone's end."""
    f = intrinsics(w, h)[1, 1]
    lowest = PITCH + math.atan((h - 0.5 - h / 2) / f)     # the bottom row's centre
    return AHEAD + HEIGHT / math.tan(lowest)
