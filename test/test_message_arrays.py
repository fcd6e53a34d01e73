"""
Frames go into messages as array('B'), never as bytes.

A message's uint8[] setter keeps an array('B') as it is; anything else is checked element
by element in Python first: always on Humble, with ROS_PYTHON_CHECK_FIELDS=1 on later
distros (so a 1.4 MB frame costs a million Python-level checks).  Kilted stores either as
an array, so these tests watch what is *assigned*: message classes whose data setter
records the type it is given.
"""

from __future__ import annotations

import array
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import HAVE_RCLPY

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]
ROOT = Path(__file__).resolve().parent.parent
FRAME = ROOT / "test/data/kitti_road/image_2/um_000000.png"


@pytest.fixture
def assigned(monkeypatch):
    """Return the types assigned to Image.data / CompressedImage.data, by the player and conversions."""
    import sensor_msgs.msg

    from icnet_ros.ros import player

    seen = []

    def recording(cls):
        def set_data(self, value):
            seen.append(type(value))
            cls.data.fset(self, value)

        return type(cls.__name__, (cls,), {"__slots__": (), "data": property(cls.data.fget, set_data)})

    for name in ("Image", "CompressedImage"):
        stand_in = recording(getattr(sensor_msgs.msg, name))
        monkeypatch.setattr(sensor_msgs.msg, name, stand_in)   # conversions imports them per call
        monkeypatch.setattr(player, name, stand_in)
    return seen


def test_conversions_assign_arrays(assigned):
    from icnet_ros.ros import conversions

    rgb = np.zeros((6, 8, 3), np.uint8)
    conversions.numpy_to_image(rgb)
    conversions.frame_to_image(rgb, "yuv422")
    msg = conversions.numpy_to_compressed(rgb, "png")
    assert len(assigned) >= 6 and set(assigned) == {array.array}   # the constructor assigns one too
    assert cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR).shape == (6, 8, 3)


@pytest.mark.parametrize("transport,encoding", [("compressed", ""), ("raw", ""), ("raw", "yuv422")])
def test_the_player_assigns_arrays_for_files(assigned, transport, encoding):
    from icnet_ros.ros.player import Player

    me = SimpleNamespace(transport=transport, encoding=encoding, _last_size=None)
    msg, _ = Player._file_message(me, FRAME)
    assert assigned and set(assigned) == {array.array}
    assert len(msg.data) > 0


@pytest.mark.parametrize("compressed", [True, False])
def test_the_player_assigns_arrays_for_bag_messages(assigned, compressed):
    from icnet_ros.ros.player import Player

    png = np.frombuffer(FRAME.read_bytes(), np.uint8)     # as rosbags gives uint8[] fields
    if compressed:
        bag_msg = SimpleNamespace(format="png", data=png)
    else:
        bag_msg = SimpleNamespace(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9,
                                  data=np.arange(18, dtype=np.uint8))
    me = SimpleNamespace(transport="compressed" if compressed else "raw", encoding="")
    msg = Player._bag_message(me, bag_msg)
    assert len(assigned) >= 2 and set(assigned) == {array.array}
    assert bytes(msg.data) == bag_msg.data.tobytes()
