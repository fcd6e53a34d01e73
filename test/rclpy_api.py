"""
The rclpy API surface, read from rclpy's Python sources without importing them.

Used two ways:

- ``python test/rclpy_api.py <rclpy package folder> > test/data/rclpy_humble_api.txt``
  wrote the committed list of Humble's surface (the folder: ``rclpy/rclpy`` of rclpy's
  ``humble`` branch, e.g. ``git archive humble rclpy/rclpy | tar -x``);
- test/test_rclpy_humble_api.py reads that list and the installed rclpy's surface with the
  same code, and checks the names the package calls against both.

The surface: the names each module binds (what ``from rclpy.x import y`` can take), and
for every public function and method (and each class's ``__init__``, listed under the
class's name) the keyword arguments it accepts.
"""

from __future__ import annotations

import ast
from pathlib import Path
import sys

# The modules a node, a player or a test may touch; the rest of rclpy (actions, services'
# internals, validation helpers) the package does not use.
MODULES = ("__init__", "node", "lifecycle/__init__", "lifecycle/node", "lifecycle/managed_entity",
           "lifecycle/publisher", "publisher", "subscription", "timer", "executors", "context",
           "qos", "parameter", "duration", "time", "clock", "impl/rcutils_logger", "logging",
           "utilities", "task", "callback_groups", "client", "service", "signals",
           # QoS event callbacks (SubscriptionEventCallbacks): qos_event on Humble, event_handler from Jazzy
           "qos_event", "event_handler")
ANY = "**"   # in a def's keywords: it takes any keyword


def module_name(rel: str) -> str:
    rel = rel.removesuffix("/__init__").removesuffix("__init__")
    return "rclpy" + ("." + rel.replace("/", ".") if rel else "")


def _keywords(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
    return names + ([ANY] if a.kwarg is not None else [])


def _bound(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.If):   # TYPE_CHECKING imports do not bind at run time
            continue
    return {n for n in names if n != "*"}


def surface(package: Path) -> tuple[dict, dict]:
    """
    Return (modules, defs) of the rclpy sources in ``package`` (the ``rclpy`` folder).

    modules: module name -> names it binds.  defs: "Class.method" or "function" -> keyword
    arguments (ANY when it takes any).  A class's ``__init__`` is listed as the class.
    """
    modules, defs = {}, {}
    for rel in MODULES:
        path = package / f"{rel}.py"
        if not path.is_file():
            continue
        tree = ast.parse(path.read_text(), str(path))
        modules[module_name(rel)] = _bound(tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                defs[node.name] = _keywords(node)
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if not isinstance(item, ast.FunctionDef):
                        continue
                    if item.name == "__init__":
                        defs[node.name] = _keywords(item)
                    elif not item.name.startswith("_"):
                        defs[f"{node.name}.{item.name}"] = _keywords(item)
    return modules, defs


def write(modules: dict, defs: dict, out) -> None:
    for name in sorted(modules):
        out.write(f"module {name}: {' '.join(sorted(modules[name]))}\n")
    for name in sorted(defs):
        out.write(f"def {name}: {' '.join(defs[name])}\n")


def read(path: Path) -> tuple[dict, dict]:
    modules, defs = {}, {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, rest = line.split(" ", 1)
        name, _, values = rest.partition(":")
        (modules if kind == "module" else defs)[name] = set(values.split()) if kind == "module" else values.split()
    return modules, defs


if __name__ == "__main__":
    print("# rclpy humble's API surface (test/rclpy_api.py; read by test/test_rclpy_humble_api.py).")
    print(f"# Written by: python test/rclpy_api.py <rclpy/rclpy of branch humble> ({' '.join(sys.argv[2:])})")
    write(*surface(Path(sys.argv[1])), sys.stdout)
