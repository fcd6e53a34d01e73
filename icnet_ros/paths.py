"""Where the shipped model lives: the ROS share directory after ``colcon build``, the
venv's ``share/`` after ``pip install``, or ``models/`` in a source checkout."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "icnet_ros"
SHIPPED_MODEL = "icnet_camvid_road.pt"


def share_dirs() -> list[Path]:
    dirs = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            dirs.append(Path(get_package_share_directory(PACKAGE)))
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (plain venv)
            pass
    except ImportError:
        pass
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)
    dirs.append(Path(__file__).resolve().parent.parent)  # source checkout
    return dirs


def find_share_file(relative: str) -> Path | None:
    for d in share_dirs():
        if (d / relative).is_file():
            return d / relative
    return None


def default_model_path() -> Path:
    """The shipped model; a clear error when it is not installed anywhere."""
    found = find_share_file(f"models/{SHIPPED_MODEL}")
    if found is None:
        looked = ", ".join(str(d / "models") for d in share_dirs())
        raise FileNotFoundError(f"shipped model {SHIPPED_MODEL} not found (looked in {looked}); "
                                f"pass a checkpoint path")
    return found
