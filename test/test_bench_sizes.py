"""
`bench` per frame size (bench/sizes.py), the camera shapes and the planner-only node's target.

No timing assertions: the ratios and target lines from made-up fps, and one tiny real run
for the shape of its answer.
"""

from __future__ import annotations

import pytest
from test_bench import positive, TINY, wide_checkpoint

from icnet_ros import bench
from icnet_ros.bench import models as zoo
from icnet_ros.bench.config import CITYSCAPES, FHD, HD, KITTI
from icnet_ros.bench.sizes import plan, size_ratios, sizes_in_turns


def test_the_camera_shapes_run_for_the_shipped_model_and_lraspp_only(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "have_onnxruntime", lambda: True)
    path = str(wide_checkpoint(tmp_path / "s.pt", input_width=320))
    cfg = bench.BenchConfig("cpu", quick=True, models=["lraspp_mobilenet_v3_large", "icnet_r18_w0.5"],
                            node=False).resolved()
    assert cfg.shapes == [KITTI] and cfg.camera_shapes == [FHD]
    assert bench.BenchConfig("cpu", node=False).resolved().camera_shapes == [FHD, HD]
    assert bench.BenchConfig("cpu", shapes=[(48, 64)], node=False).resolved().camera_shapes == []
    planned = zoo.model_plan(cfg, cfg.models, path)
    fhd = {name: [c for c in configs if c[:2] == FHD] for name, configs in planned.items()}
    assert fhd == {"icnet_r18_w0.25": [(*FHD, 1, "fp32"), (*FHD, 1, "fp32+ort"), (*FHD, 1, "int8+ort")],
                   "lraspp_mobilenet_v3_large": [(*FHD, 1, "fp32"), (*FHD, 1, "fp32+ort")],
                   "icnet_r18_w0.5": []}


def test_the_sizes_plan_times_every_backend_at_the_targets_sizes_and_the_default_elsewhere():
    nets = {KITTI: (193, 640), FHD: (360, 640), HD: (360, 640), CITYSCAPES: (320, 640), (193, 640): (193, 640)}
    blocks = plan(["fp32", "fp32+ort", "int8+ort"], nets)
    assert len(blocks) == len(set(blocks))
    assert {p for p, key, _ in blocks if key == "720x1280"} == {"fp32+ort"}
    assert {p for p, key, _ in blocks if key == "1080x1920"} == {"fp32", "fp32+ort", "int8+ort"}
    assert [m for p, key, m in blocks if (p, key) == ("int8+ort", "375x1242")] == ["argmax", "probabilities",
                                                                                   "planner"]
    # frames at the network size: once per precision and network size; a frame at it has no planner block
    assert [m for p, key, m in blocks if (p, key) == ("fp32+ort", "360x640")] == ["argmax", "probabilities"]
    assert ("fp32+ort", "193x640", "planner") not in blocks


def made_up_sizes(prob_fps, net_prob_fps):
    return {"fp32+ort": {
        "375x1242": {"net_size": "193x640", "argmax": 50.0, "probabilities": prob_fps, "planner": 54.0,
                     "network_argmax": 55.0, "network_probabilities": 52.0},
        "1080x1920": {"net_size": "360x640", "argmax": 25.0, "probabilities": 24.0, "planner": 29.0,
                      "network_argmax": 30.0, "network_probabilities": net_prob_fps}}}


def test_size_ratios_and_their_targets():
    report = {"device": "cpu: test", "_notes": "", "models": [], "node": None, "sizes": made_up_sizes(47.0, 28.0)}
    r = size_ratios(report["sizes"])["fp32+ort"]
    assert r["375x1242"] == pytest.approx({"probabilities_vs_argmax": 50 / 47, "full_vs_network": 50 / 55,
                                           "full_vs_network_all_outputs": 47 / 52, "planner_vs_network": 54 / 55})
    assert bench.targets(report) == [
        "CPU, ONNX Runtime (in turns), 375x1242 frames: with the drivable probability 1.064x the arg-max time "
        "(target <= 1.1x): met",
        "CPU, ONNX Runtime (in turns), 1080x1920 frames: with the drivable probability 1.042x the arg-max time "
        "(target <= 1.1x): met",
        "CPU, ONNX Runtime (in turns), 1080x1920 frames vs frames at the network size (360x640), every output: "
        "0.857 (target >= 0.85): met"]
    missed = dict(report, sizes=made_up_sizes(40.0, 30.0))
    assert [t.rsplit(": ", 1)[1] for t in bench.targets(missed)] == ["MISSED", "met", "MISSED"]
    table = bench.markdown(report)
    assert "| ONNX Runtime | 1080x1920 | 360x640 | 25.00 | 24.00 | 29.00 | 30.00 | 28.00 | 1.042 | 0.833 | 0.857 " \
           "| 0.967 |" in table
    assert bench.public(report)["size_ratios"] == size_ratios(report["sizes"])


def test_the_planner_only_node_is_held_to_the_engine_on_network_size_frames():
    node = {"fps": 40.0, "engine_fps": 50.0, "ratio": 0.8, "p50_ms": 30.0, "p99_ms": 35.0, "overload_p99_ms": 40.0,
            "dropped": 3, "infer_ms": 19.0, "process_ms": 20.6}
    details = {"shape": [375, 1242], "rounds": [{"ratio": 0.8}], "rate_hz": 60.0, "rate_factor": 1.2,
               "engine_windows_fps": [50.0, 50.0], "overload_rate_hz": 100.0, "overload_fps": 45.0,
               "overload_received": 100}
    report = {"device": "cpu: test", "_notes": "", "models": [], "node": None, "node_planner": node,
              "_node_planner_details": details}
    assert bench.targets(report) == [
        "planner-only node: 20.60 ms of its own per frame vs the bare engine's 20.00 ms on frames at the network "
        "size = 1.030x (target <= 1.05x): met; fps 40.00 vs 50.00"]
    assert "the planner's outputs only (drivable_area, obstacles, free_space)" in bench.markdown(report)
    slow = dict(report, node_planner=dict(node, process_ms=21.2))
    assert bench.targets(slow)[0].split(": ")[2].startswith("MISSED")


def test_sizes_in_turns_times_every_block(tmp_path):
    path = str(wide_checkpoint(tmp_path / "s.pt", input_width=32))
    out = sizes_in_turns({"checkpoint": path, "sizes": [[48, 64], [24, 32]], "precisions": ["fp32", "fp32+ort"],
                          "quick": True, "schedule": TINY, "rounds": 1})
    assert set(out) == {"fp32+ort"} and set(out["fp32+ort"]) == {"48x64", "24x32"}   # PyTorch: the targets' sizes
    d = out["fp32+ort"]["48x64"]
    assert d["net_size"] == "24x32" and all(positive(v) for k, v in d.items() if k != "net_size")
    assert out["fp32+ort"]["24x32"]["planner"] == out["fp32+ort"]["24x32"]["argmax"]   # at the network size already


def test_the_camera_frames_are_taken_in_turns_by_both_models():
    from icnet_ros.bench.turns import plan as turns_plan

    blocks = turns_plan(["fp32+ort", "int8+ort"], [FHD])
    assert ("fp32+ort", "peer", "1080x1920") in blocks and ("int8+ort", "shipped", "1080x1920") in blocks
    assert ("int8+ort", "peer", "1080x1920") not in blocks and len(blocks) == len(set(blocks)) == 9
    turns = {"fp32+ort": {"shipped_full": 40.0, "shipped_net": 44.0, "peer_full": 12.0, "peer_net": 40.0,
                          "shipped_1080x1920": 30.0, "peer_1080x1920": 5.0}}
    table = bench.markdown({"device": "cpu: test", "_notes": "", "models": [], "node": None, "turns": turns})
    assert "| ONNX Runtime | 1080x1920 | 30.00 | 5.00 | 6.00x |" in table
