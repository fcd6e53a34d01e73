"""
The oldest version of each library the package supports, checked once at start.

The same floors are declared in setup.py (``install_requires``) and, where rosdep can say
so, package.xml.  Why each floor:

- numpy 1.21: Ubuntu 22.04's python3-numpy (Humble); nothing here needs newer.
- OpenCV 4.5.4: Ubuntu 22.04's python3-opencv; what 4.5 lacks has a fallback
  (icnet_ros/data/cv_compat.py).
- PyTorch 1.13: ``torch.load(weights_only=True)``, how checkpoints load safely
  (``torch.inference_mode`` needs 1.9).  Ubuntu 22.04's python3-torch (1.8) is older:
  docs/distros.md says what to install instead.
- ONNX Runtime 1.19: the oldest whose wheels take a NumPy older than 1.24.2 (1.15 to
  1.18 require numpy>=1.24.2, which Ubuntu 22.04 does not have).
- rosbags 0.11.1: reading needs 0.9.20 (the typestore API, ``rosbags.typesys.get_typestore``);
  0.11.0 is the oldest whose rosbag2 Writer takes ``storage_plugin``, with which the tests
  write the MCAP bags they read, and 0.11.1 the oldest that brings apsw, which the
  cut-off .db3 scanner (data/bags/sqlite_scan.py) opens files with.  rosdep installs it from
  PyPI on every distro (python3-rosbags-pip), so the newest is what users get anyway.

``make test-floor`` runs the core and node tests on numpy 1.23.5 (the oldest wheel for
Python 3.11), opencv-python-headless 4.5.5.64, onnxruntime 1.19.0 and rosbags 0.11.1;
PyTorch there is the oldest on this project's machines, 2.13.
"""

from __future__ import annotations

import importlib
from importlib import metadata
import importlib.util
import re

# import name -> (what users call it, oldest supported version, pip requirement)
FLOORS = {
    "numpy": ("numpy", "1.21", "numpy>=1.21"),
    "cv2": ("OpenCV", "4.5.4", "opencv-python-headless>=4.5.4"),
    "torch": ("PyTorch", "1.13", "torch>=1.13"),
    "onnxruntime": ("ONNX Runtime", "1.19", "onnxruntime>=1.19"),
    "rosbags": ("rosbags", "0.11.1", "rosbags>=0.11.1"),
}
REQUIRED = ("numpy", "cv2", "torch")        # every command imports these
OPTIONAL = ("onnxruntime", "rosbags")       # checked where installed


class TooOld(RuntimeError):
    """An installed library is older than the package supports; the message says which and what to do."""


def parse(version: str) -> tuple[int, ...]:
    """Return the leading release numbers: '2.1.0a0+git' -> (2, 1, 0), '4.5.4' -> (4, 5, 4)."""
    m = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(p) for p in m.group(0).split(".")) if m else ()


def installed(module: str) -> str | None:
    """
    Return the installed version of an import name, None where it is not installed.

    The optional ones are read from their metadata, without importing them; the
    required ones are imported (an apt OpenCV has no pip metadata) and give __version__.
    """
    if importlib.util.find_spec(module) is None:
        return None
    if module in OPTIONAL:
        try:
            return metadata.version(module)
        except metadata.PackageNotFoundError:
            pass
    return str(getattr(importlib.import_module(module), "__version__", ""))


def check(modules=REQUIRED + OPTIONAL, found: dict | None = None) -> None:
    """
    Raise TooOld naming the first library older than its floor.

    found: import name -> version, in place of what is installed (tests).  A library that
    is not installed is not this check's business (optional.py says what is missing).
    """
    for module in modules:
        version = found[module] if found is not None and module in found else installed(module)
        if not version:
            continue
        name, floor, pip = FLOORS[module]
        if parse(version) < parse(floor):
            raise TooOld(f"{name} {version} is installed; icnet_ros needs {floor} or newer "
                         f"(pip install '{pip}'; see docs/distros.md)")
