"""
Parameters: bad ones fail configure naming them; live changes are checked.

The shipped params file is accepted by a real `segment` process.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
import time

import pytest

from conftest import HAVE_RCLPY, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]
ROOT = Path(__file__).resolve().parent.parent

if HAVE_RCLPY:
    from rclpy.parameter import Parameter

BAD = [
    ("device", "gpu"),
    ("device", "cuda:7"),
    ("precision", "int4"),
    ("precision", "fp16"),          # needs CUDA; this machine has none (cuda: device fails first otherwise)
    ("backend", "tensorrt"),
    ("backend_bf16", "onnxruntime"),  # onnxruntime with precision bf16
    ("input_transport", "h264"),
    ("qos_reliability", "sometimes"),
    ("qos_depth", 0),
    ("num_threads", -1),
    ("overlay_alpha", 1.5),
    ("batch_wait_ms", -1.0),
    ("grid_resolution", 0.0),
    ("grid_x_max", -5.0),
    ("grid_y_min", 20.0),
    ("camera_height", 0.0),
    ("camera_pitch", 3.0),
    ("cameras", ["left", "left"]),
    ("cameras", ["", "right"]),
    ("cameras", ["front camera"]),
    ("base_frame", ""),
    ("calib_file", "/nonexistent/calib.txt"),
    ("model_path", "/nonexistent/model.pt"),
    ("model_path", "CORRUPT"),
    ("model_path", 5),              # wrong type from a params file
]


@pytest.mark.parametrize("name,value", BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_bad_parameter_fails_configure_with_its_name(ros_context, tiny_checkpoint, tmp_path, name, value):
    import torch

    from icnet_ros.ros.node import SegmentationNode

    if name == "precision" and value == "fp16" and torch.cuda.is_available():
        pytest.skip("fp16 is valid with CUDA")
    if value == "CORRUPT":
        value = str(tmp_path / "corrupt.pt")
        Path(value).write_bytes(b"not a checkpoint")
    params = {"model_path": str(tiny_checkpoint), "warmup": False, "device": "cpu", name: value}
    if name == "backend_bf16":
        name = "backend"
        params = {**params, "precision": "bf16", "backend": value}
        del params["backend_bf16"]
    node = SegmentationNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    try:
        from rclpy.lifecycle import TransitionCallbackReturn as R

        assert node.trigger_configure() == R.FAILURE
        assert node.state == "unconfigured"
        assert f"'{name}'" in node.last_error, node.last_error
        assert node.engine is None
    finally:
        node.destroy_node()


def test_good_parameters_configure(ros_context, tiny_checkpoint, torch_threads):
    from rclpy.lifecycle import TransitionCallbackReturn as R

    from icnet_ros.ros.node import SegmentationNode

    node = SegmentationNode(parameter_overrides=[
        Parameter("model_path", value=str(tiny_checkpoint)), Parameter("warmup", value=False),
        Parameter("num_threads", value=1), Parameter("cameras", value=["front", "rear/left"]),
        Parameter("backend", value="torch"),
        Parameter("calib_file", value=str(ROOT / "test/data/kitti_road/calib/um_000000.txt"))])
    try:
        assert node.trigger_configure() == R.SUCCESS, node.last_error
        assert [c.image_topic for c in node.cameras] == ["front/image", "rear/left/image"]
        assert node.engine.backend == "torch"
    finally:
        node.destroy_node()


def test_live_parameter_changes_are_validated(ros_context, tiny_checkpoint):
    from icnet_ros.ros.node import SegmentationNode

    node = SegmentationNode(parameter_overrides=[Parameter("model_path", value=str(tiny_checkpoint))])
    try:
        ok = node.set_parameters([Parameter("overlay_alpha", value=0.8), Parameter("publish_overlay", value=False)])
        assert all(r.successful for r in ok) and node.p("overlay_alpha") == 0.8
        for name, value in (("overlay_alpha", 2.0), ("grid_x_max", -1.0), ("grid_resolution", 0.0),
                            ("calib_file", "/nonexistent.txt"), ("model_path", "/other.pt"),
                            ("device", "cpu")):
            result = node.set_parameters([Parameter(name, value=value)])[0]
            assert not result.successful, name
            assert name in result.reason or "read-only" in result.reason, result.reason
        assert node.p("grid_x_max") == 40.0 and node.p("model_path") == str(tiny_checkpoint)
    finally:
        node.destroy_node()


# Parameter hooks that rclpy gained after Humble (Iron): the node must not need them.
NEWER_THAN_HUMBLE = ("add_post_set_parameters_callback", "add_pre_set_parameters_callback",
                     "remove_post_set_parameters_callback", "remove_pre_set_parameters_callback")


def test_live_changes_work_without_the_post_set_hook(ros_context, tiny_checkpoint):
    """Humble's rclpy has only on-set callbacks: changes are still checked, then applied."""
    from rclpy.lifecycle import TransitionCallbackReturn as R

    from icnet_ros.ros.node import SegmentationNode

    class HumbleNode(SegmentationNode):
        def __getattribute__(self, name):
            if name in NEWER_THAN_HUMBLE:
                raise AttributeError(f"'HumbleNode' object has no attribute {name!r}")
            return super().__getattribute__(name)

    node = HumbleNode(parameter_overrides=[Parameter("model_path", value=str(tiny_checkpoint)),
                                           Parameter("warmup", value=False), Parameter("device", value="cpu")])
    try:
        assert not hasattr(node, "add_post_set_parameters_callback")
        assert node.trigger_configure() == R.SUCCESS, node.last_error
        ok = node.set_parameters([Parameter("overlay_alpha", value=0.8), Parameter("grid_x_max", value=30.0)])
        assert all(r.successful for r in ok)
        assert node.p("overlay_alpha") == 0.8 and node.config.overlay_alpha == 0.8   # applied
        assert node.config.grid_x_max == 30.0
        result = node.set_parameters([Parameter("grid_x_max", value=-1.0)])[0]   # behind grid_x_min
        assert not result.successful and "grid_x_max" in result.reason, result.reason
        assert node.p("grid_x_max") == 30.0 and node.config.grid_x_max == 30.0   # neither changed
    finally:
        node.destroy_node()


def _segment(args, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", "icnet_ros.ros.node", "--ros-args", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_params_file_is_accepted(private_graph, tiny_checkpoint):
    import rclpy
    from rcl_interfaces.srv import GetParameters
    from rclpy.executors import SingleThreadedExecutor

    context, env = private_graph
    proc = _segment(["--params-file", str(ROOT / "config/icnet.yaml"), "-r", "__ns:=/pfile",
                     "-p", f"model_path:={tiny_checkpoint}", "-p", "warmup:=false", "-p", "num_threads:=1"],
                    {"ROS_DOMAIN_ID": env["ROS_DOMAIN_ID"]})
    probe = rclpy.create_node("params_probe", context=context)
    try:
        client = probe.create_client(GetParameters, "/pfile/icnet/get_parameters")
        assert client.wait_for_service(timeout_sec=30.0), "segment did not come up with the params file"
        assert wait_for(lambda: probe.count_publishers("/pfile/icnet/drivable_area") > 0 or proc.poll() is not None,
                        30.0)
        assert proc.poll() is None, proc.stdout.read()
        future = client.call_async(GetParameters.Request(names=["grid_resolution", "qos_reliability",
                                                                "cameras", "base_frame"]))
        rclpy.spin_until_future_complete(probe, future, SingleThreadedExecutor(context=context), timeout_sec=10.0)
        values = future.result().values
        import yaml

        expected = yaml.safe_load((ROOT / "config/icnet.yaml").read_text())["/**"]["ros__parameters"]
        assert values[0].double_value == expected["grid_resolution"]
        assert values[1].string_value == expected["qos_reliability"]
        assert list(values[2].string_array_value) == expected["cameras"]
        assert values[3].string_value == expected["base_frame"]
    finally:
        probe.destroy_node()
        proc.terminate()
        proc.wait(timeout=15)


def test_bad_value_in_params_file_exits_naming_it(tmp_path, tiny_checkpoint):
    text = (ROOT / "config/icnet.yaml").read_text().replace("qos_depth: 1", "qos_depth: 0")
    assert "qos_depth: 0" in text
    (tmp_path / "bad.yaml").write_text(text)
    proc = _segment(["--params-file", str(tmp_path / "bad.yaml"), "-p", f"model_path:={tiny_checkpoint}",
                     "-r", "__ns:=/pbad"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "'qos_depth'" in out, out


def test_missing_model_file_is_a_clear_error(tmp_path):
    start = time.monotonic()
    missing = tmp_path / "no_such_model.pt"
    proc = _segment(["-p", f"model_path:={missing}", "-r", "__ns:=/pnomodel"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "'model_path'" in out and str(missing) in out, out
    assert time.monotonic() - start < 60


def test_missing_shipped_model_names_where_it_looked(monkeypatch):
    from icnet_ros import paths

    monkeypatch.setattr(paths, "SHIPPED_MODEL", "not_shipped.pt")
    with pytest.raises(FileNotFoundError, match="shipped model not_shipped.pt not found .*pass a checkpoint path"):
        paths.default_model_path()
