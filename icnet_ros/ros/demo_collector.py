"""
The demo's ROS side: one node collecting the frames and what ``segment`` makes of them.

``icnet_ros/tools/demo.py`` runs everything else.  The node subscribes to the frames ``play``
publishes and to ``segment``'s overlay, mask, drivable-area grid and diagnostics, and
hands them over as numpy arrays.

Frames are keyed by their header stamp in nanoseconds: play stamps each image at
publish time and the node keeps that stamp on every output.
"""

from __future__ import annotations

from dataclasses import dataclass
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

from .conversions import image_to_numpy

OUTPUTS = ("overlay", "mask", "drivable_area")


@dataclass
class Frame:
    """One segmented frame: the overlay (RGB), class ids and grid where they arrived."""

    stamp: int
    overlay: np.ndarray
    classes: np.ndarray | None
    grid: np.ndarray | None


def _key(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class Collector:
    """rclpy initialised, a ``demo_collector`` node and its subscriptions; close() ends both."""

    def __init__(self, input_topic: str = "/image", namespace: str = "/icnet"):
        rclpy.init(args=[])
        self.node = rclpy.create_node("demo_collector")
        self.namespace = namespace
        self.played: list[int] = []          # stamps of the frames play published, in order
        self.got: dict[str, dict[int, object]] = {name: {} for name in OUTPUTS}
        self.arrival: dict[int, float] = {}  # stamp -> wall time its first output arrived
        self.diag: dict[str, list[str]] = {}  # the node's diagnostics values, one per message
        qos = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Image, input_topic, lambda m: self.played.append(_key(m)), qos)
        self.node.create_subscription(Image, f"{namespace}/overlay", self._keep("overlay"), qos)
        self.node.create_subscription(Image, f"{namespace}/mask", self._keep("mask"), qos)
        self.node.create_subscription(OccupancyGrid, f"{namespace}/drivable_area", self._keep("drivable_area"), qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _keep(self, name: str):
        def cb(msg):
            self.got[name][_key(msg)] = msg
            self.arrival.setdefault(_key(msg), time.time())
        return cb

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("icnet"):
                for kv in status.values:
                    self.diag.setdefault(kv.key, []).append(kv.value)

    def spin(self, timeout: float = 0.05) -> None:
        rclpy.spin_once(self.node, timeout_sec=timeout)

    def segment_ready(self) -> bool:
        """Whether the node publishes its overlay yet."""
        return self.node.count_publishers(f"{self.namespace}/overlay") > 0

    def received(self) -> int:
        """Return the outputs received so far."""
        return sum(len(v) for v in self.got.values())

    def complete(self) -> bool:
        """Whether every played frame's overlay and grid arrived."""
        return all(k in self.got["overlay"] and k in self.got["drivable_area"] for k in self.played)

    def frames(self) -> list[Frame]:
        """Return the segmented frames, oldest first (those with an overlay)."""
        out = []
        for k, msg in sorted(self.got["overlay"].items()):
            overlay, _ = image_to_numpy(msg)
            mask = self.got["mask"].get(k)
            grid = self.got["drivable_area"].get(k)
            out.append(Frame(k, overlay, image_to_numpy(mask)[0] if mask is not None else None,
                             None if grid is None else
                             np.array(grid.data, np.int8).reshape(grid.info.height, grid.info.width)))
        return out

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.try_shutdown()
