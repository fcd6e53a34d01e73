import numpy as np
import pytest
import torch

from icnet_ros.classes import CAMVID
from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint
from icnet_ros.inference.engine import Engine, EngineError, resolve_backend, resolve_device
from icnet_ros.nn.model import icnet


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "m.pt"
    save_checkpoint(path, icnet(CAMVID.num_classes, "r18", 0.25), ModelMeta(CAMVID, "r18", 0.25))
    return path


@pytest.fixture(scope="module", params=["torch", "onnxruntime"])
def engine(checkpoint, request):
    """Every engine test runs on both CPU backends."""
    eng = Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend=request.param)
    assert eng.backend == request.param
    assert (eng.model is None) == (request.param == "onnxruntime")   # no unused PyTorch copy
    return eng


def frame(h=75, w=124, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_single_rgb_frame(engine):
    (r,) = engine.infer(frame())
    assert r.classes.shape == (75, 124) and r.classes.dtype == np.uint8
    assert r.drivable.shape == (75, 124) and r.drivable.dtype == bool
    assert r.drivable_prob is None
    assert r.classes.max() < CAMVID.num_classes
    np.testing.assert_array_equal(r.drivable, r.classes == 3)


def test_bgr_equals_rgb_with_channels_swapped(engine):
    f = frame()
    rgb = engine.infer(f, color="rgb")[0].classes
    bgr = engine.infer(np.ascontiguousarray(f[..., ::-1]), color="bgr")[0].classes
    np.testing.assert_array_equal(rgb, bgr)


def test_batch_matches_single_frames_and_mixed_sizes(engine):
    frames = [frame(seed=1), frame(seed=2), frame(90, 60, seed=3)]
    batch = engine.infer(frames)
    assert [r.classes.shape for r in batch] == [(75, 124), (75, 124), (90, 60)]
    for f, r in zip(frames, batch):
        np.testing.assert_array_equal(engine.infer(f)[0].classes, r.classes)
    stacked = engine.infer(np.stack(frames[:2]))
    assert len(stacked) == 2


def test_drivable_probability(engine):
    (r,) = engine.infer(frame(), probabilities=True)
    assert r.drivable_prob.dtype == np.float32 and r.drivable_prob.shape == (75, 124)
    assert 0.0 <= r.drivable_prob.min() and r.drivable_prob.max() <= 1.0
    # argmax says road exactly where road has the largest probability; where road prob > 0.5 it must be road
    assert r.drivable[r.drivable_prob > 0.5].all()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_input_size_resizes_and_returns_full_resolution(tmp_path, backend):
    path = tmp_path / "s.pt"
    save_checkpoint(path, icnet(CAMVID.num_classes, "r18", 0.25), ModelMeta(CAMVID, "r18", 0.25, input_size=(64, 96)))
    eng = Engine.from_checkpoint(path, device="cpu", backend=backend)
    assert eng.infer(frame(200, 300))[0].classes.shape == (200, 300)


def smooth_frames(n, h, w):
    """Road-like frames (plain noise makes every pixel a near tie between classes)."""
    from icnet_ros.tools.export import sample_frames

    return list(sample_frames(n, h, w))


@pytest.mark.parametrize("input_size", [None, (64, 96)])
def test_onnxruntime_backend_matches_torch(tmp_path, input_size):
    torch.manual_seed(1)
    path = tmp_path / "m.pt"
    save_checkpoint(path, icnet(CAMVID.num_classes, "r18", 0.25),
                    ModelMeta(CAMVID, "r18", 0.25, input_size=input_size))
    ref = Engine.from_checkpoint(path, device="cpu", warmup=False, backend="torch")
    ort = Engine.from_checkpoint(path, device="cpu", warmup=False, backend="onnxruntime")
    frames = smooth_frames(2, 120, 200) + smooth_frames(1, 96, 128)   # two sizes: two traced graphs
    for a, b in zip(ref.infer(frames, probabilities=True), ort.infer(frames, probabilities=True)):
        assert a.classes.shape == b.classes.shape
        assert (a.classes == b.classes).mean() > 0.999
        np.testing.assert_allclose(a.drivable_prob, b.drivable_prob, atol=1e-4)
        np.testing.assert_array_equal(b.drivable, b.classes == 3)
    # one graph per network size: frames are resized to it before the graph (the CPU path)
    assert sorted((h, w) for h, w, _ in ort.traced) == ([(96, 128), (120, 200)] if input_size is None
                                                        else [input_size])
    assert all(seconds > 0 for _, _, seconds in ort.traced) and ref.traced == []
    sizes = 2 if input_size is None else 1
    ort.infer(frames, probabilities=True)                             # sizes seen: nothing new
    assert len(ort.traced) == sizes
    ort.infer(frames)                  # the arg-max graph, without the probability's nodes: once per size
    ort.infer(frames)
    assert len(ort.traced) == 2 * sizes


def test_backend_choice_and_errors(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend("auto", cpu, "fp32") == "onnxruntime"
    assert resolve_backend("auto", cpu, "bf16") == "torch"
    assert resolve_backend("auto", cuda, "fp16") == "torch"
    assert resolve_backend("torch", cpu, "fp32") == "torch"
    with pytest.raises(EngineError, match="backend 'tensorrt' is not one of auto, torch, onnxruntime"):
        resolve_backend("tensorrt", cpu, "fp32")
    with pytest.raises(EngineError, match="runs on the CPU only, not on cuda"):
        resolve_backend("onnxruntime", cuda, "fp16")
    with pytest.raises(EngineError, match="runs fp32 or int8, not bf16"):
        resolve_backend("onnxruntime", cpu, "bf16")
    import icnet_ros.inference.devices as engine_module

    monkeypatch.setattr(engine_module, "_have_onnxruntime", lambda: False)
    assert resolve_backend("auto", cpu, "fp32") == "torch"           # falls back quietly
    with pytest.raises(EngineError, match="needs the onnxruntime package"):
        resolve_backend("onnxruntime", cpu, "fp32")


def test_cuda_without_cuda_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineError, match="device 'cuda' was asked for but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(EngineError, match="CUDA is not available"):
        resolve_device("cuda:1")
    assert resolve_device("auto").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the real no-CUDA path")
def test_engine_with_cuda_on_this_machine_fails(tmp_path):
    path = tmp_path / "m.pt"
    classes = CAMVID.__class__(("a", "b"), ((0, 0, 0), (1, 1, 1)), (1,))
    save_checkpoint(path, icnet(2, "r18", 0.25), ModelMeta(classes, "r18", 0.25))
    with pytest.raises(EngineError, match="CUDA is not available"):
        Engine.from_checkpoint(path, device="cuda")


@pytest.mark.parametrize("bad,msg", [
    ("gpu", "not auto, cpu, cuda or cuda:N"),
    ("cuda:x", "CUDA is not available|not auto, cpu, cuda or cuda:N"),
])
def test_bad_device_names(bad, msg):
    with pytest.raises(EngineError, match=msg):
        resolve_device(bad)


def test_bad_frames_and_options(engine):
    with pytest.raises(EngineError, match="frame 0 must be a uint8 H x W x 3 array, got float32"):
        engine.infer(frame().astype(np.float32))
    with pytest.raises(EngineError, match="frame 1 must be a uint8 H x W x 3 array"):
        engine.infer([frame(), frame()[..., 0]])
    with pytest.raises(EngineError, match="at least 8x8"):
        engine.infer(frame(4, 4))
    with pytest.raises(EngineError, match="no frames"):
        engine.infer([])
    with pytest.raises(EngineError, match="color must be 'rgb' or 'bgr'"):
        engine.infer(frame(), color="hsv")


def test_bad_precision(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, icnet(CAMVID.num_classes, "r18", 0.25), ModelMeta(CAMVID, "r18", 0.25))
    with pytest.raises(EngineError, match="precision 'fp8' is not one of"):
        Engine.from_checkpoint(path, device="cpu", precision="fp8")
    with pytest.raises(EngineError, match="'fp16' needs a CUDA device"):
        Engine.from_checkpoint(path, device="cpu", precision="fp16")
    bf16 = Engine.from_checkpoint(path, device="cpu", precision="bf16", warmup=False)
    assert bf16.infer(frame())[0].classes.shape == (75, 124)


def test_batchnorm_fusion_keeps_outputs_and_callers_model():
    from icnet_ros.inference.engine import fuse_batchnorm

    torch.manual_seed(0)
    model = icnet(4, "r50", 0.25).eval()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        before = model(x)["out"]
        eng = Engine(model, ModelMeta(CAMVID.__class__(("a", "b", "c", "d"), ((0, 0, 0),) * 4, (1,)), "r50", 0.25),
                     device="cpu", warmup=False, backend="torch")
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # caller untouched
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in eng.model.modules())
        assert torch.allclose(eng.model(x)["out"], before, rtol=1e-4, atol=1e-3)
        assert torch.allclose(fuse_batchnorm(model)(x)["out"], before, rtol=1e-4, atol=1e-3)


def test_onnxruntime_keeps_a_bounded_number_of_traced_sizes(checkpoint, monkeypatch):
    from icnet_ros.inference.onnx_runner import OnnxRunner

    monkeypatch.setattr(OnnxRunner, "MAX_SESSIONS", 2)
    eng = Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend="onnxruntime")
    for h in (40, 48, 40, 56):          # 40 is used again, so 48 is the one dropped
        eng.infer(frame(h, 64))
    assert list(eng._onnx._sessions) == [(40, 64, False), (56, 64, False)]     # (size, with probability)
    assert [(h, w) for h, w, _ in eng.traced] == [(40, 64), (48, 64), (56, 64)]


def test_bf16_needs_compute_capability_8_of_the_device_asked_for(monkeypatch):
    """
    Ask the engine's own device, not the current one, whether bf16 is supported.

    is_bf16_supported() says yes on pre-Ampere GPUs, where bf16 is emulated.  The
    engine's device is cuda:1 here.
    """
    from icnet_ros.inference.engine import resolve_precision

    asked = []

    def capability(cc):
        def get(device=None):
            asked.append(device)
            return cc
        return get

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)   # emulation counts there
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability((7, 5)))
    gpu1 = torch.device("cuda", 1)
    with pytest.raises(EngineError, match=r"precision 'bf16' needs a GPU of compute capability 8.0 or newer; "
                                          r"cuda:1 is 7.5, where bf16 is only emulated \(use 'fp16'\)"):
        resolve_precision("bf16", gpu1)
    assert asked == [gpu1]
    assert resolve_precision("auto", gpu1) == "fp16" and resolve_precision("fp16", gpu1) == "fp16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability((8, 0)))
    assert resolve_precision("bf16", gpu1) == "bf16"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_bf16_class_maps_agree_with_fp32(checkpoint):
    fp32 = Engine.from_checkpoint(checkpoint, device="cpu", precision="fp32", warmup=False, backend="torch")
    bf16 = Engine.from_checkpoint(checkpoint, device="cpu", precision="bf16", warmup=False, backend="torch")
    frames = smooth_frames(2, 120, 200)
    for a, b in zip(fp32.infer(frames, probabilities=True), bf16.infer(frames, probabilities=True)):
        assert (a.classes == b.classes).mean() > 0.97        # random weights: many near ties
        assert np.abs(a.drivable_prob - b.drivable_prob).mean() < 0.02


def test_pinned_staging_buffers_are_bounded(checkpoint, monkeypatch):
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self)   # no CUDA here
    eng = Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend="torch")
    first = eng._staging((1, 40, 64, 3))
    for h in range(41, 41 + Engine.MAX_STAGING):
        eng._staging((1, h, 64, 3))
        assert eng._staging((1, 40, 64, 3)) is first          # in use: kept
    assert len(eng._pinned) == Engine.MAX_STAGING
    assert (1, 41, 64, 3) not in eng._pinned and (1, 40, 64, 3) in eng._pinned


def test_threads_reach_onnxruntime_and_torch_explicitly(checkpoint):
    """
    Check that threads go to ONNX Runtime as given and to torch once; 0 leaves torch's default.

    ONNX Runtime gets them in its sessions; torch's intra-op pool is process-global, so
    they are applied to it once, when the engine is built.
    """
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        ort = Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend="onnxruntime", threads=1)
        assert ort._onnx._threads == 1 and torch.get_num_threads() == 2    # torch left alone
        default = Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend="onnxruntime")
        assert default._onnx._threads == 2                                 # 0: torch's count
        Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend="torch")
        assert torch.get_num_threads() == 2
        eng = Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend="torch", threads=1)
        assert torch.get_num_threads() == 1
        eng.infer(frame())
        with pytest.raises(EngineError, match="threads must be 0"):
            Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend="torch", threads=-1)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_cpu_full_frame_path_agrees_with_the_deploy_path(tmp_path, backend):
    """
    The CPU path (uint8 resize down, class maps up by upsample.class_map) against deploy.frame_logits at full size.

    Issue 18's bar: at least 99.5 % of pixels the same class.
    """
    from icnet_ros.inference.deploy import frame_logits

    torch.manual_seed(4)
    model = icnet(CAMVID.num_classes, "r18", 0.25).eval()
    meta = ModelMeta(CAMVID, "r18", 0.25, input_width=96)
    path = save_checkpoint(tmp_path / "w.pt", model, meta)
    engine = Engine.from_checkpoint(path, device="cpu", warmup=False, backend=backend)
    frames = smooth_frames(3, 150, 250)
    with torch.no_grad():
        ref = frame_logits(model, torch.from_numpy(np.stack(frames)), meta).argmax(1).numpy()
    got = np.stack([r.classes for r in engine.infer(frames)])
    assert got.shape == ref.shape
    assert (got == ref).mean() >= 0.995
