"""
The CUDA paths on a real GPU (marked cuda: skipped without one; ``make gpu-check`` runs them).

What the fake_cuda fixture cannot show: real kernels, asynchrony, CUDA graph replay,
fp16 arithmetic, bf16 capability.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_bench import wide_checkpoint
import torch

from conftest import tiny_checkpoint_file
from icnet_ros import bench
from icnet_ros.inference.checkpoint import read_checkpoint
from icnet_ros.inference.engine import Engine, EngineError
from icnet_ros.inference.upsample import drivable_probability
from icnet_ros.tools import train as train_mod
from icnet_ros.tools.export import sample_frames
from synthetic import make_folder

pytestmark = pytest.mark.cuda


def test_auto_runs_on_the_gpu_and_matches_the_cpu(tmp_path):
    path = wide_checkpoint(tmp_path / "w.pt", input_width=96)
    gpu = Engine.from_checkpoint(path, device="auto", precision="fp32")
    cpu = Engine.from_checkpoint(path, device="cpu", precision="fp32", warmup=False, backend="torch")
    assert gpu.device == torch.device("cuda", 0)
    frames = list(sample_frames(3, 48, 64))
    for g, c in zip(gpu.infer(frames, probabilities=True), cpu.infer(frames, probabilities=True)):
        assert np.mean(g.classes == c.classes) > 0.99          # the inputs are resized apart (float / uint8)
        assert np.abs(g.drivable_prob - c.drivable_prob).max() < 0.05


def test_probability_is_the_softmax_at_the_network_size_then_resized(tmp_path):
    gpu = Engine.from_checkpoint(wide_checkpoint(tmp_path / "w.pt", input_width=96), device="cuda",
                                 precision="fp32")
    frames = list(sample_frames(2, 48, 64))
    got = gpu.infer(frames, probabilities=True)
    small = gpu.logits(torch.from_numpy(np.stack(frames)).cuda(), at_frame_size=False)
    for r, logits in zip(got, small.permute(0, 2, 3, 1).float().cpu().numpy()):
        want = drivable_probability(np.ascontiguousarray(logits), gpu.meta.classes.drivable_ids, (48, 64))
        np.testing.assert_allclose(r.drivable_prob, want, atol=1e-4)


def test_fp16_agrees_with_fp32_and_bf16_follows_the_capability(tmp_path):
    path = tiny_checkpoint_file(tmp_path / "t.pt")
    frames = list(sample_frames(2, 96, 128))
    fp32 = [r.classes for r in Engine.from_checkpoint(path, device="cuda", precision="fp32").infer(frames)]
    fp16 = [r.classes for r in Engine.from_checkpoint(path, device="cuda", precision="fp16").infer(frames)]
    assert np.mean([np.mean(a == b) for a, b in zip(fp32, fp16)]) > 0.98
    if torch.cuda.get_device_capability(0) >= (8, 0):
        Engine.from_checkpoint(path, device="cuda", precision="bf16").infer(frames)
    else:
        with pytest.raises(EngineError, match="compute capability 8.0"):
            Engine.from_checkpoint(path, device="cuda", precision="bf16")


def test_the_captured_graph_replays_new_frames(tmp_path):
    engine = Engine.from_checkpoint(wide_checkpoint(tmp_path / "w.pt", input_width=96), device="cuda",
                                    precision="fp16", warmup=False)
    graphed = bench.GraphedPath(engine, 2, 48, 64, capture=True)
    for seed in (1, 2):
        frames = list(sample_frames(2, 48, 64, seed=seed))
        got = graphed.infer(frames).copy()
        for maps, r in zip(got, engine.infer(frames)):
            assert np.mean(maps == r.classes) > 0.999


def test_infer_from_several_threads_runs_on_the_engine_s_thread(tmp_path):
    engine = Engine.from_checkpoint(tiny_checkpoint_file(tmp_path / "t.pt"), device="cuda")
    frame = sample_frames(1, 48, 64)[0]
    want = engine.infer(frame)[0].classes
    got = []
    threads = [threading.Thread(target=lambda: got.append(engine.infer(frame)[0].classes)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 3 and all(np.array_equal(g, want) for g in got)


def test_train_with_amp_then_resume(tmp_path):
    images, masks = make_folder(tmp_path / "f", n=4)
    args = ["--data", f"folder:{images}:{masks}", "--out", str(tmp_path / "run"), "--model", "r18", "--width",
            "0.25", "--crop", "48x64", "--batch-size", "2", "--workers", "0", "--preview", "0", "--max-iters", "3",
            "--device", "auto"]
    assert train_mod.main([*args, "--epochs", "1"]) == 0
    assert read_checkpoint(tmp_path / "run" / "last.pt")[2]["scaler"]["scale"] > 0
    assert train_mod.main([*args, "--epochs", "2", "--resume"]) == 0
    assert read_checkpoint(tmp_path / "run" / "last.pt")[2]["iteration"] == 4
