"""`param`, ros2 param's equivalent for a venv without the ros2 command line (issue 38), against a live node."""

from __future__ import annotations

import io

import pytest

from conftest import HAVE_RCLPY

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]


def param(*argv) -> str:
    from icnet_ros.ros.param_client import build_parser, run

    out = io.StringIO()
    run(build_parser().parse_args(["--timeout", "3", *argv]), out)
    return out.getvalue().strip()


def refused(*argv) -> str:
    from icnet_ros.ros.param_client import ParamError

    with pytest.raises(ParamError) as e:
        param(*argv)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_set_get_and_list_a_live_node(graph_factory):
    g = graph_factory()
    node = f"{g.ns}/icnet"
    assert param("set", node, "camera_pitch", "0") == f"set {node} camera_pitch = 0.0"   # an integer for a double
    assert g.node.config.camera_pitch == 0.0
    assert param("set", node, "camera_pitch", "0.05") == f"set {node} camera_pitch = 0.05"
    assert g.node.config.camera_pitch == 0.05
    assert param("set", node.lstrip("/"), "drivable_connected", "true").endswith("drivable_connected = True")
    assert g.node.config.drivable_connected is True
    assert param("get", node, "camera_pitch") == "0.05"
    listing = param("list", node).splitlines()
    assert "input_timeout_s: 0.0" in listing and "camera_pitch: 0.05" in listing     # conftest turns the watch off

    assert refused("set", node, "camera_pich", "0.1") == (
        f"{node} has no parameter 'camera_pich' (param list {node} lists them)")
    assert refused("set", node, "camera_pitch", "down") == "parameter 'camera_pitch' is a double; 'down' is not one"
    assert refused("set", node, "drivable_threshold", "2").startswith(f"{node} refused drivable_threshold = 2.0: ")
    assert refused("set", node, "model_path", "/x.pt").startswith(f"{node} refused model_path = '/x.pt': ")
    assert g.node.config.drivable_threshold == 0.0


def test_a_node_that_is_not_there_is_named_with_the_nodes_seen(graph_factory):
    g = graph_factory()
    line = refused("--timeout", "0.5", "set", "/icnet", "camera_pitch", "0.1")
    assert line.startswith("no node /icnet answers within 0.5 s on ROS_DOMAIN_ID ")
    assert f"{g.ns}/icnet" in line and line.endswith("(is segment running, with this ROS_DOMAIN_ID?)")
