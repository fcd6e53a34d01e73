"""
Lend .venv's PyTorch to .venv-floor, and nothing else of .venv.

``make test-floor`` runs the node on Jazzy's rclpy and Fast DDS 2.14 (installed in
.venv-floor from the package index) with the oldest supported libraries.  PyTorch is
the one thing it borrows: its CUDA build and NVIDIA libraries are gigabytes, and .venv
has them already.  A plain path to .venv's site-packages would also put Kilted's rclpy
and messages on sys.path behind Jazzy's, so any module Jazzy lacks would come from
Kilted.  Instead this links, into ``.venv-floor/borrowed/``, only the files of torch,
torchvision and what they require (found from .venv's package metadata), less what
.venv-floor installed itself, and adds that folder to sys.path with a .pth.

Run by the Makefile with .venv-floor's python::

    python test/floor_venv.py <.venv's site-packages>
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
import re
import sys
import sysconfig

LENT = ("torch", "torchvision")
PTH = "zz_icnet_borrowed.pth"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str | None:
    """Return the distribution a Requires-Dist line names, or None for one that only an extra needs."""
    if "extra ==" in spec:
        return None
    return canonical(re.match(r"[A-Za-z0-9_.-]+", spec).group(0))


def closure(dists: dict, roots: tuple[str, ...], own: set[str]) -> list[str]:
    """Return roots and everything they require among dists, less what ``own`` (.venv-floor) has."""
    seen, todo = set(), [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name in own or name not in dists:
            continue
        seen.add(name)
        todo += [n for n in map(_requirement_name, dists[name].requires or []) if n]
    return sorted(seen)


def top_level_entries(dist) -> set[str]:
    """Return the site-packages entries a distribution's RECORD lists (packages, modules, .libs folders)."""
    tops = set()
    for f in dist.files or []:
        first = f.parts[0]
        if first not in ("..", "__pycache__") and not first.endswith(".pth"):
            tops.add(first)
    return tops


def lend(main_site: Path, floor_site: Path, borrowed: Path) -> list[str]:
    dists = {canonical(d.metadata["Name"]): d for d in metadata.distributions(path=[str(main_site)])}
    own = {canonical(d.metadata["Name"]) for d in metadata.distributions(path=[str(floor_site)])}
    names = closure(dists, LENT, own)
    ros = [n for n in names if n.startswith("ros-")]
    if ros:
        raise SystemExit(f"floor_venv: PyTorch's requirements in {main_site} include ROS packages {ros}")
    borrowed.mkdir(exist_ok=True)
    for name in names:
        for entry in top_level_entries(dists[name]):
            link, target = borrowed / entry, main_site / entry
            if target.exists() and not link.exists() and not (floor_site / entry).exists():
                link.symlink_to(target)
    (floor_site / PTH).write_text(f"{borrowed}\n")
    return names


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        raise SystemExit("usage: python test/floor_venv.py <.venv's site-packages folder>")
    lent = lend(Path(sys.argv[1]), Path(sysconfig.get_path("purelib")), Path(sys.prefix) / "borrowed")
    print(f"floor_venv: lent from {sys.argv[1]}: {' '.join(lent)}")
