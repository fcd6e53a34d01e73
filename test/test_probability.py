"""
The drivable probability on every backend, against the reference definition, and the network-size maps.

The reference: the softmax of the network-size logits, summed over the drivable classes
(NumPy, ``upsample.drivable_probability``), resized bilinearly to the frame.  Every
backend computes it with its own runtime (``deploy.drivable_prob``: inside the ONNX graph,
or PyTorch on the CPU or on CUDA, faked here by test/fake_cuda.py) from its own logits;
each is held to the reference on those logits within TOL, at the network size and at
the frame's.  Logits spanning tens (a classifier scaled up) keep the softmax far from
linear, and one class set has two drivable classes (the path with a max).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from icnet_ros.classes import CAMVID
from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint
from icnet_ros.inference.engine import Engine
from icnet_ros.inference.upsample import drivable_probability, resize_frames
from icnet_ros.tools.export import sample_frames

TOL = 1e-5          # float32 rounding of a different order of operations
FRAME = (48, 64)    # runs at 72 x 96 (input width 96): the resize back matters


@pytest.fixture(autouse=True)
def one_thread(torch_threads):
    torch.set_num_threads(1)


def sharp_checkpoint(path, drivable_ids=(3,)):
    torch.manual_seed(0)
    meta = ModelMeta(replace(CAMVID, drivable_ids=tuple(drivable_ids)), "r18", 0.25, input_width=96)
    model = meta.build()
    with torch.no_grad():
        model.classifier.weight.mul_(50.0)
    return save_checkpoint(path, model, meta)


def _engine(path, kind, calibration=None):
    if kind == "torch":
        return Engine.from_checkpoint(path, device="cpu", warmup=False, backend="torch")
    if kind == "onnxruntime":
        return Engine.from_checkpoint(path, device="cpu", warmup=False, backend="onnxruntime")
    return Engine.from_checkpoint(path, device="cpu", precision="int8", warmup=False, calibration=calibration)


def _own_logits(engine, frames) -> np.ndarray:
    """N x h x w x C: the network-size logits of the engine's own runtime, for these frames."""
    if engine.device.type == "cuda":        # the frames go down in float on the device
        small = engine.logits(torch.from_numpy(np.stack(frames)), at_frame_size=False)
        return small.permute(0, 2, 3, 1).float().numpy()
    x = np.ascontiguousarray(resize_frames(frames, engine.meta.network_size(*frames[0].shape[:2])))
    if engine._onnx is not None:
        return engine._onnx.run(x, logits=True)[1].transpose(0, 2, 3, 1)
    return engine.logits(torch.from_numpy(x), at_frame_size=False).permute(0, 2, 3, 1).float().numpy()


def _check(engine, frames, results):
    ids = engine.meta.classes.drivable_ids
    for r, logits in zip(results, _own_logits(engine, frames)):
        net = drivable_probability(np.ascontiguousarray(logits), ids, logits.shape[:2])
        np.testing.assert_allclose(r.net_prob, net, atol=TOL)
        np.testing.assert_allclose(r.drivable_prob, drivable_probability(logits.copy(), ids, FRAME), atol=TOL)
        assert r.net_prob.shape == (72, 96) and r.drivable_prob.shape == FRAME


@pytest.mark.parametrize("ids", [(3,), (3, 4)])
@pytest.mark.parametrize("kind", ["torch", "onnxruntime", "int8"])
def test_every_cpu_backend_gives_the_reference_probability(tmp_path, kind, ids):
    frames = list(sample_frames(2, *FRAME, seed=3))
    engine = _engine(sharp_checkpoint(tmp_path / "s.pt", ids), kind, calibration=list(sample_frames(2, 72, 96)))
    results = engine.infer(frames, probabilities=True)
    _check(engine, frames, results)
    plain = engine.infer(frames)                       # the arg-max graph: the same class maps
    for a, b in zip(results, plain):
        np.testing.assert_array_equal(a.classes, b.classes)
        assert b.drivable_prob is None and b.net_prob is None


def test_the_backends_agree_with_each_other(tmp_path):
    path = sharp_checkpoint(tmp_path / "s.pt", (3, 4))
    frames = list(sample_frames(2, *FRAME, seed=4))
    a, b = (_engine(path, k).infer(frames, probabilities=True) for k in ("torch", "onnxruntime"))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.drivable_prob, y.drivable_prob, atol=1e-4)


@pytest.mark.parametrize("ids", [(3,), (3, 4)])
def test_the_cuda_path_gives_the_reference_probability(fake_cuda, tmp_path, ids):
    gpu = Engine.from_checkpoint(sharp_checkpoint(tmp_path / "s.pt", ids), device="cuda", precision="fp16",
                                 warmup=False)
    gpu.precision = "fp32"          # fp16 autocast on the CPU rounds differently from CUDA's: compare in fp32
    frames = list(sample_frames(2, *FRAME, seed=5))
    fake_cuda.host_copies = 0
    results = gpu.infer(frames, probabilities=True)
    assert fake_cuda.host_copies == 1                   # every map of the batch in one copy
    _check(gpu, frames, results)
    fake_cuda.host_copies = 0
    small = gpu.infer(frames, drivable_threshold=0.5, full_size=False)
    assert fake_cuda.host_copies == 1
    for r, s in zip(results, small):
        assert s.classes is None and s.drivable is None and s.drivable_prob is None
        np.testing.assert_array_equal(s.net_classes, r.net_classes)
        np.testing.assert_array_equal(s.net_drivable, s.net_prob >= 0.5)


def test_no_drivable_class_is_probability_zero(tmp_path):
    path = sharp_checkpoint(tmp_path / "s.pt", ())
    for kind in ("torch", "onnxruntime"):
        (r,) = _engine(path, kind).infer(sample_frames(1, *FRAME)[0], probabilities=True)
        assert not r.drivable_prob.any() and not r.drivable.any()
