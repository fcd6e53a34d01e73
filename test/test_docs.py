"""
The documentation stays true: tables against the code, links against the tree.

- docs/node.md's parameter table and config/icnet.yaml hold exactly the parameters the
  node declares, with their defaults; its topic table holds exactly the topics the node
  creates (a live node over rclpy);
- every option of train, evaluate, export and bench appears in docs/training.md or
  docs/benchmarks.md;
- every relative link and image in README.md, models/README.md and docs/ resolves (files,
  and #anchors against the target's headings as GitHub makes them);
- CHANGELOG.rst is in the ROS format and its latest release is the version in package.xml
  and setup.py.

Each check is a function returning what is wrong, so a test can also show it failing.
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

from conftest import HAVE_RCLPY
from icnet_ros.node_config import Param, PARAMS

ROOT = Path(__file__).resolve().parent.parent
NODE_MD = ROOT / "docs" / "node.md"
DOCS = [ROOT / "README.md", ROOT / "models" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# What every rclpy lifecycle node has on its own, not the package's topics.
ROS_OWN_TOPICS = {"/rosout", "/parameter_events", "~/transition_event"}


# --- reading the docs -------------------------------------------------------------------

def section(text: str, heading: str) -> str:
    """Return the text under a '## heading' up to the next heading of that level or higher."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    assert m, f"no '## {heading}' section"
    return m.group(1)


def table_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows keyed by their first cell's `name` (backticks removed)."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def shown(value) -> str:
    """Write a default as the docs and the YAML do."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)
    return '""' if value == "" else str(value)


# --- the checks ---------------------------------------------------------------------------

def parameter_table_errors(declared: list[Param], rows: dict[str, list[str]]) -> list[str]:
    errors = [f"parameter {p.name!r} is declared by the node but not in docs/node.md"
              for p in declared if p.name not in rows]
    names = {p.name for p in declared}
    errors += [f"docs/node.md documents {n!r}, which the node does not declare" for n in rows if n not in names]
    for p in declared:
        if p.name in rows:
            default, changes = rows[p.name][0].strip("`"), rows[p.name][1]
            if default != shown(p.default):
                errors.append(f"docs/node.md gives {p.name!r} the default {default}, the node {shown(p.default)}")
            if changes != ("read-only" if p.read_only else "live"):
                errors.append(f"docs/node.md says {p.name!r} is {changes!r}, the node says otherwise")
    return errors


def params_file_errors(declared: list[Param], params: dict) -> list[str]:
    errors = [f"config/icnet.yaml lacks {p.name!r}" for p in declared if p.name not in params]
    names = {p.name for p in declared}
    errors += [f"config/icnet.yaml sets {n!r}, which the node does not declare" for n in params if n not in names]
    errors += [f"config/icnet.yaml sets {p.name!r} to {params[p.name]!r}, its default is {p.default!r}"
               for p in declared if p.name in params and params[p.name] != p.default]
    return errors


def option_errors(tool: str, parser, text: str) -> list[str]:
    options = [s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
    return [f"{tool} {o} is not in docs/training.md or docs/benchmarks.md"
            for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]


def slug(heading: str) -> str:
    """Return GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", strip_code(path.read_text()), re.M)}


def strip_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def link_errors(path: Path) -> list[str]:
    errors = []
    text = strip_code(path.read_text())
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text) + re.findall(r'<img [^>]*src="([^"]+)"', text)
    for target in targets:
        if re.match(r"[a-z]+:", target):     # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        where = f"{path.relative_to(ROOT)}: link {target!r}"
        if not dest.exists():
            errors.append(f"{where}: {dest} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            errors.append(f"{where}: no heading #{anchor} in {dest.name}")
    return errors


def changelog_errors(text: str, version: str) -> list[str]:
    lines = text.splitlines()
    title = "Changelog for package icnet_ros"
    if lines[:3] != ["^" * len(title), title, "^" * len(title)]:
        return ["CHANGELOG.rst does not open with the ROS title block (catkin_generate_changelog's)"]
    errors, releases = [], []
    for head, rule in zip(lines, lines[1:]):
        if rule and set(rule) == {"-"}:
            if len(rule) != len(head):
                errors.append(f"CHANGELOG.rst: the underline of {head!r} is not as long as it")
            m = re.fullmatch(r"(\d+\.\d+\.\d+) \((\d{4}-\d\d-\d\d)\)", head)
            if m:
                releases.append(m.group(1))
            elif head != "Forthcoming":
                errors.append(f"CHANGELOG.rst: {head!r} is neither 'X.Y.Z (YYYY-MM-DD)' nor 'Forthcoming'")
    if not releases:
        errors.append("CHANGELOG.rst names no release")
    elif releases[0] != version:
        errors.append(f"CHANGELOG.rst's latest release is {releases[0]}, package.xml says {version}")
    return errors


# --- the tests ----------------------------------------------------------------------------

def test_every_parameter_is_in_the_docs_table_with_its_default():
    assert parameter_table_errors(list(PARAMS), table_rows(section(NODE_MD.read_text(), "Parameters"))) == []


def test_the_parameter_check_fails_on_a_made_up_parameter():
    rows = table_rows(section(NODE_MD.read_text(), "Parameters"))
    made_up = Param("made_up_gain", 1.0, "not real", read_only=False)
    assert parameter_table_errors([*PARAMS, made_up], rows) == [
        "parameter 'made_up_gain' is declared by the node but not in docs/node.md"]
    del rows["overlay_alpha"]
    rows["drivable_threshold"][0] = "`0.5`"
    assert parameter_table_errors(list(PARAMS), rows) == [
        "parameter 'overlay_alpha' is declared by the node but not in docs/node.md",
        "docs/node.md gives 'drivable_threshold' the default 0.5, the node 0.0"]


def test_the_params_file_sets_every_parameter_to_its_default():
    params = yaml.safe_load((ROOT / "config" / "icnet.yaml").read_text())["/**"]["ros__parameters"]
    assert params_file_errors(list(PARAMS), params) == []
    assert params_file_errors([*PARAMS, Param("made_up_gain", 1.0, "")], params) == [
        "config/icnet.yaml lacks 'made_up_gain'"]


@pytest.mark.ros
@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")
def test_the_node_declares_what_the_table_holds_and_creates_only_documented_topics(graph_factory):
    import rclpy

    g = graph_factory()
    plain = rclpy.create_node("plain", namespace=g.ns)      # what rclpy declares on every node
    try:
        own = set(plain.get_parameters_by_prefix(""))    # all names; Humble has no list_parameters
    finally:
        plain.destroy_node()
    declared = set(g.node.get_parameters_by_prefix("")) - own
    documented = set(table_rows(section(NODE_MD.read_text(), "Parameters")))
    assert declared == documented

    def relative(topic: str) -> str:
        for prefix, short in ((f"{g.ns}/icnet/", "~/"), (f"{g.ns}/", "")):
            if topic.startswith(prefix):
                return short + topic[len(prefix):]
        return topic

    created = {relative(e.topic_name) for e in [*g.node.publishers, *g.node.subscriptions]} - ROS_OWN_TOPICS
    table = set(table_rows(section(NODE_MD.read_text(), "Topics")))
    assert created <= table, f"topics the node creates but docs/node.md lacks: {sorted(created - table)}"
    assert {"~/mask", "~/drivable_area", "image", "camera_info", "/diagnostics"} <= created
    # compressed input is the other transport: documented, not created with the defaults
    assert table - created == {"image/compressed"}


def test_every_command_option_is_documented():
    from icnet_ros.bench.cli import parser as bench_parser
    from icnet_ros.tools import evaluate, export, train

    text = (ROOT / "docs" / "training.md").read_text() + (ROOT / "docs" / "benchmarks.md").read_text()
    parsers = {"train": train.build_parser(), "evaluate": evaluate.build_parser(),
               "export": export.build_parser(), "bench": bench_parser()}
    errors = [e for tool, p in parsers.items() for e in option_errors(tool, p, text)]
    assert errors == []
    parsers["train"].add_argument("--made-up-option")
    assert option_errors("train", parsers["train"], text) == [
        "train --made-up-option is not in docs/training.md or docs/benchmarks.md"]


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_every_relative_link_resolves(path):
    assert link_errors(path) == []


def test_the_link_check_finds_a_broken_link_and_anchor(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Top\n## The model's recipe\n[ok](#the-models-recipe) [gone](b.md)\n"
                                   "[bad](#nowhere) ![pic](img/x.png) [web](https://example.org)\n"
                                   "```\n[in code](ignored.md)\n```\n")
    (tmp_path / "img").mkdir()
    errors = link_errors(tmp_path / "a.md")
    assert len(errors) == 3 and "b.md" in errors[0] and "#nowhere" in errors[1] and "x.png" in errors[2]


def test_the_changelog_is_in_the_ros_format_and_matches_the_version():
    version = ET.parse(ROOT / "package.xml").getroot().findtext("version")
    setup = re.search(r'version="([^"]+)"', (ROOT / "setup.py").read_text()).group(1)
    assert setup == version
    text = (ROOT / "CHANGELOG.rst").read_text()
    assert changelog_errors(text, version) == []
    assert changelog_errors(text, "9.9.9") == [f"CHANGELOG.rst's latest release is {version}, package.xml says 9.9.9"]


def test_readme_and_model_card_stay_short():
    for path in (ROOT / "README.md", ROOT / "models" / "README.md"):
        assert len(path.read_text()) <= 12_000, f"{path.relative_to(ROOT)} is over 12,000 characters"
    assert (ROOT / "docs" / "images" / "overview.png").stat().st_size < 300_000
