"""
The node's per-camera counters and the /diagnostics status built from them.

The callbacks and the worker count into `Stats` under the node's lock; once a second the
node takes a window (rates and means since the last one) of each camera and publishes one
DiagnosticStatus per camera in a DiagnosticArray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np


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
    pose: str = ""          # where the latest frame's camera pose came from (tf, parameters, calib_file)
    grid_problem: str = ""  # why the latest frame's grid and obstacles were withheld ("" = published)
    blind_zone: str = ""    # m from the camera's ground point to the nearest ground it sees ("" = unknown)
    camera_infos: int = 0   # CameraInfo messages received
    input_problem: str = ""  # an input silent too long, or an unusable CameraInfo (ros/inputs.py), or ""
    window: tuple = field(default_factory=lambda: (time.monotonic(), 0, 0))  # (start, received, processed)

    def snapshot(self) -> dict:
        """Return the counters (for tests and tools); the caller holds the lock."""
        return {"received": self.received, "processed": self.processed, "dropped": self.dropped,
                "bad": self.bad, "skipped": self.skipped, "last_error": self.last_error,
                "last_batch": self.last_batch}

    def record(self, batch: int, infer_ms: float, latency_ms: float | None) -> None:
        """One frame through the network (latency None: no input stamp); the caller holds the lock."""
        self.processed += 1
        self.last_batch = batch
        self.infer_ms.append(infer_ms)
        if latency_ms is not None:
            self.latency_ms.append(latency_ms)

    def start_window(self, now: float) -> None:
        self.window = (now, self.received, self.processed)

    def take_window(self, now: float) -> tuple[dict, float, float]:
        """
        Return (diagnostic values, input Hz, output Hz) since the last window, which this ends.

        The caller holds the lock.
        """
        start, rec0, proc0 = self.window
        dt = max(now - start, 1e-6)
        in_rate, out_rate = (self.received - rec0) / dt, (self.processed - proc0) / dt
        infer, lat, proc = self.infer_ms, self.latency_ms, self.process_ms
        self.infer_ms, self.latency_ms, self.process_ms = [], [], []
        self.start_window(now)
        values = {
            "input rate (Hz)": f"{in_rate:.2f}",
            "output rate (Hz)": f"{out_rate:.2f}",
            "inference (ms)": f"{np.mean(infer):.1f}" if infer else "nan",
            "processing (ms)": f"{np.mean(proc):.1f}" if proc else "nan",
            "latency mean (ms)": f"{np.mean(lat):.1f}" if lat else "nan",
            "latency max (ms)": f"{np.max(lat):.1f}" if lat else "nan",
            "frames received": str(self.received),
            "CameraInfo received": str(self.camera_infos),
            "frames processed": str(self.processed),
            "dropped frames": str(self.dropped),
            "bad messages": str(self.bad),
            "last bad message": self.last_error,
            "last batch size": str(self.last_batch),
        }
        return values, in_rate, out_rate


def camera_status(name: str, stats: Stats, now: float, engine) -> DiagnosticStatus:
    """One camera's status for this window (ends it); the caller holds the lock."""
    values, in_rate, out_rate = stats.take_window(now)
    values.update({"device": str(engine.device), "precision": engine.precision, "backend": engine.backend,
                   "camera pose": stats.pose, "drivable_area withheld": stats.grid_problem,
                   "blind zone (m)": stats.blind_zone,
                   "input problem": stats.input_problem})
    status = DiagnosticStatus()
    status.name = name
    status.hardware_id = str(engine.device)
    if stats.input_problem:
        status.level, status.message = DiagnosticStatus.WARN, stats.input_problem
    elif stats.grid_problem:
        status.level, status.message = DiagnosticStatus.WARN, stats.grid_problem
    elif stats.bad and values["last bad message"]:
        status.level, status.message = DiagnosticStatus.WARN, f"{stats.bad} bad messages so far"
    elif in_rate == 0:
        status.level, status.message = DiagnosticStatus.OK, "waiting for images"
    else:
        status.level, status.message = DiagnosticStatus.OK, f"{out_rate:.1f} Hz"
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status


def diagnostic_array(stamp, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = statuses
    return msg
