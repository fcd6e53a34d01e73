"""
`bench` in a tiny mode: the report has the issue's JSON shape and finite, positive numbers.

No timing assertions (speed targets are for the bench itself, on a quiet machine).
"""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path
import subprocess
import sys

import pytest

from conftest import HAVE_RCLPY
from icnet_ros import bench
from icnet_ros.bench import models as zoo
from icnet_ros.optional import ROS

MODEL_KEYS = {"name", "shipped", "height", "width", "net_height", "net_width", "batch", "precision", "fps", "p50_ms",
              "p99_ms", "peak_mb", "error"}
NODE_KEYS = {"fps", "engine_fps", "ratio", "p50_ms", "p99_ms", "overload_p99_ms", "dropped"}
TINY = {"warmup": 1, "min_reps": 2, "min_s": 0.0, "max_s": 1.0, "max_reps": 3}


def positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def check_models(rows, names, shape, batches):
    # on the CPU: PyTorch at every batch, ONNX Runtime ("fp32+ort") at batch 1
    assert [(r["name"], r["batch"], r["precision"]) for r in rows] == [
        (n, b, p) for n in names for b in batches for p in ("fp32", "fp32+ort") if b == 1 or p == "fp32"]
    for r in rows:
        assert set(r) == MODEL_KEYS
        assert (r["height"], r["width"], r["shipped"], r["error"]) == (*shape, False, None)
        assert (r["net_height"], r["net_width"]) == shape          # model-zoo entries: the size given
        assert all(positive(r[k]) for k in ("fps", "p50_ms", "p99_ms", "peak_mb")), r
        assert r["p99_ms"] >= r["p50_ms"]


def test_models_only_in_subprocesses(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "shipped_checkpoint", lambda: None)  # as on a machine without the model
    report = bench.run(bench.BenchConfig("cpu", quick=True, models=["icnet_r18_w0.25", "lraspp_mobilenet_v3_large"],
                                         shapes=[(48, 64)], batches=[1, 2], node=False, schedule=TINY,
                                         checkpoint=None))
    out = bench.public(report)
    assert set(out) == {"device", "models", "node", "soak"}
    assert out["device"].startswith("cpu")
    check_models(out["models"], ["icnet_r18_w0.25", "lraspp_mobilenet_v3_large"], (48, 64), [1, 2])
    json.dumps(out, allow_nan=False)
    assert "| icnet_r18_w0.25 |" in bench.markdown(report)


@pytest.mark.ros
@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")
def test_cli_writes_the_issue_json_with_the_node_and_a_soak(tmp_path, tiny_checkpoint, capsys):
    path = tmp_path / "bench.json"
    assert bench.main(["--device", "cpu", "--json", str(path), "--models", "icnet_r18_w0.25",
                       "--shapes", "48x64", "--batches", "1", "--model", str(tiny_checkpoint),
                       "--node-shape", "48x64", "--node-seconds", "1.5", "--soak", "2",
                       "--domain-id", os.environ["ROS_DOMAIN_ID"]]) == 0
    out = json.loads(path.read_text())
    assert set(out) == {"device", "models", "node", "soak"}
    rows = out["models"]
    # the --model checkpoint (ICNet r18 w0.25) is benched as the shipped model
    assert [r["precision"] for r in rows] == ["fp32", "fp32+ort"]
    assert all(r["shipped"] and r["name"] == "icnet_r18_w0.25" for r in rows)
    assert all(set(r) == MODEL_KEYS and positive(r["fps"]) and positive(r["peak_mb"]) for r in rows)
    node = out["node"]
    assert set(node) == NODE_KEYS
    assert all(positive(node[k]) for k in NODE_KEYS - {"dropped"}), node
    assert isinstance(node["dropped"], int) and node["dropped"] >= 0
    soak = out["soak"]
    assert soak["seconds"] == 2 and soak["crashes"] == 0 and soak["exit_code"] == 0
    assert positive(soak["rss_start_mb"]) and positive(soak["rss_end_mb"]) and soak["frames"] > 0
    printed = capsys.readouterr().out
    assert "| node fps |" in printed and "Soak 2 s" in printed
    assert "3 node windows" in printed and "4 bare-engine windows" in printed
    assert "1.2x the engine's fps" in printed


class FakeEngine:
    """Bare-engine windows whose fps drift, as a noisy shared machine's do."""

    def __init__(self, values):
        self.values, self.calls = list(values), []

    def fps(self, seconds):
        self.calls.append(seconds)
        return self.values.pop(0)


class FakeHarness:
    """A node that answers a fixed share of the frames published, 50 ms later."""

    def __init__(self, share):
        self.share, self.rates, self.sent = share, [], []

    def publish(self, rate, seconds):
        n = round(rate * seconds)
        start = len(self.sent) * 10**9 + 10**12
        stamps = [start + int(i * 1e9 / rate) for i in range(n)]
        self.sent += stamps
        self.rates.append(rate)
        return stamps[0], stamps[-1]

    def masks_between(self, first, last):
        got = [s for s in self.sent if first <= s <= last]
        keep = got[::round(1 / self.share)] if self.share < 1 else got
        return [(s, s + 50_000_000) for s in keep]


def test_node_and_engine_windows_alternate_and_follow_the_engine():
    engine, node = FakeEngine([10.0, 20.0, 10.0, 20.0]), FakeHarness(share=0.5)
    pooled, e_fps, rows = bench.nominal_windows(node, engine, None, seconds=6.0, rounds=3, settle=0.0,
                                                first_fps=10.0)
    # each node window publishes at the fps of the engine window just before it
    assert node.rates == [10.0, 10.0, 20.0]
    assert e_fps == [10.0, 10.0, 20.0, 10.0]
    assert len(engine.calls) == 3 and engine.values == [20.0]
    # every round compares the node with the engine windows on either side of it
    assert [r["engine_fps"] for r in rows] == [10.0, 15.0, 15.0]
    assert [round(r["ratio"], 2) for r in rows] == [0.5, 0.33, 0.67]
    # pooled over the windows: 10 + 10 + 20 masks in 6 s
    assert pooled["frames"] == 40 and pooled["fps"] == pytest.approx(40 / 6)
    assert pooled["p50_ms"] == pytest.approx(50.0) and pooled["p99_ms"] == pytest.approx(50.0)


def test_a_rate_factor_scales_each_window_by_the_engine_before_it():
    engine, node = FakeEngine([20.0, 10.0]), FakeHarness(share=1.0)
    bench.nominal_windows(node, engine, None, seconds=4.0, rounds=2, settle=0.0, first_fps=10.0, factor=1.2)
    assert node.rates == pytest.approx([12.0, 24.0])


def test_a_fixed_rate_is_kept_in_every_window():
    engine, node = FakeEngine([9.0, 11.0]), FakeHarness(share=1.0)
    pooled, e_fps, rows = bench.nominal_windows(node, engine, 12.0, seconds=4.0, rounds=2, settle=0.0,
                                                first_fps=10.0)
    assert node.rates == [12.0, 12.0] and e_fps == [10.0, 9.0, 11.0]
    assert pooled["fps"] == pytest.approx(12.0, rel=0.01)


@pytest.mark.parametrize("argv, message", [
    (["--device", "tpu"], "--device"),
    (["--soak", "-1"], "--soak must be 0 or more"),
    (["--shapes", "375by1242"], "is not HEIGHTxWIDTH"),
    (["--batches", "0"], "--batches must be 1 or more"),
    (["--model", "/nonexistent/model.pt"], "/nonexistent/model.pt does not exist"),
    (["--rate", "0", "--no-node"], "--rate must be positive"),
    (["--rate", "0x", "--no-node"], "--rate must be positive"),
    (["--rate", "fast"], "is not a rate in Hz (15) or a factor"),
])
def test_bad_options_name_themselves(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def wide_checkpoint(path, **meta_args):
    """Return a tiny ICNet checkpoint that runs its network at another size than the frames'."""
    import torch

    from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint
    from icnet_ros.classes import CAMVID

    torch.manual_seed(0)
    meta = ModelMeta(CAMVID, "r18", 0.25, **meta_args)
    return save_checkpoint(path, meta.build(), meta)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graphed_step_run_eagerly_matches_engine_infer(tmp_path, precision):
    """
    Check that the device step the CUDA graph captures, run eagerly on the CPU, gives the same maps.

    The step does the engine's own normalisation (/255, per channel) and resize to the
    network size, so its maps are the engine's.
    """
    import numpy as np

    from icnet_ros.inference.engine import Engine
    from icnet_ros.tools.export import sample_frames

    path = wide_checkpoint(tmp_path / "w.pt", input_width=96)          # 60x80 frames -> network 72x96
    engine = Engine.from_checkpoint(path, device="cpu", precision=precision, warmup=False, backend="torch")
    frames = list(sample_frames(2, 60, 80))
    graphed = bench.GraphedPath(engine, 2, 60, 80, capture=False)
    got = graphed.infer(frames)
    assert got.shape == (2, 60, 80) and got.dtype == np.uint8
    # the engine's CUDA path (run here on the CPU), which the graph stands in for
    for maps, r in zip(got, engine._run(frames, "rgb", False)):
        np.testing.assert_array_equal(maps, r.classes)


def test_a_checkpoint_runs_at_its_network_size_and_a_failed_configuration_is_a_row(tmp_path):
    path = wide_checkpoint(tmp_path / "s.pt", input_width=32)
    spec = {"name": "icnet_r18_w0.25", "device": "cpu", "quick": True, "checkpoint": str(path), "schedule": TINY,
            "configs": [(48, 64, 1, "fp32"), (48, 64, 1, "fp16")]}           # fp16 needs CUDA: fails
    ok, failed = bench.measure_model(spec)
    assert ok["shipped"] and ok["error"] is None and positive(ok["fps"])
    assert (ok["height"], ok["width"], ok["net_height"], ok["net_width"]) == (48, 64, 24, 32)
    assert failed["precision"] == "fp16" and failed["reps"] == 0 and math.isnan(failed["fps"])
    assert failed["error"].startswith("EngineError: precision 'fp16' needs a CUDA device")
    report = {"device": "cpu: test", "_notes": "", "models": [ok, failed], "node": None}
    table = bench.markdown(report)
    assert "| icnet_r18_w0.25 | yes | 48x64 | 24x32 | 1 | fp32 |" in table
    assert "| fp16 | failed: EngineError: precision 'fp16' needs a CUDA device" in table
    out = bench.public(report)
    json.dumps(out, allow_nan=False)
    assert out["models"][1]["fps"] is None and set(out["models"][1]) == MODEL_KEYS


def _ros_imports(path: Path) -> list[tuple[str, bool]]:
    """
    Return (module, at module level) for every import of ROS or icnet_ros.ros in a file.

    ROS: rclpy or a message package.  Relative imports read as icnet_ros.<module>.
    """
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [("icnet_ros." if node.level else "") + (node.module or "")]
        else:
            continue
        found += [(n, node in tree.body) for n in names
                  if n.split(".")[0] in ROS or n.startswith("icnet_ros.ros")]
    return found


def test_the_bench_needs_ros_only_for_its_node_phases():
    """
    Check that no bench module imports ROS, at any level, except the DDS side inside the node phases.

    The DDS side, icnet_ros/ros/bench_harness.py, is imported once; the model timings run
    without rclpy loaded.
    """
    package = Path(bench.__file__).parent
    found = {p.name: _ros_imports(p) for p in sorted(package.glob("*.py"))}
    assert {name: f for name, f in found.items() if f} == {
        "node_phases.py": [("icnet_ros.ros.bench_harness", False)]}
    code = ("import sys, icnet_ros.bench; sys.exit(' '.join(sorted(m for m in sys.modules "
            "if m.split('.')[0] in %r or m.startswith('icnet_ros.ros'))) or None)" % (ROS,))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"importing icnet_ros.bench loads ROS modules: {run.stderr}"
