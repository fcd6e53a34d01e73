"""
The robot's planar pose at an image's stamp, from a stream of odometry.

No ROS.  Odometry (x, y, yaw in the map frame, and the twist in the robot's frame) is kept
for a few seconds; the pose at a stamp is interpolated between the two messages around
it, or, a little past the newest message, carried forward with that message's twist, as
a costmap's transform tolerance would allow.  A stamp older than what is kept, or too far
past the newest message, gets no pose and a one-line reason.
"""

from __future__ import annotations

from collections import deque
import math

KEEP_S = 10.0            # seconds of odometry kept behind the newest message
MAX_MESSAGES = 2000      # and never more messages than this (200 Hz x KEEP_S)
EXTRAPOLATE_S = 0.25     # how far past the newest message its twist carries the pose


class PoseHistory:
    """Planar poses (t, x, y, yaw, vx, vy, wz) in time order; not thread-safe (the caller locks)."""

    def __init__(self, keep_s: float = KEEP_S, extrapolate_s: float = EXTRAPOLATE_S):
        self._poses: deque = deque(maxlen=MAX_MESSAGES)
        self.keep_s, self.extrapolate_s = keep_s, extrapolate_s

    def __len__(self) -> int:
        return len(self._poses)

    def add(self, t: float, x: float, y: float, yaw: float, vx: float = 0.0, vy: float = 0.0,
            wz: float = 0.0) -> str:
        """Keep one pose; return '' or why it was refused (not finite, or older than the newest)."""
        values = (t, x, y, yaw, vx, vy, wz)
        if not all(math.isfinite(v) for v in values):
            names = ("stamp", "x", "y", "yaw", "linear.x", "linear.y", "angular.z")
            bad = ", ".join(f"{n} {v}" for n, v in zip(names, values) if not math.isfinite(v))
            return f"a pose that is not finite ({bad})"
        if self._poses and t < self._poses[-1][0]:
            if self._poses[-1][0] - t > 1.0:       # time went back (a bag looped, a simulation reset)
                self._poses.clear()
            else:
                return f"a pose older than the newest one kept ({t:.3f} s < {self._poses[-1][0]:.3f} s)"
        self._poses.append(values)
        while self._poses and self._poses[0][0] < t - self.keep_s:
            self._poses.popleft()
        return ""

    def at(self, t: float) -> tuple[tuple[float, float, float] | None, str]:
        """Return ((x, y, yaw), '') at stamp t, or (None, why not)."""
        poses = self._poses
        if not poses:
            return None, "no odometry received yet"
        last = poses[-1]
        if t >= last[0]:
            dt = t - last[0]
            if dt > self.extrapolate_s:
                return None, (f"the newest odometry is {dt:.2f} s older than the image (at most "
                              f"{self.extrapolate_s:g} s is carried forward)")
            return _carried(last, dt), ""
        if t < poses[0][0]:
            return None, (f"the image is {poses[0][0] - t:.2f} s older than the oldest odometry kept "
                          f"({len(poses)} messages)")
        lo, hi = 0, len(poses) - 1                   # poses[lo][0] <= t < poses[hi][0]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if poses[mid][0] <= t:
                lo = mid
            else:
                hi = mid
        a, b = poses[lo], poses[hi]
        f = (t - a[0]) / (b[0] - a[0])
        turn = math.remainder(b[3] - a[3], 2 * math.pi)   # the short way round
        return (a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2]), a[3] + f * turn), ""


def _carried(pose: tuple, dt: float) -> tuple[float, float, float]:
    """Return the pose dt seconds after a message, at its twist (robot frame), to first order in the turn."""
    _, x, y, yaw, vx, vy, wz = pose
    heading = yaw + 0.5 * wz * dt              # the mean heading over the interval
    c, s = math.cos(heading), math.sin(heading)
    return x + (c * vx - s * vy) * dt, y + (s * vx + c * vy) * dt, yaw + wz * dt
