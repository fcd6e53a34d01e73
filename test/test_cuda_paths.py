"""
The CUDA code paths, run on the CPU with the fake_cuda fixture (fake_cuda.py).

device 'auto' on a GPU machine (engine and train), the bench's fp16+graph row with the
graph captured, drivable probabilities on the CUDA path (the CPU path's semantics, one
copy back), a CPU-only precision or backend under 'auto', and train's resume with AMP's
gradient scaler.  The node over DDS: test_node_cuda.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_bench import TINY, wide_checkpoint
import torch

from conftest import tiny_checkpoint_file
from icnet_ros import bench
from icnet_ros.inference.checkpoint import read_checkpoint
from icnet_ros.inference.engine import Engine, resolve_device
from icnet_ros.tools import train as train_mod
from icnet_ros.tools.export import sample_frames
from synthetic import make_folder


@pytest.fixture(autouse=True)
def one_thread(torch_threads):
    torch.set_num_threads(1)


def test_auto_is_an_indexed_gpu_and_the_engine_runs_frames_on_it(fake_cuda, tmp_path):
    assert resolve_device("auto") == torch.device("cuda", 0) == resolve_device("cuda")
    engine = Engine.from_checkpoint(tiny_checkpoint_file(tmp_path / "t.pt"), device="auto")   # warm-up included
    assert engine.device == torch.device("cuda", 0) and engine.precision == "fp16" and engine.backend == "torch"
    assert fake_cuda.set_device_calls == [torch.device("cuda", 0)]       # the engine's thread, bound to its GPU
    (r,) = engine.infer(sample_frames(1, 48, 64)[0])
    assert r.classes.shape == (48, 64) and r.classes.dtype == np.uint8


def test_a_gpu_beyond_the_device_count_is_refused_as_cuda_refuses_it(fake_cuda):
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        torch.empty(1, device="cuda:1")
    with pytest.raises(ValueError, match="with a specified index"):       # torch's own check, kept
        torch.cuda.set_device(torch.device("cuda"))


@pytest.mark.parametrize("asked", [{"precision": "int8"}, {"backend": "onnxruntime"}])
def test_auto_with_a_cpu_only_precision_or_backend_chooses_the_cpu(fake_cuda, tmp_path, asked):
    from icnet_ros import node_config

    calibration = list(sample_frames(2, 48, 64)) if asked.get("precision") == "int8" else None
    engine = Engine.from_checkpoint(tiny_checkpoint_file(tmp_path / "t.pt"), device="auto", warmup=False,
                                    calibration=calibration, **asked)
    assert engine.device == torch.device("cpu") and engine.backend == "onnxruntime"
    what = f"{next(iter(asked))} '{next(iter(asked.values()))}'"
    assert engine.device_note == f"device 'auto' chose the CPU although CUDA is available: {what} runs on the CPU only"
    node_config._check_engine_options("auto", asked.get("precision", "auto"), asked.get("backend", "auto"))
    assert Engine.from_checkpoint(tmp_path / "t.pt", device="auto", warmup=False).device_note == ""


def sharp_checkpoint(path):
    """Return a tiny checkpoint at input width 96 whose logits span tens: softmax far from linear."""
    from icnet_ros.classes import CAMVID
    from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint

    torch.manual_seed(0)
    meta = ModelMeta(CAMVID, "r18", 0.25, input_width=96)
    model = meta.build()
    with torch.no_grad():
        model.classifier.weight.mul_(50.0)
    return save_checkpoint(path, model, meta)


def test_drivable_probability_on_cuda_is_the_cpu_path_s_and_comes_back_in_one_copy(fake_cuda, tmp_path):
    """
    Softmax at the network size, then the resize: upsample.py's definition, which the CPU path uses.

    The frames run at another size than the network's (48x64 -> 72x96), where the order
    matters; the reference is the CPU path's function on the same network-size logits.
    """
    from icnet_ros.inference.upsample import drivable_probability

    path = sharp_checkpoint(tmp_path / "s.pt")
    gpu = Engine.from_checkpoint(path, device="cuda", precision="fp16", warmup=False)
    gpu.precision = "fp32"          # fp16 autocast on the CPU rounds differently from CUDA's: compare in fp32
    frames = list(sample_frames(2, 48, 64))
    fake_cuda.host_copies = 0
    got = gpu.infer(frames, drivable_threshold=0.5)
    assert fake_cuda.host_copies == 1                   # class maps and probabilities in one copy
    small = gpu.logits(torch.from_numpy(np.stack(frames)), at_frame_size=False).permute(0, 2, 3, 1).numpy()
    assert small.shape[1:3] == (72, 96)
    for r, logits in zip(got, small):
        want = drivable_probability(np.ascontiguousarray(logits), gpu.meta.classes.drivable_ids, (48, 64))
        np.testing.assert_allclose(r.drivable_prob, want, atol=1e-6)
        np.testing.assert_array_equal(r.drivable, r.drivable_prob >= 0.5)
    fake_cuda.host_copies = 0
    gpu.infer(frames)
    assert fake_cuda.host_copies == 1


def test_the_fp16_graph_row_with_the_graph_captured(fake_cuda, tmp_path):
    path = wide_checkpoint(tmp_path / "w.pt", input_width=96)
    spec = {"name": "icnet_r18_w0.25", "device": "cuda:0", "quick": True, "checkpoint": str(path),
            "schedule": TINY, "configs": [(48, 64, 2, "fp16+graph")]}
    (row,) = bench.measure_model(spec)
    assert row["error"] is None and row["reps"] > 0
    engine = Engine.from_checkpoint(path, device="cuda", precision="fp16", warmup=False)
    graphed = bench.GraphedPath(engine, 2, 48, 64, capture=True)
    out = graphed.infer(list(sample_frames(2, 48, 64)))
    assert graphed.graph.replays == 1 and out.shape == (2, 48, 64)
    np.testing.assert_array_equal(out, graphed.dev_out.numpy())    # the replay's maps reached the host


def _train(data, out, *extra):
    return train_mod.main(["--data", data, "--out", str(out), "--model", "r18", "--width", "0.25",
                           "--crop", "48x64", "--batch-size", "2", "--workers", "0", "--threads", "1",
                           "--preview", "0", "--max-iters", "2", *extra])


def test_train_with_device_auto_then_resume_with_the_gradient_scaler(fake_cuda, tmp_path, capfd, monkeypatch):
    images, masks = make_folder(tmp_path / "f", n=2)
    data = f"folder:{images}:{masks}"
    assert _train(data, tmp_path / "run", "--epochs", "1") == 0, capfd.readouterr().err
    assert "on cuda:0" in capfd.readouterr().out
    extra = read_checkpoint(tmp_path / "run" / "last.pt")[2]
    assert extra["scaler"]["scale"] > 0 and extra["cuda_rng"] is not None     # AMP was on; the GPU's RNG saved
    saved = extra["scaler"]

    loaded = []
    real = torch.amp.GradScaler.load_state_dict
    monkeypatch.setattr(torch.amp.GradScaler, "load_state_dict",
                        lambda self, state: loaded.append(state) or real(self, state))
    assert _train(data, tmp_path / "run", "--epochs", "2", "--resume") == 0, capfd.readouterr().err
    assert loaded == [saved]
    assert "saved without AMP" not in capfd.readouterr().out
    assert read_checkpoint(tmp_path / "run" / "last.pt")[2]["epoch"] == 1


def test_torchrun_with_more_processes_than_gpus_is_one_line(fake_cuda, tmp_path, capfd, monkeypatch):
    images, masks = make_folder(tmp_path / "f", n=2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")                  # a second process on a one-GPU machine
    assert _train(f"folder:{images}:{masks}", tmp_path / "run", "--epochs", "1") == 2
    assert capfd.readouterr().err.strip() == (
        "train: error: this process is LOCAL_RANK 1 of a torchrun job but this machine has 1 CUDA device(s); "
        "start at most that many (--nproc_per_node) or train with --device cpu")
