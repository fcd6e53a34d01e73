"""
Every dependency name users hand to rosdep is a real rosdep key or released ROS package.

``../shared/rosdep/keys.tsv`` lists every key of rosdistro's rosdep files and every
package released for Humble, Jazzy and Kilted; one unknown name makes
``rosdep install --from-paths src`` refuse the whole install.  Checked: every
``*depend`` of package.xml, the keys the README and docs/ name, and the keys the one-line
"missing package" errors suggest (optional.py).
"""

from __future__ import annotations

from pathlib import Path
import re
import xml.etree.ElementTree as ET

import pytest

from icnet_ros import optional

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT.parent / "shared" / "rosdep" / "keys.tsv"
DEPEND_TAGS = ("depend", "build_depend", "build_export_depend", "exec_depend", "test_depend",
               "buildtool_depend", "buildtool_export_depend", "doc_depend")


def known_keys(path: Path = KEYS) -> dict[str, str]:
    if not path.exists():
        pytest.skip(f"{path} is not here (it comes with the project's shared/ folder)")
    keys = {}
    for line in path.read_text().splitlines():
        name, _, where = line.partition("\t")
        if name:
            keys[name] = where
    return keys


def package_xml_deps(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [e.text.strip() for tag in DEPEND_TAGS for e in root.iter(tag)]


def readme_keys(text: str) -> list[str]:
    """Return the rosdep keys the README names: `python3-...` and `...-pip` words in backticks."""
    return sorted(set(re.findall(r"`(python3?-[A-Za-z0-9_.-]+)`", text)))


def unknown(names, keys: dict[str, str]) -> list[str]:
    return [n for n in names if n not in keys or keys[n] == "system-no-ubuntu"]


def test_package_xml_names_only_real_rosdep_keys():
    deps = package_xml_deps(ROOT / "package.xml")
    assert "python3-tensorboard-pip" in deps and "rclpy" in deps
    assert unknown(deps, known_keys()) == []


def test_docs_and_error_messages_name_only_real_rosdep_keys():
    keys = known_keys()
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = readme_keys("\n".join(p.read_text() for p in docs))
    assert "python3-tensorboard-pip" in named
    assert unknown(named, keys) == []
    suggested = [key for _, key in optional.PACKAGES.values() if key] + list(optional.ROS)
    assert unknown(suggested, keys) == []


def test_the_check_names_a_wrong_key(tmp_path):
    keys = tmp_path / "keys.tsv"
    keys.write_text("rclpy\thumble,jazzy,kilted\npython3-numpy\tsystem\nfoo-only-mac\tsystem-no-ubuntu\n")
    xml = tmp_path / "package.xml"
    xml.write_text('<?xml version="1.0"?><package format="3"><name>x</name>'
                   "<exec_depend>rclpy</exec_depend><exec_depend>python-tensorboard-pip</exec_depend>"
                   "<depend>python3-numpy</depend><test_depend>foo-only-mac</test_depend></package>")
    assert unknown(package_xml_deps(xml), known_keys(keys)) == ["python-tensorboard-pip", "foo-only-mac"]
    assert readme_keys("keys `python3-numpy`, `python-tensorboard-pip` and `rclpy`") == [
        "python-tensorboard-pip", "python3-numpy"]
