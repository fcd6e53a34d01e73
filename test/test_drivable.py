"""The drivable area a planner gets (drivable.py), the frame bound, and the CPU engine's frame-size path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from icnet_ros.classes import CAMVID
from icnet_ros.ground.drivable import confidence_image, connected_to_vehicle
from icnet_ros.inference.checkpoint import check_frame_size, FrameSizeError, ModelMeta, save_checkpoint
from icnet_ros.inference.engine import Engine, EngineError
from icnet_ros.inference.upsample import class_map, drivable_probability
from icnet_ros.nn.model import icnet


def test_only_area_connected_to_the_vehicle_is_kept():
    m = np.zeros((40, 60), bool)
    m[30:, 10:50] = True          # the road under the vehicle
    m[5:12, 20:40] = True         # an island across a barrier
    m[20:30, 25:30] = True        # joined to the road: kept
    out = connected_to_vehicle(m)
    assert out[30:, 10:50].all() and out[20:30, 25:30].all() and not out[5:12].any()
    assert m[5:12, 20:40].all(), "the input is left as it was"
    side = np.zeros((40, 60), bool)
    side[30:, :8] = True          # road only at the bottom left corner, not below the vehicle
    assert not connected_to_vehicle(side).any()
    assert not connected_to_vehicle(np.zeros((8, 8), bool)).any()


def test_confidence_image_is_mono8():
    prob = np.array([[0.0, 0.5, 1.0, 1.2]], np.float32)
    np.testing.assert_array_equal(confidence_image(prob), [[0, 128, 255, 255]])
    assert confidence_image(prob).dtype == np.uint8


@pytest.mark.parametrize("size", [(375, 1242), (97, 301), (48, 64), (30, 41), (48, 200), (200, 48)])
def test_class_map_is_argmax_of_bilinear_logits(size):
    gen = torch.Generator().manual_seed(sum(size))
    logits = F.interpolate(torch.randn(1, 7, 6, 20, generator=gen), size=(48, 64), mode="bilinear")[0] * 4
    ref = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    small = logits.argmax(0).to(torch.uint8).numpy()
    hwc = np.ascontiguousarray(logits.permute(1, 2, 0).numpy())
    got = class_map(small, logits.numpy(), size)                    # C x h x w, as the network gives them
    channels_last = logits[None].contiguous(memory_format=torch.channels_last).numpy()[0]   # PyTorch's engine
    assert not channels_last.flags.c_contiguous
    np.testing.assert_array_equal(class_map(small, channels_last, size), got)
    assert got.shape == size and got.dtype == np.uint8
    assert (got == ref.argmax(0).numpy()).mean() > 0.9999          # ties aside, the same
    prob = drivable_probability(hwc.copy(), [3], size)
    ref_prob = F.interpolate(logits[None].softmax(1)[:, 3:4], size=size, mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(prob, ref_prob.numpy(), atol=1e-5)


def test_network_size_is_bounded_for_any_frame():
    wide = ModelMeta(CAMVID, input_width=640)
    assert wide.network_size(375, 1242) == (193, 640)        # as before: the width of a landscape frame
    assert wide.network_size(1920, 1080) == (640, 360)       # portrait: the height
    assert wide.network_size(3000, 4000) == (480, 640)
    assert wide.network_size(500, 4000) == (80, 640)         # 8:1 is served
    plain = ModelMeta(CAMVID)
    assert plain.network_size(375, 1242) == (375, 1242)
    h, w = plain.network_size(4000, 6000)                    # capped at 1024x2048 pixels
    assert h * w <= 1024 * 2048 and abs(w / h - 1.5) < 0.01
    assert ModelMeta(CAMVID, input_size=(64, 96)).network_size(1920, 1080) == (64, 96)
    for h, w, words in ((4000, 16, "250:1"), (16, 4000, "250:1"), (4, 100, "too small"), (100, 801, "8:1")):
        with pytest.raises(FrameSizeError, match=words):
            wide.network_size(h, w)
    check_frame_size(100, 800)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("eng") / "w.pt"
    save_checkpoint(path, icnet(CAMVID.num_classes, "r18", 0.25), ModelMeta(CAMVID, "r18", 0.25, input_width=64))
    return Engine.from_checkpoint(path, device="cpu", warmup=False, backend="torch")


def test_drivable_threshold_decides_the_mask(engine):
    frame = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    (plain,) = engine.infer(frame)
    np.testing.assert_array_equal(plain.drivable, plain.classes == 3)     # CamVid road, arg-max
    for t in (0.01, 0.2, 0.6):
        (r,) = engine.infer(frame, drivable_threshold=t)
        assert r.drivable_prob is not None
        np.testing.assert_array_equal(r.drivable, r.drivable_prob >= t)
        np.testing.assert_array_equal(r.classes, plain.classes)
    for bad in (-0.1, 1.5):
        with pytest.raises(EngineError, match="drivable_threshold must be between 0 and 1"):
            engine.infer(frame, drivable_threshold=bad)


@pytest.mark.parametrize("shape", [(4000, 16), (16, 4000), (4, 4)])
def test_frames_the_network_cannot_serve_are_refused_in_one_line(engine, shape):
    with pytest.raises(EngineError) as e:
        engine.infer(np.zeros((*shape, 3), np.uint8))
    assert "\n" not in str(e.value) and f"{shape[1]}x{shape[0]}" in str(e.value)


def test_engine_memory_does_not_depend_on_the_frame_shape():
    """
    Peak RSS of a process that runs the shipped model on a KITTI-sized frame, then on every odd shape.

    Before the bound a 16x4000 frame sized the network at 160000x640 and the process was
    killed for memory.
    """
    code = textwrap.dedent("""
        import json, resource
        import numpy as np
        from icnet_ros.inference.engine import Engine, EngineError
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        engine = Engine.from_checkpoint(None, device="cpu", warmup=False, threads=1)
        engine.infer(np.zeros((375, 1242, 3), np.uint8))
        base = peak()
        answered = []
        for h, w in ((4000, 16), (16, 4000), (1920, 1080), (4000, 500), (3000, 4000), (375, 1242)):
            try:
                (r,) = engine.infer(np.zeros((h, w, 3), np.uint8))
                answered.append(list(r.classes.shape))
            except EngineError:
                pass
        print(json.dumps({"base": base, "after": peak(), "answered": answered}))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["answered"] == [[1920, 1080], [4000, 500], [3000, 4000], [375, 1242]]
    assert out["after"] - out["base"] < 300, out
