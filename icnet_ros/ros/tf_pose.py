"""
Where each camera sits: its pose from TF, the camera_* parameters or the KITTI calib file.

camera_pose_source picks the source (icnet_ros/node_config.py).  TF: base_frame <-
camera frame (camera_frame, or the image header's frame_id: the optical frame, z
forward, x right, y down) through a tf2_ros Buffer and TransformListener, made at
configure and torn down at cleanup.  Lookups never wait (timeout zero): a blocking lookup
in a single-threaded executor would starve the very /tf callbacks it waits for.  A
camera bolted to the body is looked up at the latest time and cached for
camera_pose_refresh_s; with 0, at each frame's stamp (pan-tilt mounts).

tf2_ros has no wheel on the package index, so it is imported here only, and only when
TF is wanted: `auto` then falls back to the parameters (one log line), `tf` fails
configure in one line.
"""

from __future__ import annotations

import importlib
import time

from ..ground import geometry
from ..ground.geometry import CameraPose
from ..node_config import ConfigError, NodeConfig


def import_tf2_ros():
    """Return the tf2_ros module, or None where it does not import."""
    try:
        return importlib.import_module("tf2_ros")
    except ImportError:
        return None


def listen(node, tf2) -> tuple:
    """Return a tf2 (Buffer, TransformListener) on node: /tf and /tf_static subscribed until unlisten."""
    buffer = tf2.Buffer(node=node)
    return buffer, tf2.TransformListener(buffer, node)


def unlisten(node, buffer, listener) -> None:
    """Unsubscribe a listen()'s listener from /tf and /tf_static and drop its buffer's service."""
    if listener is not None:
        listener.unregister()
    service = getattr(buffer, "srv", None)      # Buffer(node=...)'s tf2_frames service
    if service is not None:
        node.destroy_service(service)


def parameters_pose(config: NodeConfig) -> CameraPose:
    return CameraPose.from_parameters(config.camera_height, config.camera_pitch, config.camera_roll,
                                      config.camera_yaw, config.camera_x, config.camera_y)


class PoseSource:
    """
    The node's camera poses, configure to cleanup.

    pose() is called by the worker thread alone; the TF buffer is filled by the
    executor's /tf callbacks (tf2's buffer is thread-safe).
    """

    def __init__(self, node, config: NodeConfig):
        self._node = node
        self._tf2 = self.buffer = self.listener = None
        self._cache: dict = {}          # (base_frame, camera frame) -> (CameraPose, monotonic time)
        wanted = config.camera_pose_source
        if wanted == "tf" or (wanted == "auto" and not config.calib_file):
            self._tf2 = import_tf2_ros()
            if self._tf2 is None and wanted == "tf":
                raise ConfigError("parameter 'camera_pose_source': 'tf' needs the tf2_ros Python module, which "
                                  "does not import here (install ros-$ROS_DISTRO-tf2-ros-py, or use 'parameters')")
            if self._tf2 is None:
                node.get_logger().info("camera pose: tf2_ros does not import here, so camera_pose_source auto "
                                       "uses the camera_* parameters")
                return
            self.buffer, self.listener = listen(node, self._tf2)
            node.get_logger().info(f"camera pose: from TF, {config.base_frame} <- "
                                   f"{config.camera_frame or 'each image frame_id'}"
                                   f"{'' if wanted == 'tf' else ' (the camera_* parameters until it exists)'}")

    def close(self) -> None:
        """Unsubscribe from /tf and /tf_static and drop the buffer's service (cleanup)."""
        unlisten(self._node, self.buffer, self.listener)
        self.buffer = self.listener = None
        self._cache = {}

    def pose(self, frame_id: str, stamp, config: NodeConfig) -> tuple[str, CameraPose | None, str]:
        """
        Return (source, pose, problem) for one frame.

        source is 'calib_file' (pose None: the homography comes from the file),
        'parameters' or 'tf'.  With TF and no transform: pose None and problem says which
        transform is missing, in one line; under auto the parameters' pose stands in
        and problem still says why.
        """
        source = config.camera_pose_source
        if source == "calib_file" or (source == "auto" and config.calib is not None):
            return "calib_file", None, ""
        if source == "parameters" or self.buffer is None:
            return "parameters", parameters_pose(config), ""
        pose, problem = self._lookup(config.camera_frame or frame_id, stamp, config)
        if pose is None and source == "auto":
            return "parameters", parameters_pose(config), problem
        return "tf", pose, problem

    def _lookup(self, frame: str, stamp, config: NodeConfig) -> tuple[CameraPose | None, str]:
        from rclpy.duration import Duration
        from rclpy.time import Time

        base = config.base_frame
        if not frame:
            return None, (f"no camera frame to look up in TF ({base} <- ?): the image has no frame_id "
                          f"and camera_frame is empty")
        key, now, refresh = (base, frame), time.monotonic(), config.camera_pose_refresh_s
        cached = self._cache.get(key) if refresh > 0 else None
        if cached is not None and now - cached[1] < refresh:
            return cached[0], ""
        when = Time() if refresh > 0 else Time(seconds=stamp.sec, nanoseconds=stamp.nanosec)
        try:
            t = self.buffer.lookup_transform(base, frame, when, timeout=Duration()).transform
            pose = CameraPose.from_transform((t.translation.x, t.translation.y, t.translation.z),
                                             (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w))
        except (self._tf2.TransformException, geometry.GeometryError) as e:
            if cached is not None:       # a fixed mount keeps its last pose while TF is late
                return cached[0], ""
            reason = " ".join(str(e).split()) or type(e).__name__
            return None, f"no transform {base} <- {frame}: {reason}"
        if refresh > 0:
            self._cache[key] = (pose, now)
        return pose, ""
