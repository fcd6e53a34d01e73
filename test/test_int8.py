"""The INT8 CPU backend (inference/int8.py) and its error paths: engine, node configuration, evaluate, export."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from icnet_ros.classes import CAMVID
from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint
from icnet_ros.inference.engine import CalibrationError, Engine, EngineError
from icnet_ros.inference.int8 import calibration_frames, quantize, QuantizeError
from icnet_ros.nn.model import icnet
from icnet_ros.tools.export import sample_frames


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("int8") / "m.pt"
    meta = ModelMeta(CAMVID, "r18", 0.25, input_width=96)
    return save_checkpoint(path, icnet(CAMVID.num_classes, "r18", 0.25), meta)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for i, f in enumerate(sample_frames(6, 60, 96, seed=11)):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_int8_engine_runs_close_to_fp32(model_file, calib_dir):
    fp32 = Engine.from_checkpoint(model_file, device="cpu", warmup=False, backend="onnxruntime")
    int8 = Engine.from_checkpoint(model_file, device="cpu", precision="int8", warmup=False, calibration=str(calib_dir))
    assert (int8.backend, int8.precision) == ("onnxruntime", "int8")
    frames = list(sample_frames(3, 60, 96, seed=12))
    for a, b in zip(fp32.infer(frames, probabilities=True), int8.infer(frames, probabilities=True)):
        assert a.classes.shape == b.classes.shape == (60, 96)
        assert (a.classes == b.classes).mean() > 0.8           # a random tiny net: many near ties
        assert np.abs(a.drivable_prob - b.drivable_prob).mean() < 0.05
    assert [(h, w) for h, w, _ in int8.traced] == [(60, 96)]  # quantised once per network size


def test_calibration_frames_come_evenly_from_a_folder(calib_dir, tmp_path):
    frames = calibration_frames(calib_dir, count=3)
    assert len(frames) == 3 and frames[0].shape == (60, 96, 3) and frames[0].dtype == np.uint8
    for folder, words in (("", "needs calibration frames"), (tmp_path / "none", "does not exist"),
                          (tmp_path, "has no images")):
        with pytest.raises(QuantizeError, match=words) as e:
            calibration_frames(folder)
        assert "\n" not in str(e.value)


def test_missing_calibration_and_wrong_places_are_one_line(model_file, tmp_path):
    cases = [({"precision": "int8"}, "needs calibration frames", CalibrationError),
             ({"precision": "int8", "calibration": str(tmp_path / "nowhere")}, "does not exist", CalibrationError),
             ({"precision": "int8", "backend": "torch", "calibration": str(tmp_path)}, "ONNX Runtime only",
              EngineError)]
    for kwargs, words, kind in cases:
        with pytest.raises(EngineError, match=words) as e:
            Engine.from_checkpoint(model_file, device="cpu", warmup=False, **kwargs)
        assert "\n" not in str(e.value)
        assert type(e.value) is kind        # calibration problems are their own kind: the node names the parameter


def test_a_graph_that_cannot_be_quantised_is_one_line(model_file, calib_dir, monkeypatch):
    frames = calibration_frames(calib_dir)
    with pytest.raises(QuantizeError, match="could not be quantised to INT8") as e:
        quantize(b"this is not an ONNX graph", frames, (60, 96))
    assert "\n" not in str(e.value)
    # through the engine: the first frame of a size quantises; a failure there is one EngineError line
    import icnet_ros.inference.int8 as int8

    def broken(graph, frames, size, input_name="image"):
        raise QuantizeError("the network could not be quantised to INT8: RuntimeError: unsupported operator")

    monkeypatch.setattr(int8, "quantize", broken)
    engine = Engine.from_checkpoint(model_file, device="cpu", precision="int8", warmup=False, calibration=frames)
    with pytest.raises(CalibrationError, match="could not be quantised"):
        engine.infer(sample_frames(1, 60, 96)[0])


def test_node_configuration_asks_for_calibration_images():
    from icnet_ros.node_config import ConfigError, from_params

    with pytest.raises(ConfigError, match="parameter 'calibration_images': precision 'int8' needs"):
        from_params({"precision": "int8", "device": "cpu"})
    assert from_params({"precision": "int8", "device": "cpu", "calibration_images": "/calib"}).precision == "int8"


def test_evaluate_and_export_int8(model_file, calib_dir, tmp_path, capfd):
    import onnx
    import onnxruntime as ort

    from icnet_ros.tools.evaluate import main as evaluate_main
    from icnet_ros.tools.export import main as export_main

    assert evaluate_main(["--checkpoint", str(model_file), "--data", "folder:x:y", "--precision", "int8",
                          "--device", "cpu"]) == 2
    assert "needs calibration frames" in capfd.readouterr().err
    out = tmp_path / "m8.onnx"
    assert export_main(["--checkpoint", str(model_file), "--format", "onnx", "--out", str(out), "--int8",
                        "--height", "60", "--width", "96"]) == 2
    assert capfd.readouterr().err.strip().startswith("export: error: precision 'int8' needs calibration frames")
    assert export_main(["--checkpoint", str(model_file), "--format", "torchscript", "--out", str(tmp_path / "x"),
                        "--int8", "--calibration", str(calib_dir)]) == 2
    assert "--int8 writes ONNX only" in capfd.readouterr().err
    assert export_main(["--checkpoint", str(model_file), "--format", "onnx", "--out", str(out), "--int8",
                        "--calibration", str(calib_dir), "--height", "60", "--width", "96"]) == 0
    assert "onnx int8" in capfd.readouterr().out
    graph = onnx.load(str(out))
    assert any(n.op_type in ("QuantizeLinear", "QLinearConv") for n in graph.graph.node)
    assert _peak_int8_weight(graph) <= 64                         # 7-bit: safe on any x86 CPU
    assert any(p.key == "icnet_ros" for p in graph.metadata_props)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.run(["classes"], {"image": sample_frames(1, 60, 96)})[0].shape == (1, 60, 96)


def test_weights_are_7_bit_where_uint8_x_int8_products_can_saturate():
    from icnet_ros.inference.int8 import needs_reduce_range

    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert needs_reduce_range("x86_64", avx2)
    assert needs_reduce_range("AMD64", "")                        # flags unknown: the safe side
    assert not needs_reduce_range("x86_64", avx2.replace("avx2", "avx2 avx512f avx512_vnni"))
    assert not needs_reduce_range("x86_64", avx2.replace("avx2", "avx2 avx_vnni"))
    assert not needs_reduce_range("aarch64", "")


@pytest.mark.parametrize("reduce", [True, False])
def test_quantised_weights_follow_the_cpu(model_file, calib_dir, monkeypatch, reduce):
    import io

    import onnx

    import icnet_ros.inference.int8 as int8
    from icnet_ros.inference.checkpoint import load_checkpoint
    from icnet_ros.inference.deploy import Deployable, trace_onnx

    model, meta, _ = load_checkpoint(model_file)
    buf = io.BytesIO()
    trace_onnx(Deployable(model.eval(), meta.at_network_size()), 60, 96, buf)
    monkeypatch.setattr(int8, "needs_reduce_range", lambda: reduce)    # the engine's case: this CPU decides
    graph = onnx.load_from_string(quantize(buf.getvalue(), calibration_frames(calib_dir), (60, 96)))
    peak = _peak_int8_weight(graph)
    assert peak <= 64 if reduce else peak == 127                  # 7-bit weights, or the full int8 range


def _peak_int8_weight(graph) -> int:
    """Return the largest |value| among an ONNX graph's int8 initialisers (the quantised weights)."""
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(t) for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    return max(int(np.abs(w.astype(np.int16)).max()) for w in weights)
