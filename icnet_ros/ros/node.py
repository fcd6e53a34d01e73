"""`segment`: the lifecycle node `icnet`.  Camera images in; class mask, drivable mask,
overlay, bird's-eye drivable grid and diagnostics out.

Threads: executor callbacks only store the newest message per camera (replacing, and
counting as dropped, one the network has not taken yet).  One worker thread takes what is
waiting, converts it, runs the network once for the batch and publishes.  So latency is
bounded by one inference, whatever the input rate, and memory stays flat.

Lifecycle: configure validates parameters and loads the model; activate creates
publishers, subscriptions, the diagnostics timer and the worker; deactivate stops them;
cleanup releases the model.  `autostart` walks the node to active on its own.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .. import geometry
from .conversions import ConversionError, frame_from_msg, numpy_to_image

OUTPUTS = ("mask", "drivable_mask", "overlay", "drivable_area")
_T = ParameterType


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    read_only: bool = True          # a change needs a reload (deactivate/cleanup/configure)
    range: tuple | None = None


PARAMS = (
    Param("autostart", True, "Configure and activate on start, without a lifecycle manager."),
    Param("model_path", "", "Checkpoint (.pt or .safetensors); empty: the shipped model."),
    Param("device", "auto", "auto, cpu, cuda or cuda:N."),
    Param("precision", "auto", "auto, fp32, fp16 (CUDA) or bf16."),
    Param("backend", "auto", "auto (onnxruntime for fp32 on the CPU when installed, else torch), "
                             "torch or onnxruntime (CPU, fp32)."),
    Param("num_threads", 0, "CPU threads for torch and onnxruntime; 0 keeps torch's default.", range=(0, 256)),
    Param("warmup", True, "Run one frame through the network at configure."),
    Param("cameras", [""], "Camera names; each name C reads C/image and C/camera_info and "
                           "publishes under ~/C/.  [''] is one unnamed camera."),
    Param("input_transport", "raw", "raw (sensor_msgs/Image on image) or compressed "
                                    "(sensor_msgs/CompressedImage on image/compressed)."),
    Param("qos_reliability", "best_effort", "Input QoS reliability: best_effort or reliable."),
    Param("qos_depth", 1, "Input and output QoS history depth.", range=(1, 100)),
    Param("batch_wait_ms", 5.0, "With several cameras, how long to wait for the others once "
                                "one frame is in, so that they share a batch.", range=(0.0, 1000.0)),
    Param("base_frame", "base_link", "Frame of the drivable_area grid."),
    Param("calib_file", "", "KITTI calib file: intrinsics and camera-to-road pose from it "
                            "instead of camera_info and camera_height/pitch/roll.", read_only=False),
    Param("camera_height", 1.65, "Camera height above the ground (m).", False, (0.01, 100.0)),
    Param("camera_pitch", 0.0, "Camera pitch (rad, positive looks down).", False, (-1.6, 1.6)),
    Param("camera_roll", 0.0, "Camera roll (rad).", False, (-3.15, 3.15)),
    Param("camera_yaw", 0.0, "Camera yaw (rad, positive looks left).", False, (-3.15, 3.15)),
    Param("camera_x", 0.0, "Camera position along base_frame X (m).", False, (-100.0, 100.0)),
    Param("camera_y", 0.0, "Camera position along base_frame Y (m).", False, (-100.0, 100.0)),
    Param("grid_resolution", 0.1, "Grid cell size (m).", False, (0.01, 5.0)),
    Param("grid_x_min", 0.0, "Grid near edge, ahead of base_frame (m).", False, (-500.0, 500.0)),
    Param("grid_x_max", 40.0, "Grid far edge (m).", False, (-500.0, 500.0)),
    Param("grid_y_min", -10.0, "Grid right edge (m, negative is right).", False, (-500.0, 500.0)),
    Param("grid_y_max", 10.0, "Grid left edge (m).", False, (-500.0, 500.0)),
    Param("overlay_alpha", 0.5, "Class colour weight in the overlay.", False, (0.0, 1.0)),
    Param("publish_mask", True, "Publish ~/mask.", False),
    Param("publish_drivable_mask", True, "Publish ~/drivable_mask.", False),
    Param("publish_overlay", True, "Publish ~/overlay.", False),
    Param("publish_drivable_area", True, "Publish ~/drivable_area.", False),
)
CHOICES = {"input_transport": ("raw", "compressed"), "qos_reliability": ("best_effort", "reliable"),
           "backend": ("auto", "torch", "onnxruntime")}
GEOMETRY_PARAMS = ("camera_height", "camera_pitch", "camera_roll", "camera_yaw", "camera_x", "camera_y",
                   "grid_resolution", "grid_x_min", "grid_x_max", "grid_y_min", "grid_y_max", "calib_file")


def _descriptor(p: Param) -> ParameterDescriptor:
    kind = {bool: _T.PARAMETER_BOOL, int: _T.PARAMETER_INTEGER, float: _T.PARAMETER_DOUBLE,
            str: _T.PARAMETER_STRING, list: _T.PARAMETER_STRING_ARRAY}[type(p.default)]
    d = ParameterDescriptor(name=p.name, type=kind, description=p.description, read_only=p.read_only)
    if p.name in CHOICES:
        d.additional_constraints = "one of: " + ", ".join(CHOICES[p.name])
    if p.range and kind == _T.PARAMETER_INTEGER:
        d.integer_range = [IntegerRange(from_value=p.range[0], to_value=p.range[1], step=1)]
    elif p.range:
        d.floating_point_range = [FloatingPointRange(from_value=p.range[0], to_value=p.range[1])]
    return d


class ConfigError(ValueError):
    """A parameter that cannot be used; the message names it."""


@dataclass
class Stats:
    received: int = 0
    processed: int = 0
    dropped: int = 0        # replaced by a newer frame before the network took it
    bad: int = 0            # messages that could not be converted
    skipped: int = 0        # nobody listened to any output
    infer_ms: list = field(default_factory=list)    # this diagnostics window
    process_ms: list = field(default_factory=list)  # conversion + network + outputs, per batch
    latency_ms: list = field(default_factory=list)
    last_error: str = ""
    last_batch: int = 0


class Camera:
    """One camera's topics, newest waiting frame, intrinsics and counters."""

    def __init__(self, name: str, transport: str):
        self.name = name
        prefix = f"{name}/" if name else ""
        self.image_topic = prefix + ("image/compressed" if transport == "compressed" else "image")
        self.info_topic = prefix + "camera_info"
        self.out_prefix = "~/" + prefix
        self.pending = None          # (msg, monotonic receive time)
        self.info = None             # (K 3x3, (h, w)) from the latest CameraInfo
        self.pubs: dict = {}
        self.subs: list = []
        self.stats = Stats()
        self.projector = None
        self.projector_key = None
        self.window = (time.monotonic(), 0, 0)   # (start, received, processed) for rates


class SegmentationNode(LifecycleNode):
    def __init__(self, node_name: str = "icnet", **kwargs):
        super().__init__(node_name, **kwargs)
        self._param_errors: dict[str, str] = {}
        for p in PARAMS:
            self._declare(p)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.engine = None
        self.cameras: list[Camera] = []
        self.last_error = ""
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._diag_pub = None
        self._diag_timer = None
        self._calib = None

    # --- parameters -------------------------------------------------------------------

    def _declare(self, p: Param) -> None:
        try:
            self.declare_parameter(p.name, p.default, _descriptor(p))
        except (InvalidParameterValueException, InvalidParameterTypeException,
                ParameterUninitializedException) as e:
            # A bad value from a params file or the command line: keep the default for
            # now and fail configure with the parameter's name (not a crash in __init__).
            given = self._parameter_overrides.get(p.name)
            value = given.value if given is not None else None
            reason = str(e).split(": ")[0] if isinstance(e, InvalidParameterValueException) else type(e).__name__
            if isinstance(e, InvalidParameterTypeException):
                reason = f"expected a {type(p.default).__name__}"
            elif p.range:
                reason = f"must be within [{p.range[0]}, {p.range[1]}]"
            self._param_errors[p.name] = f"parameter '{p.name}': value {value!r} is invalid ({reason})"
            self.declare_parameter(p.name, p.default, _descriptor(p), ignore_override=True)

    def p(self, name: str):
        return self.get_parameter(name).value

    def _grid_spec(self, values: dict | None = None) -> geometry.GridSpec:
        get = (lambda n: values[n]) if values else self.p
        try:
            return geometry.GridSpec(get("grid_x_min"), get("grid_x_max"), get("grid_y_min"),
                                     get("grid_y_max"), get("grid_resolution"))
        except geometry.GeometryError as e:
            text = str(e)
            names = ("'grid_x_min' and 'grid_x_max'" if "x_max" in text else
                     "'grid_y_min' and 'grid_y_max'" if "y_max" in text else "'grid_resolution'")
            raise ConfigError(f"parameter {names}: {text}") from None

    def _load_calib(self, path: str):
        if not path:
            return None
        try:
            return geometry.read_kitti_calib(path)
        except geometry.GeometryError as e:
            raise ConfigError(f"parameter 'calib_file': {e}") from None

    def validate(self) -> None:
        """Raise ConfigError naming the first bad parameter."""
        if self._param_errors:
            raise ConfigError(next(iter(self._param_errors.values())))
        for name, choices in CHOICES.items():
            if self.p(name) not in choices:
                raise ConfigError(f"parameter '{name}': {self.p(name)!r} is not one of {', '.join(choices)}")
        from ..engine import EngineError, resolve_backend, resolve_device, resolve_precision

        try:
            device = resolve_device(self.p("device"))
        except EngineError as e:
            raise ConfigError(f"parameter 'device': {e}") from None
        try:
            precision = resolve_precision(self.p("precision"), device)
        except EngineError as e:
            raise ConfigError(f"parameter 'precision': {e}") from None
        try:
            resolve_backend(self.p("backend"), device, precision)
        except EngineError as e:
            raise ConfigError(f"parameter 'backend': {e}") from None
        names = list(self.p("cameras"))
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
        if not self.p("base_frame").strip():
            raise ConfigError("parameter 'base_frame': must not be empty")
        self._grid_spec()
        self._load_calib(self.p("calib_file"))

    def _on_set_parameters(self, params) -> SetParametersResult:
        # Lifecycle state machine not built yet while parameters are declared.
        if not hasattr(self, "engine"):
            return SetParametersResult(successful=True)
        values = {n: self.p(n) for n in GEOMETRY_PARAMS}
        changed = {p.name: p.value for p in params}
        values.update({k: v for k, v in changed.items() if k in values})
        try:
            if any(k.startswith("grid_") for k in changed):
                self._grid_spec(values)
            if "calib_file" in changed:
                calib = self._load_calib(changed["calib_file"])
                with self._cond:
                    self._calib = calib
            for name, choices in CHOICES.items():
                if name in changed and changed[name] not in choices:
                    raise ConfigError(f"parameter '{name}': {changed[name]!r} is not one of {', '.join(choices)}")
        except ConfigError as e:
            return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    # --- lifecycle --------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.validate()
            self._calib = self._load_calib(self.p("calib_file"))
            if self.p("num_threads") > 0:
                import torch

                torch.set_num_threads(self.p("num_threads"))
            self.engine = self._load_engine()
        except ConfigError as e:
            self.last_error = str(e)
            self.get_logger().error(self.last_error)
            return TransitionCallbackReturn.FAILURE
        transport = self.p("input_transport")
        self.cameras = [Camera(n, transport) for n in self.p("cameras")]
        self.last_error = ""
        self.get_logger().info(
            f"configured: model {self.engine.meta.classes.name} {self.engine.meta.variant} on "
            f"{self.engine.device} ({self.engine.precision}, {self.engine.backend}), cameras {[c.name or '(unnamed)' for c in self.cameras]}")
        return TransitionCallbackReturn.SUCCESS

    def _load_engine(self):
        from ..checkpoint import CheckpointError
        from ..engine import Engine, EngineError

        path = self.p("model_path")
        try:
            if not path:
                from ..paths import default_model_path

                path = str(default_model_path())
            return Engine.from_checkpoint(path, self.p("device"), self.p("precision"), self.p("warmup"),
                                          self.p("backend"))
        except (FileNotFoundError, CheckpointError) as e:
            raise ConfigError(f"parameter 'model_path': {e}") from None
        except OSError as e:  # ament_index without AMENT_PREFIX_PATH (a plain venv) says so this way
            raise ConfigError(f"parameter 'model_path': empty, and the shipped model could not be "
                              f"looked up ({e}); pass a checkpoint path") from None
        except EngineError as e:
            raise ConfigError(f"parameter 'device': {e}") from None

    def _qos(self, reliability: str) -> QoSProfile:
        return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=self.p("qos_depth"),
                          reliability=(QoSReliabilityPolicy.RELIABLE if reliability == "reliable"
                                       else QoSReliabilityPolicy.BEST_EFFORT),
                          durability=QoSDurabilityPolicy.VOLATILE)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qin = self._qos(self.p("qos_reliability"))
        qout = self._qos("reliable")    # reliable writers match every reader, rviz included
        msg_type = CompressedImage if self.p("input_transport") == "compressed" else Image
        for cam in self.cameras:
            cam.pubs = {
                "mask": self.create_publisher(Image, cam.out_prefix + "mask", qout),
                "drivable_mask": self.create_publisher(Image, cam.out_prefix + "drivable_mask", qout),
                "overlay": self.create_publisher(Image, cam.out_prefix + "overlay", qout),
                "drivable_area": self.create_publisher(OccupancyGrid, cam.out_prefix + "drivable_area", qout),
            }
            cam.subs = [
                self.create_subscription(msg_type, cam.image_topic, lambda m, c=cam: self._on_image(c, m), qin),
                self.create_subscription(CameraInfo, cam.info_topic, lambda m, c=cam: self._on_info(c, m), qin),
            ]
            cam.window = (time.monotonic(), cam.stats.received, cam.stats.processed)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="icnet-worker", daemon=True)
        self._worker.start()
        self.get_logger().info("active: subscribed to " + ", ".join(
            self.resolve_topic_name(c.image_topic) for c in self.cameras))
        return super().on_activate(state)

    def _stop_worker(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        for cam in self.cameras:
            for sub in cam.subs:
                self.destroy_subscription(sub)
            for pub in cam.pubs.values():
                self.destroy_publisher(pub)
            cam.subs, cam.pubs, cam.pending = [], {}, None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self.destroy_publisher(self._diag_pub)
            self._diag_timer = self._diag_pub = None
        return super().on_deactivate(state)

    def _release(self) -> None:
        if self.engine is not None:
            cuda = self.engine.device.type == "cuda"
            self.engine = None
            if cuda:
                import torch

                torch.cuda.empty_cache()
        self.cameras = []

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if state.label == "active":
            self.on_deactivate(state)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    @property
    def state(self) -> str:
        return self._state_machine.current_state[1]

    # --- callbacks: store only --------------------------------------------------------

    def _on_image(self, cam: Camera, msg) -> None:
        with self._cond:
            cam.stats.received += 1
            if cam.pending is not None:
                cam.stats.dropped += 1
            cam.pending = (msg, time.monotonic())
            self._cond.notify()

    def _on_info(self, cam: Camera, msg: CameraInfo) -> None:
        K = np.array(msg.k, np.float64).reshape(3, 3)
        if K[0, 0] > 0 and K[1, 1] > 0:
            with self._cond:
                cam.info = (K, (msg.height, msg.width))

    # --- the worker -------------------------------------------------------------------

    def _gather(self) -> list:
        """Wait for frames; with several cameras, give the others batch_wait_ms to arrive."""
        wait = self.p("batch_wait_ms") / 1000.0    # read outside the lock
        with self._cond:
            while not self._stop.is_set() and not any(c.pending for c in self.cameras):
                self._cond.wait(0.2)
            deadline = time.monotonic() + wait
            while (not self._stop.is_set() and not all(c.pending for c in self.cameras)
                   and time.monotonic() < deadline):
                self._cond.wait(max(deadline - time.monotonic(), 0.0))
            taken = [(c, c.pending) for c in self.cameras if c.pending]
            for c, _ in taken:
                c.pending = None
            return taken

    def _work(self) -> None:
        while not self._stop.is_set():
            batch = self._gather()
            if not batch or self._stop.is_set():
                continue
            try:
                self._process(batch)
            except Exception as e:  # never let the worker die; say why and go on
                self.get_logger().error(f"processing failed: {type(e).__name__}: {e}",
                                        throttle_duration_sec=5.0)

    def _wanted(self, cam: Camera) -> dict:
        return {name: pub for name, pub in cam.pubs.items()
                if self.p("publish_" + name) and pub.get_subscription_count() > 0}

    def _process(self, batch) -> None:
        start = time.perf_counter()
        jobs = []
        for cam, (msg, _) in batch:
            wanted = self._wanted(cam)
            if not wanted:
                cam.stats.skipped += 1
                continue
            try:
                frame, order = frame_from_msg(msg)
                if frame.shape[0] < 8 or frame.shape[1] < 8:
                    raise ConversionError(f"image of {frame.shape[1]}x{frame.shape[0]} is too small "
                                          f"(at least 8x8 pixels)")
            except ConversionError as e:
                with self._cond:
                    cam.stats.bad += 1
                    cam.stats.last_error = str(e)
                self.get_logger().warning(f"{self.resolve_topic_name(cam.image_topic)}: {e}; skipped",
                                          throttle_duration_sec=2.0)
                continue
            jobs.append((cam, msg, frame, order, wanted))
        if not jobs:
            return
        orders = {j[3] for j in jobs}
        color = orders.pop() if len(orders) == 1 else "rgb"
        frames = [f if (o == color) else f[..., ::-1] for _, _, f, o, _ in jobs]
        traced = len(self.engine.traced)
        results = self.engine.infer(frames, color=color)
        infer_ms = self.engine.last_ms
        for h, w, seconds in self.engine.traced[traced:]:   # explains a one-off slow frame
            self.get_logger().info(f"new frame size {w}x{h}: {self.engine.prepare_note} in "
                                   f"{seconds * 1000:.0f} ms (once per size)")
        for (cam, msg, frame, order, wanted), rgb_or_bgr, res in zip(jobs, frames, results):
            rgb = rgb_or_bgr if color == "rgb" else rgb_or_bgr[..., ::-1]
            self._publish(cam, msg.header, rgb, res, wanted)
            now = self.get_clock().now().nanoseconds
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with self._cond:
                cam.stats.processed += 1
                cam.stats.last_batch = len(jobs)
                cam.stats.infer_ms.append(infer_ms)
                if stamp > 0:
                    cam.stats.latency_ms.append((now - stamp) / 1e6)
        process_ms = (time.perf_counter() - start) * 1000.0
        with self._cond:
            for cam in {j[0] for j in jobs}:
                cam.stats.process_ms.append(process_ms)

    def _publish(self, cam: Camera, header, rgb: np.ndarray, res, wanted: dict) -> None:
        from ..visualize import overlay

        if "mask" in wanted:
            wanted["mask"].publish(numpy_to_image(res.classes, "mono8", header))
        if "drivable_mask" in wanted:
            wanted["drivable_mask"].publish(numpy_to_image(res.drivable.view(np.uint8) * 255, "mono8", header))
        if "overlay" in wanted:
            blended = overlay(rgb, res.classes, self.engine.classes.colors, self.p("overlay_alpha"))
            wanted["overlay"].publish(numpy_to_image(blended, "rgb8", header))
        if "drivable_area" in wanted:
            grid = self._grid(cam, res.drivable)
            if grid is not None:
                wanted["drivable_area"].publish(self._grid_msg(grid[0], grid[1], header))

    def _homography(self, cam: Camera, size: tuple[int, int]):
        x, y = self.p("camera_x"), self.p("camera_y")
        calib = self._calib
        if calib is not None:
            return geometry.kitti_ground_homography(calib, x, y)
        if cam.info is None:
            return None
        K, info_size = cam.info
        if info_size[0] > 0 and info_size[1] > 0 and tuple(info_size) != tuple(size):
            K = geometry.scale_intrinsics(K, info_size, size)
        return geometry.ground_homography(K, self.p("camera_height"), self.p("camera_pitch"),
                                          self.p("camera_roll"), self.p("camera_yaw"), x, y)

    def _grid(self, cam: Camera, drivable: np.ndarray):
        H = self._homography(cam, drivable.shape)
        if H is None:
            self.get_logger().warning(
                f"no CameraInfo on {self.resolve_topic_name(cam.info_topic)} and no calib_file: "
                f"drivable_area is not published", throttle_duration_sec=10.0)
            return None
        spec = self._grid_spec()
        key = (H.tobytes(), spec, drivable.shape)
        if cam.projector_key != key:       # rebuilt only when the pose, grid or size change
            cam.projector = geometry.GroundProjector(H, spec, drivable.shape)
            cam.projector_key = key
        return cam.projector.occupancy(drivable), spec

    def _grid_msg(self, grid: np.ndarray, spec: geometry.GridSpec, header) -> OccupancyGrid:
        import array

        msg = OccupancyGrid()
        msg.header.stamp = header.stamp
        msg.header.frame_id = self.p("base_frame")
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

    # --- diagnostics ------------------------------------------------------------------

    def stats(self, camera: str = "") -> dict:
        """A snapshot of one camera's counters (for diagnostics and tests)."""
        with self._cond:
            for c in self.cameras:
                if c.name == camera:
                    s = c.stats
                    return {"received": s.received, "processed": s.processed, "dropped": s.dropped,
                            "bad": s.bad, "skipped": s.skipped, "last_error": s.last_error,
                            "last_batch": s.last_batch}
        raise KeyError(f"no camera {camera!r}")

    def _publish_diagnostics(self) -> None:
        if self._diag_pub is None or self.engine is None:
            return
        array_msg = DiagnosticArray()
        array_msg.header.stamp = self.get_clock().now().to_msg()
        now = time.monotonic()
        for cam in self.cameras:
            with self._cond:
                s = cam.stats
                start, rec0, proc0 = cam.window
                dt = max(now - start, 1e-6)
                in_rate, out_rate = (s.received - rec0) / dt, (s.processed - proc0) / dt
                infer, lat, proc = s.infer_ms, s.latency_ms, s.process_ms
                s.infer_ms, s.latency_ms, s.process_ms = [], [], []
                cam.window = (now, s.received, s.processed)
                values = {
                    "input rate (Hz)": f"{in_rate:.2f}",
                    "output rate (Hz)": f"{out_rate:.2f}",
                    "inference (ms)": f"{np.mean(infer):.1f}" if infer else "nan",
                    "processing (ms)": f"{np.mean(proc):.1f}" if proc else "nan",
                    "latency mean (ms)": f"{np.mean(lat):.1f}" if lat else "nan",
                    "latency max (ms)": f"{np.max(lat):.1f}" if lat else "nan",
                    "frames received": str(s.received),
                    "frames processed": str(s.processed),
                    "dropped frames": str(s.dropped),
                    "bad messages": str(s.bad),
                    "last bad message": s.last_error,
                    "last batch size": str(s.last_batch),
                    "device": str(self.engine.device),
                    "precision": self.engine.precision,
                    "backend": self.engine.backend,
                }
            status = DiagnosticStatus()
            status.name = f"{self.get_name()}: {cam.name or 'camera'}"
            status.hardware_id = str(self.engine.device)
            if s.bad and values["last bad message"]:
                status.level, status.message = DiagnosticStatus.WARN, f"{s.bad} bad messages so far"
            elif in_rate == 0:
                status.level, status.message = DiagnosticStatus.OK, "waiting for images"
            else:
                status.level, status.message = DiagnosticStatus.OK, f"{out_rate:.1f} Hz"
            status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
            array_msg.status.append(status)
        self._diag_pub.publish(array_msg)


def main(args=None) -> int:
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from ..paths import use_large_frame_transport

    use_large_frame_transport()  # before rclpy.init: megabyte frames over shared memory
    rclpy.init(args=args if args is not None else sys.argv)
    node = SegmentationNode()
    code = 0
    try:
        if node.p("autostart"):
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise SystemExit(1)
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("activation failed")
                raise SystemExit(1)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        node._stop_worker()
        node._release()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
