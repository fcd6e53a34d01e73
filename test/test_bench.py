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
import re
import subprocess
import sys

import pytest

from conftest import HAVE_RCLPY
from icnet_ros import bench
from icnet_ros.bench import models as zoo
from icnet_ros.optional import ROS

MODEL_KEYS = {"name", "shipped", "height", "width", "net_height", "net_width", "batch", "precision", "fps", "p50_ms",
              "p99_ms", "peak_mb", "error", "gflops", "gflops_per_s"}
REPORT_KEYS = {"device", "matmul_gflops", "models", "turns", "ratios", "map", "node", "soak", "sizes", "size_ratios",
               "node_every", "node_planner"}
NODE_KEYS = {"fps", "engine_fps", "ratio", "p50_ms", "p99_ms", "overload_p99_ms", "dropped", "infer_ms", "process_ms"}
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
        assert all(positive(r[k]) for k in ("fps", "p50_ms", "p99_ms", "peak_mb", "gflops", "gflops_per_s")), r
        assert r["p99_ms"] >= r["p50_ms"]
        assert r["gflops_per_s"] == pytest.approx(r["gflops"] * r["fps"])  # fps counts frames, gflops is per frame


def test_models_only_in_subprocesses(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "shipped_checkpoint", lambda: None)  # as on a machine without the model
    report = bench.run(bench.BenchConfig("cpu", quick=True, models=["icnet_r18_w0.25", "lraspp_mobilenet_v3_large"],
                                         shapes=[(48, 64)], batches=[1, 2], node=False, schedule=TINY,
                                         checkpoint=None, map_cost=False))
    out = bench.public(report)
    assert set(out) == REPORT_KEYS
    assert out["device"].startswith("cpu") and positive(out["matmul_gflops"])
    check_models(out["models"], ["icnet_r18_w0.25", "lraspp_mobilenet_v3_large"], (48, 64), [1, 2])
    assert out["ratios"] == {}                       # no shipped model, no 375x1242 frames: nothing to compare
    json.dumps(out, allow_nan=False)
    table = bench.markdown(report)
    assert "| icnet_r18_w0.25 |" in table
    assert f"matmul ceiling {out['matmul_gflops']:.1f} GFLOP/s (fp32 torch.mm 1024x1024," in table


@pytest.mark.ros
@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")
def test_cli_writes_the_issue_json_with_the_node_and_a_soak(tmp_path, tiny_checkpoint, capsys):
    path = tmp_path / "bench.json"
    assert bench.main(["--device", "cpu", "--json", str(path), "--models", "icnet_r18_w0.25",
                       "--shapes", "48x64", "--batches", "1", "--model", str(tiny_checkpoint),
                       "--node-shape", "48x64", "--node-seconds", "1.5", "--soak", "2",
                       "--domain-id", os.environ["ROS_DOMAIN_ID"], "--no-map", "--node-map"]) == 0
    out = json.loads(path.read_text())
    assert set(out) == REPORT_KEYS
    rows = out["models"]
    # the --model checkpoint (ICNet r18 w0.25) is benched as the shipped model
    assert [r["precision"] for r in rows] == ["fp32", "fp32+ort", "int8+ort"]   # int8: calibrated on the samples
    assert all(r["shipped"] and r["name"] == "icnet_r18_w0.25" for r in rows)
    assert all(set(r) == MODEL_KEYS and positive(r["fps"]) and positive(r["peak_mb"]) for r in rows)
    node = out["node"]
    assert set(node) == NODE_KEYS
    assert all(positive(node[k]) for k in NODE_KEYS - {"dropped"}), node
    assert isinstance(node["dropped"], int) and node["dropped"] >= 0
    assert node["infer_ms"] <= node["process_ms"]        # the network is a part of the node's work
    every = out["node_every"]                            # every output, timed on ~/mask as the first row
    assert set(every) == NODE_KEYS and positive(every["fps"]) and positive(every["process_ms"])
    planner = out["node_planner"]                        # the ground outputs only, timed on ~/drivable_area
    assert set(planner) == NODE_KEYS and positive(planner["fps"]) and positive(planner["process_ms"])
    soak = out["soak"]
    assert soak["seconds"] == 2 and soak["crashes"] == 0 and soak["exit_code"] == 0
    assert positive(soak["rss_start_mb"]) and positive(soak["rss_end_mb"]) and soak["frames"] > 0
    printed = capsys.readouterr().out
    assert "| node fps |" in printed and "Soak 2 s" in printed
    assert "3 node windows" in printed and "4 bare-engine windows" in printed
    assert "1.2x the engine's fps" in printed
    assert "Inside the node (its diagnostics, same windows): network" in printed
    assert "(48x64, ~/mask subscribed, ~/drivable_map subscribed too" in printed
    assert "(48x64, every output subscribed (no target" in printed
    assert "the planner's outputs only (drivable_area, obstacles, free_space)" in printed
    assert "node fps >= 0.9 x engine fps (~/mask and ~/drivable_map subscribed): ratio " in printed
    assert "planner-only node: " in printed
    maps = re.search(r"~/drivable_map subscribed too \((\d+) maps received; in the node ([\d.]+) ms a frame to "
                     r"fuse, ([\d.]+) ms a map to render and publish\)", printed)       # --node-map
    assert maps and int(maps.group(1)) > 0 and float(maps.group(2)) > 0 and float(maps.group(3)) > 0
    assert out["map"] is None                                                              # --no-map


def test_in_node_times_average_the_diagnostics_windows_and_skip_empty_ones():
    from icnet_ros.bench.node_phases import in_node_ms

    diags = [{"inference (ms)": "10.0", "processing (ms)": "11.0"}, {"inference (ms)": "nan", "processing (ms)": "nan"},
             {"inference (ms)": "12.0", "processing (ms)": "13.5"}, {"frames received": "3"}]
    assert in_node_ms(diags) == {"infer_ms": 11.0, "process_ms": 12.25}
    assert all(math.isnan(v) for v in in_node_ms([]).values())


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
    for maps, r in zip(got, engine._run(frames, "rgb", False, 0.0, True)):
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


def test_flops_of_a_conv_layer_match_a_hand_count():
    """Check FlopCounterMode's count (a multiply-add is 2 FLOPs) against a hand count, the model left as it was."""
    import torch
    from torch import nn

    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    # 8 output channels x 16 x 20 pixels, each 3 x 3 x 3 multiply-adds
    assert bench.count_flops(conv, 16, 20) == 2 * 8 * (16 * 20) * (3 * 3 * 3)

    class Net(nn.Module):
        """Stride 2 then a 1x1 convolution; a dict out, as the segmentation models give."""

        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 4, 1)

        def forward(self, x):
            return {"out": self.b(torch.relu(self.a(x)))}

    net = Net().train()
    # 8 x 10 pixels after the stride; biases, the ReLU are not counted
    assert bench.count_flops(net, 16, 20) == 2 * 8 * 80 * 27 + 2 * 4 * 80 * 8
    assert net.training and net.a.weight.device.type == "cpu"


def test_flops_are_counted_once_per_model_and_network_size():
    from torch import nn

    from icnet_ros.bench.flops import gflops_per_frame

    key = ("test_flops_cache", None)
    first = gflops_per_frame(key, nn.Conv2d(3, 8, 3, padding=1, bias=False), 16, 20)
    assert first == pytest.approx(2 * 8 * 320 * 27 / 1e9)
    # the same key and size: the count kept, whatever model comes along
    assert gflops_per_frame(key, nn.Conv2d(3, 64, 3), 16, 20) == first
    assert gflops_per_frame(key, nn.Conv2d(3, 8, 3, padding=1, bias=False), 8, 20) == pytest.approx(first / 2)


def test_the_matmul_rate_is_measured_with_the_models_thread_count():
    import torch

    m = bench.matmul_rate("cpu", n=128, reps=2)
    assert m["dtype"] == "fp32" and m["n"] == 128 and m["reps"] == 2 and positive(m["gflops"])
    assert m["threads"] == torch.get_num_threads()


def test_equal_terms_rows_are_planned(tmp_path, monkeypatch):
    """
    Check that with a shipped network at another size, every model also runs frames at that size.

    The shipped model's network size for KITTI frames comes from its checkpoint (input_width
    320: 375x1242 -> 97x320); at the smallest batch, with the same precisions.
    """
    import dataclasses

    monkeypatch.setattr(zoo, "have_onnxruntime", lambda: True)
    path = str(wide_checkpoint(tmp_path / "s.pt", input_width=320))
    assert zoo.equal_terms_shape(path) == (97, 320) and zoo.equal_terms_shape(None) is None
    cfg = bench.BenchConfig("cpu", quick=True, models=["lraspp_mobilenet_v3_large"], batches=[1, 2],
                            node=False, camera_shapes=[]).resolved()
    kitti = [(375, 1242, 1, "fp32"), (375, 1242, 1, "fp32+ort"), (375, 1242, 2, "fp32")]
    both = [(97, 320, 1, "fp32"), (97, 320, 1, "fp32+ort")] + kitti
    shipped = [(97, 320, 1, "fp32"), (97, 320, 1, "fp32+ort"), (97, 320, 1, "int8+ort"),
               (375, 1242, 1, "fp32"), (375, 1242, 1, "fp32+ort"), (375, 1242, 1, "int8+ort"), (375, 1242, 2, "fp32")]
    assert zoo.model_plan(cfg, cfg.models, path) == {"icnet_r18_w0.25": shipped, "lraspp_mobilenet_v3_large": both}
    # none without a shipped model, without 375x1242 frames, or with a network at the frame size
    assert zoo.model_plan(cfg, cfg.models) == {"lraspp_mobilenet_v3_large": kitti}
    small = dataclasses.replace(cfg, shapes=[(48, 64)], batches=[1])
    small_plan = zoo.model_plan(small, cfg.models, path)
    assert small_plan["lraspp_mobilenet_v3_large"] == [(48, 64, 1, "fp32"), (48, 64, 1, "fp32+ort")]
    full = str(wide_checkpoint(tmp_path / "f.pt", input_width=1242))
    assert zoo.model_plan(cfg, cfg.models, full)["lraspp_mobilenet_v3_large"] == kitti


def test_a_shipped_network_on_equal_terms_gives_every_ratio(tmp_path, monkeypatch):
    """Check the whole run: the equal-terms rows timed, their FLOPs at the net size, the ratios and targets."""
    monkeypatch.setattr(zoo, "have_onnxruntime", lambda: False)      # PyTorch only: a shorter test
    path = str(wide_checkpoint(tmp_path / "s.pt", input_width=320))
    report = bench.run(bench.BenchConfig("cpu", quick=True, models=["lraspp_mobilenet_v3_large"], node=False,
                                         schedule=TINY, checkpoint=path, isolate=False, camera_shapes=[],
                                         map_cost=False))
    out = bench.public(report)
    rows = {(r["name"], r["height"]): r for r in out["models"]}
    assert [(r["name"], r["height"], r["width"], r["net_height"], r["net_width"]) for r in out["models"]] == [
        ("icnet_r18_w0.25", 97, 320, 97, 320), ("icnet_r18_w0.25", 375, 1242, 97, 320),
        ("lraspp_mobilenet_v3_large", 97, 320, 97, 320), ("lraspp_mobilenet_v3_large", 375, 1242, 375, 1242)]
    assert all(set(r) == MODEL_KEYS and r["error"] is None and positive(r["gflops_per_s"]) for r in out["models"])
    # the FLOPs are the network's, at the size it runs: the shipped rows share theirs, LR-ASPP's grow with the frame
    assert rows[("icnet_r18_w0.25", 97)]["gflops"] == rows[("icnet_r18_w0.25", 375)]["gflops"]
    assert rows[("lraspp_mobilenet_v3_large", 97)]["gflops"] < rows[("lraspp_mobilenet_v3_large", 375)]["gflops"]
    assert list(out["ratios"]) == ["fp32"]
    # the ratios: the same four engines timed again in turns, not the rows timed apart
    turns = out["turns"]["fp32"]
    assert set(out["turns"]) == {"fp32"} and all(positive(v) for v in turns.values())
    assert set(turns) == {"shipped_full", "shipped_net", "peer_full", "peer_net"}
    r = out["ratios"]["fp32"]
    assert r["in_turns"] is True
    assert r["same_frames"] == pytest.approx(turns["shipped_full"] / turns["peer_full"])
    assert r["same_network_size"] == pytest.approx(turns["shipped_net"] / turns["peer_net"])
    assert r["full_frame_vs_network"] == pytest.approx(turns["shipped_full"] / turns["shipped_net"])
    # per frame size, in turns: arg-max, probabilities, the planner's maps; frames at the network size
    sizes = out["sizes"]["fp32"]["375x1242"]
    assert sizes["net_size"] == "97x320" and all(positive(v) for k, v in sizes.items() if k != "net_size")
    assert out["size_ratios"]["fp32"]["375x1242"]["probabilities_vs_argmax"] == pytest.approx(
        sizes["argmax"] / sizes["probabilities"])
    lines = bench.targets(report)
    assert [t.split(":")[0] for t in lines] == ["CPU, PyTorch (in turns), same frames (375x1242)",
                                                "CPU, PyTorch (in turns), same network size (97x320 frames for both)",
                                                "CPU, PyTorch (in turns), full frame vs network size",
                                                "CPU, PyTorch (in turns), 375x1242 frames"]
    assert "| PyTorch | 375x1242 | 97x320 |" in bench.markdown(report)
    # nothing to take in turns without LR-ASPP among the models
    alone = bench.run(bench.BenchConfig("cpu", quick=True, models=["icnet_r18_w0.25"], node=False,
                                        schedule=TINY, checkpoint=path, isolate=False, camera_shapes=[]))
    assert alone["turns"] is None


def made_up_row(name, size, precision, fps, net=None, shipped=False, batch=1, error=None):
    """Return a model row as measure_model gives it, 2 GFLOP per frame."""
    net = net or size
    return {"name": name, "shipped": shipped, "height": size[0], "width": size[1], "net_height": net[0],
            "net_width": net[1], "batch": batch, "precision": precision, "fps": fps, "p50_ms": 1000 / fps,
            "p99_ms": 1100 / fps, "peak_mb": 900.0, "reps": 10, "gflops": 2.0, "gflops_per_s": 2.0 * fps,
            "error": error}


def test_the_targets_state_each_ratio_per_backend_and_whether_it_is_met():
    ship, lr, kitti, net = "icnet_effl0_w0.5", "lraspp_mobilenet_v3_large", (375, 1242), (193, 640)
    rows = [
        made_up_row(ship, net, "fp32", 40.0, shipped=True), made_up_row(ship, kitti, "fp32", 30.0, net, True),
        made_up_row(lr, net, "fp32", 50.0), made_up_row(lr, kitti, "fp32", 25.0),
        made_up_row(ship, net, "fp32+ort", 84.0, shipped=True), made_up_row(ship, kitti, "fp32+ort", 80.0, net, True),
        made_up_row(lr, net, "fp32+ort", 64.0), made_up_row(lr, kitti, "fp32+ort", 32.0),
        made_up_row(lr, kitti, "fp32", float("nan"), batch=4, error="RuntimeError: out of memory"),
        # a later backend, with no LR-ASPP row to compare: named as it is, only its own ratio
        made_up_row(ship, net, "int8+ort", 150.0, shipped=True), made_up_row(ship, kitti, "int8+ort", 140.0, net, True),
        made_up_row(ship, kitti, "fp8+xyz", 160.0, net, True),
    ]
    report = {"device": "cpu: test", "_notes": "", "matmul_gflops": 100.0, "models": rows, "node": None,
              "_matmul": {"gflops": 100.0, "dtype": "fp32", "n": 2048, "reps": 5, "threads": 2}}
    assert bench.targets(report) == [
        "CPU, PyTorch, same frames (375x1242): shipped (network at 193x640) 30.00 fps vs LR-ASPP 25.00 fps "
        "= 1.20x (target >= 1.5x): MISSED",
        "CPU, PyTorch, same network size (193x640 frames for both): shipped 40.00 fps vs LR-ASPP 50.00 fps "
        "= 0.80x (aim >= 1x): reported",
        "CPU, PyTorch, full frame vs network size: shipped 30.00 fps at 375x1242 vs 40.00 fps on 193x640 frames "
        "= 0.75 (target >= 0.9): MISSED",
        "CPU, ONNX Runtime, same frames (375x1242): shipped (network at 193x640) 80.00 fps vs LR-ASPP 32.00 fps "
        "= 2.50x (target >= 1.5x): met",
        "CPU, ONNX Runtime, same network size (193x640 frames for both): shipped 84.00 fps vs LR-ASPP 64.00 fps "
        "= 1.31x (aim >= 1x): met",
        "CPU, ONNX Runtime, full frame vs network size: shipped 80.00 fps at 375x1242 vs 84.00 fps on 193x640 "
        "frames = 0.95 (target >= 0.9): met",
        "CPU, ONNX Runtime INT8, full frame vs network size: shipped 140.00 fps at 375x1242 vs 150.00 fps on "
        "193x640 frames = 0.93 (target >= 0.9): met",
        "CPU, INT8 vs fp32 ONNX Runtime at 375x1242: 1.75x (an option worth shipping at >= 1.3x): met"]
    out = bench.public(report)
    json.dumps(out, allow_nan=False)
    assert list(out["ratios"]) == ["fp32", "fp32+ort", "int8+ort", "fp8+xyz"]
    assert out["ratios"]["fp32"] == pytest.approx({"same_frames": 1.2, "same_network_size": 0.8,
                                                   "full_frame_vs_network": 0.75, "in_turns": False})
    assert out["ratios"]["fp32+ort"] == pytest.approx({"same_frames": 2.5, "same_network_size": 84 / 64,
                                                       "full_frame_vs_network": 80 / 84, "in_turns": False})
    assert out["ratios"]["int8+ort"] == {"same_frames": None, "same_network_size": None, "in_turns": False,
                                         "full_frame_vs_network": pytest.approx(140 / 150),
                                         "vs_fp32": pytest.approx(140 / 80)}
    assert out["ratios"]["fp8+xyz"] == {"same_frames": None, "same_network_size": None,
                                        "full_frame_vs_network": None, "in_turns": False}
    table = bench.markdown(report)
    assert table.startswith("Device: cpu: test; matmul ceiling 100.0 GFLOP/s (fp32 torch.mm 2048x2048, "
                            "2 torch threads, best of 5).")
    assert "| fps | GFLOP | GFLOP/s | p50 ms |" in table
    assert f"| {ship} | yes | 375x1242 | 193x640 | 1 | fp32 | 30.00 | 2.00 | 60.0 | 33.3 |" in table
    assert "| int8+ort | 140.00 | 2.00 | 280.0 |" in table and "| fp8+xyz | 160.00 |" in table
    assert "| 4 | fp32 | failed: RuntimeError: out of memory | 2.00 | - |" in table
    assert table.endswith("1.75x (an option worth shipping at >= 1.3x): met")


def test_ratios_come_from_the_engines_timed_in_turns_where_they_were():
    """The rows (timed apart) say 1.2x / 0.75; the same engines in turns say otherwise, and win."""
    ship, lr, kitti, net = "icnet_effl0_w0.5", "lraspp_mobilenet_v3_large", (375, 1242), (193, 640)
    rows = [made_up_row(ship, net, "fp32", 40.0, shipped=True), made_up_row(ship, kitti, "fp32", 30.0, net, True),
            made_up_row(lr, net, "fp32", 50.0), made_up_row(lr, kitti, "fp32", 25.0),
            made_up_row(ship, net, "fp32+ort", 84.0, shipped=True),
            made_up_row(ship, kitti, "fp32+ort", 80.0, net, True),
            made_up_row(lr, net, "fp32+ort", 64.0), made_up_row(lr, kitti, "fp32+ort", 32.0),
            made_up_row(ship, kitti, "int8+ort", 90.0, net, True), made_up_row(ship, net, "int8+ort", 95.0, net, True)]
    turns = {"fp32": {"shipped_full": 36.0, "shipped_net": 38.0, "peer_full": 20.0, "peer_net": 40.0},
             "fp32+ort": {"shipped_full": 72.0, "shipped_net": 80.0, "peer_full": 24.0, "peer_net": 60.0},
             "int8+ort": {"shipped_full": 108.0, "shipped_net": 120.0}}
    report = {"device": "cpu: test", "_notes": "", "models": rows, "turns": turns, "node": None}
    r = bench.ratios(report)
    assert r["fp32"] == pytest.approx({"same_frames": 1.8, "same_network_size": 0.95,
                                       "full_frame_vs_network": 36 / 38, "in_turns": True})
    assert r["fp32+ort"] == pytest.approx({"same_frames": 3.0, "same_network_size": 80 / 60,
                                           "full_frame_vs_network": 0.9, "in_turns": True})
    assert r["int8+ort"]["vs_fp32"] == pytest.approx(1.5) and r["int8+ort"]["same_frames"] is None
    lines = bench.targets(report)
    assert lines[0] == ("CPU, PyTorch (in turns), same frames (375x1242): shipped (network at 193x640) 36.00 fps "
                        "vs LR-ASPP 20.00 fps = 1.80x (target >= 1.5x): met")
    assert lines[-1] == "CPU, INT8 vs fp32 ONNX Runtime (in turns) at 375x1242: 1.50x (an option worth shipping " \
                        "at >= 1.3x): met"
    table = bench.markdown(report)
    assert "| backend | shipped 375x1242 | shipped 193x640 | LR-ASPP 375x1242 | LR-ASPP 193x640 |" in table
    assert "| ONNX Runtime INT8 | 108.00 | 120.00 | - | - |" in table
    # the rows keep their own fps in the table: only the ratios are the turns'
    assert f"| {ship} | yes | 375x1242 | 193x640 | 1 | fp32 | 30.00 |" in table


def test_the_turns_plan_rotates_every_engine_and_gives_int8_to_the_shipped_model_only():
    from icnet_ros.bench.turns import plan

    blocks = plan(["fp32", "fp32+ort", "int8+ort"])
    assert len(blocks) == 10 and len(set(blocks)) == 10
    assert ("int8+ort", "peer", "full") not in blocks and ("int8+ort", "shipped", "net") in blocks


def test_without_a_shipped_model_the_node_default_stands_in_on_the_same_frames_only():
    kitti = (375, 1242)
    report = {"device": "cpu: test", "_notes": "", "node": None, "models": [
        made_up_row("icnet_r18_w0.5", kitti, "fp32", 30.0),
        made_up_row("lraspp_mobilenet_v3_large", kitti, "fp32", 15.0)]}
    assert bench.targets(report) == [
        "CPU, PyTorch, same frames (375x1242): icnet_r18_w0.5 (random weights, no shipped model yet) 30.00 fps "
        "vs LR-ASPP 15.00 fps = 2.00x (target >= 1.5x): met"]
    # the network runs the frames as they are: on equal terms already
    assert bench.ratios(report) == {"fp32": {"same_frames": 2.0, "same_network_size": 2.0,
                                             "full_frame_vs_network": 1.0, "in_turns": False}}
    assert bench.markdown(report).startswith("Device: cpu: test. ")      # no matmul measured: no ceiling
    assert bench.ratios(dict(report, device="cuda:0: test")) == {}      # the ratios are CPU targets


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


def test_int8_rows_are_planned_for_the_shipped_model_and_compared_with_fp32(tmp_path):
    from icnet_ros.bench.config import BenchConfig
    from icnet_ros.bench.models import model_plan
    from icnet_ros.bench.report import ratios, targets

    ship = wide_checkpoint(tmp_path / "s.pt", input_width=320)
    cfg = BenchConfig(device="cpu", quick=True, models=["lraspp_mobilenet_v3_large"], node=False).resolved()
    plan = model_plan(cfg, cfg.models, str(ship))
    shipped = next(iter(plan))
    assert {c[3] for c in plan[shipped]} >= {"fp32", "fp32+ort", "int8+ort"}
    assert "int8+ort" not in {c[3] for c in plan["lraspp_mobilenet_v3_large"]}

    def row(precision, fps, h=375, w=1242):
        return {"name": shipped, "shipped": True, "height": h, "width": w, "net_height": 97, "net_width": 320,
                "batch": 1, "precision": precision, "fps": fps, "error": None}

    rows = [row("fp32+ort", 50.0), row("int8+ort", 70.0),
            row("fp32+ort", 55.0, 97, 320), row("int8+ort", 80.0, 97, 320)]
    report = {"device": "cpu: test", "models": rows}
    assert ratios(report)["int8+ort"]["vs_fp32"] == pytest.approx(1.4)
    assert "CPU, INT8 vs fp32 ONNX Runtime at 375x1242: 1.40x (an option worth shipping at >= 1.3x): met" in \
        targets(report)
    report["models"][1]["fps"] = 60.0
    assert any(t.endswith("1.20x (an option worth shipping at >= 1.3x): MISSED") for t in targets(report))


def test_the_map_phase_times_each_phase_and_shows_memory_fixed(monkeypatch):
    from icnet_ros.bench import map_cost

    row = map_cost.drive(40.0, 0.1, 60, shape=(94, 310))
    assert row["cells"] == 400 * 400 and row["frames"] == 60 and row["map_mb"] == pytest.approx(400 * 400 * 8 / 2**20)
    assert set(row["ms"]) == {"homography", "move", "fuse", "render"} and all(positive(v) for v in row["ms"].values())
    assert row["total_ms"] >= row["ms"]["fuse"] and row["cells_fused"] > 1000
    assert row["rss_end_mb"] - row["rss_start_mb"] < 5.0
    monkeypatch.setattr(map_cost, "drive", lambda size, res, frames: {**row, "size_m": size, "resolution_m": res})
    report = {"map": map_cost.map_report(quick=True)["map"], "models": [], "device": "cpu", "turns": None}
    lines = map_cost.map_lines(report)
    assert "| 40 m at 0.1 m | 160000 |" in "\n".join(lines) and "| 80 m at 0.1 m |" in "\n".join(lines)
    target = bench.targets(report)
    assert len(target) == 1 and target[0].startswith("drivable map 40 x 40 m at 0.1 m: ")
    assert target[0].endswith(": met" if row["total_ms"] <= map_cost.TARGET_MS else ": MISSED")
    json.dumps(bench.public({**report, "_notes": ""}), allow_nan=False)


def test_the_map_phase_alone_refuses_too_few_frames():
    run = subprocess.run([sys.executable, "-m", "icnet_ros.bench.map_cost", "--frames", "5"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1].endswith("--frames must be 20 or more, got 5")
