"""Each bad message is logged, counted and survived: the next good frame comes out."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import Graph, HAVE_RCLPY, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from sensor_msgs.msg import CompressedImage, Image

    from icnet_ros.ros.conversions import numpy_to_compressed, numpy_to_image


def raw(height=8, width=8, encoding="rgb8", step=None, data=b""):
    msg = Image()
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.step = step if step is not None else width * 3
    msg.data = data
    return msg


BAD_RAW = {
    "short_data": (lambda: raw(48, 64, data=bytes(64 * 3 * 47)), "shorter than step x height"),
    "unknown_encoding": (lambda: raw(48, 64, "yuv9000", data=bytes(48 * 64 * 3)), "unknown image encoding"),
    "depth": (lambda: raw(48, 64, "16UC1", step=128, data=bytes(48 * 128)), "depth or other non-camera data"),
    "float_depth": (lambda: raw(48, 64, "32FC1", step=256, data=bytes(48 * 256)), "depth or other non-camera data"),
    "odd_bayer": (lambda: raw(47, 64, "bayer_rggb8", step=64, data=bytes(47 * 64)), "does not fit its layout"),
    "zero_size": (lambda: raw(0, 64), "zero size"),
    "absurd_size": (lambda: raw(100000, 100000, data=bytes(300)), "absurd size"),
    "too_small": (lambda: raw(4, 4, step=12, data=bytes(48)), "too small"),
}
BAD_COMPRESSED = {
    "corrupt_jpeg": (lambda: _compressed(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "jpeg"), "corrupt"),
    "truncated_png": (lambda: _compressed(_png()[:60], "png"), "corrupt"),
    "unknown_format": (lambda: _compressed(_png(), "h264"), "not jpeg or png"),
    "absurd_png": (lambda: _compressed(_png()[:16] + (60000).to_bytes(4, "big") * 2 + _png()[24:], "png"),
                   "absurd size"),
    "empty": (lambda: _compressed(b"", "jpeg"), "no data"),
}


def _png():
    return bytes(numpy_to_compressed(np.zeros((16, 16, 3), np.uint8), "png").data)


def _compressed(data, fmt):
    msg = CompressedImage()
    msg.format, msg.data = fmt, data
    return msg


@pytest.fixture(scope="module")
def graphs(ros_context, tiny_checkpoint):
    import torch

    threads = torch.get_num_threads()
    made = {}

    def get(transport):
        if transport not in made:
            g = Graph(tiny_checkpoint, input_transport=transport, qos_reliability="reliable")
            topic = "image/compressed" if transport == "compressed" else "image"
            g.pub = g.publisher(CompressedImage if transport == "compressed" else Image, g.topic(topic))
            g.masks = g.collect(Image, g.output("mask"))
            g.wait_matched(g.pub)
            made[transport] = g
        return made[transport]

    yield get
    for g in made.values():
        g.close()
    torch.set_num_threads(threads)


def good(transport, sec):
    array = np.random.default_rng(sec).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = numpy_to_compressed(array, "png") if transport == "compressed" else numpy_to_image(array)
    msg.header.stamp.sec, msg.header.frame_id = sec, "cam"
    return msg


CASES = [("raw", k) for k in BAD_RAW] + [("compressed", k) for k in BAD_COMPRESSED]


@pytest.mark.parametrize("transport,case", CASES, ids=[c for _, c in CASES])
def test_bad_message_is_survived(graphs, transport, case):
    g = graphs(transport)
    make, words = (BAD_RAW if transport == "raw" else BAD_COMPRESSED)[case]
    before = g.node.stats()
    bad = make()
    bad.header.stamp.sec = 999
    g.pub.publish(bad)
    assert wait_for(lambda: g.node.stats()["bad"] == before["bad"] + 1, 10.0), "the bad message was not counted"
    assert words in g.node.stats()["last_error"]
    sec = 1000 + len(g.masks)
    g.pub.publish(good(transport, sec))
    assert wait_for(lambda: g.masks and g.masks[-1].header.stamp.sec == sec, 10.0), \
        "the good frame after the bad one was not processed"
    assert all(m.header.stamp.sec != 999 for m in g.masks)
    assert g.node.state == "active"
