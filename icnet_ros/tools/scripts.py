"""
The console scripts (setup.py's entry points): a version check, then the command's main().

Each command's module is imported only when that command runs, so `train` never loads
rclpy and `segment` never loads the training code.  The ROS executables first check that
rclpy imports, so a plain `pip install .` without ROS says in one line that ROS 2 is
needed instead of failing on `import rclpy`; a library older than the package supports
(versions.py) is one line too.  Both exit 2.
"""

from __future__ import annotations

import importlib
import sys

from ..optional import missing, require


def too_old(name: str) -> str:
    """Return one line naming a library older than the package supports (versions.py), or ''."""
    from ..versions import check, TooOld

    try:
        check()
    except TooOld as e:
        return f"{name}: error: {e}"
    except ImportError:   # a missing or broken library: the command itself says which
        pass
    return ""


def run_command(module: str, name: str, ros: bool = False) -> int:
    """Import `module` and run its main() as the command `name`; ros: check for rclpy first."""
    try:
        if ros:
            require("rclpy", needed_for=name)
        line = too_old(name)
        if line:
            print(line, file=sys.stderr)
            return 2
        main = importlib.import_module(module).main
    except ImportError as e:
        print(f"{name}: error: {missing(e, name)}", file=sys.stderr)
        return 2
    return main()


# the ROS executables (lib/icnet_ros/ in a colcon install: `ros2 run icnet_ros segment`)
def segment() -> int:
    return run_command("icnet_ros.ros.node", "segment", ros=True)


def play() -> int:
    return run_command("icnet_ros.ros.player", "play", ros=True)


def demo() -> int:
    return run_command("icnet_ros.tools.demo", "demo", ros=True)


# the offline commands
def train() -> int:
    return run_command("icnet_ros.tools.train", "train")


def evaluate() -> int:
    return run_command("icnet_ros.tools.evaluate", "evaluate")


def export() -> int:
    return run_command("icnet_ros.tools.export", "export")


def repair() -> int:
    return run_command("icnet_ros.tools.repair", "repair")


def bench() -> int:
    return run_command("icnet_ros.bench", "bench")
