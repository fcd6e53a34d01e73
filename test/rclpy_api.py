"""
The rclpy API surface of each ROS distro: read from an installed rclpy, or from its sources.

Two ways to write a list, committed under test/data/:

- ``python test/rclpy_api.py --installed > test/data/rclpy_<distro>_api.txt``: the
  installed rclpy, by introspection (importing its modules: what ``dir()`` and
  ``inspect.signature`` give).  Written so in .venv for Kilted and in .venv-floor for
  Jazzy; test/test_rclpy_api.py checks in each that the list is still what the installed
  rclpy has.
- ``python test/rclpy_api.py <rclpy package folder> <commit> > test/data/rclpy_humble_api.txt``:
  from the Python sources without importing them, for a distro that cannot be installed
  here (Humble: the folder is ``rclpy/rclpy`` of rclpy's ``humble`` branch, e.g.
  ``git archive humble rclpy/rclpy | tar -x``).

test/test_rclpy_api.py checks the rclpy names the package calls against every list.  The
surface: the names each module binds (what ``from rclpy.x import y`` can take), and for
every public function and method (and each class's ``__init__``, listed under the class's
name) the keyword arguments it accepts.
"""

from __future__ import annotations

import ast
import importlib
from importlib import metadata
import inspect
from pathlib import Path
import sys
import types

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
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
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
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                defs[node.name] = _keywords(node)
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        continue
                    if item.name == "__init__":
                        defs[node.name] = _keywords(item)
                    elif not item.name.startswith("_"):
                        defs[f"{node.name}.{item.name}"] = _keywords(item)
    return modules, defs


def _signature_keywords(fn) -> list[str] | None:
    """Keyword arguments of a function or method (self/cls dropped); None where Python cannot tell (C code)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.name not in ("self", "cls")]
    return names + ([ANY] if any(p.kind == p.VAR_KEYWORD for p in params) else [])


def _members(cls: type):
    """(name, function) for what a class body defines: methods, static and class methods, properties."""
    for name, item in vars(cls).items():
        if isinstance(item, (staticmethod, classmethod)):
            item = item.__func__
        elif isinstance(item, property):
            item = item.fget
        if isinstance(item, types.FunctionType):
            yield name, item


def _module_bindings(module: types.ModuleType) -> set[str]:
    """Names the module binds, less dunders and the submodules an import elsewhere attached to it."""
    prefix = module.__name__ + "."
    return {name for name, value in vars(module).items()
            if not (name.startswith("__") and name.endswith("__"))
            and not (isinstance(value, types.ModuleType) and value.__name__ == prefix + name)}


def introspect() -> tuple[dict, dict]:
    """Return (modules, defs), as surface() does, of the installed rclpy by importing it."""
    modules, defs = {}, {}
    for rel in MODULES:
        try:
            module = importlib.import_module(module_name(rel))
        except ImportError:
            continue
        modules[module.__name__] = _module_bindings(module)
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue     # private, or bound here but defined elsewhere (listed where defined)
            if isinstance(value, types.FunctionType):
                kws = _signature_keywords(value)
                if kws is not None:
                    defs[name] = kws
            elif isinstance(value, type):
                for member, fn in _members(value):
                    kws = _signature_keywords(fn)
                    if kws is None:
                        continue
                    if member == "__init__":
                        defs[name] = kws
                    elif not member.startswith("_"):
                        defs[f"{name}.{member}"] = kws
    return modules, defs


def installed_version() -> str:
    """Return the installed rclpy's version (its package.xml's, which its Python metadata carries)."""
    return metadata.version("rclpy")


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


VERSION_LINE = "# rclpy version: "


def read_version(path: Path) -> str | None:
    """Return the rclpy version a list was written from (its header), None for one read from sources."""
    for line in path.read_text().splitlines():
        if line.startswith(VERSION_LINE):
            return line[len(VERSION_LINE):].strip()
    return None


if __name__ == "__main__":
    if sys.argv[1:] == ["--installed"]:
        print("# rclpy's API surface by introspection (test/rclpy_api.py; read by test/test_rclpy_api.py).")
        print("# Written by: python test/rclpy_api.py --installed")
        print(f"{VERSION_LINE}{installed_version()}")
        write(*introspect(), sys.stdout)
    else:
        print("# rclpy humble's API surface (test/rclpy_api.py; read by test/test_rclpy_api.py).")
        print(f"# Written by: python test/rclpy_api.py <rclpy/rclpy of branch humble> ({' '.join(sys.argv[2:])})")
        write(*surface(Path(sys.argv[1])), sys.stdout)
