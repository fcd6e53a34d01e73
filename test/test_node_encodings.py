"""
Camera driver encodings over real DDS.

A KITTI frame is published as Spinnaker/Pylon (Bayer), usb_cam/v4l2_camera (YUV 4:2:2),
NV21/NV24 or 16-bit cameras would (``frame_to_image``, what `play`'s encoding parameter
uses; `play` itself publishing an encoding is tested in test_player.py), the node
segments it, and its class map matches the one for the same frame sent as rgb8.

One publisher sends every encoding: creating and destroying a `play` node per encoding
inside the test's executor left, late in a full test run, each new player waiting out
its 20 s for a subscriber match (each case passed alone).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import Graph, HAVE_RCLPY, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from sensor_msgs.msg import Image

    from icnet_ros.paths import CHECKOUT_SAMPLES
    from icnet_ros.ros.conversions import frame_to_image

# encoding -> least share of pixels whose class equals the rgb8 frame's.  Measured here:
# Bayer 0.963-0.971, NV21 0.957, YUV 4:2:2 0.996, NV24 0.998, grey 0.874; the same frame
# with red and blue swapped agrees on 0.877 only, so a wrong colour order fails.  16 bit
# is lossless.
ENCODINGS = {
    "rgb8": 1.0, "bgr8": 1.0, "rgba8": 1.0, "bgra8": 1.0,
    "rgb16": 1.0, "bgr16": 1.0, "rgba16": 1.0, "bgra16": 1.0,
    "bayer_rggb8": 0.95, "bayer_bggr8": 0.95, "bayer_gbrg8": 0.95, "bayer_grbg8": 0.95,
    "yuv422": 0.99, "yuv422_yuy2": 0.99, "nv21": 0.95, "nv24": 0.99,
    "mono8": 0.8, "mono16": 0.8,   # grey loses colour: only a sanity floor
}
H, W = 374, 1240                   # a KITTI frame (375 x 1242) cut to even sizes


@pytest.fixture(scope="module")
def scene(ros_context, tiny_checkpoint):
    """One node, a publisher to it, one KITTI frame, and the rgb8 class map."""
    import torch

    threads = torch.get_num_threads()
    g = Graph(tiny_checkpoint, qos_reliability="reliable")
    g.masks = g.collect(Image, g.output("mask"))
    g.pub = g.publisher(Image, g.topic("image"))
    g.wait_matched(g.pub)
    g.bgr = cv2.imread(str(CHECKOUT_SAMPLES / "image_2/um_000000.png"))[:H, :W]
    g.reference = None
    yield g
    g.close()
    torch.set_num_threads(threads)


def send_one(g, encoding: str) -> np.ndarray:
    """Publish the frame once in `encoding` and return the node's class map for it."""
    before = len(g.masks)
    g.pub.publish(frame_to_image(g.bgr, encoding, order="bgr"))
    assert wait_for(lambda: len(g.masks) > before, 20.0), f"no mask for the {encoding} frame"
    mask = g.masks[-1]
    assert (mask.height, mask.width) == (H, W)
    assert g.node.stats()["bad"] == 0, g.node.stats()["last_error"]
    return np.frombuffer(mask.data, np.uint8).reshape(H, W)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_driver_encoding_segments_like_rgb8(scene, encoding):
    if scene.reference is None:
        scene.reference = send_one(scene, "rgb8")
    classes = send_one(scene, encoding)
    agreement = float((classes == scene.reference).mean())
    assert agreement >= ENCODINGS[encoding], f"{encoding}: {agreement:.3f} of pixels agree with rgb8"
