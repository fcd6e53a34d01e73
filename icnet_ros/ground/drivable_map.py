"""
A rolling drivable map in a fixed frame (``odom``), fused over time from camera frames.

No ROS.

The map is a square window of ``size`` metres centred on the robot, axis-aligned with the
fixed frame, that moves with the robot in whole cells.  Each frame adds evidence to the
cells its camera sees now: the frame's drivable probability at the cell's pixel, as log
odds, added to the cell's and clamped (a car driving through, or one bad frame, moves a
settled cell by a bounded amount and never for good).  Evidence not renewed fades
linearly back to unknown over ``decay_s``: a cell last seen ``age`` seconds ago counts
``1 - age / decay_s`` of its log odds when new evidence is added and in the graded
output, and the cell is unknown once ``age`` reaches ``decay_s``.  So the
blind zone in front of the vehicle, the ground under and behind it keep what was seen of
them seconds ago; a cell never seen is unknown.

The ground is the plane Z = 0 of the robot's base frame, placed in the map by the robot's
planar pose (x, y, yaw): a 2-D costmap's view, unaffected by drift of odometry's z.

Fast and bounded.  A cell's pixel comes straight from the map plane -> image homography
(the camera's ground homography times the robot's inverse planar pose), for the cells of
the bounding box of the camera's view footprint only (the window clipped by the five
half-planes "in front of the camera" and "inside the image", exact): one OpenCV
perspective warp of the probability into that box reads each cell's pixel (the pixel
containing the projection, centres at integers) in one pass, with no intermediate grid.
The arrays are a ring buffer of fixed size: moving the window clears the rows and columns
that enter it and copies nothing, so memory does not grow with the distance driven.

Layout as geometry.GridSpec and nav_msgs/OccupancyGrid: ``grid[i, j]`` is the cell at
``Y = y_min + (i + 0.5) * res``, ``X = x_min + (j + 0.5) * res`` (rows along Y).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

FREE, OCCUPIED, UNKNOWN = 0, 100, -1
MAX_CELLS = 4_000_000          # 200 m at 0.1 m: beyond it a frame's message alone is megabytes
# Per-frame evidence: the probability is held within [P_MIN, P_MAX] before it becomes log
# odds (+-2.2), and a cell's log odds within +-L_MAX (0.97, OctoMap's clamping bound), so a
# settled cell needs two contrary frames in a row to flip, and flips back as quickly.
P_MIN, P_MAX = 0.1, 0.9
L_MAX = math.log(0.97 / 0.03)
_REBASE_S = 1000.0             # float32 seconds keep 0.1 ms steps up to here; then rebased
JUMP_BACK_S = 1.0              # a frame this much older than the newest fused: time went back, start over
_NEVER = np.float32(-np.inf)   # 'last seen' of a cell never seen (or cleared)


class MapError(ValueError):
    """A map that cannot be made, or a pose or stamp it cannot take; the message says which."""


def trinary_threshold(drivable_threshold: float) -> float:
    """
    Return the fused probability from which a cell is drivable in the trinary map.

    drivable_threshold 0 (a pixel is drivable when its arg-max class is) has no
    probability of its own; for a binary question (drivable or not) the arg-max is the
    more likely answer, so 0.5; otherwise drivable_threshold itself.
    """
    return 0.5 if drivable_threshold <= 0 else float(drivable_threshold)


def logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


def planar(x: float, y: float, yaw: float) -> np.ndarray:
    """Return the 3x3 map <- base transform of a planar pose (homogeneous 2-D)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, x], [s, c, y], [0.0, 0.0, 1.0]])


def map_homography(H_base: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    """
    Return the map plane -> pixel homography of a camera whose ground homography is H_base.

    H_base maps base-frame ground (X, Y) to pixels (geometry.pose_homography); the robot
    stands at (x, y, yaw) in the map.  A map point goes to the base frame, then to pixels.
    """
    return np.asarray(H_base, np.float64) @ np.linalg.inv(planar(x, y, yaw))


def yaw_of(qx: float, qy: float, qz: float, qw: float) -> float:
    """Return the heading (rad) of a quaternion: the angle of its X axis on the ground."""
    return math.atan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))


def _clip(poly: list, a: np.ndarray) -> list:
    """Sutherland-Hodgman: the part of a convex polygon where a . (x, y, 1) >= 0."""
    out = []
    for k, p in enumerate(poly):
        q = poly[k - 1]
        fp, fq = a[0] * p[0] + a[1] * p[1] + a[2], a[0] * q[0] + a[1] * q[1] + a[2]
        if (fp >= 0) != (fq >= 0):
            t = fq / (fq - fp)
            out.append((q[0] + t * (p[0] - q[0]), q[1] + t * (p[1] - q[1])))
        if fp >= 0:
            out.append(p)
    return out


def view_footprint(H: np.ndarray, image_size: tuple[int, int], extent: float) -> list:
    """
    Return the polygon of the square [0, extent]^2 whose points a camera sees.

    H maps the square's plane to pixels.  Seen: in front of the camera (w > 0) and
    projecting inside the image, pixel centres at integers (-0.5 <= u <= w - 0.5).  Each
    condition is a half-plane of the ground (multiplied through by w > 0), so the
    footprint is the square clipped five times: exact, and a handful of operations.
    """
    h, w = image_size
    r0, r1, r2 = np.asarray(H, np.float64)
    poly = [(0.0, 0.0), (extent, 0.0), (extent, extent), (0.0, extent)]
    scale = float(np.abs(r2).max()) or 1.0
    for a in (r2 - 1e-9 * scale * np.array([0.0, 0.0, 1.0]), r0 + 0.5 * r2, (w - 0.5) * r2 - r0,
              r1 + 0.5 * r2, (h - 0.5) * r2 - r1):
        poly = _clip(poly, a)
        if not poly:
            break
    return poly


class RollingMap:
    """
    The fused map: log odds and the time each cell was last seen, in a fixed-size ring buffer.

    Not thread-safe: one thread (the node's worker) moves, fuses and renders.
    """

    def __init__(self, size: float, resolution: float, decay_s: float):
        n = self.check_size(size, resolution)
        if not (math.isfinite(decay_s) and decay_s > 0):
            raise MapError(f"map decay time must be a positive number of seconds, got {decay_s}")
        self.n, self.resolution = n, float(resolution)
        self.decay_s = float(decay_s)
        self._logodds = np.zeros((n, n), np.float32)
        self._seen = np.full((n, n), _NEVER, np.float32)     # seconds since _epoch
        self._epoch = None              # float seconds; stamps are stored relative to it
        self._newest = -math.inf        # newest stamp fused (relative), for the time-jump check
        self._origin = None             # (i0, j0): global row / column index of window cell (0, 0)
        self.restarts = 0               # times time went back and the map started over

    @staticmethod
    def check_size(size: float, resolution: float) -> int:
        """Return the cells along a side of a map of size metres at resolution, or raise MapError saying why not."""
        if not (math.isfinite(resolution) and resolution > 0):
            raise MapError(f"map resolution must be a positive number of metres, got {resolution}")
        if not (math.isfinite(size) and size >= 2 * resolution):
            raise MapError(f"map size must be at least two cells ({2 * resolution:g} m), got {size}")
        n = int(round(size / resolution))
        if n * n > MAX_CELLS:
            raise MapError(f"a map of {size:g} m at {resolution:g} m is {n} x {n} cells, more than "
                           f"{MAX_CELLS:,}: use a smaller size or a coarser resolution")
        return n

    # --- the window -----------------------------------------------------------------------

    @property
    def origin(self) -> tuple[float, float]:
        """Return (x_min, y_min) of the window in the map frame (m); (0, 0) before the first move."""
        if self._origin is None:
            return 0.0, 0.0
        return self._origin[1] * self.resolution, self._origin[0] * self.resolution

    @property
    def size(self) -> float:
        return self.n * self.resolution

    def move_to(self, x: float, y: float) -> None:
        """Centre the window on (x, y), in whole cells; the rows and columns that enter it are unknown."""
        if not (math.isfinite(x) and math.isfinite(y)):
            raise MapError(f"robot position ({x}, {y}) is not finite")
        new = (math.floor(y / self.resolution) - self.n // 2, math.floor(x / self.resolution) - self.n // 2)
        old, self._origin = self._origin, new
        if old is None:
            return
        rows, cols = _entering(old[0], new[0], self.n), _entering(old[1], new[1], self.n)
        if rows is not None:
            self._logodds[rows] = 0.0
            self._seen[rows] = _NEVER
        if cols is not None:
            self._logodds[:, cols] = 0.0
            self._seen[:, cols] = _NEVER

    def clear(self) -> None:
        """Forget everything (a jump back in time: a bag played again, a simulation reset)."""
        self._logodds[:] = 0.0
        self._seen[:] = _NEVER
        self._epoch, self._newest = None, -math.inf

    # --- time -------------------------------------------------------------------------------

    def check_time(self, stamp: float) -> bool:
        """Start over (and return True) when stamp is JUMP_BACK_S older than the newest frame fused."""
        if self._epoch is not None and math.isfinite(stamp) and stamp - self._epoch < self._newest - JUMP_BACK_S:
            self.clear()
            self.restarts += 1
            return True
        return False

    def _relative(self, stamp: float) -> float:
        """Return stamp as seconds since the epoch, rebasing the stored times when it grows large."""
        if not math.isfinite(stamp):
            raise MapError(f"stamp {stamp} is not finite")
        if self._epoch is None:
            self._epoch = float(stamp)
        t = float(stamp) - self._epoch
        if t > _REBASE_S:
            self._seen -= np.float32(t)           # never-seen cells stay -inf
            self._epoch, self._newest, t = float(stamp), self._newest - t, 0.0
        return t

    # --- evidence ---------------------------------------------------------------------------

    def fuse(self, prob: np.ndarray, H: np.ndarray, stamp: float, blind: np.ndarray | None = None) -> int:
        """
        Add one frame's evidence; return the number of cells it touched.

        prob: h x w drivable probability (float in [0, 1]); H: map plane (X, Y in the map
        frame) -> pixels of prob, centres at integers (a homography to another size of the
        same image works alike: pass S @ H); blind: h x w bool, pixels that add nothing
        (the ego mask).  The window must have been placed (move_to).
        """
        if self._origin is None:
            raise MapError("the map has no window yet: move_to the robot's position first")
        self.check_time(stamp)
        t = self._relative(stamp)
        self._newest = max(self._newest, t)
        found = self._sample(np.asarray(prob), np.asarray(H, np.float64), blind)
        if found is None:
            return 0
        (r0, c0), p, ok = found
        np.clip(p, P_MIN, P_MAX, out=p)
        evidence = np.log(p / (np.float32(1.0) - p))
        t32 = np.float32(t)
        i0, j0 = self._origin
        for lr, rr in _runs(i0 + r0, ok.shape[0], self.n):       # the box in at most 2 x 2 ring blocks
            for lc, rc in _runs(j0 + c0, ok.shape[1], self.n):
                logodds, seen, here = self._logodds[rr, rc], self._seen[rr, rc], ok[lr, lc]
                fused = np.clip(self._faded(logodds, seen, t32) + evidence[lr, lc], -L_MAX, L_MAX)
                np.copyto(logodds, fused, where=here)
                np.copyto(seen, t32, where=here)
        return int(np.count_nonzero(ok))

    def _faded(self, logodds: np.ndarray, seen: np.ndarray, t) -> np.ndarray:
        """Return log odds as they count at time t: linearly less with age, none at decay_s."""
        weight = (np.float32(t) - seen) * np.float32(-1.0 / self.decay_s)
        weight += np.float32(1.0)
        np.clip(weight, 0.0, 1.0, out=weight)
        return logodds * weight

    def _box(self, H_local: np.ndarray, image_size: tuple[int, int]):
        """Return (r0, r1, c0, c1): the window's cells around the camera's view footprint, or None."""
        res, n = self.resolution, self.n
        poly = view_footprint(H_local, image_size, n * res)
        if len(poly) < 3:
            return None
        xs, ys = np.array([q[0] for q in poly]), np.array([q[1] for q in poly])
        c0, c1 = max(int(np.floor(xs.min() / res - 0.5)), 0), min(int(np.ceil(xs.max() / res - 0.5)) + 1, n)
        r0, r1 = max(int(np.floor(ys.min() / res - 0.5)), 0), min(int(np.ceil(ys.max() / res - 0.5)) + 1, n)
        return (r0, r1, c0, c1) if c0 < c1 and r0 < r1 else None

    def _sample(self, prob: np.ndarray, H: np.ndarray, blind: np.ndarray | None):
        """
        Return ((r0, c0), p, ok) over the box around the camera's view footprint, or None.

        p: each box cell's probability, read at the pixel containing its centre's
        projection (OpenCV's nearest warp rounds u to the nearest integer: floor(u + 0.5)
        but at exact halves), -1 off the image; ok: cells in front of the camera whose
        pixel is in the image and not blind (the caller writes those only).  One
        perspective warp of the probability into the box, through the box cell -> pixel
        homography: each cell's pixel computed directly.
        """
        res = self.resolution
        x0, y0 = self.origin
        H_local = H @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])   # window metres -> pixels
        box = self._box(H_local, prob.shape[:2])
        if box is None:
            return None
        r0, r1, c0, c1 = box
        M = H_local @ np.array([[res, 0.0, (c0 + 0.5) * res], [0.0, res, (r0 + 0.5) * res], [0.0, 0.0, 1.0]])
        size, how = (c1 - c0, r1 - r0), cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
        p = cv2.warpPerspective(np.asarray(prob, np.float32), M, size, flags=how,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)     # -1: off the image
        ok = p >= 0
        # behind the camera a cell's projection flips through the centre: keep w > 0 (w is affine
        # in the cell, so when the box's four corners are in front, every cell is)
        eps = 1e-6 * max(float(np.abs(M[2]).max()), 1e-30)
        cols, rows = np.array([0, c1 - c0 - 1, 0, c1 - c0 - 1]), np.array([0, 0, r1 - r0 - 1, r1 - r0 - 1])
        if (M[2, 0] * cols + M[2, 1] * rows + M[2, 2]).min() <= eps:
            ok &= (M[2, 0] * np.arange(c1 - c0, dtype=np.float32) + np.float32(M[2, 2])) + \
                np.float32(M[2, 1]) * np.arange(r1 - r0, dtype=np.float32)[:, None] > np.float32(eps)
        if blind is not None:
            ok &= cv2.warpPerspective(np.ascontiguousarray(blind, bool).view(np.uint8), M, size, flags=how,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0) == 0
        return (r0, c0), p, ok

    # --- output -------------------------------------------------------------------------------

    def render(self, stamp: float, values: str = "trinary", threshold: float = 0.5) -> np.ndarray:
        """
        Return the window as int8, rows along Y from origin: -1 unknown, else a cost.

        trinary: 0 where the fused drivable probability reaches threshold, else 100, as
        fused (fading does not turn a drivable cell into an obstacle on its way to unknown);
        graded: round(100 x (1 - the faded fused probability)), drifting toward 50 as the
        evidence ages.  A cell is unknown when never seen or last seen decay_s or more
        before stamp.
        """
        if values not in ("trinary", "graded"):
            raise MapError(f"map values must be 'trinary' or 'graded', got {values!r}")
        n = self.n
        if self._origin is None or self._epoch is None:
            return np.full((n, n), UNKNOWN, np.int8)
        t = float(stamp) - self._epoch
        # arithmetic rather than np.where / copyto with a scalar: 0.4 against 1.3 ms for 640,000 cells
        if values == "trinary":
            out = (self._logodds < np.float32(logit(threshold))).view(np.int8) * np.int8(OCCUPIED)   # else FREE
        else:
            faded = self._faded(self._logodds, self._seen, t)
            np.exp(faded, out=faded)
            faded += np.float32(1.0)
            out = np.rint(np.float32(100.0) / faded).astype(np.int8)        # 100 x (1 - sigmoid)
        out |= -(self._seen <= np.float32(t - self.decay_s)).view(np.int8)   # UNKNOWN (-1: all bits) where stale
        i0, j0 = self._origin
        return np.roll(out, (-(i0 % n), -(j0 % n)), axis=(0, 1))

    def known_cells(self, stamp: float) -> int:
        """Return how many cells hold evidence younger than decay_s at stamp."""
        if self._epoch is None:
            return 0
        return int(np.count_nonzero(np.float32(float(stamp) - self._epoch) - self._seen < np.float32(self.decay_s)))

    @property
    def nbytes(self) -> int:
        """Return the bytes the map's arrays hold (fixed for its size and resolution)."""
        return self._logodds.nbytes + self._seen.nbytes


def _runs(start: int, length: int, n: int) -> list[tuple[slice, slice]]:
    """Split global indices start .. start + length - 1 into (box slice, ring slice) runs that do not wrap."""
    out, k = [], 0
    while k < length:
        ring = (start + k) % n
        run = min(length - k, n - ring)
        out.append((slice(k, k + run), slice(ring, ring + run)))
        k += run
    return out


def _entering(old: int, new: int, n: int):
    """Return the ring indices of the rows (or columns) that enter a window moved from old to new, or None."""
    d = new - old
    if d == 0:
        return None
    if abs(d) >= n:
        return slice(None)
    entering = np.arange(old + n, new + n) if d > 0 else np.arange(new, old)
    return entering % n
