"""
The node's parameters without ROS (icnet_ros/node_config.py).

The shipped params file loads; every bad value is one line naming its parameter; live
changes are checked the same way.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
import math
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

from icnet_ros import node_config
from icnet_ros.node_config import ConfigError, from_params, NodeConfig, PARAMS, with_changes

ROOT = Path(__file__).resolve().parent.parent
CALIB = ROOT / "test/data/kitti_road/calib/um_000000.txt"


def shipped() -> dict:
    return yaml.safe_load((ROOT / "config/icnet.yaml").read_text())["/**"]["ros__parameters"]


def test_shipped_params_file_loads_as_the_defaults():
    values = shipped()
    assert values == {p.name: p.default for p in PARAMS}
    config = from_params(values)
    assert config == NodeConfig() == from_params({})
    assert config.cameras == ("",) and config.calib is None
    assert (config.grid.width, config.grid.height) == (400, 200)
    assert all(config.publishes(o) for o in ("mask", "drivable_mask", "overlay", "drivable_area"))


def test_good_values_and_range_edges():
    config = from_params({"cameras": ["front", "rear/left"], "qos_depth": 100, "num_threads": 0,
                          "overlay_alpha": 1.0 + 1e-9, "grid_resolution": 0.01, "backend": "torch",
                          "calib_file": str(CALIB), "publish_overlay": False, "device": "cpu"})
    assert config.cameras == ("front", "rear/left") and config.qos_depth == 100
    assert config.calib["P2"].shape == (3, 4)
    assert not config.publishes("overlay")
    with pytest.raises(FrozenInstanceError):
        config.qos_depth = 2


BAD = [
    ("device", "gpu"), ("device", "cuda:7"), ("device", 0),
    ("precision", "int4"), ("precision", "fp16"),
    ("backend", "tensorrt"), ("backend", "onnxruntime+bf16"),
    ("input_transport", "h264"), ("qos_reliability", "sometimes"),
    ("qos_depth", 0), ("qos_depth", 101), ("qos_depth", 1.0), ("qos_depth", True),
    ("num_threads", -1), ("overlay_alpha", 1.5), ("overlay_alpha", math.nan), ("batch_wait_ms", -1.0),
    ("grid_resolution", 0.0), ("grid_x_max", -5.0), ("grid_y_min", 20.0), ("grid_x_min", 600.0),
    ("camera_height", 0.0), ("camera_height", 2), ("camera_pitch", 3.0), ("camera_yaw", -4.0),
    ("cameras", ["left", "left"]), ("cameras", ["", "right"]), ("cameras", ["front camera"]),
    ("cameras", ["a//b"]), ("cameras", ["1st"]), ("cameras", []), ("cameras", "front"), ("cameras", [1]),
    ("base_frame", ""), ("base_frame", "  "),
    ("calib_file", "/nonexistent/calib.txt"), ("model_path", 5), ("warmup", "yes"), ("publish_mask", 1),
]


@pytest.mark.parametrize("name,value", BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_each_bad_value_is_one_line_naming_its_parameter(name, value):
    import torch

    values = {"device": "cpu", name: value}
    if value == "onnxruntime+bf16":
        values.update(backend="onnxruntime", precision="bf16")
    if name == "precision" and value == "fp16" and torch.cuda.is_available():
        pytest.skip("fp16 is valid with CUDA")
    if name == "device" and value == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(ConfigError) as info:
        from_params(values)
    message = str(info.value)
    assert f"'{name}'" in message and "\n" not in message, message
    assert message.startswith("parameter ")


def test_grid_errors_name_both_edges_and_the_resolution():
    with pytest.raises(ConfigError, match="parameter 'grid_x_min' and 'grid_x_max': grid x_max"):
        from_params({"grid_x_max": -5.0})
    with pytest.raises(ConfigError, match="parameter 'grid_resolution': grid of .* is too large"):
        from_params({"grid_resolution": 0.01, "grid_x_min": -500.0, "grid_x_max": 500.0,
                     "grid_y_min": -500.0, "grid_y_max": 500.0})


def test_unknown_parameter_is_named():
    with pytest.raises(ConfigError, match="'grid_resolutoin' is not a parameter"):
        from_params({"grid_resolutoin": 0.2})


def test_messages_match_what_the_node_always_said():
    cases = [("qos_depth", 0, "parameter 'qos_depth': value 0 is invalid (must be within [1, 100])"),
             ("model_path", 5, "parameter 'model_path': value 5 is invalid (expected a str)"),
             ("qos_reliability", "x", "parameter 'qos_reliability': 'x' is not one of best_effort, reliable"),
             ("base_frame", "", "parameter 'base_frame': must not be empty"),
             ("cameras", [], "parameter 'cameras': the list is empty; use [''] for one unnamed camera")]
    for name, value, message in cases:
        with pytest.raises(ConfigError) as info:
            from_params({name: value})
        assert str(info.value) == message


def test_live_changes_are_checked_like_configure():
    config = from_params({})
    moved = with_changes(config, {"grid_x_max": 30.0, "overlay_alpha": 0.8})
    assert (moved.grid_x_max, moved.overlay_alpha, moved.grid.width) == (30.0, 0.8, 300)
    assert config.grid_x_max == 40.0                           # the old config is untouched
    with pytest.raises(ConfigError, match="'grid_x_min' and 'grid_x_max'"):
        with_changes(moved, {"grid_x_min": 35.0})              # checked against the other edge
    with pytest.raises(ConfigError, match="'overlay_alpha'"):
        with_changes(config, {"overlay_alpha": 2.0})
    with pytest.raises(ConfigError, match="'calib_file'"):
        with_changes(config, {"calib_file": "/nonexistent.txt"})
    assert with_changes(config, {"calib_file": str(CALIB)}).calib["P2"].shape == (3, 4)
    assert with_changes(config, {"camera_pitch": 0.1}).calib is None
    # unconfigured: the node's current values, unchecked, are the base
    base = node_config.build({**shipped(), "device": "gpu"})
    assert with_changes(base, {"camera_height": 1.2}).camera_height == 1.2


def test_imports_no_rclpy():
    code = ("import sys; from icnet_ros.node_config import from_params; from_params({'device': 'cpu'}); "
            "print('rclpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}).stdout
    assert out.strip() == "False"
