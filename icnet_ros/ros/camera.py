"""
One camera of the node: its topics, newest frame, intrinsics, counters and outputs.

Its topics come with their publishers; the newest frame waits for the worker; the worker
converts it here (a bad message is counted and named), and the outputs (mask, drivable
mask, overlay and the bird's-eye grid through icnet_ros/ground/geometry.py) are built
from one network result with the camera's pose for that frame.

The image outputs (FULL_SIZE) come from the maps at the frame's size, which the node asks
the engine for only when one of them is wanted; the ground outputs (GROUND) sample the
maps at the network size (``Result.net_drivable``) through the ground homography scaled
to them (``upsample.frame_to_network(frame, network) @ H``), with the ego mask and
drivable_connected applied at that size.  The network-size map is what the frame's mask
is upsampled from, so a cell reads the same network pixel's decision; the two differ
only within a network pixel of a class border.
"""

from __future__ import annotations

import array

from nav_msgs.msg import OccupancyGrid
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from . import diagnostics, inputs
from .conversions import ConversionError, frame_from_msg, numpy_to_image
from .pointcloud import points_msg
from .view_watch import ViewWatch
from ..ground import geometry
from ..ground.blind_zone import no_ground_message
from ..ground.obstacles import BoundaryScanner
from ..inference.checkpoint import check_frame_size, FrameSizeError
from ..inference.upsample import frame_to_network
from ..node_config import NodeConfig

OUTPUTS = {"mask": Image, "drivable_mask": Image, "drivable_confidence": Image, "overlay": Image,
           "drivable_area": OccupancyGrid, "obstacles": PointCloud2, "free_space": PointCloud2}
GROUND = ("drivable_area", "obstacles", "free_space")     # the outputs made from the bird's-eye grid
FULL_SIZE = ("mask", "drivable_mask", "drivable_confidence", "overlay")   # images at the frame's size
NO_INFO = "no CameraInfo"


class Camera:
    """
    Topics, publishers, newest waiting frame, intrinsics and counters.

    The node's lock guards pending, info and stats; the worker alone uses the
    projector.
    """

    def __init__(self, name: str, transport: str, ego=None):
        self.name = name
        self.ego = ego               # icnet_ros/ego_mask.EgoMask or None
        prefix = f"{name}/" if name else ""
        self.image_topic = prefix + ("image/compressed" if transport == "compressed" else "image")
        self.info_topic = prefix + "camera_info"
        self.out_prefix = "~/" + prefix
        self.pending = None          # (msg, monotonic receive time)
        self.info = None             # (K 3x3, (h, w)) from the latest usable CameraInfo
        self.info_problem = ""       # why the latest CameraInfo's K is unusable (ros/inputs.py), or ""
        self.size_problem = ""       # why its size does not fit the frames, or ""
        self.pubs: dict = {}         # output name -> lifecycle publisher, configure to cleanup
        self.subs: list = []         # activate to deactivate
        self.stats = diagnostics.Stats()
        self.projector = None
        self.projector_key = None
        self.scanner = None
        self.scanner_key = None
        self.view = ViewWatch()      # the blind zone, or that the camera sees no ground (worker only)

    def open_outputs(self, node, qos) -> None:
        """Lifecycle publishers under ~/<camera>/: made at configure, silent while inactive."""
        self.pubs = {name: node.create_lifecycle_publisher(msg_type, self.out_prefix + name, qos)
                     for name, msg_type in OUTPUTS.items()}

    def close_outputs(self, node) -> None:
        for pub in self.pubs.values():
            node.destroy_lifecycle_publisher(pub)
        self.pubs = {}

    def open_inputs(self, node, msg_type, qos, on_image, on_info, watch=None) -> None:
        """Subscribe to the image and CameraInfo topics; watch (ros/inputs.py) hears of QoS that cannot match."""
        events = (lambda kind: watch.qos_events(self, kind)) if watch is not None else (lambda kind: None)
        self.subs = [inputs.subscribe(node, msg_type, self.image_topic, lambda m: on_image(self, m), qos,
                                      events("images")),
                     inputs.subscribe(node, CameraInfo, self.info_topic, lambda m: on_info(self, m), qos,
                                      events("CameraInfo"))]

    def close_inputs(self, node) -> None:
        for sub in self.subs:
            node.destroy_subscription(sub)
        self.subs, self.pending = [], None

    # --- input: the executor's callbacks store, the worker converts ----------------------

    def on_info(self, msg: CameraInfo, lock) -> None:
        """Keep the intrinsics of a CameraInfo that has usable ones; else say why (ros/inputs.py logs it once)."""
        problem = inputs.k_problem(msg.k)
        with lock:
            self.stats.camera_infos += 1
            self.info_problem = problem
            if not problem:
                self.info = (np.array(msg.k, np.float64).reshape(3, 3), (msg.height, msg.width))

    def convert(self, msg, lock, node):
        """(frame, channel order), or None for a bad message (counted, and named in the log)."""
        try:
            frame, order = frame_from_msg(msg)
            check_frame_size(*frame.shape[:2])       # what the engine would refuse, said here in one line
            return frame, order
        except (ConversionError, FrameSizeError) as e:
            with lock:
                self.stats.bad += 1
                self.stats.last_error = str(e)
            node.get_logger().warning(f"{node.resolve_topic_name(self.image_topic)}: {e}; skipped",
                                      throttle_duration_sec=2.0)
            return None

    # --- output -----------------------------------------------------------------------------

    def wanted(self, config: NodeConfig) -> dict:
        """Return the publishers of the outputs switched on and listened to."""
        return {name: pub for name, pub in self.pubs.items()
                if config.publishes(name) and pub.get_subscription_count() > 0}

    def mask_result(self, res, config: NodeConfig):
        """
        Apply the ego mask (never drivable) and drivable_connected to a result's maps, at each size it has.

        Returns the ego mask at the network size (the ground outputs') or None.  The maps
        at the frame's size are there only when an image output asked for them.
        """
        from ..ground.drivable import connected_to_vehicle
        from ..ground.ego_mask import apply

        ego = self.ego.at(res.net_drivable.shape) if self.ego is not None else None
        if ego is not None:
            res.net_drivable, res.net_prob = apply(res.net_drivable, res.net_prob, ego)
        if config.drivable_connected:
            res.net_drivable = connected_to_vehicle(res.net_drivable, ego)
        if res.drivable is not None:
            full = self.ego.at(res.drivable.shape) if self.ego is not None else None
            if full is not None:
                res.drivable, res.drivable_prob = apply(res.drivable, res.drivable_prob, full)
            if config.drivable_connected:
                res.drivable = connected_to_vehicle(res.drivable, full)
        return ego

    def publish_frame(self, node, msg, rgb, res, wanted: dict, config: NodeConfig, pose, ego, lock) -> None:
        """Publish one frame's outputs with its pose; record the pose and say why the grid is withheld."""
        K, camera = self.camera_model(res.frame_size, config, pose)
        frame_ego = self.ego.at(res.frame_size) if self.ego is not None else None
        blind = self.view.update(node.get_logger(), config.camera_frame or msg.header.frame_id, K, camera,
                                 res.frame_size, frame_ego)
        if blind:                    # the grid would be all unknown and the clouds empty
            wanted = {name: pub for name, pub in wanted.items() if name not in GROUND}
        problem = self.publish(msg.header, rgb, res, wanted, config, node.engine.classes.colors, pose, ego) or blind
        if problem == NO_INFO:
            problem = self.no_info_line(node)
        with lock:
            self.stats.pose = pose[0] + (f" ({pose[2]})" if pose[2] and pose[1] is not None else "")
            self.stats.grid_problem = problem
            self.stats.blind_zone = self.view.value
        # ros/inputs.py logs an unusable CameraInfo once, and a missing one after input_timeout_s (with
        # the topics that do carry CameraInfo): not at the first frames, which may beat the first CameraInfo
        said = problem.startswith("CameraInfo on") or (problem.startswith("no CameraInfo") and config.input_timeout_s)
        if problem and not said:
            node.get_logger().warning(f"{problem}: drivable_area, obstacles and free_space are not published",
                                      throttle_duration_sec=10.0)

    def no_info_line(self, node) -> str:
        """Why the grid has no intrinsics: the CameraInfo's problem, or none came."""
        info_topic = node.resolve_topic_name(self.info_topic)
        problem = self.info_problem or self.size_problem
        if problem:
            return inputs.info_line(info_topic, problem, node.resolve_topic_name(self.image_topic))
        return f"no CameraInfo on {info_topic} and no calib_file"

    def publish(self, header, rgb: np.ndarray, res, wanted: dict, config: NodeConfig, colors,
                pose=("parameters", None, ""), ego=None) -> str:
        """
        Publish the wanted outputs of one result, stamped with the input header.

        pose: (source, CameraPose or None, problem) from icnet_ros/ros/tf_pose.py; ego:
        the ego mask at the network size or None.  Returns '' or, when the grid and
        obstacles were wanted but cannot be made (no pose, or no CameraInfo and no
        calib_file: NO_INFO), why, in one line.
        """
        from ..ground.drivable import confidence_image
        from ..visualize import overlay

        if "mask" in wanted:
            wanted["mask"].publish(numpy_to_image(res.classes, "mono8", header))
        if "drivable_mask" in wanted:
            wanted["drivable_mask"].publish(numpy_to_image(res.drivable.view(np.uint8) * 255, "mono8", header))
        if "drivable_confidence" in wanted:
            wanted["drivable_confidence"].publish(numpy_to_image(confidence_image(res.drivable_prob), "mono8", header))
        if "overlay" in wanted:
            blended = overlay(rgb, res.classes, colors, config.overlay_alpha)
            wanted["overlay"].publish(numpy_to_image(blended, "rgb8", header))
        if not any(name in wanted for name in GROUND):
            return ""
        try:
            H = self.homography(res.frame_size, config, pose[0], pose[1])
        except geometry.GeometryError as e:       # a TF pose under the ground, a broken K
            return f"camera pose or intrinsics unusable: {e}"
        if H is None:
            return pose[2] if pose[1] is None and pose[0] != "calib_file" else NO_INFO
        # ground -> frame pixel, then frame pixel -> network-map pixel: the network-size maps
        H_net = frame_to_network(res.frame_size, res.net_drivable.shape) @ H
        grid = self.occupancy(res.net_drivable, config, H_net, ego)
        if not self.projector.visible.any():
            return no_ground_message(config.camera_frame or header.frame_id, pose[1])
        if "drivable_area" in wanted:
            wanted["drivable_area"].publish(grid_msg(grid, config.grid, header, config.base_frame))
        if "obstacles" in wanted:
            points = self.scanner_for(config, pose).points(grid, config.obstacles_z)
            wanted["obstacles"].publish(points_msg(points, header.stamp, config.base_frame))
        if "free_space" in wanted:
            points = self.scanner_for(config, pose).free_ends(grid, config.obstacles_z)
            wanted["free_space"].publish(points_msg(points, header.stamp, config.base_frame))
        return ""

    def homography(self, size: tuple[int, int], config: NodeConfig, source: str = "parameters", pose=None):
        """
        Ground (base_frame X, Y) -> pixel for frames of this size, or None without intrinsics or pose.

        Intrinsics: the calib file's when set, else the latest CameraInfo's (scaled to
        the frame).  Pose: the calib file's (source 'calib_file'), else pose.
        """
        if source == "calib_file":
            return geometry.kitti_ground_homography(config.calib, config.camera_x, config.camera_y)
        K = self.intrinsics(size, config)
        if pose is None or K is None:
            return None
        return geometry.pose_homography(K, pose)

    def intrinsics(self, size: tuple[int, int], config: NodeConfig):
        """K for frames of this size: the calib file's, else the latest CameraInfo's (scaled); None without."""
        if config.calib is not None:
            return geometry.kitti_intrinsics(config.calib)
        if self.info is None:
            return None
        K, info_size = self.info
        self.size_problem = inputs.size_problem(info_size, size)
        if self.size_problem:            # another camera's CameraInfo, or a cropped stream: no grid
            return None
        if info_size[0] > 0 and info_size[1] > 0 and tuple(info_size) != tuple(size):
            K = geometry.scale_intrinsics(K, info_size, size)
        return K

    def camera_model(self, size: tuple[int, int], config: NodeConfig, pose) -> tuple:
        """(K, CameraPose) of this frame's camera, or (None, None) without intrinsics or pose."""
        if pose[0] == "calib_file":
            return (geometry.kitti_intrinsics(config.calib),
                    geometry.kitti_camera_pose(config.calib, config.camera_x, config.camera_y))
        K = self.intrinsics(size, config)
        return (K, pose[1]) if K is not None and pose[1] is not None else (None, None)

    def occupancy(self, drivable: np.ndarray, config: NodeConfig, H, ego=None) -> np.ndarray:
        """Return the int8 grid of a drivable map (the network-size one) through H, ground -> its pixels."""
        spec = config.grid
        key = (H.tobytes(), spec, drivable.shape)
        if self.projector_key != key:       # rebuilt only when the pose, grid or size change
            self.projector = geometry.GroundProjector(H, spec, drivable.shape)
            self.projector_key = key
        return self.projector.occupancy(drivable, ego)

    def scanner_for(self, config: NodeConfig, pose) -> BoundaryScanner:
        """Return the rays of ~/obstacles and ~/free_space from the camera's ground point, for the current projector."""
        source, camera = pose[:2]
        if source == "calib_file" or camera is None:    # KITTI's camera looks along X
            origin, heading = (config.camera_x, config.camera_y), 0.0
        else:
            origin, heading = camera.ground_point(), camera.heading()
        key = (self.projector_key, origin, heading, config.obstacles_max_points)
        if self.scanner_key != key:
            self.scanner = BoundaryScanner(config.grid, origin, heading, self.projector.visible,
                                           config.obstacles_max_points)
            self.scanner_key = key
        return self.scanner


def grid_msg(grid: np.ndarray, spec: geometry.GridSpec, header, frame_id: str) -> OccupancyGrid:
    msg = OccupancyGrid()
    msg.header.stamp = header.stamp
    msg.header.frame_id = frame_id
    msg.info.map_load_time = header.stamp
    msg.info.resolution = float(spec.resolution)
    msg.info.width, msg.info.height = spec.width, spec.height
    msg.info.origin.position.x = float(spec.x_min)
    msg.info.origin.position.y = float(spec.y_min)
    msg.info.origin.orientation.w = 1.0
    data = array.array("b")
    data.frombytes(np.ascontiguousarray(grid, np.int8).data)  # one copy, no bytes detour
    msg.data = data
    return msg
