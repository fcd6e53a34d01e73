import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from icnet_ros.classes import CAMVID
from icnet_ros.inference.checkpoint import IMAGENET_MEAN, IMAGENET_STD, load_checkpoint, ModelMeta, save_checkpoint
from icnet_ros.inference.engine import Engine
from icnet_ros.nn.model import icnet
from icnet_ros.tools.export import main as export_main
from icnet_ros.tools.export import sample_frames

torch.set_num_threads(1)
H, W = 64, 96


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = icnet(CAMVID.num_classes, "r18", 0.25)
    # a few train-mode passes give the BatchNorm layers non-trivial statistics
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, H, W))
    path = tmp_path_factory.mktemp("ck") / "m.pt"
    save_checkpoint(path, model, ModelMeta(CAMVID, "r18", 0.25))
    return path


def engine_classes(checkpoint, frames):
    eng = Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend="torch")
    return np.stack([r.classes for r in eng.infer(list(frames))])


def test_onnx_has_dynamic_batch_and_matches_pytorch(checkpoint, tmp_path, capfd):
    import onnx
    import onnxruntime as ort

    out = tmp_path / "m.onnx"
    rc = export_main(["--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out),
                      "--height", str(H), "--width", str(W)])
    text = capfd.readouterr().out
    assert rc == 0 and "% equal to PyTorch's" in text
    assert f"export: input frames {W}x{H} (width x height): --height/--width\n" in text
    graph = onnx.load(str(out))
    meta = json.loads({p.key: p.value for p in graph.metadata_props}["icnet_ros"])
    assert meta["classes"]["names"] == list(CAMVID.names)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch" and sess.get_inputs()[0].shape[1:] == [H, W, 3]
    frames = sample_frames(3, H, W, seed=4)
    logits, classes, prob = sess.run(None, {"image": frames})
    assert [o.name for o in sess.get_outputs()] == ["logits", "classes", "drivable_prob"]
    assert logits.shape == (3, CAMVID.num_classes, H, W) and classes.dtype == np.uint8
    assert prob.shape == (3, H, W) and prob.dtype == np.float32
    ref = engine_classes(checkpoint, frames)
    assert (classes == ref).mean() >= 0.999
    eng = Engine.from_checkpoint(checkpoint, device="cpu", warmup=False, backend="torch")
    for p, r in zip(prob, eng.infer(list(frames), probabilities=True)):     # the engine's numbers
        np.testing.assert_allclose(p, r.drivable_prob, atol=1e-5)
    # logits agree too, not only their argmax
    model, _, _ = load_checkpoint(checkpoint)
    x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(x)["out"].numpy(), rtol=1e-3, atol=1e-3)
    one = sess.run(["classes"], {"image": frames[:1]})[0]
    np.testing.assert_array_equal(one[0], classes[0])


@pytest.mark.parametrize("variant, resize", [("r18", {"input_size": (48, 64)}), ("effl0", {"input_width": 72})])
def test_a_model_with_an_input_size_exports_the_engines_resizes(tmp_path, capfd, variant, resize):
    import onnxruntime as ort

    torch.manual_seed(2)
    path = tmp_path / "s.pt"
    save_checkpoint(path, icnet(CAMVID.num_classes, variant, 0.25), ModelMeta(CAMVID, variant, 0.25, **resize))
    out = tmp_path / "s.onnx"
    assert export_main(["--checkpoint", str(path), "--format", "onnx", "--out", str(out),
                        "--height", str(H), "--width", str(W)]) == 0
    frames = sample_frames(2, H, W, seed=5)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    classes = sess.run(["classes"], {"image": frames})[0]
    assert classes.shape == (2, H, W)             # network at 48x64 (or 72 wide), answer at the frame's size
    # the engine resizes the frame as uint8 (OpenCV) before its graph, the exported graph in float
    assert (classes == engine_classes(path, frames)).mean() >= 0.995


def test_torchscript_loads_without_the_package(checkpoint, tmp_path, capfd):
    out = tmp_path / "m.ts"
    rc = export_main(["--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out),
                      "--height", str(H), "--width", str(W)])
    assert rc == 0, capfd.readouterr().err
    frames = sample_frames(2, H, W, seed=9)
    np.save(tmp_path / "frames.npy", frames)
    script = f"""
import sys
sys.modules["icnet_ros"] = None  # importing the package would fail
import json, numpy as np, torch
files = {{"icnet_ros.json": ""}}
m = torch.jit.load({str(out)!r}, _extra_files=files)
logits, classes, prob = m(torch.from_numpy(np.load({str(tmp_path / 'frames.npy')!r})))
np.save({str(tmp_path / 'classes.npy')!r}, classes.numpy())
print(json.loads(files["icnet_ros.json"])["classes"]["name"])
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "camvid"
    classes = np.load(tmp_path / "classes.npy")
    assert (classes == engine_classes(checkpoint, frames)).mean() >= 0.999


def test_export_says_which_input_size_it_chose_and_why():
    from types import SimpleNamespace

    from icnet_ros.tools.export import input_size

    none = SimpleNamespace(height=None, width=None)
    assert input_size(none, ModelMeta(CAMVID, "r18", 0.25, input_width=640)) == (
        375, 1242, "the default, a KITTI frame, as the model fixes no frame size (trained 640 wide, it runs its "
                   "network at 640x193 inside); give --height and --width of your camera's frames")
    assert input_size(none, ModelMeta(CAMVID, "r18", 0.25, input_size=(48, 64))) == (
        48, 64, "the model's input_size; give --height and --width of your camera's frames")
    assert input_size(SimpleNamespace(height=480, width=None), ModelMeta(CAMVID, "r18", 0.25))[:2] == (480, 1242)
    assert input_size(SimpleNamespace(height=480, width=640), ModelMeta(CAMVID, "r18", 0.25)) == (
        480, 640, "--height/--width")


def test_export_errors(tmp_path, capfd):
    rc = export_main(["--checkpoint", str(tmp_path / "none.pt"), "--format", "onnx", "--out", str(tmp_path / "x.onnx")])
    err = capfd.readouterr().err.strip()
    assert rc == 2 and err == f"export: error: checkpoint {tmp_path / 'none.pt'} does not exist"
    with pytest.raises(SystemExit):
        export_main(["--format", "tflite", "--out", "x"])


def test_a_file_exported_before_the_probability_still_runs(checkpoint, tmp_path):
    """Two outputs, as export wrote before drivable_prob: class maps as before, the probability from its logits."""
    from icnet_ros.inference.deploy import Deployable, trace_onnx
    from icnet_ros.inference.upsample import drivable_probability
    from icnet_ros.tools.export import check, run_exported

    model, meta, _ = load_checkpoint(checkpoint)
    net = Deployable(model, meta).eval()
    old = tmp_path / "old.onnx"
    trace_onnx(net, H, W, str(old), probability=False)
    frames = sample_frames(2, H, W, seed=6)
    classes, prob, _ = run_exported(old, "onnx", frames, sorted(CAMVID.drivable_ids))
    assert (classes == engine_classes(checkpoint, frames)).mean() >= 0.999
    with torch.no_grad():
        logits = net(torch.from_numpy(frames))[0].permute(0, 2, 3, 1).numpy()
    for p, lg in zip(prob, logits):
        np.testing.assert_allclose(p, drivable_probability(lg.copy(), CAMVID.drivable_ids, (H, W)), atol=1e-6)
    r = check(net, old, "onnx", H, W)
    assert r["agreement"] >= 0.999 and r["prob_diff"] < 1e-4
