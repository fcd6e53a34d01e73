"""
The console scripts (setup.py's entry points): a version check, then the command's main().

Each command's module is imported only when that command runs, so `train` never loads
rclpy and `segment` never loads the training code.  The ROS executables first check that
rclpy imports, so a plain `pip install .` without ROS says in one line that ROS 2 is
needed instead of failing on `import rclpy`; a library older than the package supports
(versions.py) is one line too.  Both exit 2.

``-h`` / ``--help`` prints the command's usage and exits 0 before any of that (so also
without ROS), starting nothing: the offline commands' argparse help, and for `segment`
and `play`, which take ROS arguments, tools/usage.py's from their parameter tables.
Their own arguments go after ``--ros-args``; anything before it is refused in one line,
as rclpy would otherwise ignore it (``segment -p device:=cpu`` ran on the default device).
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


HELP = ("-h", "--help")


def own_arguments(argv: list[str]) -> list[str]:
    """Return the arguments before --ros-args (a ROS executable's own: only -h / --help)."""
    return argv[:argv.index("--ros-args")] if "--ros-args" in argv else list(argv)


def ros_node_arguments(name: str, argv: list[str]) -> int | None:
    """For segment and play: 0 after printing the usage (-h), 2 for arguments outside --ros-args, else None."""
    own = own_arguments(argv)
    if any(a in HELP for a in own):
        print(importlib.import_module("icnet_ros.tools.usage").usage(name))
        return 0
    if own:
        print(f"{name}: error: unrecognized arguments {' '.join(own)}: ROS parameters and remaps go after "
              f"--ros-args, e.g. {name} --ros-args {' '.join(own)} ({name} --help lists the parameters)",
              file=sys.stderr)
        return 2
    return None


def run_command(module: str, name: str, ros: bool = False, node: bool = False) -> int:
    """
    Import `module` and run its main() as the command `name`.

    ros: check for rclpy first (not for --help); node: a ROS node taking only ROS arguments
    (segment, play), whose usage tools/usage.py writes.
    """
    argv = sys.argv[1:]
    if node:
        code = ros_node_arguments(name, argv)
        if code is not None:
            return code
    helping = any(a in HELP for a in own_arguments(argv))
    try:
        if ros and not helping:
            require("rclpy", needed_for=name)
        line = "" if helping else too_old(name)
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
    return run_command("icnet_ros.ros.node", "segment", ros=True, node=True)


def play() -> int:
    return run_command("icnet_ros.ros.player", "play", ros=True, node=True)


def demo() -> int:
    return run_command("icnet_ros.tools.demo", "demo", ros=True)


def param() -> int:
    return run_command("icnet_ros.ros.param_client", "param", ros=True)


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
