"""
The declared floors of icnet_ros/versions.py.

The same in setup.py and package.xml, checked at start with one line naming the library,
the version found and the one needed.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
import re
import sys
import xml.etree.ElementTree as ET

import pytest

from icnet_ros import versions
from icnet_ros.tools import scripts

ROOT = Path(__file__).resolve().parent.parent


def test_versions_are_compared_by_their_release_numbers():
    assert versions.parse("2.1.0a0+git34ded74") == (2, 1, 0)
    assert versions.parse("1.8.1") < versions.parse("1.13") < versions.parse("2.14.1+cu130")
    assert versions.parse("4.5.4") < versions.parse("4.5.5") and versions.parse("1.21.5") > versions.parse("1.21")
    assert versions.parse("unknown") == ()


@pytest.mark.parametrize("module,found", [("torch", "1.8.1"), ("numpy", "1.19.5"), ("cv2", "4.2.0"),
                                          ("onnxruntime", "1.16.3"), ("rosbags", "0.10.8")])
def test_a_library_older_than_its_floor_is_one_line(module, found):
    name, floor, pip = versions.FLOORS[module]
    with pytest.raises(versions.TooOld) as e:
        versions.check(found={module: found})
    assert str(e.value) == (f"{name} {found} is installed; icnet_ros needs {floor} or newer "
                            f"(pip install '{pip}'; see docs/distros.md)")
    versions.check(found={module: floor})                # the floor itself is fine


def test_what_is_installed_here_passes():
    versions.check()
    assert versions.installed("numpy") and versions.installed("torch") and versions.installed("cv2")
    assert versions.installed("no_such_module_here") is None


def _setup_requires() -> list[str]:
    call = next(n for n in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    return ast.literal_eval(next(k.value for k in call.keywords if k.arg == "install_requires"))


def test_setup_py_and_package_xml_declare_the_same_floors():
    requires = _setup_requires()
    for module, (name, floor, pip) in versions.FLOORS.items():
        assert pip in requires, f"setup.py lacks {pip}"
    deps = {e.text.strip(): e.attrib for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    assert deps["python3-opencv"] == {"version_gte": versions.FLOORS["cv2"][1]}
    assert deps["python3-torch"] == {"version_gte": versions.FLOORS["torch"][1]}
    # no version_gte where it compares with nothing: the epoch of Debian's numpy, pip keys
    assert deps["python3-numpy"] == {}
    assert all(not attrib for key, attrib in deps.items() if key.endswith("-pip"))


@pytest.mark.parametrize("command", ["train", "evaluate", "export", "repair", "bench", "segment", "play"])
def test_commands_refuse_an_old_library_in_one_line(command, monkeypatch, capsys):
    real = versions.installed
    monkeypatch.setattr(versions, "installed", lambda m: "1.8.1" if m == "torch" else real(m))
    if command in ("segment", "play"):
        pytest.importorskip("rclpy")
    monkeypatch.setattr(sys, "argv", [command])     # not pytest's: segment and play refuse stray arguments
    assert getattr(scripts, command)() == 2
    err = capsys.readouterr().err
    assert err == f"{command}: error: PyTorch 1.8.1 is installed; icnet_ros needs 1.13 or newer " \
                  f"(pip install 'torch>=1.13'; see docs/distros.md)\n"


def test_setup_py_runs_the_commands_through_the_check():
    text = (ROOT / "setup.py").read_text()
    for command in ("segment", "play", "demo", "train", "evaluate", "export", "repair", "bench", "param"):
        assert f'"{command} = icnet_ros.tools.scripts:{command}"' in text


FLOOR = os.environ.get("ICNET_FLOOR_REQUIREMENTS")


def _floor_pins() -> dict:
    """requirements-floor.txt's pins: distribution (without extras) -> version."""
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[a-z,]+\])?==([0-9.]+)", Path(FLOOR).read_text(), re.M))


@pytest.mark.skipif(not FLOOR, reason="only under `make test-floor`")
def test_the_floor_versions_are_the_ones_imported():
    """Under `make test-floor`: the pinned oldest versions, not .venv's, are what runs."""
    import importlib

    modules = {"numpy": "numpy", "opencv-python-headless": "cv2", "onnxruntime": "onnxruntime",
               "rosbags": "rosbags", "onnx": "onnx", "matplotlib": "matplotlib"}
    pins = {pip: v for pip, v in _floor_pins().items() if not pip.startswith("ros-")}
    assert set(pins) == set(modules)
    for pip, module in modules.items():
        loaded = importlib.import_module(module)
        found = versions.installed(module) if module == "rosbags" else loaded.__version__
        where = str(list(loaded.__path__)[0])       # a namespace package (rosbags) has no __file__
        assert pins[pip].startswith(found), f"{module} {found} imported from {where}, not {pins[pip]}"
        assert ".venv-floor" in where, where


@pytest.mark.skipif(not FLOOR, reason="only under `make test-floor`")
def test_the_floor_runs_jazzy_and_sees_nothing_of_kilted():
    """Under `make test-floor`: Jazzy's pinned ROS packages from .venv-floor; .venv (Kilted) is not on sys.path."""
    import sys
    from importlib import metadata

    import rclpy

    ros = {pip: v for pip, v in _floor_pins().items() if pip.startswith("ros-")}
    assert "ros-jazzy-rclpy" in ros and "ros-jazzy-rmw-fastrtps-cpp" in ros
    for pip, pinned in ros.items():
        assert metadata.version(pip) == pinned, f"{pip} {metadata.version(pip)} installed, not {pinned}"
    assert ".venv-floor" in rclpy.__file__, rclpy.__file__
    main_venv = str(Path(sys.prefix).resolve().parent / ".venv") + os.sep
    assert not [p for p in sys.path if str(Path(p).resolve()).startswith(main_venv)], sys.path
    libraries = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    assert not [p for p in libraries if str(Path(p).resolve()).startswith(main_venv)], libraries


# --- what newer PyTorch added has a fallback down to the floor --------------------------

def test_onnx_tracing_without_the_dynamo_keyword(tmp_path, monkeypatch):
    """Trace on PyTorch before 2.5, whose torch.onnx.export has no dynamo= (its one exporter is TorchScript's)."""
    import torch

    from icnet_ros.classes import CAMVID
    from icnet_ros.inference.checkpoint import ModelMeta
    from icnet_ros.inference.deploy import Deployable, trace_onnx

    real = torch.onnx.export

    def export_before_2_5(model, args, f, *, opset_version, input_names, output_names, dynamic_axes):
        return real(model, args, f, dynamo=False, opset_version=opset_version, input_names=input_names,
                    output_names=output_names, dynamic_axes=dynamic_axes)

    monkeypatch.setattr(torch.onnx, "export", export_before_2_5)
    meta = ModelMeta(CAMVID, variant="r18", width=0.25)
    torch.manual_seed(0)
    trace_onnx(Deployable(meta.build().eval(), meta), 64, 96, str(tmp_path / "m.onnx"))
    assert (tmp_path / "m.onnx").stat().st_size > 1000


def test_training_without_torch_amp_gradscaler(tmp_path, monkeypatch, capfd):
    """Train on PyTorch before 2.3, which has no torch.amp.GradScaler (torch.cuda.amp's is used)."""
    import warnings

    import torch
    from synthetic import make_folder

    from icnet_ros.tools.train import main as train_main

    monkeypatch.delattr(torch.amp, "GradScaler")
    images, masks = make_folder(tmp_path, n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch.cuda.amp's is deprecated in newer torch
        rc = train_main(["--data", f"folder:{images}:{masks}", "--out", str(tmp_path / "run"), "--model", "r18",
                         "--width", "0.25", "--crop", "32x48", "--batch-size", "1", "--epochs", "1",
                         "--max-iters", "1", "--workers", "0", "--preview", "0"])
    assert rc == 0, capfd.readouterr().err
