"""
Ground-plane geometry: from a camera's pose to a bird's-eye drivable grid.

No ROS.

Conventions (REP-103): the ground frame is the vehicle's ``base_frame`` with X forward,
Y left, Z up, the ground at Z = 0.  The camera's optical frame is X right, Y down,
Z forward.  A homography ``H`` (3x3) maps a ground point to a pixel:
``(u, v, 1) ~ H @ (X, Y, 1)``.

A grid is rasterised by *inverse* mapping: each cell centre is projected into the image
and takes the mask value there.  That gives no holes at any distance, and a cell whose
centre falls outside the image or behind the camera is simply unseen.

Grid layout: ``grid[i, j]`` is the cell at ``Y = y_min + (i + 0.5) * res`` and
``X = x_min + (j + 0.5) * res`` — rows along Y, columns along X, which is the row-major
order of nav_msgs/OccupancyGrid with its origin at (x_min, y_min).  ``bev_image`` turns
it so that forward is up and left is left, the way KITTI draws its bird's-eye view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FREE, OCCUPIED, UNKNOWN = 0, 100, -1


class GeometryError(ValueError):
    """A bad calibration file, camera matrix, pose or grid extent."""


@dataclass(frozen=True)
class GridSpec:
    """A rectangle of the ground plane in base_frame, cut into square cells."""

    x_min: float = 0.0
    x_max: float = 40.0
    y_min: float = -10.0
    y_max: float = 10.0
    resolution: float = 0.1

    def __post_init__(self):
        if not self.resolution > 0:
            raise GeometryError(f"grid resolution must be positive, got {self.resolution}")
        if not self.x_max > self.x_min:
            raise GeometryError(f"grid x_max ({self.x_max}) must be greater than x_min ({self.x_min})")
        if not self.y_max > self.y_min:
            raise GeometryError(f"grid y_max ({self.y_max}) must be greater than y_min ({self.y_min})")
        if self.width * self.height > 25_000_000:
            raise GeometryError(f"grid of {self.width} x {self.height} cells is too large; "
                                f"use a coarser resolution or a smaller extent")

    @property
    def width(self) -> int:   # cells along X
        return int(round((self.x_max - self.x_min) / self.resolution))

    @property
    def height(self) -> int:  # cells along Y
        return int(round((self.y_max - self.y_min) / self.resolution))

    def cell_centers(self) -> tuple[np.ndarray, np.ndarray]:
        """(X, Y), each height x width, in metres."""
        xs = self.x_min + (np.arange(self.width) + 0.5) * self.resolution
        ys = self.y_min + (np.arange(self.height) + 0.5) * self.resolution
        return np.meshgrid(xs, ys)


# KITTI's road benchmark bird's-eye view: x (right) -10..10 m, z (forward) 6..46 m, 5 cm.
KITTI_BEV = GridSpec(x_min=6.0, x_max=46.0, y_min=-10.0, y_max=10.0, resolution=0.05)


# --- camera pose -> homography -------------------------------------------------------

def rotation(roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    """
    Return the camera optical frame's axes in base_frame.

    The axes are Rz(yaw) Ry(pitch) Rx(roll) R0, where R0 is a level camera looking along
    X.  Positive pitch looks down (REP-103).
    """
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns: x, y, z
    return rz @ ry @ rx @ optical


def quaternion_rotation(x: float, y: float, z: float, w: float) -> np.ndarray:
    """
    Return the rotation matrix of a quaternion (geometry_msgs order x, y, z, w), normalised first.

    NumPy only: tf_transformations is not always installed.
    """
    q = np.array([x, y, z, w], np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-9:
        raise GeometryError(f"quaternion ({x}, {y}, {z}, {w}) has no rotation (norm {n:g})")
    x, y, z, w = q / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@dataclass(frozen=True)
class CameraPose:
    """
    The camera's optical frame in base_frame: a full 6-DoF pose.

    ``rotation``'s columns are the optical axes (x right, y down, z forward) in base_frame,
    ``position`` the optical centre; a point p in the optical frame is R p + t in
    base_frame, which is what a TF lookup of base_frame <- camera frame gives.
    """

    rotation: np.ndarray
    position: np.ndarray

    @classmethod
    def from_parameters(cls, height: float, pitch: float = 0.0, roll: float = 0.0, yaw: float = 0.0,
                        x: float = 0.0, y: float = 0.0) -> "CameraPose":
        return cls(rotation(roll, pitch, yaw), np.array([x, y, height], np.float64))

    @classmethod
    def from_transform(cls, translation, quaternion) -> "CameraPose":
        """From a transform's translation (x, y, z) and rotation quaternion (x, y, z, w)."""
        return cls(quaternion_rotation(*quaternion), np.asarray(translation, np.float64).reshape(3))

    def ground_point(self) -> tuple[float, float]:
        """Return the point of the ground under the camera (base_frame X, Y)."""
        return float(self.position[0]), float(self.position[1])

    def heading(self) -> float:
        """Return where the optical axis points on the ground, as an angle from X (rad)."""
        forward = self.rotation[:, 2]
        if abs(forward[0]) + abs(forward[1]) < 1e-9:      # straight down: any heading
            return 0.0
        return float(np.arctan2(forward[1], forward[0]))


def pose_homography(K, pose: CameraPose) -> np.ndarray:
    """
    Return the ground-to-pixel homography of a camera with intrinsics K at any 6-DoF pose.

    H maps ground X, Y in base_frame (Z = 0) to pixels; no small-angle shortcuts.
    """
    K = np.asarray(K, np.float64).reshape(3, 3)
    if not (K[0, 0] > 0 and K[1, 1] > 0 and K[2, 2] != 0):
        raise GeometryError(f"camera matrix K has no focal length (fx={K[0, 0]}, fy={K[1, 1]})")
    R, center = np.asarray(pose.rotation, np.float64), np.asarray(pose.position, np.float64)
    if not center[2] > 0:
        raise GeometryError(f"camera height must be above the ground, got {center[2]} m")
    # pixel ~ K R^T (P - C) with P = (X, Y, 0)
    M = R.T @ np.column_stack([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], -center])
    return K @ M


def ground_homography(K, height: float, pitch: float = 0.0, roll: float = 0.0, yaw: float = 0.0,
                      x: float = 0.0, y: float = 0.0) -> np.ndarray:
    """
    Return the ground-to-pixel homography of a camera with intrinsics K mounted above the ground.

    H maps ground X, Y in base_frame to pixels.  K is 3x3; the camera is ``height``
    metres above the ground at (x, y), turned by roll/pitch/yaw (radians): one way to
    make a CameraPose.
    """
    return pose_homography(K, CameraPose.from_parameters(height, pitch, roll, yaw, x, y))


def read_kitti_calib(path) -> dict[str, np.ndarray]:
    """Read a KITTI calib .txt file as named matrices (P0..P3 3x4, R0_rect 3x3, Tr_* 3x4)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise GeometryError(f"calib file {path} cannot be read: {e.strerror or e}") from None
    out = {}
    for line in lines:
        if ":" not in line:
            continue
        key, values = line.split(":", 1)
        try:
            numbers = np.array([float(v) for v in values.split()], np.float64)
        except ValueError:
            raise GeometryError(f"calib file {path}: entry {key.strip()!r} has non-numeric values") from None
        shape = {12: (3, 4), 9: (3, 3)}.get(numbers.size)
        if shape:
            out[key.strip()] = numbers.reshape(shape)
    for needed in ("P2", "R0_rect", "Tr_cam_to_road"):
        if needed not in out:
            raise GeometryError(f"calib file {path} has no {needed} entry (is it a KITTI road calib file?)")
    return out


def _h4(m: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[: m.shape[0], : m.shape[1]] = m
    return out


def kitti_road_homography(calib) -> np.ndarray:
    """
    Return KITTI's own road homography Tr33, mapping road (x right, z forward, 1) to pixels.

    Tr33 = (P2 R0_rect inv(Tr_cam_to_road))[:, [0, 2, 3]].  calib: a path or
    read_kitti_calib().
    """
    if not isinstance(calib, dict):
        calib = read_kitti_calib(calib)
    full = calib["P2"] @ _h4(calib["R0_rect"]) @ np.linalg.inv(_h4(calib["Tr_cam_to_road"]))
    return full[:, [0, 2, 3]]


def kitti_ground_homography(calib, x: float = 0.0, y: float = 0.0) -> np.ndarray:
    """
    Return KITTI's road homography in base_frame terms (X forward, Y left).

    The road frame's origin (under the camera) is placed at (x, y) in base_frame.
    """
    # road x = -(Y - y) (road x points right), road z = X - x
    base_to_road = np.array([[0.0, -1.0, y], [1.0, 0.0, -x], [0.0, 0.0, 1.0]])
    return kitti_road_homography(calib) @ base_to_road


def kitti_camera_pose(calib, x: float = 0.0, y: float = 0.0) -> CameraPose:
    """
    Return the colour camera's (P2's) pose in base_frame from a KITTI calib, as kitti_ground_homography places it.

    The chain road -> inv(Tr_cam_to_road) -> R0_rect -> P2 is split into P2's intrinsics
    and the rigid part [I | K2^-1 p2] R0_rect inv(Tr_cam_to_road); road x right, y down,
    z forward becomes base X forward, Y left, Z up, the road origin at (x, y).
    """
    if not isinstance(calib, dict):
        calib = read_kitti_calib(calib)
    P2 = calib["P2"]
    rigid = np.column_stack([np.eye(3), np.linalg.solve(P2[:, :3], P2[:, 3])]) @ _h4(calib["R0_rect"]) \
        @ np.linalg.inv(_h4(calib["Tr_cam_to_road"]))            # road -> camera 2's optical frame
    R, t = rigid[:, :3], rigid[:, 3]
    road_to_base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    centre = road_to_base @ np.linalg.solve(R, -t) + np.array([x, y, 0.0])
    return CameraPose(road_to_base @ np.linalg.inv(R), centre)


def kitti_intrinsics(calib) -> np.ndarray:
    if not isinstance(calib, dict):
        calib = read_kitti_calib(calib)
    return calib["P2"][:, :3].copy()


def scale_intrinsics(K, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """K for an image resized from (h, w) ``from_size`` to ``to_size``."""
    K = np.asarray(K, np.float64).reshape(3, 3).copy()
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    K[0] *= sx
    K[1] *= sy
    return K


def project(H, X, Y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels (u, v) of ground points, and whether each lies in front of the camera."""
    H = np.asarray(H, np.float64)
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    u = H[0, 0] * X + H[0, 1] * Y + H[0, 2]
    v = H[1, 0] * X + H[1, 1] * Y + H[1, 2]
    w = H[2, 0] * X + H[2, 1] * Y + H[2, 2]
    front = w > 1e-9
    w = np.where(front, w, 1.0)
    return u / w, v / w, front


# --- rasterising ----------------------------------------------------------------------

class GroundProjector:
    """
    Samples image-space maps onto a ground grid.

    The pixel of every cell is computed once for a given homography, grid and image
    size, so each frame costs one gather.
    """

    def __init__(self, H, spec: GridSpec, image_size: tuple[int, int]):
        h, w = int(image_size[0]), int(image_size[1])
        if h <= 0 or w <= 0:
            raise GeometryError(f"image size must be positive, got {w}x{h}")
        self.spec, self.image_size = spec, (h, w)
        X, Y = spec.cell_centers()
        u, v, front = project(H, X, Y)
        # CameraInfo's K puts pixel centres at integers: pixel c spans [c - 0.5, c + 0.5)
        col, row = np.floor(u + 0.5), np.floor(v + 0.5)
        self.visible = front & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        # flat pixel index of each visible cell; 0 (ignored) elsewhere
        self._index = np.where(self.visible, row.clip(0, h - 1) * w + col.clip(0, w - 1), 0).astype(np.int64)

    def sample(self, image: np.ndarray, fill=0) -> np.ndarray:
        """
        Ground view of an H x W (x C) image: value at each cell's pixel, ``fill`` where unseen.

        Works for masks, probabilities and colour images alike.
        """
        if image.shape[:2] != self.image_size:
            raise GeometryError(f"image is {image.shape[1]}x{image.shape[0]} but the projector "
                                f"was built for {self.image_size[1]}x{self.image_size[0]}")
        flat = image.reshape(self.image_size[0] * self.image_size[1], *image.shape[2:])
        out = flat[self._index]
        out[~self.visible] = fill
        return out

    def occupancy(self, drivable: np.ndarray, blind: np.ndarray | None = None) -> np.ndarray:
        """
        int8 grid: 0 drivable, 100 not drivable, -1 unseen.

        blind (H x W bool, optional): pixels that do not see the ground (the robot's own
        body, icnet_ros/ego_mask.py); a cell whose pixel is one of them is unseen.
        """
        seen = self.sample(np.asarray(drivable).astype(bool, copy=False), fill=False)
        grid = np.where(seen, FREE, OCCUPIED).astype(np.int8)
        grid[~self.visible] = UNKNOWN
        if blind is not None:
            grid[self.sample(np.asarray(blind).astype(bool, copy=False), fill=False)] = UNKNOWN
        return grid


def occupancy_grid(drivable: np.ndarray, H, spec: GridSpec = GridSpec(), blind=None) -> np.ndarray:
    """One-shot: a drivable mask (H x W bool) to an int8 grid (0 / 100 / -1)."""
    return GroundProjector(H, spec, drivable.shape[:2]).occupancy(drivable, blind)


def bird_eye_view(image: np.ndarray, H, spec: GridSpec = KITTI_BEV, fill=0) -> np.ndarray:
    """One-shot ground view of an image or mask, as an image (forward up, left left)."""
    return bev_image(GroundProjector(H, spec, image.shape[:2]).sample(image, fill))


def bev_image(grid: np.ndarray) -> np.ndarray:
    """Turn a grid (rows Y, columns X) into a picture: far at the top, left on the left."""
    return np.ascontiguousarray(np.swapaxes(grid, 0, 1)[::-1, ::-1])


def grid_to_png(grid: np.ndarray) -> np.ndarray:
    """uint8 picture of an occupancy grid: free white, occupied black, unseen grey."""
    out = np.full(grid.shape, 128, np.uint8)
    out[grid == FREE] = 255
    out[grid == OCCUPIED] = 0
    return bev_image(out)
