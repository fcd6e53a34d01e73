"""
The bench's side of the node over DDS.

``segment`` in a subprocess, and in this process a publisher of camera frames, a
subscriber to each output the run asks for (the node makes only the outputs someone
listens to), the first of them timing each message (receive time - header stamp), and a
``/diagnostics`` subscriber, on a private context and ROS domain.  ``icnet_ros.bench``
imports this module only when its node phases run, so the bench's model timings need no
ROS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from .conversions import numpy_to_image
from ..bench.timing import status_mb

# The node's outputs by message type.  EVERY: all of them; PLANNER: what a planner reads
# (the ground outputs, from the network-size maps) and nothing at the frame's size.
TYPES = {"mask": Image, "drivable_mask": Image, "drivable_confidence": Image, "overlay": Image,
         "drivable_area": OccupancyGrid, "obstacles": PointCloud2, "free_space": PointCloud2}
EVERY = tuple(TYPES)
PLANNER = ("drivable_area", "obstacles", "free_space")


class NodeHarness:
    """
    ``segment`` in a subprocess, and its publisher and subscribers in this process.

    The publisher, a subscriber per output asked for (the first timed) and a /diagnostics
    subscriber run on a private context and ROS domain.  The ground outputs need a camera:
    a CameraInfo for the frames' size (``camera_info``: KITTI's focal length scaled to them)
    and the pose from parameters (camera_height's default, pitched down 0.1 rad), so every
    frame size sees the ground.
    """

    def __init__(self, checkpoint: str, device: str, frames: list[np.ndarray], domain_id: int,
                 num_threads: int = 0, outputs: tuple = ("mask",), drivable_map: bool = False):
        unknown = [o for o in outputs if o not in TYPES]
        if unknown or not outputs:
            raise ValueError(f"outputs {list(outputs)}: each one of {', '.join(TYPES)}")
        self.ns = f"/bench{os.getpid()}"
        self.outputs = tuple(outputs)
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED="1")
        self.log_file = tempfile.NamedTemporaryFile("w+", prefix="icnet_bench_node_", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "icnet_ros.ros.node", "--ros-args", "-r", f"__ns:={self.ns}",
               "-p", f"model_path:={checkpoint}", "-p", f"device:={device}",
               "-p", f"num_threads:={num_threads}", "-p", "qos_reliability:=reliable", "--log-level", "warn"]
        cmd[-2:-2] = ["-p", "camera_pose_source:=parameters", "-p", "camera_pitch:=0.1"]
        if drivable_map:
            cmd[-2:-2] = ["-p", "odom_topic:=odom"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context, domain_id=domain_id)
        self.probe = rclpy.create_node("icnet_bench", namespace=self.ns, context=self.context)
        self.msgs = [numpy_to_image(f, "rgb8") for f in frames]
        for m in self.msgs:
            m.header.frame_id = "camera"
        # Reliable keep-last-1 in and out of the node: a newer frame still replaces an
        # unsent one (no back-pressure), but megabyte frames are not lost in UDP
        # fragments when Fast DDS has no shared memory (as on this project's machine),
        # so the bench measures the node and not the transport.
        camera_qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.image_pub = self.probe.create_publisher(Image, f"{self.ns}/image", camera_qos)
        self.info_pub = self.probe.create_publisher(CameraInfo, f"{self.ns}/camera_info", camera_qos)
        self.info = camera_info(*frames[0].shape[:2])
        self._lock = threading.Lock()
        self.received: dict[str, list[tuple[int, int]]] = {o: [] for o in self.outputs}   # (stamp, receive) ns
        self.timed = self.outputs[0]
        self.diag: list[tuple[int, dict]] = []          # (receive ns, values)
        self.map_diag: list[tuple[int, dict]] = []      # the same of the node's drivable_map status
        self.subs: dict = {}
        self.subscribe(self.outputs)
        self.mask_sub = self.subs[self.timed]
        self.probe.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.drivable_map = MapFeed(self.probe, self.ns, frames[0].shape[:2], self._lock) if drivable_map else None
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.probe)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()
        self.published = 0

    def _on_output(self, output: str, msg) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self.received[output].append((stamp, now))

    def subscribe(self, outputs: tuple) -> None:
        """Subscribe to these outputs too (the node starts making them); the timed output stays."""
        qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        for o in [o for o in outputs if o not in self.subs]:
            self.received.setdefault(o, [])
            self.subs[o] = self.probe.create_subscription(TYPES[o], f"{self.ns}/icnet/{o}",
                                                          lambda msg, o=o: self._on_output(o, msg), qos)

    def keep_only(self, outputs: tuple) -> None:
        """Drop the subscriptions to every other output (the node stops making them); time the first kept."""
        for o in [o for o in self.subs if o not in outputs]:
            self.probe.destroy_subscription(self.subs.pop(o))
        self.timed = next(o for o in outputs if o in self.subs)
        self.mask_sub = self.subs[self.timed]

    def _on_diag(self, msg) -> None:
        now = time.time_ns()
        for status in msg.status:
            box = {"icnet: camera": self.diag, "icnet: drivable_map": self.map_diag}.get(status.name)
            if box is not None:
                with self._lock:
                    box.append((now, {kv.key: kv.value for kv in status.values}))

    def node_output(self) -> str:
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read()[-3000:]

    def _mask_publishers(self) -> int:
        if hasattr(self.mask_sub, "get_publisher_count"):    # Jazzy and newer
            return self.mask_sub.get_publisher_count()
        return self.probe.count_publishers(self.mask_sub.topic_name)   # Humble's rclpy

    def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the node exited with code {self.proc.returncode} before it was ready:\n"
                                   f"{self.node_output()}")
            if (self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0
                    and self._mask_publishers() > 0):
                self.info_pub.publish(self.info)       # reliable, and the node keeps the latest
                return
            time.sleep(0.05)
        raise RuntimeError(f"the node did not subscribe to {self.ns}/image within {timeout:.0f} s:\n"
                           f"{self.node_output()}")

    def publish(self, rate: float, seconds: float, on_tick=None) -> tuple[int, int]:
        """
        Publish at rate for seconds and return the (first, last) stamps in ns.

        Absolute deadlines, no catch-up bursts.
        """
        period = 1.0 / rate
        start = time.monotonic()
        end = start + seconds
        due = start
        i = 0
        first = last = time.time_ns()
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now < due:
                time.sleep(min(due - now, end - now))
                continue
            msg = self.msgs[i % len(self.msgs)]
            stamp = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            if self.drivable_map is not None:
                self.drivable_map.before(msg.header.stamp)
            self.image_pub.publish(msg)
            if i == 0:
                first = stamp
            last = stamp
            i += 1
            self.published += 1
            due = max(due + period, now - period)
            if on_tick is not None:
                on_tick()
        return first, last

    def masks_between(self, first: int, last: int) -> list[tuple[int, int]]:
        """Return (stamp, receive) ns of the timed output's messages stamped between first and last."""
        with self._lock:
            return [m for m in self.received[self.timed] if first <= m[0] <= last]

    def diags_between(self, first: int, last: int, drivable_map: bool = False) -> list[dict]:
        """Return the node's camera (or drivable_map) diagnostics received between two times (ns)."""
        with self._lock:
            return [d for t, d in (self.map_diag if drivable_map else self.diag) if first <= t <= last]

    def diag_after(self, t_ns: int, timeout: float = 5.0) -> dict:
        """Return the first diagnostics the node sent after t_ns (it sends them once a second)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                later = [d for t, d in self.diag if t > t_ns]
            if later:
                return later[0]
            time.sleep(0.05)
        raise RuntimeError(f"no /diagnostics from the node within {timeout:.0f} s")

    def maps_received(self) -> int:
        """Return how many ~/drivable_map messages arrived (0 without the map)."""
        with self._lock:
            return self.drivable_map.received if self.drivable_map is not None else 0

    def running(self) -> bool:
        """Whether the node process is still running."""
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        return status_mb("VmRSS", self.proc.pid)

    def close(self) -> int | None:
        """Stop the node with SIGINT (as Ctrl-C); its exit code, None if it had to be killed."""
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                code = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            code = self.proc.returncode
        self.executor.shutdown(timeout_sec=2.0)
        self._spin.join(timeout=5.0)     # a daemon thread left inside rclpy aborts the exit
        self.probe.destroy_node()
        self.context.try_shutdown()
        self.log_file.close()
        os.unlink(self.log_file.name)
        return code


def camera_info(h: int, w: int):
    """Return a CameraInfo for frames of h x w: KITTI's focal length scaled to them, the centre as principal point."""
    f = 721.5 * w / 1242.0
    info = CameraInfo(height=h, width=w, k=[f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0])
    info.header.frame_id = "camera"
    return info


class MapFeed:
    """
    What the node's ~/drivable_map needs and a subscriber to it, for the node phases with the map.

    Before each frame: the camera's CameraInfo (as a driver sends it with every image) and
    the robot's odometry at the frame's stamp, driving along X at 10 m/s.  The map is
    subscribed as Nav2's StaticLayer does (reliable, transient local).
    """

    def __init__(self, probe, ns: str, shape: tuple[int, int], lock):
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.qos import QoSDurabilityPolicy
        from sensor_msgs.msg import CameraInfo

        self.info = camera_info(*shape)
        self.odom = Odometry()
        self.odom.header.frame_id, self.odom.child_frame_id = "odom", "base_link"
        self.odom.pose.pose.orientation.w, self.odom.twist.twist.linear.x = 1.0, 10.0
        reliable = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.info_pub = probe.create_publisher(CameraInfo, f"{ns}/camera_info", reliable)
        self.odom_pub = probe.create_publisher(Odometry, f"{ns}/odom", QoSProfile(depth=10))
        self._lock, self.received, self._start = lock, 0, None
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self.sub = probe.create_subscription(OccupancyGrid, f"{ns}/icnet/drivable_map", self._on_map, latched)

    def _on_map(self, msg) -> None:
        with self._lock:
            self.received += 1

    def before(self, stamp) -> None:
        """Publish the CameraInfo and the odometry of the frame about to go out with this stamp."""
        t = stamp.sec + stamp.nanosec * 1e-9
        self._start = t if self._start is None else self._start
        self.info.header.stamp = self.odom.header.stamp = stamp
        self.odom.pose.pose.position.x = 10.0 * (t - self._start)
        self.info_pub.publish(self.info)
        self.odom_pub.publish(self.odom)
