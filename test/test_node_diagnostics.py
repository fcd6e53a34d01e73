"""The node's counters and the DiagnosticStatus built from them (no DDS)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import HAVE_RCLPY

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

ENGINE = SimpleNamespace(device="cpu", precision="fp32", backend="onnxruntime")


def test_window_rates_and_means_then_reset():
    from diagnostic_msgs.msg import DiagnosticStatus

    from icnet_ros.ros.diagnostics import Stats, camera_status

    s = Stats()
    s.start_window(100.0)
    status = camera_status("icnet: camera", s, 101.0, ENGINE)
    assert (status.level, status.message) == (DiagnosticStatus.OK, "waiting for images")

    s.received, s.dropped = 4, 1
    s.record(2, 10.0, 50.0)
    s.record(2, 20.0, None)           # no input stamp: no latency
    s.record(2, 30.0, 70.0)
    s.process_ms.append(12.0)
    status = camera_status("icnet: camera", s, 103.0, ENGINE)
    values = {kv.key: kv.value for kv in status.values}
    assert (status.level, status.message, status.hardware_id) == (DiagnosticStatus.OK, "1.5 Hz", "cpu")
    assert values["input rate (Hz)"] == "2.00" and values["output rate (Hz)"] == "1.50"
    assert values["inference (ms)"] == "20.0" and values["processing (ms)"] == "12.0"
    assert values["latency mean (ms)"] == "60.0" and values["latency max (ms)"] == "70.0"
    assert (values["frames processed"], values["dropped frames"], values["last batch size"]) == ("3", "1", "2")
    assert (values["device"], values["precision"], values["backend"]) == ("cpu", "fp32", "onnxruntime")
    assert s.infer_ms == s.latency_ms == s.process_ms == []          # the window is over

    s.bad, s.last_error = 1, "unknown image encoding 'x'"
    status = camera_status("icnet: camera", s, 104.0, ENGINE)
    assert (status.level, status.message) == (DiagnosticStatus.WARN, "1 bad messages so far")
    values = {kv.key: kv.value for kv in status.values}
    assert values["inference (ms)"] == "nan" and values["input rate (Hz)"] == "0.00"
    assert s.snapshot() == {"received": 4, "processed": 3, "dropped": 1, "bad": 1, "skipped": 0,
                            "last_error": "unknown image encoding 'x'", "last_batch": 2}
