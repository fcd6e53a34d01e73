"""
Every console script answers -h / --help with its usage and exits 0, starting nothing (issue 38).

In-process with rclpy.init, node creation and subprocesses made to fail, so that a
command that starts anything fails the test; once through the installed `segment`
script, which before issue 38 started the node and held the shell.
"""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import sys

import pytest

from icnet_ros.tools import scripts

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = re.findall(r'"(\w+) = icnet_ros\.tools\.scripts:(\w+)"', (ROOT / "setup.py").read_text())
DOCS = {"segment": "node.md", "play": "node.md", "demo": "node.md", "train": "training.md",
        "evaluate": "training.md", "export": "training.md", "repair": "recordings.md", "bench": "benchmarks.md",
        "param": "venv.md"}


class Started(AssertionError):
    """The command started something under --help."""


@pytest.fixture
def nothing_starts(monkeypatch):
    def refuse(*args, **kwargs):
        raise Started("started something under --help")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    try:
        import rclpy
        from rclpy.node import Node
    except ImportError:
        return
    monkeypatch.setattr(rclpy, "init", refuse)
    monkeypatch.setattr(Node, "__init__", refuse)


def run_script(monkeypatch, name: str, *args) -> int:
    monkeypatch.setattr(sys, "argv", [name, *args])
    try:
        return getattr(scripts, name)()
    except SystemExit as e:        # argparse's help
        return e.code or 0


def test_setup_py_has_the_commands_this_test_knows():
    assert sorted(name for name, _ in COMMANDS) == sorted(DOCS)
    assert all(name == func for name, func in COMMANDS)


@pytest.mark.parametrize("name", sorted(DOCS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_0_without_starting_anything(monkeypatch, capsys, nothing_starts, name, flag):
    assert run_script(monkeypatch, name, flag) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {name} ")
    assert f"docs/{DOCS[name]}" in " ".join(out.split())     # argparse wraps the epilog


def test_ros_commands_help_lists_their_parameters_and_how_to_pass_them(monkeypatch, capsys, nothing_starts):
    from icnet_ros.data.play_source import PLAY_PARAMS
    from icnet_ros.node_config import PARAMS

    assert run_script(monkeypatch, "segment", "--help") == 0
    out = capsys.readouterr().out
    assert "segment --ros-args -r image:=/camera/image_raw" in out and "param set /icnet" in out
    for p in PARAMS:
        assert re.search(rf"^  {p.name} = ", out, re.M), p.name
    assert "  input_timeout_s = 5.0  (live, 0.0 .. 3600.0)" in out
    assert '  qos_reliability = "best_effort"  (best_effort / reliable)' in out
    assert run_script(monkeypatch, "play", "-h") == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^  {name} = ", out, re.M) for name, *_ in PLAY_PARAMS)


def test_help_needs_no_ros(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rclpy", None)      # a pip install without ROS
    for module in ("icnet_ros.ros.param_client", "icnet_ros.tools.demo", "icnet_ros.tools.usage"):
        monkeypatch.delitem(sys.modules, module, raising=False)      # imported afresh, as on a first run
    for name in ("segment", "play", "demo", "param"):
        assert run_script(monkeypatch, name, "--help") == 0, name
        assert capsys.readouterr().out.startswith(f"usage: {name} ")


def test_help_after_ros_args_is_not_the_commands(monkeypatch):
    assert scripts.own_arguments(["--ros-args", "--help"]) == []
    assert scripts.own_arguments(["-h", "--ros-args", "-p", "a:=1"]) == ["-h"]


@pytest.mark.parametrize("name", ["segment", "play"])
def test_ros_arguments_before_ros_args_are_refused_in_one_line(monkeypatch, capsys, nothing_starts, name):
    assert run_script(monkeypatch, name, "-p", "device:=cpu") == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"{name}: error: unrecognized arguments -p device:=cpu: ROS parameters and remaps go after "
                   f"--ros-args, e.g. {name} --ros-args -p device:=cpu ({name} --help lists the parameters)")


def test_the_installed_segment_script_prints_usage_and_exits(tmp_path):
    exe = Path(sys.executable).parent / "segment"
    if not exe.is_file():
        pytest.skip("the console scripts are not installed in this environment")
    run = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: segment ") and "model_path" in run.stdout
