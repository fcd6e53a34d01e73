"""
Every node test runs on both ROS distros in CI.

`make test` runs the whole suite on Kilted (.venv); `make test-floor` runs the node tests
on Jazzy (.venv-floor) from the Makefile's FLOOR_TESTS and JAZZY_TESTS.  A node test is
one marked ``ros`` (itself or its module) or one using a fixture that starts rclpy; each
must be in that selection, as its file or by its id, so that a new node test cannot
silently run on one distro only.
"""

from __future__ import annotations

import ast
import glob
from pathlib import Path
import re
import sys

ROOT = Path(__file__).resolve().parent.parent
ROS_FIXTURES = {"ros_context", "graph_factory", "private_graph"}


def raw_variable(text: str, name: str) -> str:
    """Return a Makefile variable's definition, its continuation lines joined."""
    match = re.search(rf"^{name}\s*:=(.*)$", text.replace("\\\n", " "), re.M)
    assert match, f"the Makefile defines no {name}"
    return match.group(1)


def make_variable(text: str, name: str) -> list[str]:
    """Return a Makefile variable's words, $(wildcard ...) expanded as make does (from ROOT)."""
    def wildcard(m):
        return " ".join(sorted(str(Path(p).relative_to(ROOT)) for p in glob.glob(str(ROOT / m.group(1)))))

    return re.sub(r"\$\(wildcard ([^)]+)\)", wildcard, raw_variable(text, name)).split()


def _marks_ros(decorators: list[ast.expr]) -> bool:
    return any("mark.ros" in ast.unparse(d) for d in decorators)


def node_tests(path: Path) -> list[str]:
    """Return the tests of a file that need ROS: marked ros (or in a module so marked), or using rclpy's fixtures."""
    tree = ast.parse(path.read_text(), str(path))
    module_marked = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                        and "mark.ros" in ast.unparse(n.value) for n in tree.body)
    found = []
    for fn in tree.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_")):
            continue
        uses = {a.arg for a in fn.args.args} & ROS_FIXTURES
        if module_marked or _marks_ros(fn.decorator_list) or uses:
            found.append(fn.name)
    return found


def uncovered(selection: list[str], files: list[Path]) -> list[str]:
    whole = {s for s in selection if "::" not in s}
    by_id = {s for s in selection if "::" in s}
    missing = []
    for path in files:
        rel = str(path.relative_to(ROOT))
        if rel in whole:
            continue
        missing += [f"{rel}::{name}" for name in node_tests(path) if f"{rel}::{name}" not in by_id]
    return missing


def _jazzy_selection() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    return make_variable(text, "FLOOR_TESTS") + make_variable(text, "JAZZY_TESTS")


def test_every_node_test_runs_on_jazzy_too():
    selection = _jazzy_selection()
    assert [s for s in selection if not (ROOT / s.split("::")[0]).is_file()] == []
    missing = uncovered(selection, sorted((ROOT / "test").glob("test_*.py")))
    assert not missing, "node tests missing from the Makefile's JAZZY_TESTS (make test-floor):\n" + "\n".join(missing)


def test_the_nav2_stand_in_tests_are_picked_up_by_their_glob():
    """Whatever test/test_nav2*.py files there are run on Jazzy, as they land."""
    assert "$(wildcard test/test_nav2*.py)" in raw_variable((ROOT / "Makefile").read_text(), "JAZZY_TESTS")


def test_the_check_finds_a_node_test_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "test").mkdir()
    node = tmp_path / "test" / "test_new_node.py"
    node.write_text("import pytest\n"
                    "def test_plain():\n    pass\n"
                    "@pytest.mark.ros\ndef test_marked():\n    pass\n"
                    "def test_fixture(graph_factory):\n    pass\n")
    module = tmp_path / "test" / "test_module.py"
    module.write_text("import pytest\npytestmark = [pytest.mark.ros]\ndef test_any():\n    pass\n")
    files = [node, module]
    assert uncovered([], files) == ["test/test_new_node.py::test_marked", "test/test_new_node.py::test_fixture",
                                    "test/test_module.py::test_any"]
    assert uncovered(["test/test_new_node.py::test_marked", "test/test_module.py"], files) == [
        "test/test_new_node.py::test_fixture"]
    (tmp_path / "Makefile").write_text("X := a \\\n\tb $(wildcard test/test_new*.py)\n")
    assert make_variable((tmp_path / "Makefile").read_text(), "X") == ["a", "b", "test/test_new_node.py"]
