"""
Network-size maps read at frame points (upsample.frame_to_network, sample_bilinear) and Engine.infer(full_size=False).

Reading the network-size maps at the frame points an output needs gives what the
full-resolution maps hold there: the probability exactly (bilinear of the network map at
``frame_to_network`` points is the bilinear resize at that pixel), and the class map as
the arg-max of the bilinear network logits there.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from icnet_ros.classes import CAMVID
from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint
from icnet_ros.inference.engine import Engine
from icnet_ros.inference.upsample import frame_to_network, resize_frames, sample_bilinear
from icnet_ros.tools.export import sample_frames


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.manual_seed(0)
    meta = ModelMeta(replace(CAMVID, drivable_ids=(3, 4)), "r18", 0.25, input_width=96)
    model = meta.build()
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)
    path = save_checkpoint(tmp_path_factory.mktemp("n") / "s.pt", model, meta)
    return Engine.from_checkpoint(path, device="cpu", warmup=False, backend="onnxruntime")


@pytest.mark.parametrize("frame", [(75, 124), (144, 192), (40, 50)])
def test_network_maps_at_frame_pixel_centres_are_the_full_resolution_maps(engine, frame):
    H, W = frame
    (r,) = engine.infer(sample_frames(1, H, W, seed=2)[0], probabilities=True)
    h, w = r.net_classes.shape
    assert (h, w) == engine.meta.network_size(H, W) and r.frame_size == (H, W)
    S = frame_to_network((H, W), (h, w))
    y, x = np.mgrid[0:H, 0:W]
    pts = S @ np.stack([x.ravel(), y.ravel(), np.ones(H * W)])
    xn, yn = pts[0] / pts[2], pts[1] / pts[2]
    np.testing.assert_allclose(xn.reshape(H, W)[0], (np.arange(W) + 0.5) * w / W - 0.5)
    prob = sample_bilinear(r.net_prob, xn, yn).reshape(H, W)
    np.testing.assert_allclose(prob, r.drivable_prob, atol=1e-6)
    x8 = np.ascontiguousarray(resize_frames([sample_frames(1, H, W, seed=2)[0]], (h, w)))
    logits = engine._onnx.run(x8, logits=True)[1][0]                      # C x h x w, the engine's own
    at = np.stack([sample_bilinear(plane, xn, yn) for plane in logits])
    assert (at.argmax(0).reshape(H, W) == r.classes).mean() > 0.9999      # ties aside, the same


def test_a_ground_homography_scaled_to_the_network_maps(engine):
    from icnet_ros.ground.geometry import kitti_ground_homography, project

    Hg = kitti_ground_homography("test/data/kitti_road/calib/um_000000.txt")
    S = frame_to_network((375, 1242), (193, 640))
    X, Y = np.meshgrid(np.linspace(6, 40, 9), np.linspace(-8, 8, 7))
    u, v, front = project(Hg, X, Y)
    xn, yn, front_n = project(S @ Hg, X, Y)
    np.testing.assert_array_equal(front, front_n)
    np.testing.assert_allclose(xn, (u + 0.5) * 640 / 1242 - 0.5, atol=1e-9)
    np.testing.assert_allclose(yn, (v + 0.5) * 193 / 375 - 0.5, atol=1e-9)


def test_full_size_false_gives_the_network_maps_only(engine):
    frame = sample_frames(1, 75, 124, seed=3)[0]
    (full,) = engine.infer(frame, drivable_threshold=0.4)
    (small,) = engine.infer(frame, drivable_threshold=0.4, full_size=False)
    assert small.classes is None and small.drivable is None and small.drivable_prob is None
    np.testing.assert_array_equal(small.net_classes, full.net_classes)
    np.testing.assert_array_equal(small.net_prob, full.net_prob)
    np.testing.assert_array_equal(small.net_drivable, small.net_prob >= 0.4)
    np.testing.assert_array_equal(full.drivable, full.drivable_prob >= 0.4)
    (plain,) = engine.infer(frame, full_size=False)
    assert plain.net_prob is None
    np.testing.assert_array_equal(plain.net_drivable, np.isin(plain.net_classes, [3, 4]))
    (same,) = engine.infer(sample_frames(1, 72, 96)[0], probabilities=True)   # at the network size: shared
    assert np.shares_memory(same.classes, same.net_classes) and np.shares_memory(same.drivable_prob, same.net_prob)


@pytest.mark.parametrize("frame, net, words", [((0, 10), (5, 5), "frame_size"), ((10, 10), (5, -1), "net_size")])
def test_frame_to_network_refuses_empty_sizes(frame, net, words):
    with pytest.raises(ValueError, match=words):
        frame_to_network(frame, net)
