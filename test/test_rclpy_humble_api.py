"""
The package calls only rclpy API that Humble's rclpy has.

This machine runs Kilted's rclpy, which has methods (Node.add_post_set_parameters_callback,
Subscription.get_publisher_count ...) and keyword arguments that Humble's lacks; calling
one runs here and breaks on Humble.  test/data/rclpy_humble_api.txt is Humble's surface,
read from rclpy's humble branch by test/rclpy_api.py (its header says how).  Every rclpy
import of the package and its tests must exist there; every method called by a name that
the installed rclpy defines must be defined in Humble's too, and take the keywords given.
A call that checks for a method first (``hasattr(x, "name")`` or ``getattr(x, "name",
None)``) is a feature check and may name newer API.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import rclpy_api

ROOT = Path(__file__).resolve().parent.parent
HUMBLE = Path(__file__).resolve().parent / "data" / "rclpy_humble_api.txt"
SKIP = {"rclpy_api.py", Path(__file__).name}


def _sources() -> list[Path]:
    files = sorted((ROOT / "icnet_ros").rglob("*.py")) + sorted((ROOT / "test").glob("*.py"))
    return [f for f in files if f.name not in SKIP]


def _installed() -> tuple[dict, dict]:
    spec = importlib.util.find_spec("rclpy")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rclpy is not installed")
    return rclpy_api.surface(Path(list(spec.submodule_search_locations)[0]))


def _checked_names(tree: ast.AST) -> set[str]:
    """Names a feature check guards: hasattr(x, "name") / getattr(x, "name", default)."""
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr") and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            names.add(node.args[1].value)
    return names


def _imports(tree: ast.AST) -> dict:
    """Local name -> (rclpy module, name) for ``from rclpy.x import name``."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rclpy":
            for a in node.names:
                found[(a.asname or a.name)] = (node.module, a.name)
    return found


def _problems(path: Path, humble: tuple[dict, dict], installed: tuple[dict, dict]) -> list[str]:
    modules, defs = humble
    _, now = installed
    methods = {}
    for table, which in ((defs, "humble"), (now, "now")):
        for qual, kws in table.items():
            methods.setdefault(qual.rsplit(".", 1)[-1], {}).setdefault(which, []).append(kws)
    tree = ast.parse(path.read_text(), str(path))
    guarded = _checked_names(tree)
    imported = _imports(tree)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    where = lambda node: f"{shown}:{node.lineno}"  # noqa: E731
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rclpy":
            for a in node.names:
                if node.module not in modules or a.name not in modules[node.module]:
                    out.append(f"{where(node)}: from {node.module} import {a.name}: not in Humble's rclpy")
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute):
            name = node.func.attr
        elif isinstance(node.func, ast.Name) and node.func.id in imported:
            name = imported[node.func.id][1]
        else:
            continue
        known = methods.get(name, {})
        if "now" not in known or name in guarded:
            continue       # not an rclpy name, or called only where present
        if "humble" not in known:
            out.append(f"{where(node)}: calls rclpy's {name}(), which Humble's rclpy lacks")
            continue
        for kw in (k.arg for k in node.keywords if k.arg):
            ok = lambda sets: any(kw in kws or rclpy_api.ANY in kws for kws in sets)  # noqa: E731
            if ok(known["now"]) and not ok(known["humble"]):
                out.append(f"{where(node)}: {name}({kw}=...): Humble's rclpy takes no {kw!r}")
    return out


def test_humble_list_is_read():
    modules, defs = rclpy_api.read(HUMBLE)
    assert "add_on_set_parameters_callback" in modules["rclpy.node"] or "Node.add_on_set_parameters_callback" in defs
    assert "Node.add_post_set_parameters_callback" not in defs          # newer than Humble
    assert "try_shutdown" in modules["rclpy"] and "init" in modules["rclpy"]


def test_the_package_calls_only_humble_rclpy_api():
    humble, installed = rclpy_api.read(HUMBLE), _installed()
    problems = [p for f in _sources() for p in _problems(f, humble, installed)]
    assert not problems, "\n".join(problems)


def test_the_check_finds_newer_api(tmp_path):
    """The check can fail: a file calling Jazzy-only API is caught, a feature check is not."""
    bad = tmp_path / "probe.py"
    bad.write_text("from rclpy.executors import SingleThreadedExecutor\n"
                   "from rclpy.node import NoSuchThing\n"
                   "from rclpy.subscription import SubscriptionEventCallbacks\n"
                   "def f(node, sub):\n"
                   "    node.add_post_set_parameters_callback(print)\n"
                   "    sub.get_publisher_count()\n"
                   "    SingleThreadedExecutor(context=None, no_such_keyword=1)\n"
                   "    SubscriptionEventCallbacks(incompatible_qos=print, incompatible_type=print)\n"
                   "    if hasattr(node, 'add_pre_set_parameters_callback'):\n"
                   "        node.add_pre_set_parameters_callback(print)\n")
    problems = _problems(bad, rclpy_api.read(HUMBLE), _installed())
    text = "\n".join(problems)
    assert "NoSuchThing" in text
    assert "add_post_set_parameters_callback(), which Humble's rclpy lacks" in text
    assert "get_publisher_count()" in text
    assert "SubscriptionEventCallbacks(incompatible_type=...): Humble's rclpy takes no 'incompatible_type'" in text
    assert "add_pre_set_parameters_callback" not in text
    assert len(problems) == 4, text


# Message constructor keywords that rosidl_generator_py gained after Humble (its humble
# branch's _msg.py.em takes only the fields; jazzy's adds check_fields).
NEWER_MESSAGE_KEYWORDS = {"check_fields"}


def _message_keyword_problems(path: Path) -> list[str]:
    text = path.read_text()
    guarded = "_check_fields" in text     # a feature check: "_check_fields" in Msg.__slots__
    return [f"{path.name}:{node.lineno}: {k.arg}= is not taken by Humble's messages"
            for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Call)
            for k in node.keywords if k.arg in NEWER_MESSAGE_KEYWORDS and not guarded]


def test_messages_are_built_with_humbles_keywords(tmp_path):
    problems = [p for f in _sources() for p in _message_keyword_problems(f)]
    assert not problems, "\n".join(problems)
    probe = tmp_path / "probe.py"
    probe.write_text("from sensor_msgs.msg import Image\nImage(check_fields=True)\n")
    assert _message_keyword_problems(probe) == ["probe.py:2: check_fields= is not taken by Humble's messages"]


@pytest.mark.ros
def test_the_bench_counts_mask_publishers_without_get_publisher_count(ros_context):
    """Humble's Subscription has no get_publisher_count: the bench asks its node instead."""
    from types import SimpleNamespace

    import rclpy
    from sensor_msgs.msg import Image

    from conftest import wait_for
    from icnet_ros.ros.bench_harness import NodeHarness

    probe = rclpy.create_node("humble_probe", namespace="/humble_api")
    other = rclpy.create_node("humble_pub", namespace="/humble_api")
    try:
        sub = probe.create_subscription(Image, "icnet/mask", lambda m: None, 10)
        humble_sub = SimpleNamespace(topic_name=sub.topic_name)      # what Humble's has of it
        assert not hasattr(humble_sub, "get_publisher_count")
        harness = SimpleNamespace(mask_sub=humble_sub, probe=probe)
        assert NodeHarness._mask_publishers(harness) == 0
        other.create_publisher(Image, "icnet/mask", 10)
        assert wait_for(lambda: NodeHarness._mask_publishers(harness) == 1, 10.0)
    finally:
        other.destroy_node()
        probe.destroy_node()
