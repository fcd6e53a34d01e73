"""
The package calls only rclpy API that every supported distro's rclpy has.

Each distro's rclpy surface is a list under test/data/ (test/rclpy_api.py writes them):
Kilted's and Jazzy's by introspection of the installed rclpy (.venv runs Kilted, .venv-floor
Jazzy: in each, test_the_installed_rclpy_is_its_list checks the list is still the truth),
Humble's read from rclpy's humble branch (it cannot be installed here).  Every rclpy import
of the package and its tests must exist in each; every method called by a name that some
distro's rclpy defines must be defined in every one, and take the keywords given there.  A
call that checks for a method first (``hasattr(x, "name")`` or ``getattr(x, "name",
None)``) is a feature check and may name newer API.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import rclpy_api

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
LISTS = {distro: DATA / f"rclpy_{distro}_api.txt" for distro in ("humble", "jazzy", "kilted")}
SKIP = {"rclpy_api.py", Path(__file__).name}


def _sources() -> list[Path]:
    files = sorted((ROOT / "icnet_ros").rglob("*.py")) + sorted((ROOT / "test").glob("*.py"))
    return [f for f in files if f.name not in SKIP]


def _installed_distro() -> str | None:
    """Return the distro whose committed list was written from the installed rclpy's version, if any."""
    version = rclpy_api.installed_version()
    return next((distro for distro, path in LISTS.items() if rclpy_api.read_version(path) == version), None)


def _surfaces() -> dict:
    """
    Return every distro's surface: the committed lists, and the installed rclpy's by introspection.

    The installed one replaces its distro's list, or is one more (an rclpy with no list
    here, e.g. a robot's own install running the tests).
    """
    surfaces = {distro: rclpy_api.read(path) for distro, path in LISTS.items()}
    if importlib.util.find_spec("rclpy") is not None:
        key = _installed_distro() or f"the installed (rclpy {rclpy_api.installed_version()})"
        surfaces[key] = rclpy_api.introspect()
    return surfaces


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


def _methods(surfaces: dict) -> dict:
    """Map each method or function name to {distro: [keyword lists of every def of that name]}."""
    methods = {}
    for distro, (_, defs) in surfaces.items():
        for qual, kws in defs.items():
            methods.setdefault(qual.rsplit(".", 1)[-1], {}).setdefault(distro, []).append(kws)
    return methods


def _called_name(node: ast.Call, imported: dict) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name) and node.func.id in imported:
        return imported[node.func.id][1]
    return None


def _problems(path: Path, surfaces: dict) -> list[str]:
    methods = _methods(surfaces)
    tree = ast.parse(path.read_text(), str(path))
    guarded, imported = _checked_names(tree), _imports(tree)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    out = []
    for node in ast.walk(tree):
        where = f"{shown}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rclpy":
            for a in node.names:
                out += [f"{where}: from {node.module} import {a.name}: not in {distro}'s rclpy"
                        for distro, (modules, _) in surfaces.items()
                        if a.name not in modules.get(node.module, ())]
        if not isinstance(node, ast.Call):
            continue
        name = _called_name(node, imported)
        known = methods.get(name, {})
        if not known or name in guarded:
            continue       # not an rclpy name, or called only where present
        out += [f"{where}: calls rclpy's {name}(), which {distro}'s rclpy lacks"
                for distro in surfaces if distro not in known]
        for kw in (k.arg for k in node.keywords if k.arg):
            takes = {d: any(kw in kws or rclpy_api.ANY in kws for kws in known[d]) for d in known}
            if any(takes.values()):   # an rclpy keyword: every distro must take it
                out += [f"{where}: {name}({kw}=...): {d}'s rclpy takes no {kw!r}" for d, ok in takes.items() if not ok]
    return out


def test_the_lists_are_read():
    humble, jazzy, kilted = (rclpy_api.read(LISTS[d]) for d in ("humble", "jazzy", "kilted"))
    assert "Node.add_on_set_parameters_callback" in humble[1]
    assert "Node.add_post_set_parameters_callback" not in humble[1]          # Iron and newer
    assert "Node.add_post_set_parameters_callback" in jazzy[1] and "Node.add_post_set_parameters_callback" in kilted[1]
    for modules, _ in (humble, jazzy, kilted):
        assert {"try_shutdown", "init"} <= modules["rclpy"]
    assert rclpy_api.read_version(LISTS["humble"]) is None                    # read from sources
    assert rclpy_api.read_version(LISTS["jazzy"]).startswith("7.")
    assert rclpy_api.read_version(LISTS["kilted"]).startswith("9.")


def test_the_installed_rclpy_is_its_list():
    """The list of the installed distro is what introspection of its rclpy gives now, line for line."""
    if importlib.util.find_spec("rclpy") is None:
        pytest.skip("rclpy is not installed")
    distro = _installed_distro()
    if distro is None:      # .venv and .venv-floor pin the versions the lists were written from
        pytest.skip(f"no list under test/data/ was written from the installed rclpy {rclpy_api.installed_version()}"
                    f" (python test/rclpy_api.py --installed > test/data/rclpy_<distro>_api.txt writes one)")
    modules, defs = rclpy_api.read(LISTS[distro])
    live_modules, live_defs = rclpy_api.introspect()
    assert modules == live_modules, f"{LISTS[distro].name} is stale: python test/rclpy_api.py --installed > it"
    assert defs == live_defs, f"{LISTS[distro].name} is stale: python test/rclpy_api.py --installed > it"


def test_an_rclpy_without_a_list_is_checked_as_one_more_distro(monkeypatch):
    """On a robot's own ROS install (a version with no list here) the package is checked against it too."""
    if importlib.util.find_spec("rclpy") is None:
        pytest.skip("rclpy is not installed")
    monkeypatch.setattr(rclpy_api, "installed_version", lambda: "0.0.1")
    surfaces = _surfaces()
    assert set(surfaces) == {"humble", "jazzy", "kilted", "the installed (rclpy 0.0.1)"}
    assert surfaces["the installed (rclpy 0.0.1)"] == rclpy_api.introspect()


def test_the_package_calls_only_api_every_distro_has():
    surfaces = _surfaces()
    assert {"humble", "jazzy", "kilted"} <= set(surfaces)
    problems = [p for f in _sources() for p in _problems(f, surfaces)]
    assert not problems, "\n".join(problems)


def test_the_check_finds_newer_api(tmp_path):
    """The check can fail: API newer than Humble or Jazzy is caught, a feature check is not."""
    bad = tmp_path / "probe.py"
    bad.write_text("from rclpy.executors import SingleThreadedExecutor\n"
                   "from rclpy.node import NoSuchThing\n"
                   "from rclpy.subscription import SubscriptionEventCallbacks\n"
                   "def f(node, sub, context):\n"
                   "    node.add_post_set_parameters_callback(print)\n"
                   "    sub.get_publisher_count()\n"
                   "    SingleThreadedExecutor(context=None, no_such_keyword=1)\n"
                   "    context.track_node(node)\n"
                   "    node.create_subscription(int, 't', print, 1, content_filter_options=None)\n"
                   "    SubscriptionEventCallbacks(incompatible_qos=print, incompatible_type=print)\n"
                   "    if hasattr(node, 'add_pre_set_parameters_callback'):\n"
                   "        node.add_pre_set_parameters_callback(print)\n")
    text = "\n".join(_problems(bad, _surfaces()))
    assert text.count("NoSuchThing: not in") == 3, text                 # in none of the three
    assert "add_post_set_parameters_callback(), which humble's rclpy lacks" in text
    assert "get_publisher_count(), which humble's rclpy lacks" in text
    assert "track_node(), which humble's rclpy lacks" in text and "track_node(), which jazzy's rclpy lacks" in text
    assert "create_subscription(content_filter_options=...): humble's rclpy takes no" in text
    assert "create_subscription(content_filter_options=...): jazzy's rclpy takes no" in text
    assert "no_such_keyword" not in text                 # no distro takes it: not an rclpy keyword
    assert "add_pre_set_parameters_callback" not in text
    assert "SubscriptionEventCallbacks(incompatible_type=...): humble's rclpy takes no 'incompatible_type'" in text
    assert len(text.splitlines()) == 10, text


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
