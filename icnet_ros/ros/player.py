"""
`play`: a camera from a folder of images or a bag.

Publishes `image` (sensor_msgs/Image) or, with transport 'compressed', `image/compressed`
(JPEG/PNG files are sent as they are on disk), and `camera_info` when it is known: from
a KITTI calib file (the data_road layout image_2/ + calib/ is recognised) or from the
bag's camera_info topic next to the image topic.  Bags: ROS 1 `.bag`, ROS 2 sqlite3 or
MCAP folders, read with rosbags by ``data/bags/reader.py`` (shared with training's bag: data).
Stamps are publish time.  With `encoding`, raw images go out as that camera driver would
send them (bayer_rggb8, yuv422_yuy2, nv21, rgb16 ...), so the node's conversions can be
exercised over DDS without the camera.
"""

from __future__ import annotations

from pathlib import Path
import sys
import time

import cv2
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .conversions import ConversionError, frame_from_msg, frame_to_image, numpy_to_compressed, numpy_to_image
from .conversions import uint8_array
from ..data import image_io
# the sources (folder, bag) and PlayError are ROS-free, shared with the demo; named here too
from ..data.play_source import bag_frames, folder_frames, PLAY_PARAMS, PlayError, source_frames  # noqa: F401
from ..ground import geometry


def kitti_camera_info(calib, width: int, height: int) -> CameraInfo:
    """Build the CameraInfo for a rectified KITTI left colour camera (P2)."""
    P = calib["P2"]
    info = CameraInfo()
    info.width, info.height = int(width), int(height)
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [float(v) for v in P[:, :3].ravel()]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [float(v) for v in P.ravel()]
    return info


def _bag_camera_info(msg) -> CameraInfo:
    info = CameraInfo()
    info.width, info.height = int(msg.width), int(msg.height)
    info.distortion_model = msg.distortion_model
    for name in ("d", "k", "r", "p"):  # ROS 1 bags spell them D, K, R, P
        setattr(info, name, [float(v) for v in getattr(msg, name, getattr(msg, name.upper(), []))])
    return info


def _descriptor(default, text: str, bounds) -> ParameterDescriptor:
    d = ParameterDescriptor(description=text, read_only=True)
    if bounds and isinstance(default, int) and not isinstance(default, bool):
        d.integer_range = [IntegerRange(from_value=bounds[0], to_value=bounds[1], step=1)]
    elif bounds:
        d.floating_point_range = [FloatingPointRange(from_value=bounds[0], to_value=bounds[1])]
    return d


class Player(Node):
    def __init__(self, **kwargs):
        super().__init__("play", **kwargs)
        for name, default, text, bounds in PLAY_PARAMS:
            self.declare_parameter(name, default, _descriptor(default, text, bounds))
        p = lambda n: self.get_parameter(n).value  # noqa: E731
        self.source = Path(p("source")).expanduser()
        self.loop, self.count, self.frame_id = p("loop"), p("count"), p("frame_id")
        self.image_topic, self.calib_file = p("image_topic"), p("calib_file")
        self.transport, self.wait_for = p("transport"), p("wait_for_subscribers")
        self.encoding = p("encoding").strip()
        self._ready_at = 0.0
        if not p("source"):
            raise PlayError("parameter 'source' is empty: give a folder of images or a bag")
        if not self.source.exists():
            raise PlayError(f"parameter 'source': {self.source} does not exist")
        if self.transport not in ("raw", "compressed"):
            raise PlayError(f"parameter 'transport': {self.transport!r} is not raw or compressed")
        if self.encoding and not image_io.is_known(self.encoding):
            raise PlayError(f"parameter 'encoding': {self.encoding!r} is not an encoding play can publish; "
                            f"accepted: {image_io.ACCEPTED}")
        if self.encoding and self.transport != "raw":
            raise PlayError("parameter 'encoding' applies to transport 'raw' only (compressed images are jpeg/png)")
        if p("qos_reliability") not in ("reliable", "best_effort"):
            raise PlayError(f"parameter 'qos_reliability': {p('qos_reliability')!r} is not reliable or best_effort")
        if self.calib_file:
            try:
                geometry.read_kitti_calib(self.calib_file)
            except geometry.GeometryError as e:
                raise PlayError(f"parameter 'calib_file': {e}") from None
        qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE if p("qos_reliability") == "reliable"
                         else QoSReliabilityPolicy.BEST_EFFORT)
        if self.transport == "compressed":
            self.image_pub = self.create_publisher(CompressedImage, "image/compressed", qos)
        else:
            self.image_pub = self.create_publisher(Image, "image", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        try:
            self.frames = self._frames()
            self._next = next(self.frames, None)    # fail now on an empty source or bag
        except geometry.GeometryError as e:
            raise PlayError(f"parameter 'source': {e}") from None
        except Exception as e:
            if type(e).__module__.startswith("rosbags"):
                raise PlayError(f"parameter 'source': {self.source} is not a readable bag ({e})") from None
            raise
        if self._next is None:
            raise PlayError(f"parameter 'source': {self.source} has no frames")
        self.sent = 0
        self.done = False
        self.timer = self.create_timer(1.0 / p("rate"), self._tick)

    def _frames(self):
        return source_frames(self.source, self.image_topic, self.calib_file, warn=self.get_logger().warning)

    def _tick(self) -> None:
        if self.done:
            return
        if self.wait_for:
            if self.image_pub.get_subscription_count() < self.wait_for:
                return
            # The subscriber's other readers (camera_info) match a moment after its image
            # reader; give them half a second so the first CameraInfo is not lost.
            self._ready_at = self._ready_at or time.monotonic() + 0.5
            if time.monotonic() < self._ready_at:
                return
        self.wait_for = 0
        item = self._next
        if item is None and self.loop:
            self.frames = self._frames()
            item = next(self.frames, None)
        if item is None or (self.count and self.sent >= self.count):
            self._finish()
            return
        self._next = next(self.frames, None)
        try:
            self._publish(*item)
        except (ConversionError, OSError) as e:
            self.get_logger().warning(f"{item[0]}: {e}; skipped")
            return
        self.sent += 1
        if self.count and self.sent >= self.count:
            self._finish()

    def _publish(self, name: str, kind: str, payload, calib) -> None:
        stamp = self.get_clock().now().to_msg()
        if kind == "file":
            image, info = self._file_message(payload)
            frame_id = self.frame_id or "camera"
            if calib is not None:
                h, w = self._last_size
                info = kitti_camera_info(calib, w, h)
        else:
            image, info = self._bag_message(payload), (_bag_camera_info(calib) if calib is not None else None)
            frame_id = self.frame_id or payload.header.frame_id or "camera"
        image.header.stamp, image.header.frame_id = stamp, frame_id
        if info is not None:
            info.header = image.header
            self.info_pub.publish(info)
        self.image_pub.publish(image)
        self.get_logger().info(f"frame {self.sent + 1} {name} stamp {stamp.sec}.{stamp.nanosec:09d}")

    def _file_message(self, path: Path):
        if self.transport == "compressed" and path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            data = path.read_bytes()
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ConversionError(f"{path} is not a readable image")
            self._last_size = bgr.shape[:2]
            msg = CompressedImage()
            msg.format = "png" if path.suffix.lower() == ".png" else "jpeg"
            msg.data = uint8_array(data)
            return msg, None
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ConversionError(f"{path} is not a readable image")
        self._last_size = bgr.shape[:2]
        if self.transport == "compressed":
            return numpy_to_compressed(bgr, "jpeg", order="bgr"), None
        if self.encoding:
            msg = frame_to_image(bgr, self.encoding, order="bgr")
            self._last_size = (msg.height, msg.width)   # Bayer/4:2:0 cut an odd row: CameraInfo follows
            return msg, None
        return numpy_to_image(bgr, "bgr8"), None

    def _bag_message(self, msg):
        compressed = hasattr(msg, "format")
        if compressed and self.transport == "compressed":
            out = CompressedImage()
            out.format, out.data = msg.format, uint8_array(msg.data)
            return out
        if not compressed and self.transport == "raw" and not self.encoding:
            out = Image()
            out.height, out.width, out.encoding = msg.height, msg.width, msg.encoding
            out.is_bigendian, out.step, out.data = msg.is_bigendian, msg.step, uint8_array(msg.data)
            return out
        frame, order = frame_from_msg(msg)
        if self.transport == "compressed":
            return numpy_to_compressed(frame, "jpeg", order=order)
        if self.encoding:
            return frame_to_image(frame, self.encoding, order=order)
        return numpy_to_image(np.ascontiguousarray(frame), "rgb8" if order == "rgb" else "bgr8")

    def _finish(self) -> None:
        self.done = True
        self.timer.cancel()
        self.frames.close()  # closes a bag reader now, not at interpreter teardown
        for pub in (self.info_pub, self.image_pub):  # returns as soon as all are acknowledged
            pub.wait_for_all_acked(Duration(seconds=10.0))
        self.get_logger().info(f"published {self.sent} frames from {self.source}")


def main(args=None) -> int:
    from rclpy.executors import ExternalShutdownException

    from ..paths import use_large_frame_transport

    use_large_frame_transport()  # before rclpy.init: megabyte frames over shared memory
    rclpy.init(args=args if args is not None else sys.argv)
    code = 0
    node = None
    try:
        node = Player()
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except PlayError as e:
        rclpy.logging.get_logger("play").error(str(e))
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
