"""
`segment`: the lifecycle node `icnet`.

Camera images in; class mask, drivable mask, overlay, bird's-eye drivable grid and
diagnostics out.

Threads: executor callbacks only store the newest message per camera (replacing, and
counting as dropped, one the network has not taken yet).  One worker thread takes what is
waiting, converts it, runs the network once for the batch and publishes.  So latency is
bounded by one inference, whatever the input rate, and memory stays flat.

Lifecycle: configure checks the parameters (icnet_ros/node_config.py), loads the model and
creates the lifecycle publishers; activate enables them and creates the subscriptions, the
diagnostics timer and the worker; deactivate stops those and silences the publishers, which
stay (subscribers such as rviz stay matched); cleanup destroys the publishers and releases
the model.  `autostart` walks the node to active on its own.
"""

from __future__ import annotations

import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from . import diagnostics, inputs, params, tf_pose
from .camera import Camera, FULL_SIZE
from .drivable_map import MapOutput
from ..node_config import ConfigError, load_engine, NodeConfig, PARAMS  # noqa: F401  (PARAMS: tests import it here)

_OK = TransitionCallbackReturn.SUCCESS
# The state each transition callback leads to: (on SUCCESS, on FAILURE).  ERROR goes on to
# on_error, which records its own outcome.  rclpy's LifecycleNode keeps the current state in
# a private state machine object and has no public getter (only the ~/get_state service,
# which the node cannot call on itself from inside a callback), so the node tracks it here.
_AFTER = {"configure": ("inactive", "unconfigured"), "activate": ("active", "inactive"),
          "deactivate": ("inactive", "active"), "cleanup": ("unconfigured", "inactive"),
          "shutdown": ("finalized", "finalized"), "error": ("unconfigured", "finalized")}


class SegmentationNode(LifecycleNode):
    def __init__(self, node_name: str = "icnet", **kwargs):
        super().__init__(node_name, **kwargs)
        self.config: NodeConfig | None = None     # from configure to cleanup; live changes replace it
        self._lifecycle_state = "unconfigured"
        self._params = params.LiveParameters(self)   # declares them; checks and applies live changes
        self.engine = None
        self.cameras: list[Camera] = []
        self.last_error = ""
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._diag_pub = None
        self._diag_timer = None
        self._poses: tf_pose.PoseSource | None = None    # camera poses (TF listener), configure to cleanup
        self._map: MapOutput | None = None                 # ~/drivable_map, configure to cleanup
        self._inputs: inputs.InputWatch | None = None     # silent topics, bad CameraInfo: activate to deactivate

    # --- parameters -------------------------------------------------------------------

    def p(self, name: str):
        return self.get_parameter(name).value

    # --- lifecycle --------------------------------------------------------------------

    @property
    def state(self) -> str:
        """Return the lifecycle state's label: unconfigured, inactive, active or finalized."""
        return self._lifecycle_state

    def _entered(self, transition: str, ret: TransitionCallbackReturn) -> TransitionCallbackReturn:
        if ret != TransitionCallbackReturn.ERROR or transition == "error":
            self._lifecycle_state = _AFTER[transition][0 if ret == _OK else 1]
        return ret

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._params.lock:    # a live change waits: not lost between reading and keeping values
            try:
                config = self._params.build()
                engine = load_engine(config)
                self._poses = tf_pose.PoseSource(self, config)
            except ConfigError as e:
                self.last_error = str(e)
                self.get_logger().error(self.last_error)
                return self._entered("configure", TransitionCallbackReturn.FAILURE)
            self.config, self.engine = config, engine
        if engine.device_note:
            self.get_logger().info(engine.device_note)
        self.cameras = [Camera(n, config.input_transport, ego) for n, ego in zip(config.cameras, config.ego_masks)]
        qout = self._qos("reliable")    # reliable writers match every reader, rviz included
        for cam in self.cameras:
            cam.open_outputs(self, qout)
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self._map = MapOutput(self, config, self._poses) if config.map_frame else None
        self.last_error = ""
        self.get_logger().info(
            f"configured: model {engine.meta.classes.name} {engine.meta.variant} on {engine.device} "
            f"({engine.precision}, {engine.backend}), cameras {[c.name or '(unnamed)' for c in self.cameras]}")
        return self._entered("configure", super().on_configure(state))

    def _qos(self, reliability: str) -> QoSProfile:
        return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=self.config.qos_depth,
                          reliability=(QoSReliabilityPolicy.RELIABLE if reliability == "reliable"
                                       else QoSReliabilityPolicy.BEST_EFFORT),
                          durability=QoSDurabilityPolicy.VOLATILE)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)   # enables the publishers first: no early frame is lost
        if ret != _OK:
            return self._entered("activate", ret)
        qin = self._qos(self.config.qos_reliability)
        msg_type = CompressedImage if self.config.input_transport == "compressed" else Image
        now = time.monotonic()
        self._inputs = inputs.InputWatch(self, self.cameras, self._cond)
        for cam in self.cameras:
            cam.open_inputs(self, msg_type, qin, self._on_image, lambda c, m: c.on_info(m, self._cond), self._inputs)
            with self._cond:
                cam.stats.start_window(now)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="icnet-worker", daemon=True)
        self._worker.start()
        self.get_logger().info("active: subscribed to " + ", ".join(
            self.resolve_topic_name(c.image_topic) for c in self.cameras))
        return self._entered("activate", ret)

    def _stop_worker(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None

    def _stop_inputs(self) -> None:
        """Worker, subscriptions and the diagnostics timer: what activate started."""
        self._stop_worker()
        if self._inputs is not None:
            self._inputs.close()
            self._inputs = None
        for cam in self.cameras:
            cam.close_inputs(self)
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None

    def _release(self) -> None:
        """Release the publishers and the model: what configure made."""
        for cam in self.cameras:
            cam.close_outputs(self)
        if self._diag_pub is not None:
            self.destroy_lifecycle_publisher(self._diag_pub)
            self._diag_pub = None
        if self._map is not None:
            self._map.close(self)
            self._map = None
        if self._poses is not None:
            self._poses.close()
            self._poses = None
        if self.engine is not None:
            cuda = self.engine.device.type == "cuda"
            self.engine = None
            if cuda:
                import torch

                torch.cuda.empty_cache()
        self.cameras = []
        with self._params.lock:
            self.config = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        return self._entered("deactivate", super().on_deactivate(state))  # silences the publishers

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_cleanup(state)
        self._release()
        return self._entered("cleanup", ret)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._release()
        return self._entered("shutdown", _OK)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._release()
        return self._entered("error", _OK)

    # --- callbacks: store only --------------------------------------------------------

    def _on_image(self, cam: Camera, msg) -> None:
        with self._cond:
            cam.stats.received += 1
            if cam.pending is not None:
                cam.stats.dropped += 1
            cam.pending = (msg, time.monotonic())
            self._cond.notify()

    # --- the worker -------------------------------------------------------------------

    def _gather(self) -> list:
        """Wait for frames; with several cameras, give the others batch_wait_ms to arrive."""
        wait = self.config.batch_wait_ms / 1000.0
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
                self._process(batch, self.config)    # one config per batch, live changes between
            except Exception as e:  # never let the worker die; say why and go on
                self.get_logger().error(f"processing failed: {type(e).__name__}: {e}",
                                        throttle_duration_sec=5.0)

    def _process(self, batch, config: NodeConfig) -> None:
        start = time.perf_counter()
        jobs = []
        mapping = self._map is not None and self._map.wanted(config)    # all cameras feed it
        for cam, (msg, _) in batch:
            wanted = cam.wanted(config)
            if not wanted and not mapping:
                cam.stats.skipped += 1
                continue
            converted = cam.convert(msg, self._cond, self)
            if converted is not None:
                jobs.append((cam, msg, *converted, wanted))
        if not jobs:
            return
        orders = {j[3] for j in jobs}
        color = orders.pop() if len(orders) == 1 else "rgb"
        frames = [f if (o == color) else f[..., ::-1] for _, _, f, o, _ in jobs]
        traced = len(self.engine.traced)
        confidence = mapping or any("drivable_confidence" in j[4] for j in jobs)
        # the maps at the frame's size only for an output of that size: the ground outputs and
        # the map read the network-size maps (camera.py), so a planner-only robot pays for no
        # full-resolution work
        full = any(name in j[4] for j in jobs for name in FULL_SIZE)
        results = self.engine.infer(frames, color=color, probabilities=confidence,
                                    drivable_threshold=config.drivable_threshold, full_size=full)
        egos = [job[0].mask_result(res, config) for job, res in zip(jobs, results)]   # ego mask, connected
        infer_ms = self.engine.last_ms
        for h, w, seconds in self.engine.traced[traced:]:   # explains a one-off slow frame
            self.get_logger().info(f"network size {w}x{h}: {self.engine.prepare_note} in "
                                   f"{seconds * 1000:.0f} ms (once per size)")
        for (cam, msg, frame, order, wanted), rgb_or_bgr, res, ego in zip(jobs, frames, results, egos):
            rgb = rgb_or_bgr if color == "rgb" else rgb_or_bgr[..., ::-1]
            pose = self._poses.pose(msg.header.frame_id, msg.header.stamp, config)
            cam.publish_frame(self, msg, rgb, res, wanted, config, pose, ego, self._cond)
            if mapping:
                self._map.add(cam, msg.header, res, ego, pose, config)
            now = self.get_clock().now().nanoseconds
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with self._cond:
                cam.stats.record(len(jobs), infer_ms, (now - stamp) / 1e6 if stamp > 0 else None)
        if mapping:
            self._map.publish(config)
        process_ms = (time.perf_counter() - start) * 1000.0
        with self._cond:
            for cam in {j[0] for j in jobs}:
                cam.stats.process_ms.append(process_ms)

    # --- diagnostics ------------------------------------------------------------------

    def stats(self, camera: str = "") -> dict:
        """Return a snapshot of one camera's counters (for diagnostics and tests)."""
        with self._cond:
            for c in self.cameras:
                if c.name == camera:
                    return c.stats.snapshot()
        raise KeyError(f"no camera {camera!r}")

    def _publish_diagnostics(self) -> None:
        engine, pub = self.engine, self._diag_pub
        if pub is None or engine is None:
            return
        stamp, now = self.get_clock().now().to_msg(), time.monotonic()
        with self._cond:
            statuses = [diagnostics.camera_status(f"{self.get_name()}: {cam.name or 'camera'}", cam.stats,
                                                  now, engine) for cam in self.cameras]
        drivable_map = self._map
        mapped = drivable_map.status(f"{self.get_name()}: drivable_map") if drivable_map is not None else None
        statuses += [mapped] if mapped is not None else []
        pub.publish(diagnostics.diagnostic_array(stamp, statuses))


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
