"""
`~/drivable_map`: the node's rolling drivable map in `map_frame`, all cameras fused into it.

The ROS side of icnet_ros/ground/drivable_map.py: the robot's pose in `map_frame` at
each image's stamp (TF `map_frame` <- `base_frame`, looked up without waiting, or a
nav_msgs/Odometry topic through ground/odometry.py), the lifecycle publisher, and the
map's own status in /diagnostics.  Made at configure, dropped at cleanup.  The worker
alone fuses and publishes; the executor's callbacks fill the odometry history and read
the status, under this object's lock.

The map is published reliable and transient-local (keep last 1), as a map server's:
Nav2's StaticLayer subscribes transient-local by default (map_subscribe_transient_local),
which a volatile publisher would not match; volatile subscribers match it too.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid, Odometry
import numpy as np
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from . import tf_pose
from .camera import grid_msg
from ..ground import geometry
from ..ground.drivable_map import map_homography, RollingMap, trinary_threshold, yaw_of
from ..ground.odometry import PoseHistory
from ..inference.upsample import frame_to_network
from ..node_config import NodeConfig

TOPIC = "~/drivable_map"
LOG_EVERY_S = 10.0      # a problem that lasts is logged once per this long


class Throttle:
    """
    Say a lasting problem once per LOG_EVERY_S.

    rclpy's own throttle_duration_sec inspects the caller's frame on every call, logged
    or not: 0.57 ms a call on this project's VM, paid per frame (or per odometry message).
    """

    def __init__(self):
        self._last = -float("inf")

    def warning(self, node, text: str) -> None:
        now = time.monotonic()
        if now - self._last >= LOG_EVERY_S:
            self._last = now
            node.get_logger().warning(text)


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def evidence(res, ego) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """
    Return what the map samples of one result: (probability map, frame pixels -> its pixels, blind pixels).

    The engine's network-size drivable probability (``net_prob``), through
    ``frame_to_network`` (issue 37): the node makes the frame-size maps only for the image
    outputs, and a bilinear sample of ``net_prob`` at a frame point is what the frame-size
    probability (its bilinear resize) holds there.  ego: the ego mask at the network size
    (``Camera.mask_result``).
    """
    return res.net_prob, frame_to_network(res.frame_size, res.net_prob.shape), ego


class OdometryPoses:
    """The robot's planar pose from a nav_msgs/Odometry topic (subscribed configure to cleanup)."""

    def __init__(self, node, config: NodeConfig, lock: threading.Lock):
        self._node, self._lock, self._frame = node, lock, config.map_frame
        self.topic = node.resolve_topic_name(config.odom_topic)
        self._history = PoseHistory()
        self._refused = ""            # why the latest message was refused ('' once one is kept)
        self._child_noted = False
        self._base = config.base_frame
        self._log = Throttle()
        qos = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=50,     # matches reliable and best-effort
                         reliability=QoSReliabilityPolicy.BEST_EFFORT)
        self._sub = node.create_subscription(Odometry, config.odom_topic, self._on_odometry, qos)
        self.source = f"odometry on {self.topic}"

    def _on_odometry(self, msg: Odometry) -> None:
        problem = ""
        if msg.header.frame_id != self._frame:
            problem = (f"odometry on {self.topic} is in frame {msg.header.frame_id!r}, not map_frame "
                       f"{self._frame!r}; ignored")
        else:
            p, q, v = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
            if not all(np.isfinite([p.x, p.y, q.x, q.y, q.z, q.w])) or not (q.x or q.y or q.z or q.w):
                problem = f"odometry on {self.topic} has a pose that is not finite or no rotation; ignored"
            else:
                with self._lock:
                    why = self._history.add(_seconds(msg.header.stamp), p.x, p.y, yaw_of(q.x, q.y, q.z, q.w),
                                            v.linear.x, v.linear.y, v.angular.z)
                problem = f"odometry on {self.topic}: {why}; ignored" if why else ""
        with self._lock:
            self._refused = problem
        if problem:
            self._log.warning(self._node, problem)
        elif msg.child_frame_id not in ("", self._base) and not self._child_noted:
            self._child_noted = True
            self._node.get_logger().info(f"{self.source}: child_frame_id {msg.child_frame_id!r} is not "
                                         f"base_frame {self._base!r}; its planar pose is taken as base_frame's")

    def at(self, stamp) -> tuple[tuple | None, str]:
        with self._lock:
            pose, why = self._history.at(_seconds(stamp))
            refused = self._refused
        if pose is None:
            return None, refused or f"no robot pose from {self.source}: {why}"
        return pose, ""

    def close(self, node) -> None:
        node.destroy_subscription(self._sub)


class TfPoses:
    """The robot's planar pose from TF, map_frame <- base_frame at the image's stamp, never waiting."""

    def __init__(self, node, config: NodeConfig, poses: tf_pose.PoseSource | None):
        self._node, self._map, self._base = node, config.map_frame, config.base_frame
        self.source = f"TF {self._map} <- {self._base}"
        self._tf2 = tf_pose.import_tf2_ros()
        self._own = None
        self.buffer = poses.buffer if poses is not None else None    # the camera poses' buffer, shared
        if self.buffer is None and self._tf2 is not None:
            self._own = tf_pose.listen(node, self._tf2)
            self.buffer = self._own[0]

    def at(self, stamp) -> tuple[tuple | None, str]:
        if self.buffer is None:
            return None, (f"no robot pose: tf2_ros does not import here for {self.source}, and odom_topic "
                          f"is empty (set it to a nav_msgs/Odometry topic in {self._map})")
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            t = self.buffer.lookup_transform(self._map, self._base, Time(seconds=stamp.sec, nanoseconds=stamp.nanosec),
                                             timeout=Duration()).transform
        except self._tf2.TransformException as e:
            return None, f"no transform {self._map} <- {self._base}: {' '.join(str(e).split()) or type(e).__name__}"
        p, q = t.translation, t.rotation
        if not all(np.isfinite([p.x, p.y, q.x, q.y, q.z, q.w])) or not (q.x or q.y or q.z or q.w):
            return None, f"transform {self._map} <- {self._base} is not finite or has no rotation"
        return (p.x, p.y, yaw_of(q.x, q.y, q.z, q.w)), ""

    def close(self, node) -> None:
        if self._own is not None:
            tf_pose.unlisten(node, *self._own)
        self.buffer = self._own = None


class MapOutput:
    """~/drivable_map: the rolling map, the robot's pose source, the publisher and the map's status."""

    def __init__(self, node, config: NodeConfig, poses: tf_pose.PoseSource | None):
        self._node, self._lock, self.frame = node, threading.Lock(), config.map_frame
        self.map = RollingMap(config.map_size, config.map_resolution, config.map_decay_s)
        qos = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self.pub = node.create_lifecycle_publisher(OccupancyGrid, TOPIC, qos)
        self.robot = OdometryPoses(node, config, self._lock) if config.odom_topic else TfPoses(node, config, poses)
        self.used = False               # subscribed once: from then on the map has a status
        self.problem = ""               # why the latest batch's map was withheld
        self.idle: dict = {}            # camera name -> why its latest frame added nothing
        self.published, self._last = 0, None     # maps published, the latest (counted at 1 Hz)
        self.fuse_ms: list = []         # per frame fused, this diagnostics window
        self.render_ms: list = []       # per map published (render, message, publish)
        self._newest = -np.inf          # newest stamp the window was centred at (s)
        self._batch: list = []          # this batch's (header, robot pose) of frames with a robot pose
        self._log = Throttle()

    def wanted(self, config: NodeConfig) -> bool:
        """Whether the map is on and listened to (then the batch asks the engine for probabilities)."""
        on = bool(config.map_frame) and self.pub.get_subscription_count() > 0
        self.used = self.used or on
        return on

    def _centre(self, header, robot) -> None:
        """Move the window to the robot when this frame is the newest yet (a time jump back starts over)."""
        stamp = _seconds(header.stamp)
        if self.map.check_time(stamp):
            self._newest = -np.inf
        if stamp >= self._newest:
            self._newest = stamp
            self.map.move_to(robot[0], robot[1])

    def add(self, cam, header, res, ego, pose, config: NodeConfig) -> None:
        """Fuse one camera's frame: its drivable probability seen from the camera's pose in map_frame."""
        start = time.perf_counter()
        robot, why = self.robot.at(header.stamp)
        if robot is None:
            with self._lock:
                self.problem = why
            return
        self._batch.append((header, robot))
        self._centre(header, robot)
        try:
            H = cam.homography(res.frame_size, config, pose[0], pose[1])          # ground -> frame pixels
        except geometry.GeometryError as e:
            H, why = None, f"camera pose or intrinsics unusable: {e}"
        if H is None:
            why = why or (pose[2] if pose[1] is None and pose[0] != "calib_file" else
                          f"no CameraInfo on {self._node.resolve_topic_name(cam.info_topic)} and no calib_file")
            with self._lock:
                self.idle[cam.name or "camera"] = why
            return
        self.map.decay_s = config.map_decay_s
        prob, to_prob, blind = evidence(res, ego)
        self.map.fuse(prob, to_prob @ map_homography(H, *robot), _seconds(header.stamp), blind)
        with self._lock:
            self.idle.pop(cam.name or "camera", None)
            self.fuse_ms.append((time.perf_counter() - start) * 1000.0)

    def publish(self, config: NodeConfig) -> None:
        """Publish the map after a batch, at its newest stamp; or say why not."""
        batch, self._batch = self._batch, []
        if not batch:
            with self._lock:
                problem = self.problem
            self._log.warning(self._node, f"{problem}: {TOPIC} is not published")
            return
        start = time.perf_counter()
        header = max((h for h, _ in batch), key=lambda h: _seconds(h.stamp))
        grid = self.map.render(_seconds(header.stamp), config.map_values, trinary_threshold(config.drivable_threshold))
        x0, y0 = self.map.origin
        spec = geometry.GridSpec(x0, x0 + self.map.size, y0, y0 + self.map.size, self.map.resolution)
        self.pub.publish(grid_msg(grid, spec, header, self.frame))
        with self._lock:
            self.problem = ""
            self.published += 1
            self._last = grid
            self.render_ms.append((time.perf_counter() - start) * 1000.0)

    def status(self, name: str) -> DiagnosticStatus | None:
        """Return the map's status for /diagnostics (None until it was first subscribed)."""
        if not self.used:
            return None
        with self._lock:
            problem, idle, last = self.problem, dict(self.idle), self._last
        cells = 0 if last is None else int(np.count_nonzero(last != -1))      # the grid is never written again
        with self._lock:
            fuse, render, self.fuse_ms, self.render_ms = self.fuse_ms, self.render_ms, [], []
            values = {"map frame": self.frame, "robot pose": self.robot.source, "drivable_map withheld": problem,
                      "cameras adding nothing": "; ".join(f"{k}: {v}" for k, v in idle.items()),
                      "maps published": str(self.published), "cells known": str(cells),
                      "fusion (ms per frame)": f"{np.mean(fuse):.2f}" if fuse else "nan",
                      "render and publish (ms per map)": f"{np.mean(render):.2f}" if render else "nan"}
        s = DiagnosticStatus(name=name, hardware_id="")
        if problem:
            s.level, s.message = DiagnosticStatus.WARN, f"drivable_map withheld: {problem}"
        elif idle:
            s.level, s.message = DiagnosticStatus.WARN, "; ".join(f"camera '{k}' adds nothing: {v}"
                                                                  for k, v in idle.items())
        else:
            s.level, s.message = DiagnosticStatus.OK, f"{values['maps published']} maps published, {cells} cells known"
        s.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return s

    def close(self, node) -> None:
        self.robot.close(node)
        node.destroy_lifecycle_publisher(self.pub)
