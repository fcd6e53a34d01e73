"""
The `icnet` node's parameters, without ROS, and the checks on their values.

Names, defaults, descriptions, ranges and choices are in one table, `NodeConfig`'s
fields.

`from_params` takes a full set of values (the node's, or config/icnet.yaml's) and returns
a `NodeConfig`, or raises `ConfigError`: one line naming the first bad parameter.
`with_changes` checks a live change (`ros2 param set`) the same way.  `load_engine` loads
the model the parameters name, its errors as one line naming the parameter too.  The
node (icnet_ros/ros/node.py, ros/params.py) declares the parameters from `PARAMS` with
their ROS descriptors and hands their values here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
import math
import re

from .ground import geometry


class ConfigError(ValueError):
    """A parameter that cannot be used; the message names it."""


def _param(default, description: str, live: bool = False, bounds: tuple | None = None):
    return field(default=default, metadata={"description": description, "live": live, "bounds": bounds})


@dataclass(frozen=True)
class NodeConfig:
    """Every parameter of the node, checked.  Field order is declaration order."""

    autostart: bool = _param(True, "Configure and activate on start, without a lifecycle manager.")
    model_path: str = _param("", "Checkpoint (.pt or .safetensors); empty: the shipped model.")
    device: str = _param("auto", "auto, cpu, cuda or cuda:N.")
    precision: str = _param("auto", "auto, fp32, fp16 (CUDA), bf16 or int8 (CPU, ONNX Runtime; needs "
                                    "calibration_images).")
    calibration_images: str = _param("", "precision int8: a folder of images to calibrate the quantised "
                                         "network on (frames like the camera's, or from the training sets).")
    backend: str = _param("auto", "auto (onnxruntime for fp32 on the CPU when installed, else torch), "
                                  "torch or onnxruntime (CPU, fp32).")
    num_threads: int = _param(0, "CPU threads for torch and onnxruntime; 0 keeps torch's default.",
                              bounds=(0, 256))
    warmup: bool = _param(True, "Run one frame through the network at configure.")
    cameras: tuple = _param(("",), "Camera names; each name C reads C/image and C/camera_info and "
                                   "publishes under ~/C/.  [''] is one unnamed camera.")
    input_transport: str = _param("raw", "raw (sensor_msgs/Image on image) or compressed "
                                         "(sensor_msgs/CompressedImage on image/compressed).")
    qos_reliability: str = _param("best_effort", "Input QoS reliability: best_effort or reliable.")
    qos_depth: int = _param(1, "Input and output QoS history depth.", bounds=(1, 100))
    batch_wait_ms: float = _param(5.0, "With several cameras, how long to wait for the others once "
                                       "one frame is in, so that they share a batch.", bounds=(0.0, 1000.0))
    input_timeout_s: float = _param(5.0, "Warn when a camera's image (or, for the grid, CameraInfo) topic has "
                                         "been silent this long while active, naming the topics that do carry "
                                         "images (s); 0: never.", True, (0.0, 3600.0))
    base_frame: str = _param("base_link", "Frame of the drivable_area grid.")
    calib_file: str = _param("", "KITTI calib file: intrinsics and camera-to-road pose from it "
                                 "instead of camera_info and camera_height/pitch/roll.", live=True)
    camera_height: float = _param(1.65, "Camera height above the ground (m).", True, (0.01, 100.0))
    camera_pitch: float = _param(0.0, "Camera pitch (rad, positive looks down).", True, (-1.6, 1.6))
    camera_roll: float = _param(0.0, "Camera roll (rad).", True, (-3.15, 3.15))
    camera_yaw: float = _param(0.0, "Camera yaw (rad, positive looks left).", True, (-3.15, 3.15))
    camera_x: float = _param(0.0, "Camera position along base_frame X (m).", True, (-100.0, 100.0))
    camera_y: float = _param(0.0, "Camera position along base_frame Y (m).", True, (-100.0, 100.0))
    camera_pose_source: str = _param("auto", "Where the camera's pose comes from: tf (base_frame <- camera_frame), "
                                             "parameters (camera_height/pitch/roll/yaw/x/y), calib_file, or auto "
                                             "(calib_file when set, else TF when tf2_ros imports and the transform "
                                             "exists, else the parameters).")
    camera_frame: str = _param("", "The camera's optical frame (z forward, x right, y down) for TF; empty: each "
                                   "image's header frame_id.", True)
    camera_pose_refresh_s: float = _param(1.0, "Look the camera's transform up again after this long (s); 0: at "
                                               "every frame's stamp (pan-tilt mounts).", True, (0.0, 3600.0))
    grid_resolution: float = _param(0.1, "Grid cell size (m).", True, (0.01, 5.0))
    grid_x_min: float = _param(0.0, "Grid near edge, ahead of base_frame (m).", True, (-500.0, 500.0))
    grid_x_max: float = _param(40.0, "Grid far edge (m).", True, (-500.0, 500.0))
    grid_y_min: float = _param(-10.0, "Grid right edge (m, negative is right).", True, (-500.0, 500.0))
    grid_y_max: float = _param(10.0, "Grid left edge (m).", True, (-500.0, 500.0))
    drivable_threshold: float = _param(0.0, "A pixel is drivable when its drivable probability (summed over "
                                            "the drivable classes) reaches this; 0: when its arg-max class is "
                                            "drivable.", True, (0.0, 1.0))
    drivable_connected: bool = _param(False, "Keep only drivable area connected to the bottom centre of the "
                                             "image (where the vehicle is): islands beyond a barrier are "
                                             "dropped from the masks and the grid.", True)
    overlay_alpha: float = _param(0.5, "Class colour weight in the overlay.", True, (0.0, 1.0))
    publish_mask: bool = _param(True, "Publish ~/mask.", True)
    publish_drivable_mask: bool = _param(True, "Publish ~/drivable_mask.", True)
    publish_drivable_confidence: bool = _param(True, "Publish ~/drivable_confidence (mono8, 0..255).", True)
    publish_overlay: bool = _param(True, "Publish ~/overlay.", True)
    publish_drivable_area: bool = _param(True, "Publish ~/drivable_area.", True)
    publish_obstacles: bool = _param(True, "Publish ~/obstacles (PointCloud2 in base_frame: the nearest "
                                           "non-drivable cell per direction, for a Nav2 ObstacleLayer).", True)
    publish_free_space: bool = _param(True, "Publish ~/free_space (PointCloud2 in base_frame: the last drivable "
                                            "cell of each ray that meets no obstacle, for a clearing-only source).",
                                      True)
    obstacles_z: float = _param(0.1, "Height of the ~/obstacles and ~/free_space points (m in base_frame).", True,
                                (-10.0, 10.0))
    obstacles_max_points: int = _param(1000, "Most ~/obstacles points per frame (angular sectors of the camera's "
                                             "view).", True, (1, 100000))
    ego_mask: tuple = _param(("",), "The robot's own body in the image, never drivable: a PNG (non-zero = the "
                                    "robot) or bottom:<fraction>; one for every camera, or one per camera; "
                                    "'' = none.")
    map_frame: str = _param("odom", "Fixed frame of ~/drivable_map, the rolling map fused over time (odom); "
                                    "'' turns the map off.")
    map_size: float = _param(80.0, "Side of ~/drivable_map's square window, centred on the robot (m).",
                             bounds=(1.0, 1000.0))
    map_resolution: float = _param(0.1, "~/drivable_map's cell size (m).", bounds=(0.01, 5.0))
    map_decay_s: float = _param(10.0, "Evidence in ~/drivable_map not renewed fades back to unknown over "
                                      "this time (s).", True, (0.1, 3600.0))
    map_values: str = _param("trinary", "~/drivable_map's values: trinary (0 drivable, 100 not, -1 unknown; "
                                        "drivable from a fused probability of drivable_threshold, or 0.5 when it "
                                        "is 0) or graded (100 x (1 - fused probability), for Nav2's "
                                        "trinary_costmap: false).", True)
    odom_topic: str = _param("", "The robot's pose in map_frame for ~/drivable_map: a nav_msgs/Odometry topic; "
                                 "'' = TF (map_frame <- base_frame at each image's stamp).")
    # Not a parameter: calib_file read (None without one), so frames never wait on the file.
    calib: dict | None = field(default=None, compare=False, repr=False)
    # Not a parameter: ego_mask loaded, one per camera (None: no mask).
    ego_masks: tuple = field(default=(), compare=False, repr=False)

    @property
    def grid(self) -> geometry.GridSpec:
        return grid_spec(self)

    def publishes(self, output: str) -> bool:
        """Whether an output (a name of OUTPUTS in ros/camera.py: 'mask', ..., 'obstacles') is on."""
        return getattr(self, "publish_" + output)


@dataclass(frozen=True)
class Param:
    name: str
    default: object             # as ROS declares it: a list, not a tuple, for string arrays
    description: str
    read_only: bool = True      # a change needs a reload (deactivate/cleanup/configure)
    bounds: tuple | None = None


PARAMS = tuple(Param(f.name, list(f.default) if isinstance(f.default, tuple) else f.default,
                     f.metadata["description"], not f.metadata["live"], f.metadata["bounds"])
               for f in fields(NodeConfig) if "description" in f.metadata)
CHOICES = {"input_transport": ("raw", "compressed"), "qos_reliability": ("best_effort", "reliable"),
           "backend": ("auto", "torch", "onnxruntime"),
           "camera_pose_source": ("auto", "tf", "parameters", "calib_file"),
           "map_values": ("trinary", "graded")}
_BY_NAME = {p.name: p for p in PARAMS}
_GRID = ("grid_x_min", "grid_x_max", "grid_y_min", "grid_y_max", "grid_resolution")
_REL_TOL = 1e-6             # as rclpy's range check: values this close to an edge are in


def check_value(name: str, value) -> None:
    """One parameter on its own: its type, range and choices, as its descriptor states them."""
    p = _BY_NAME.get(name)
    if p is None:
        raise ConfigError(f"parameter {name!r} is not a parameter of the node")
    expected = type(p.default)
    # ROS parameters are typed strictly: an integer is not a double, nor a bool an integer.
    ok = (type(value) is expected if expected is not list else
          isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))
    if not ok:
        raise ConfigError(f"parameter '{name}': value {value!r} is invalid (expected a {expected.__name__})")
    if p.bounds and not (p.bounds[0] <= value <= p.bounds[1] or
                         any(math.isclose(value, edge, rel_tol=_REL_TOL) for edge in p.bounds)):
        raise ConfigError(f"parameter '{name}': value {value!r} is invalid "
                          f"(must be within [{p.bounds[0]}, {p.bounds[1]}])")
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(f"parameter '{name}': {value!r} is not one of {', '.join(CHOICES[name])}")


def grid_spec(values) -> geometry.GridSpec:
    """Return the grid of a NodeConfig (or a mapping of the grid_* values), checked."""
    get = values.__getitem__ if isinstance(values, Mapping) else lambda n: getattr(values, n)
    try:
        return geometry.GridSpec(get("grid_x_min"), get("grid_x_max"), get("grid_y_min"),
                                 get("grid_y_max"), get("grid_resolution"))
    except geometry.GeometryError as e:
        text = str(e)
        names = ("'grid_x_min' and 'grid_x_max'" if "x_max" in text else
                 "'grid_y_min' and 'grid_y_max'" if "y_max" in text else "'grid_resolution'")
        raise ConfigError(f"parameter {names}: {text}") from None


def load_calib(path: str):
    """Return the KITTI calib file's matrices, or None for no file."""
    if not path:
        return None
    try:
        return geometry.read_kitti_calib(path)
    except geometry.GeometryError as e:
        raise ConfigError(f"parameter 'calib_file': {e}") from None


def load_ego_masks(specs, cameras) -> tuple:
    """Return one loaded ego mask (or None) per camera; one entry serves every camera."""
    from .ground.ego_mask import EgoMaskError, load

    specs, cameras = list(specs), list(cameras)
    if len(specs) not in (1, len(cameras)):
        raise ConfigError(f"parameter 'ego_mask': {len(specs)} masks for {len(cameras)} cameras; "
                          f"give one for every camera or one per camera")
    try:
        loaded = [load(s) for s in specs]
    except EgoMaskError as e:
        raise ConfigError(f"parameter 'ego_mask': {e}") from None
    return tuple(loaded * len(cameras) if len(loaded) == 1 else loaded)


def _check_pose_source(values: Mapping) -> None:
    if values["camera_pose_source"] == "calib_file" and not values["calib_file"]:
        raise ConfigError("parameter 'camera_pose_source': 'calib_file' needs parameter 'calib_file' set")


def _check_camera_frame(frame: str) -> None:
    if frame != frame.strip() or frame.startswith("/"):     # tf2 refuses a leading '/' (ROS 2)
        raise ConfigError(f"parameter 'camera_frame': {frame!r} is not a TF frame id (no leading '/' or spaces)")


def _check_map(values: Mapping) -> None:
    """map_frame, the map's cell count and odom_topic: what the node could not run with, in one line."""
    frame, base, topic = values["map_frame"], values["base_frame"], values["odom_topic"]
    if not frame:
        return                                      # the map is off
    if frame != frame.strip() or frame.startswith("/"):
        raise ConfigError(f"parameter 'map_frame': {frame!r} is not a TF frame id (no leading '/' or spaces)")
    if frame == base:
        raise ConfigError(f"parameter 'map_frame': {frame!r} is base_frame; the map needs a fixed frame such as "
                          f"odom, which the robot moves in ('' turns the map off)")
    from .ground.drivable_map import MapError, RollingMap

    try:
        RollingMap.check_size(values["map_size"], values["map_resolution"])
    except MapError as e:
        raise ConfigError(f"parameter 'map_size' and 'map_resolution': {e}") from None
    if topic and not re.fullmatch(r"~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*", topic):
        raise ConfigError(f"parameter 'odom_topic': {topic!r} is not a ROS topic name")


def _check_engine_options(device: str, precision: str, backend: str) -> None:
    from .inference.engine import EngineError, resolve_backend, resolve_device, resolve_precision

    try:
        resolved_device = resolve_device(device, precision, backend)   # auto: CPU for int8 / onnxruntime
    except EngineError as e:
        raise ConfigError(f"parameter 'device': {e}") from None
    try:
        resolved_precision = resolve_precision(precision, resolved_device)
    except EngineError as e:
        raise ConfigError(f"parameter 'precision': {e}") from None
    try:
        resolve_backend(backend, resolved_device, resolved_precision)
    except EngineError as e:
        raise ConfigError(f"parameter 'backend': {e}") from None


def _check_cameras(names: list) -> None:
    if not names:
        raise ConfigError("parameter 'cameras': the list is empty; use [''] for one unnamed camera")
    if len(set(names)) != len(names):
        raise ConfigError(f"parameter 'cameras': names repeat in {names}")
    if "" in names and len(names) > 1:
        raise ConfigError(f"parameter 'cameras': an unnamed camera ('') cannot be mixed with named ones {names}")
    for n in names:
        if n and not all(part and (part[0].isalpha() or part[0] == "_") and
                         all(c.isalnum() or c == "_" for c in part) for part in n.split("/")):
            raise ConfigError(f"parameter 'cameras': {n!r} is not a valid ROS name")


def build(values: Mapping) -> NodeConfig:
    """Parameter values (missing ones: defaults) as a NodeConfig, unchecked; from_params checks."""
    return _replace(NodeConfig(), values)


def from_params(values: Mapping) -> NodeConfig:
    """
    Every parameter checked (missing ones take their defaults); the first bad one raises ConfigError naming it.

    Reads calib_file, and asks torch whether the device exists.
    """
    merged = {p.name: p.default for p in PARAMS}
    merged.update(values)
    for name, value in merged.items():
        check_value(name, value)
    _check_engine_options(merged["device"], merged["precision"], merged["backend"])
    if merged["precision"] == "int8" and not merged["calibration_images"]:
        raise ConfigError("parameter 'calibration_images': precision 'int8' needs a folder of calibration images")
    _check_cameras(list(merged["cameras"]))
    if not merged["base_frame"].strip():
        raise ConfigError("parameter 'base_frame': must not be empty")
    grid_spec(merged)
    _check_pose_source(merged)
    _check_camera_frame(merged["camera_frame"])
    _check_map(merged)
    return _replace(NodeConfig(), {**merged, "calib": load_calib(merged["calib_file"]),
                                   "ego_masks": load_ego_masks(merged["ego_mask"], merged["cameras"])})


def with_changes(config: NodeConfig, changes: Mapping) -> NodeConfig:
    """
    Check a live change as from_params checks it: each changed value, and the grid or calib file it touches.

    Whether a parameter may change live is its descriptor's (rclpy's) to enforce; read-only
    ones never reach here.
    """
    for name, value in changes.items():
        check_value(name, value)
    new = _replace(config, changes)
    if any(name in _GRID for name in changes):
        grid_spec(new)
    if "camera_frame" in changes:
        _check_camera_frame(new.camera_frame)
    if "calib_file" in changes:
        _check_pose_source({"camera_pose_source": new.camera_pose_source, "calib_file": new.calib_file})
        new = replace(new, calib=load_calib(new.calib_file))
    return new


def _replace(config: NodeConfig, changes: Mapping) -> NodeConfig:
    """Return config with changes applied (string arrays kept as tuples: NodeConfig is immutable)."""
    changes = dict(changes)
    for name in ("cameras", "ego_mask"):
        if name in changes:
            changes[name] = tuple(changes[name])
    return replace(config, **changes)


def load_engine(config: NodeConfig):
    """
    Return the inference Engine that model_path, device, precision and backend name.

    Any failure is a ConfigError naming the parameter at fault: the checkpoint, the
    calibration images, the device (a CUDA error in the warm-up included).
    """
    from .inference.checkpoint import CheckpointError, load_checkpoint
    from .inference.engine import CalibrationError, Engine, EngineError

    path, step = config.model_path, "model_path"
    try:
        if not path:
            from .paths import default_model_path

            path = str(default_model_path())
        model, meta, _ = load_checkpoint(path)
        step = "device"
        return Engine(model, meta, config.device, config.precision, config.warmup, config.backend,
                      threads=config.num_threads, calibration=config.calibration_images or None)
    except (FileNotFoundError, CheckpointError) as e:
        raise ConfigError(f"parameter 'model_path': {e}") from None
    except OSError as e:  # ament_index without AMENT_PREFIX_PATH (a plain venv) says so this way
        raise ConfigError(f"parameter 'model_path': empty, and the shipped model could not be "
                          f"looked up ({e}); pass a checkpoint path") from None
    except CalibrationError as e:
        raise ConfigError(f"parameter 'calibration_images': {e}") from None
    except EngineError as e:
        raise ConfigError(f"parameter 'device': {e}") from None
    except Exception as e:  # anything else (a CUDA error in the warm-up, ...): one line, never a silent exit
        first = (str(e).strip().splitlines() or [""])[0]
        doing = f"loading {path}" if step == "model_path" else f"running the model on device {config.device!r}"
        raise ConfigError(f"parameter {step!r}: {doing} failed ({type(e).__name__}: {first})") from None
