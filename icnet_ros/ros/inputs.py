"""
The node's inputs watched: topics that stay silent, QoS that cannot match, CameraInfo that cannot place the grid.

The first-run mistakes of any camera node (a wrong topic, a best-effort camera and a
reliable subscription, an uncalibrated camera) otherwise end in silence.  Once a second,
per camera, while the node is active:

- no image on the camera's topic for `input_timeout_s` (0: never): one WARN naming the
  topic and, from the ROS graph, the topics that do carry images, their publishers and
  whether their QoS can match, and what to do; repeated when the graph's answer changes
  or after REPEAT_S.  The same for CameraInfo while the grid needs it (no calib_file).
  An INFO line when messages come after all.
- a CameraInfo whose K cannot place the grid (zeros, fx or fy <= 0, NaN) or whose size
  does not fit the images (another aspect ratio): named once, with the fix.

Each camera's problem, in the same words, is its /diagnostics status (WARN) until it is
gone.  rclpy's incompatible-QoS event names a publisher the subscription cannot match
as soon as it appears, before any timeout.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
from rclpy.qos import qos_check_compatible, qos_policy_name_from_kind, QoSCompatibility, QoSReliabilityPolicy
from rclpy.subscription import SubscriptionEventCallbacks

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPES = ("sensor_msgs/msg/CameraInfo",)
REPEAT_S = 60.0            # a problem that stays is said again this rarely
GRID_OUTPUTS = ("drivable_area", "obstacles", "free_space")
FIX_K = ("calibrate the camera (ros2 run camera_calibration cameracalibrator) so that its driver publishes K, "
         "or give the intrinsics in calib_file")
ASPECT_TOLERANCE = 0.02    # a CameraInfo for the same view, scaled (binning, a resized stream), is used


def k_problem(k) -> str:
    """Say what makes a CameraInfo's K unusable for the grid, or return ''."""
    K = np.asarray(k, np.float64).ravel()
    if K.size != 9:
        return f"K has {K.size} values, not 9"
    K = K.reshape(3, 3)
    if not np.all(np.isfinite(K)):
        return "K holds NaN or infinite values"
    if not K.any():
        return "K is all zeros (the camera is not calibrated)"
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        return f"K's focal lengths fx {K[0, 0]:g} and fy {K[1, 1]:g} are not both positive"
    if not np.allclose(K[2], (0.0, 0.0, 1.0)):
        return f"K's last row is {K[2].tolist()}, not [0, 0, 1]"
    return ""


def size_problem(info_size, frame_size) -> str:
    """Say why a CameraInfo of info_size (h, w) cannot serve frames of frame_size, or return ''."""
    (ih, iw), (h, w) = info_size, frame_size
    if ih <= 0 or iw <= 0 or (ih, iw) == (h, w):
        return ""    # 0 x 0: a driver that leaves the size out; K is taken as it is
    if abs(ih * w - iw * h) <= ASPECT_TOLERANCE * iw * h:
        return ""
    return (f"its size {iw}x{ih} is not the images' {w}x{h} scaled (another aspect ratio: another camera's "
            f"CameraInfo, or a cropped stream)")


def info_line(info_topic: str, problem: str, image_topic: str = "") -> str:
    """Return the one line that names a CameraInfo problem and its fix."""
    if problem.startswith("its size"):
        fix = f"publish the CameraInfo of the stream on {image_topic}, or give the intrinsics in calib_file"
    else:
        fix = FIX_K
    return (f"CameraInfo on {info_topic}: {problem}; drivable_area, obstacles and free_space need usable "
            f"intrinsics: {fix}")


def subscribe(node, msg_type, topic: str, callback, qos, events: SubscriptionEventCallbacks | None):
    """create_subscription with QoS event callbacks; without them where the middleware has no such event."""
    if events is not None:
        try:
            return node.create_subscription(msg_type, topic, callback, qos, event_callbacks=events)
        except Exception as e:   # rclpy's UnsupportedEventTypeError: its module differs by distro
            if type(e).__name__ != "UnsupportedEventTypeError":
                raise
    return node.create_subscription(msg_type, topic, callback, qos)


def short(type_name: str) -> str:
    return type_name.rsplit("/", 1)[-1]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


class _Silence:
    """How long one input topic has been silent, and what was said about it."""

    def __init__(self, now: float, count: int):
        self.count, self.since = count, now
        self.said_at, self.said_key = None, None

    def arrived(self, now: float, count: int) -> bool:
        if count == self.count:
            return False
        self.count, self.since = count, now
        return True

    def due(self, now: float, key: str, timeout: float) -> bool:
        """Whether to say it (again): the first time, when the graph changed, or after REPEAT_S."""
        if self.said_at is None:
            return True
        return now - self.said_at >= (timeout if key != self.said_key else REPEAT_S)


class InputWatch:
    """The watch over every camera's inputs, from activate to deactivate (its own 1 Hz timer)."""

    def __init__(self, node, cameras, lock, period: float = 1.0):
        self.node, self.cameras, self.lock = node, cameras, lock
        now = time.monotonic()
        with lock:     # the counts go on from an earlier activation
            self.silence = {(id(c), kind): _Silence(now, n) for c in cameras
                            for kind, n in (("images", c.stats.received), ("CameraInfo", c.stats.camera_infos))}
        self.said: set = set()       # CameraInfo problems logged (once each)
        # A check in flight on another executor thread ends before deactivate destroys the
        # subscriptions and publishers it reads.
        self._busy, self._closed = threading.Lock(), False
        self.timer = node.create_timer(period, self.check)

    def close(self) -> None:
        with self._busy:
            self._closed = True
        self.node.destroy_timer(self.timer)
        with self.lock:
            for cam in self.cameras:
                cam.stats.input_problem = ""

    # --- rclpy's incompatible-QoS event ----------------------------------------------------

    def qos_events(self, cam, kind: str) -> SubscriptionEventCallbacks:
        return SubscriptionEventCallbacks(incompatible_qos=lambda event: self._incompatible(cam, kind, event))

    def _incompatible(self, cam, kind: str, event) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        topic = self._topic(cam, kind)
        if policy == "RELIABILITY":
            hint = ("it sends best effort and this node subscribes reliable (qos_reliability): "
                    "set qos_reliability:=best_effort")
        else:
            hint = "see QoS in docs/node.md"
        self.node.get_logger().warning(
            f"a publisher on {topic} offers QoS that this node's subscription cannot match ({policy}): "
            f"none of its messages arrive; {hint}")

    # --- the 1 Hz check ----------------------------------------------------------------------

    def check(self) -> None:
        with self._busy:
            if not self._closed and self.node.config is not None:
                self._check(self.node.config)

    def _check(self, config) -> None:
        now = time.monotonic()
        for cam in self.cameras:
            with self.lock:
                counts = {"images": cam.stats.received, "CameraInfo": cam.stats.camera_infos}
            problems = [self._silent(cam, "images", counts["images"], now, config.input_timeout_s)]
            if config.calib is None and self._grid_wanted(cam, config):
                problems.append(self._silent(cam, "CameraInfo", counts["CameraInfo"], now, config.input_timeout_s))
                problems.append(self._info_problem(cam))
            with self.lock:
                cam.stats.input_problem = "; ".join(p for p in problems if p)

    @staticmethod
    def _grid_wanted(cam, config) -> bool:
        """Whether the grid's outputs are on and listened to: only then is CameraInfo needed."""
        return any(config.publishes(o) and o in cam.pubs and cam.pubs[o].get_subscription_count() > 0
                   for o in GRID_OUTPUTS)

    def _topic(self, cam, kind: str) -> str:
        i = 0 if kind == "images" else 1
        return cam.subs[i].topic_name if len(cam.subs) > i else (cam.image_topic, cam.info_topic)[i]

    def _info_problem(self, cam) -> str:
        problem = cam.info_problem or cam.size_problem
        if not problem:
            return ""
        line = info_line(self._topic(cam, "CameraInfo"), problem, self._topic(cam, "images"))
        if line not in self.said:
            self.said.add(line)
            self.node.get_logger().warning(line)
        return line

    def _silent(self, cam, kind: str, count: int, now: float, timeout: float) -> str:
        """Return the WARN for a topic silent for `timeout` (logged when due), or ''; log INFO when it speaks again."""
        s = self.silence[(id(cam), kind)]
        topic = self._topic(cam, kind)
        if s.arrived(now, count):
            if s.said_at is not None:
                self.node.get_logger().info(f"{kind} arriving on {topic} now")
                s.said_at, s.said_key = None, None
            return ""
        if timeout <= 0 or now - s.since < timeout:
            return ""
        key = self.diagnose(cam, kind, topic)
        need = " (drivable_area, obstacles and free_space need it, or calib_file)" if kind == "CameraInfo" else ""
        line = f"no {kind} on {topic} for {now - s.since:.0f} s{need}; {key}"
        if s.due(now, key, timeout):
            self.node.get_logger().warning(line)
            s.said_at, s.said_key = now, key
        return line

    # --- what the ROS graph says -------------------------------------------------------------

    def publishers(self, types) -> dict:
        """Topic -> [(type, publisher QoS)] of the graph's other nodes' publishers of these types."""
        me = (self.node.get_name(), self.node.get_namespace())
        found = {}
        for topic, kinds in self.node.get_topic_names_and_types():
            if not any(k in types for k in kinds):
                continue
            pubs = [(p.topic_type, p.qos_profile) for p in self.node.get_publishers_info_by_topic(topic)
                    if p.topic_type in types and (p.node_name, p.node_namespace) != me]
            if pubs:
                found[topic] = pubs
        return found

    def diagnose(self, cam, kind: str, topic: str) -> str:
        """'<kind> topics now: ...; what to do' from the graph."""
        i = 0 if kind == "images" else 1
        sub = cam.subs[i] if len(cam.subs) > i else None
        expected = type_name(sub.msg_type) if sub is not None else ""
        qos = sub.qos_profile if sub is not None else None
        found = self.publishers(IMAGE_TYPES if kind == "images" else INFO_TYPES)
        entries = []
        for name in sorted(found):
            notes = [_plural(len(found[name]), "publisher")]
            notes += sorted({short(t) for t, _ in found[name] if t != expected})
            notes += sorted({_qos_note(q, qos) for _, q in found[name] if _qos_note(q, qos)})
            entries.append(f"{name} ({', '.join(notes)})")
        listing = f"{'image' if kind == 'images' else kind} topics now: {', '.join(entries) or 'none'}"
        local = cam.image_topic if kind == "images" else cam.info_topic
        return f"{listing}; {self._hint(found, topic, local, expected, qos)}"

    def _hint(self, found: dict, topic: str, local: str, expected: str, qos) -> str:
        """Say what to do, from the topics that carry this input's types (found) and its own topic's publishers."""
        own = found.get(topic, [])
        notes = [_qos_note(q, qos) for _, q in own]
        if any(n.startswith("best effort") for n in notes):
            return "its publisher sends best effort and this node subscribes reliable: set qos_reliability:=best_effort"
        if any(notes):
            return f"its publisher's QoS cannot match ({next(n for n in notes if n)}): see QoS in docs/node.md"
        if any(t == expected for t, _ in own):
            hint = "its publisher sent nothing the node could take"
            if qos is not None and qos.reliability == QoSReliabilityPolicy.BEST_EFFORT and any(
                    q.reliability == QoSReliabilityPolicy.RELIABLE for _, q in own):
                hint += ("; large frames over best effort can be lost whole: try qos_reliability:=reliable and "
                         "the Fast DDS profile (QoS in docs/node.md)")
            return hint
        same = sorted(t for t, pubs in found.items() if any(k == expected for k, _ in pubs))
        if len(same) == 1:
            return f"remap the node's {local} to it: --ros-args -r {local}:={same[0]}"
        if same:
            return f"remap the node's {local} to one of them: --ros-args -r {local}:=TOPIC"
        if found and expected in IMAGE_TYPES:     # only the other transport is there
            compressed = expected == IMAGE_TYPES[0]
            other_local = local + "/compressed" if compressed else local.removesuffix("/compressed")
            transport = "compressed" if compressed else "raw"
            target = next(iter(found)) if len(found) == 1 else "TOPIC"
            return (f"set input_transport:={transport} and remap the node's {other_local} to "
                    f"{'it' if len(found) == 1 else 'one of them'}: --ros-args -p input_transport:={transport} "
                    f"-r {other_local}:={target}")
        return (f"is the camera driver running, on ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')} and "
                f"the same RMW_IMPLEMENTATION?")


def type_name(msg_type) -> str:
    """'sensor_msgs/msg/Image' for the message class sensor_msgs.msg.Image."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


def _qos_note(publisher_qos, subscription_qos) -> str:
    """Return why a publisher's QoS cannot reach the subscription, or ''."""
    if subscription_qos is None:
        return ""
    compatibility, reason = qos_check_compatible(publisher_qos, subscription_qos)
    if compatibility != QoSCompatibility.ERROR:
        return ""
    if (publisher_qos.reliability == QoSReliabilityPolicy.BEST_EFFORT
            and subscription_qos.reliability == QoSReliabilityPolicy.RELIABLE):
        return "best effort: cannot reach this node's reliable subscription"
    return "QoS cannot match: " + reason.removeprefix("ERROR: ").rstrip("; ")
