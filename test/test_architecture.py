"""
The package's shape, as tests (DEVELOPERS.md, "Architecture").

(a) every module imports on its own in a fresh interpreter, and the module-level imports
    among icnet_ros modules form no cycle;
(b) no module outside ``icnet_ros/ros/`` imports rclpy or a ROS message package, at any
    level (inside functions too), apart from the few entry points listed below;
(c) importing the core (engine, model, datasets, train, ...) loads no rclpy;
(d) the subpackages are layered: ``nn/`` and ``ground/`` import nothing of the package
    outside themselves; ``inference/``
    and ``data/`` import neither ``tools/``, ``training/``, ``bench/`` nor ``ros/``.

The checks read the source with ``ast``; each is also run on a small made-up package
that breaks it, so a check that stops biting fails too.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

from conftest import HAVE_RCLPY

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "icnet_ros"

ROS_PACKAGES = {"rclpy", "sensor_msgs", "std_msgs", "nav_msgs", "geometry_msgs", "diagnostic_msgs",
                "visualization_msgs", "rcl_interfaces", "lifecycle_msgs", "builtin_interfaces"}
# Calls whose string arguments are module names imported at run time: importlib's,
# optional.py's `require` (imports each name given) and tools/scripts.py's `run_command`
# (imports the command it runs).
IMPORTING_CALLS = {"import_module", "__import__", "require", "run_command"}
# The only run-time imports of ROS, or of the ROS layer, allowed outside icnet_ros/ros/:
ALLOWED = {
    # the console scripts of the ROS executables check that rclpy imports (`require`), so
    # that a pip install without ROS says "ROS 2 is needed" in one line, then import the
    # executable's module.
    ("tools/scripts.py", "rclpy"),
    ("tools/scripts.py", "icnet_ros.ros.node"),      # `segment`
    ("tools/scripts.py", "icnet_ros.ros.player"),    # `play`
    ("tools/scripts.py", "icnet_ros.ros.param_client"),    # `param`
    # entry points that run ROS in part, importing the ROS side only when they get there:
    ("tools/demo.py", "icnet_ros.ros.demo_collector"),          # the demo's subscriber
    ("bench/node_phases.py", "icnet_ros.ros.bench_harness"),    # the bench's node phases
}
CORE = ["inference.engine", "inference.deploy", "nn.model", "data.datasets", "tools.train", "tools.evaluate",
        "tools.export", "bench"]
# (d): what each subpackage must not import, at any level (inside functions too).
LAYERS = {
    "nn": ("",),       # "": anything of the package outside nn/ itself
    "ground": ("",),   # the ground geometry stands on NumPy and OpenCV alone
    "inference": ("tools", "training", "bench", "ros"),
    "data": ("tools", "training", "bench", "ros"),
}


# --- reading the source ------------------------------------------------------------------

def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package at ``root``."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path, name: str, top_level_only: bool):
    """
    (line, imported module, names taken from it) for each import in a module: a from-import's names may be submodules.

    Module names passed to IMPORTING_CALLS count as imports.  top_level_only: leave out
    function bodies (run when called, not on import).
    """
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child.lineno, alias.name, ()
            elif isinstance(child, ast.ImportFrom):
                yield child.lineno, _absolute(child, name, is_package), tuple(a.name for a in child.names)
            elif isinstance(child, ast.Call) and not top_level_only:
                func = child.func.attr if isinstance(child.func, ast.Attribute) else getattr(child.func, "id", "")
                if func in IMPORTING_CALLS:
                    for arg in child.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            yield child.lineno, arg.value, ()
            yield from visit(child)

    yield from visit(tree)


def import_graph(root: Path, top_level_only: bool = True) -> dict[str, set[str]]:
    """
    Map each module to the package's modules it imports at module level (or anywhere).

    `from pkg import x` imports the submodule pkg.x where there is one, else pkg
    itself (for its name x); the parent packages Python imports on the way are left
    out (every submodule would otherwise form a cycle with its package's __init__).
    """
    mods = modules(root)
    graph = {}
    for name, path in mods.items():
        edges = set()
        for _, module, names in imports(path, name, top_level_only=top_level_only):
            subs = {f"{module}.{n}" for n in names} & mods.keys()
            edges |= subs
            if module in mods and (not names or len(subs) < len(names)):
                edges.add(module)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def is_ros(module: str) -> bool:
    return module.split(".")[0] in ROS_PACKAGES


def _allowed(rel: str, module: str, base: str) -> bool:
    """
    Tell whether ALLOWED lists this import for this file.

    Listed in ALLOWED for this file, or a parent package of a listed module, or a name
    taken from one (`from .ros.x import y` names icnet_ros.ros.x and icnet_ros.ros.x.y).
    """
    listed = {m for f, m in ALLOWED if f == rel}
    return module in listed or any(m.startswith(module + ".") for m in listed) or \
        (module != base and base in listed)


def ros_violations(root: Path) -> list[str]:
    """
    List 'file:line imports X' for each import of ROS by a module outside ros/, unless allowed.

    Imports of the package's ros/ layer count too.  Allowed: ALLOWED lists it and it
    happens inside a function.
    """
    layer = f"{root.name}.ros"
    found: dict[tuple[str, int], str] = {}
    for name, path in modules(root).items():
        rel = path.relative_to(root).as_posix()
        if rel.startswith("ros/"):
            continue
        top = {m for _, m, _ in imports(path, name, top_level_only=True)}
        for line, base, names in imports(path, name, top_level_only=False):
            for module in (base, *(f"{base}.{n}" for n in names)):
                if (is_ros(module) or module == layer or module.startswith(layer + ".")) \
                        and (base in top or not _allowed(rel, module, base)):
                    found[rel, line] = min(found.get((rel, line), module), module, key=len)
    return [f"{rel}:{line} imports {module}" for (rel, line), module in sorted(found.items())]


def fresh_python(code: str, cwd: Path = ROOT) -> dict:
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


# --- (a) every module imports; no import cycle -------------------------------------------

def test_every_module_imports_first_in_a_fresh_interpreter():
    """
    Import each module as the first of the package, so a one-sided cycle shows.

    The others are dropped from sys.modules in between.
    """
    names = [n for n in modules(PACKAGE) if not n.endswith("__main__")
             and (HAVE_RCLPY or not (n.startswith("icnet_ros.ros.") or n == "icnet_ros.ros"))]
    code = textwrap.dedent(f"""
        import importlib, json, sys, traceback
        failed = {{}}
        for name in {names!r}:
            for loaded in [m for m in sys.modules if m == "icnet_ros" or m.startswith("icnet_ros.")]:
                del sys.modules[loaded]
            try:
                importlib.import_module(name)
            except Exception:
                failed[name] = traceback.format_exc(limit=-3)
        print(json.dumps(failed))
    """)
    assert fresh_python(code) == {}


def test_no_import_cycle_among_the_packages_modules():
    graph = import_graph(PACKAGE)
    assert "icnet_ros.data.bags.dataset" in graph["icnet_ros.data.datasets"]   # the graph sees relative imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_import_cycle_even_through_imports_inside_functions():
    """A lazy import hides a cycle from Python, not from a reader: none either, and no exceptions."""
    graph = import_graph(PACKAGE, top_level_only=False)
    assert "icnet_ros.ros.player" in graph["icnet_ros.tools.scripts"]     # the graph sees those calls
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_optional_is_a_leaf():
    """The module that names a missing dependency is used by the lowest layers: it imports nothing of the package."""
    graph = import_graph(PACKAGE, top_level_only=False)
    assert graph["icnet_ros.optional"] == set()


def test_the_cycle_check_finds_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("from .. import c\n")
    (pkg / "c.py").write_text("import pkg.a\n\ndef later():\n    from . import d\n")
    (pkg / "d.py").write_text("from .c import later\n")
    assert find_cycle(import_graph(pkg)) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("def later():\n    import pkg.a\n")   # inside a function: no cycle
    assert find_cycle(import_graph(pkg)) is None
    assert find_cycle(import_graph(pkg, top_level_only=False)) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    # the circle issue 36 removed: a leaf that also dispatched the console scripts by name
    (pkg / "c.py").write_text("")
    (pkg / "leaf.py").write_text("def run_command(module):\n    pass\n\ndef train():\n"
                                 "    return run_command('pkg.tool')\n")
    (pkg / "tool.py").write_text("from . import data\n")
    (pkg / "data.py").write_text("from .leaf import run_command\n")
    assert find_cycle(import_graph(pkg)) is None
    assert find_cycle(import_graph(pkg, top_level_only=False)) == ["pkg.data", "pkg.leaf", "pkg.tool", "pkg.data"]


# --- (b) ROS only under ros/ -------------------------------------------------------------

def test_no_ros_import_outside_the_ros_layer():
    assert ros_violations(PACKAGE) == []


def test_the_ros_check_finds_every_kind_of_ros_import(tmp_path):
    pkg = tmp_path / "icnet_ros"
    (pkg / "ros").mkdir(parents=True)
    (pkg / "bench").mkdir()
    for f in ("__init__.py", "ros/__init__.py", "bench/__init__.py", "ros/node.py", "ros/demo_collector.py"):
        (pkg / f).write_text("import rclpy\n" if f.startswith("ros/n") else "")
    (pkg / "deep.py").write_text("def f():\n    if True:\n        from sensor_msgs.msg import Image\n")
    (pkg / "dyn.py").write_text("import importlib\n\ndef f():\n    importlib.import_module('nav_msgs.msg')\n")
    (pkg / "layer.py").write_text("def f():\n    from .ros.node import main\n")        # not a listed entry point
    (pkg / "tools").mkdir()
    (pkg / "tools" / "__init__.py").write_text("")
    (pkg / "tools" / "demo.py").write_text("from ..ros.demo_collector import Collector\n")  # listed, but not lazy
    scripts = ("def run_command(module, name):\n    require('rclpy', needed_for=name)\n\n"
               "def segment():\n    return run_command('icnet_ros.ros.node', 'segment')\n\n"
               "def other():\n    return require('std_msgs')\n\n"
               "def sub():\n    require('rclpy.qos')\n")
    (pkg / "tools" / "scripts.py").write_text(scripts)
    assert ros_violations(pkg) == [
        "deep.py:3 imports sensor_msgs.msg", "dyn.py:4 imports nav_msgs.msg", "layer.py:2 imports icnet_ros.ros.node",
        "tools/demo.py:1 imports icnet_ros.ros.demo_collector",
        "tools/scripts.py:8 imports std_msgs", "tools/scripts.py:11 imports rclpy.qos"]
    (pkg / "tools" / "demo.py").write_text("def run():\n    from ..ros.demo_collector import Collector\n")
    assert not [v for v in ros_violations(pkg) if v.startswith("tools/demo.py")]


# --- (c) the core loads no rclpy ---------------------------------------------------------

@pytest.mark.parametrize("group", ["listed", "all"])
def test_importing_the_core_loads_no_ros(group):
    """
    Import the core modules, then every module outside ros/, and name the first that loads ROS.

    The core modules are those named in the issue; all of them are imported in one
    interpreter.
    """
    names = [f"icnet_ros.{m}" for m in CORE] if group == "listed" else \
        [n for n in modules(PACKAGE) if not n.endswith("__main__") and not n.startswith("icnet_ros.ros")]
    code = textwrap.dedent(f"""
        import importlib, json, sys
        ROS = {sorted(ROS_PACKAGES)!r}
        for name in {names!r}:
            importlib.import_module(name)
            loaded = sorted(m for m in sys.modules if m.split(".")[0] in ROS)
            if loaded:
                print(json.dumps({{name: loaded[:5]}}))
                break
        else:
            print(json.dumps({{}}))
    """)
    assert fresh_python(code) == {}


# --- (d) layers ----------------------------------------------------------------------------

def layer_violations(root: Path) -> list[str]:
    """List 'file:line imports X' for each import that LAYERS forbids its subpackage."""
    pkg = root.name
    found: dict[tuple[str, int], str] = {}
    for name, path in modules(root).items():
        layer = name.split(".")[1] if name.count(".") >= 1 else ""
        if layer not in LAYERS:
            continue
        rel = path.relative_to(root).as_posix()
        for line, base, names in imports(path, name, top_level_only=False):
            for module in (base, *(f"{base}.{n}" for n in names)):
                parts = module.split(".")
                if parts[0] != pkg or module == pkg and not names:
                    continue
                target = parts[1] if len(parts) > 1 else ""
                if target == layer:
                    continue
                if module == pkg:   # `from .. import x`: judged by the names (x)
                    continue
                if "" in LAYERS[layer] or target in LAYERS[layer]:
                    found[rel, line] = min(found.get((rel, line), module), module, key=len)
    return [f"{rel}:{line} imports {module}" for (rel, line), module in sorted(found.items())]


def test_subpackages_are_layered():
    assert all((PACKAGE / layer).is_dir() for layer in LAYERS)
    assert layer_violations(PACKAGE) == []


def test_the_layer_check_finds_an_upward_import(tmp_path):
    pkg = tmp_path / "icnet_ros"
    for sub in ("nn", "inference", "data", "tools", "training", "bench", "ros"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "geometry.py").write_text("")
    (pkg / "nn" / "model.py").write_text("from .loss import x\nfrom ..geometry import y\n")
    (pkg / "nn" / "loss.py").write_text("")
    (pkg / "inference" / "engine.py").write_text("from ..nn.model import m\nfrom ..data import image_io\n"
                                                 "def f():\n    from ..tools.train import main\n")
    (pkg / "data" / "datasets.py").write_text("import icnet_ros.training.data\nfrom .. import geometry\n"
                                              "from ..ros import node\n")
    assert layer_violations(pkg) == [
        "data/datasets.py:1 imports icnet_ros.training.data", "data/datasets.py:3 imports icnet_ros.ros",
        "inference/engine.py:4 imports icnet_ros.tools.train", "nn/model.py:2 imports icnet_ros.geometry"]


def test_public_names_import_from_the_package_without_loading_torch_first():
    code = textwrap.dedent("""
        import json, sys
        import icnet_ros
        before = sorted(m for m in ("torch", "rclpy") if m in sys.modules)
        from icnet_ros import Engine, load_checkpoint, save_checkpoint, icnet_effl0, icnet_r18, icnet_r50
        from icnet_ros.inference.engine import Engine as E
        print(json.dumps({"before": before, "same": Engine is E, "torch": "torch" in sys.modules,
                          "all": sorted(icnet_ros.__all__)[:3]}))
    """)
    assert fresh_python(code) == {"before": [], "same": True, "torch": True, "all": ["Engine", "EngineError", "ICNet"]}
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import icnet_ros
        icnet_ros.nothing  # noqa: B018


# --- (e) layout: short modules, each named in docs/architecture.md -----------------------

MAX_LINES = 400   # DEVELOPERS.md: files under ~400 lines


def long_modules(root: Path, limit: int = MAX_LINES) -> list[str]:
    return [f"{p.relative_to(root).as_posix()}: {n} lines" for p in sorted(root.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > limit]


def unlisted_modules(root: Path, table: str) -> list[str]:
    """
    Modules the architecture table leaves out: a subpackage's belong in its row, a top-level one in a first cell.

    A row starts with its subpackage in backticks (`` | `data/bags/` | ``); a module is
    named as `stem` or `stem.py` in backticks.
    """
    rows = {}
    for line in table.splitlines():
        cells = line.split("|")
        if line.startswith("| `") and len(cells) > 2:
            for name in cells[1].replace("`", " ").replace(",", " ").split():
                rows[name.rstrip("/")] = line
    missing = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if path.name in ("__init__.py", "__main__.py"):
            if path.name == "__init__.py" and rel.parent != Path(".") and rel.parent.as_posix() not in rows:
                missing.append(f"{rel.parent.as_posix()}/")
            continue
        if rel.parent == Path("."):
            if path.name not in rows:
                missing.append(rel.as_posix())
            continue
        row = rows.get(rel.parent.as_posix(), "")
        if f"`{path.stem}`" not in row and f"`{path.name}`" not in row and f"`{path.stem} `" not in row:
            missing.append(rel.as_posix())
    return missing


def test_every_module_is_short():
    assert long_modules(PACKAGE) == []


def test_docs_architecture_names_every_module_where_it_lives():
    table = (ROOT / "docs" / "architecture.md").read_text()
    assert unlisted_modules(PACKAGE, table) == []


def test_the_layout_checks_find_a_long_or_unlisted_module(tmp_path):
    pkg = tmp_path / "icnet_ros"
    (pkg / "data" / "bags").mkdir(parents=True)
    for f in ("__init__.py", "data/__init__.py", "data/bags/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "paths.py").write_text("x = 1\n" * 401)
    (pkg / "data" / "image_io.py").write_text("")
    (pkg / "data" / "bags" / "reader.py").write_text("")
    table = "| `paths.py` | files |\n| `data/` | `image_io.py`: images; `reader.py` |\n"
    assert long_modules(pkg) == ["paths.py: 401 lines"]
    assert unlisted_modules(pkg, table) == ["data/bags/", "data/bags/reader.py"]
    table += "| `data/bags/` | `reader`: bags |\n"
    assert unlisted_modules(pkg, table) == []
