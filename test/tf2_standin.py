"""
A STAND-IN for the tf2_ros Python module, for tests only: tf2_ros has no wheel on the package index.

It mirrors the part of tf2_ros's Python API the node uses, with the names and signatures
of geometry2's tf2_ros_py (checked on its humble, jazzy and rolling branches, the
rolling of October 2024; the same on all three): ``Buffer(cache_time=None, node=None)`` with
``set_transform(transform, authority)``, ``set_transform_static(transform, authority)``,
``lookup_transform(target_frame, source_frame, time, timeout=Duration())`` returning a
geometry_msgs/TransformStamped and ``can_transform(target_frame, source_frame, time,
timeout=Duration(), return_debug_tuple=False)``; ``TransformListener(buffer, node, *,
spin_thread=False, qos=None, static_qos=None)`` with ``unregister()``; and tf2_py's
exceptions, LookupException, ConnectivityException, ExtrapolationException,
InvalidArgumentException and TimeoutException under TransformException.

What it does not do: it subscribes to nothing and offers no tf2_frames service (both need
tf2_msgs, not installed here), so a test fills the buffer with set_transform /
set_transform_static, which is what the real TransformListener's callbacks call; it
composes no chains (one parent-child edge, either way round) and does not interpolate
(the newest transform at or before the time asked for).  It records every lookup's
timeout, so a test can show that the node never waits.  Tests inject it with
``monkeypatch.setitem(sys.modules, "tf2_ros", tf2_standin)``.
"""

from __future__ import annotations

import threading

from geometry_msgs.msg import TransformStamped
import numpy as np
from rclpy.duration import Duration

BUFFERS: list = []       # every Buffer made, newest last (tests reach the node's through it)
LISTENERS: list = []


class TransformException(Exception):
    pass


class LookupException(TransformException):
    pass


class ConnectivityException(TransformException):
    pass


class ExtrapolationException(TransformException):
    pass


class InvalidArgumentException(TransformException):
    pass


class TimeoutException(TransformException):
    pass


def _ns(time) -> int:
    return int(time.nanoseconds) if hasattr(time, "nanoseconds") else time.sec * 1_000_000_000 + time.nanosec


def _inverse(t: TransformStamped) -> TransformStamped:
    q = t.transform.rotation
    x, y, z, w = q.x, q.y, q.z, q.w
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    p = np.array([t.transform.translation.x, t.transform.translation.y, t.transform.translation.z])
    out = TransformStamped()
    out.header.stamp, out.header.frame_id, out.child_frame_id = t.header.stamp, t.child_frame_id, t.header.frame_id
    (out.transform.translation.x, out.transform.translation.y, out.transform.translation.z) = (-R.T @ p).tolist()
    out.transform.rotation.x, out.transform.rotation.y, out.transform.rotation.z = -x, -y, -z
    out.transform.rotation.w = w
    return out


class Buffer:
    def __init__(self, cache_time=None, node=None) -> None:
        self.cache_time, self.node = cache_time, node
        self._lock = threading.Lock()
        self._edges: dict = {}        # (parent, child) -> [(stamp ns, TransformStamped)], oldest first
        self.lookups: list = []       # (target, source, time ns, timeout ns) of every lookup
        BUFFERS.append(self)

    def set_transform(self, transform: TransformStamped, authority: str) -> None:
        key = (transform.header.frame_id, transform.child_frame_id)
        with self._lock:
            edge = self._edges.setdefault(key, [])
            edge.append((_ns(transform.header.stamp), transform))
            edge.sort(key=lambda e: e[0])

    def set_transform_static(self, transform: TransformStamped, authority: str) -> None:
        with self._lock:
            self._edges[(transform.header.frame_id, transform.child_frame_id)] = [(-1, transform)]

    def _find(self, target_frame: str, source_frame: str, time) -> TransformStamped:
        frames = {f for key in self._edges for f in key}
        for name, which in ((target_frame, "target_frame"), (source_frame, "source_frame")):
            if name not in frames:
                raise LookupException(f'"{name}" passed to lookupTransform argument {which} does not exist. ')
        edge, invert = self._edges.get((target_frame, source_frame)), False
        if edge is None:
            edge, invert = self._edges.get((source_frame, target_frame)), True
        if edge is None:
            raise ConnectivityException(f"Could not find a connection between '{target_frame}' and "
                                        f"'{source_frame}' because they are not part of the same tree.")
        when = _ns(time)
        if edge[0][0] == -1 or when == 0:          # static, or the latest
            found = edge[-1][1]
        else:
            older = [t for stamp, t in edge if stamp <= when]
            if not older or when > edge[-1][0]:
                raise ExtrapolationException(f"Lookup would require extrapolation into the "
                                             f"{'past' if not older else 'future'}.")
            found = older[-1]
        return _inverse(found) if invert else found

    def lookup_transform(self, target_frame: str, source_frame: str, time,
                         timeout: Duration = Duration()) -> TransformStamped:
        with self._lock:
            self.lookups.append((target_frame, source_frame, _ns(time), timeout.nanoseconds))
            return self._find(target_frame, source_frame, time)

    def can_transform(self, target_frame: str, source_frame: str, time, timeout: Duration = Duration(),
                      return_debug_tuple: bool = False):
        try:
            self.lookup_transform(target_frame, source_frame, time, timeout)
        except TransformException as e:
            return (False, str(e)) if return_debug_tuple else False
        return (True, "") if return_debug_tuple else True


class TransformListener:
    def __init__(self, buffer: Buffer, node, *, spin_thread: bool = False, qos=None, static_qos=None) -> None:
        self.buffer, self.node, self.spin_thread = buffer, node, spin_thread
        self.unregistered = False
        LISTENERS.append(self)

    def unregister(self) -> None:
        self.unregistered = True


def transform(parent: str, child: str, translation, quaternion, sec: int = 0) -> TransformStamped:
    """Return a TransformStamped parent <- child (test helper, not tf2_ros API)."""
    t = TransformStamped()
    t.header.frame_id, t.child_frame_id, t.header.stamp.sec = parent, child, sec
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = map(float, translation)
    q = t.transform.rotation
    q.x, q.y, q.z, q.w = map(float, quaternion)
    return t
