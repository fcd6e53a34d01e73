"""
`colcon build` installs the executables, launch, config and model files where ROS looks.

The launch file and rviz config hold what users are told they hold
(`launch`/`launch_ros`/rviz2 are not installable here, so they are read, not run).
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COLCON = Path(sys.executable).parent / "colcon"


@pytest.mark.skipif(not COLCON.exists() and shutil.which("colcon") is None, reason="colcon is not installed")
def test_colcon_build_installs_the_package(tmp_path):
    colcon = str(COLCON if COLCON.exists() else shutil.which("colcon"))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    run = subprocess.run([colcon, "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(ROOT),
                          "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
                          "--packages-select", "icnet_ros"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    prefix = tmp_path / "install/icnet_ros"
    for exe in ("segment", "play", "demo"):
        path = prefix / "lib/icnet_ros" / exe
        assert path.is_file() and os.access(path, os.X_OK), f"{path} missing"
        assert f"'{exe}'" in path.read_text()
    share = prefix / "share/icnet_ros"
    for rel in ("launch/segment.launch.py", "config/icnet.yaml", "config/icnet.rviz", "package.xml",
                "config/road_classes.yaml", "config/label_maps/cityscapes.yaml",   # train/evaluate labels=
                "samples/kitti_road/NOTICE", "samples/kitti_road/image_2/um_000000.png",
                "samples/kitti_road/calib/um_000000.txt"):  # the demo's frames
        assert (share / rel).is_file(), f"{rel} not installed"
    for model in [p for p in (ROOT / "models").glob("*") if p.suffix in (".pt", ".safetensors", ".md")]:
        assert (share / "models" / model.name).is_file(), f"models/{model.name} not installed"
    assert (prefix / "share/ament_index/resource_index/packages/icnet_ros").is_file()
    assert (share / "config/icnet.yaml").read_text() == (ROOT / "config/icnet.yaml").read_text()
    # the installed executable runs from the install space (here: a clear error, exit 1)
    site = next((prefix / "lib").glob("python3*/site-packages"))
    run = subprocess.run([str(prefix / "lib/icnet_ros/play"), "--ros-args", "-p", "source:=/nonexistent"],
                         env=dict(env, PYTHONPATH=f"{site}:{env.get('PYTHONPATH', '')}"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "'source'" in run.stderr, run.stderr


def test_launch_file_declares_the_documented_arguments():
    source = (ROOT / "launch/segment.launch.py").read_text()
    tree = ast.parse(source)
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}
    assert declared == {"image_topic", "camera_info_topic", "params_file", "model_path", "device",
                        "use_rviz", "replay"}
    assert "def generate_launch_description" in source
    executables = {kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                   for kw in node.keywords if kw.arg == "executable"}
    assert executables == {"segment", "play", "rviz2"}


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == name]


def _keyword(call, arg):
    return next((kw.value for kw in call.keywords if kw.arg == arg), None)


def test_launch_file_uses_lifecycle_node_and_conditions():
    """
    Check that segment is a LifecycleNode, play a Node added only when replay is given, rviz2 behind IfCondition.

    Launch values are data: no PythonExpression anywhere (a path with a quote broke it),
    replay is read as a string in the OpaqueFunction and tested there.
    """
    source = (ROOT / "launch/segment.launch.py").read_text()
    tree = ast.parse(source)
    assert "PythonExpression" not in source
    lifecycle = _calls(tree, "LifecycleNode")
    assert [_keyword(c, "executable").value for c in lifecycle] == ["segment"]
    assert _keyword(lifecycle[0], "namespace") is not None, "Humble's LifecycleNode needs namespace"
    nodes = {_keyword(c, "executable").value: c for c in _calls(tree, "Node")}
    assert set(nodes) == {"play", "rviz2"}
    condition = _keyword(nodes["rviz2"], "condition")
    assert isinstance(condition, ast.Call) and condition.func.id == "IfCondition"
    assert "'use_rviz'" in ast.unparse(condition)
    opaque = _calls(tree, "OpaqueFunction")
    assert len(opaque) == 1
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                    and n.name == _keyword(opaque[0], "function").id)
    assert {c.func.id for c in ast.walk(function) if isinstance(c, ast.Call) and hasattr(c.func, "id")
            and c.func.id in ("Node", "LifecycleNode")} == {"LifecycleNode", "Node"}
    guard = next(n for n in ast.walk(function) if isinstance(n, ast.If))
    assert "arg('replay')" in ast.unparse(guard.test) and "executable='play'" in ast.unparse(guard)


def test_launch_file_passes_any_path_through(tmp_path):
    """
    Run the launch file's node function against stand-in launch classes.

    A replay path with quotes, spaces and non-ASCII reaches play's source parameter
    unchanged, and an empty one starts no play.
    """
    stubs = tmp_path / "stubs"
    for mod in ("launch", "launch/actions", "launch/conditions", "launch/substitutions", "launch_ros",
                "launch_ros/actions", "launch_ros/substitutions"):
        (stubs / mod).mkdir(parents=True, exist_ok=True)
        (stubs / mod / "__init__.py").write_text("")
    record = "class _R:\n    def __init__(self, *a, **k):\n        self.args, self.kwargs = a, k\n"
    (stubs / "launch/__init__.py").write_text(record + "LaunchDescription = _R\n")
    (stubs / "launch/actions/__init__.py").write_text(record + "DeclareLaunchArgument = OpaqueFunction = _R\n")
    (stubs / "launch/conditions/__init__.py").write_text(record + "IfCondition = _R\n")
    (stubs / "launch/substitutions/__init__.py").write_text(
        record + "PathJoinSubstitution = _R\nclass LaunchConfiguration:\n"
        "    def __init__(self, name):\n        self.name = name\n"
        "    def perform(self, context):\n        return context[self.name]\n")
    (stubs / "launch_ros/actions/__init__.py").write_text(record + "LifecycleNode = Node = _R\n")
    (stubs / "launch_ros/substitutions/__init__.py").write_text(record + "FindPackageShare = _R\n")
    path = "/data/it's a \"bag\" ünï ${x} `ls`/run 1"
    code = textwrap.dedent(f"""
        import importlib.util, json, sys
        sys.path.insert(0, {str(stubs)!r})
        spec = importlib.util.spec_from_file_location("seg", {str(ROOT / "launch/segment.launch.py")!r})
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        base = dict(image_topic="image", camera_info_topic="camera_info", params_file="p.yaml", model_path="",
                    device="", use_rviz="false")
        out = {{}}
        for replay in ({path!r}, ""):
            nodes = mod._nodes(dict(base, replay=replay))
            out[replay] = [n.kwargs["executable"] for n in nodes] + [
                n.kwargs["parameters"][0]["source"] for n in nodes if n.kwargs["executable"] == "play"]
        print(json.dumps(out))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {path: ["segment", "play", path], "": ["segment"]}


def test_params_file_matches_the_node_parameters():
    pytest.importorskip("rclpy")
    from icnet_ros.ros.node import PARAMS

    params = yaml.safe_load((ROOT / "config/icnet.yaml").read_text())["/**"]["ros__parameters"]
    defaults = {p.name: p.default for p in PARAMS}
    assert params == defaults, "config/icnet.yaml and the node's declared defaults differ"


def test_rviz_config_shows_overlay_mask_and_grid_in_base_link():
    cfg = yaml.safe_load((ROOT / "config/icnet.rviz").read_text())
    manager = cfg["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "base_link"
    shown = {(d["Class"], d.get("Topic", {}).get("Value")) for d in manager["Displays"]}
    assert ("rviz_default_plugins/Image", "/icnet/overlay") in shown
    assert ("rviz_default_plugins/Image", "/icnet/mask") in shown
    assert ("rviz_default_plugins/Map", "/icnet/drivable_area") in shown
    assert ("rviz_default_plugins/PointCloud2", "/icnet/obstacles") in shown
