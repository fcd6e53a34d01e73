"""
`play` over real DDS: KITTI folders, compressed transport, looping and bags.

KITTI folders with calib -> CameraInfo; the bags are ROS 1, ROS 2 sqlite3 and MCAP.
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from conftest import HAVE_RCLPY, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]
ROOT = Path(__file__).resolve().parent.parent
KITTI = ROOT / "test/data/kitti_road"

if HAVE_RCLPY:
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from icnet_ros.ground import geometry
    from icnet_ros.ros.conversions import image_to_numpy


class Probe:
    def __init__(self, ns, context, env):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.env = env             # the subprocess's environment: the probe's private domain
        self.node = rclpy.create_node("player_probe", namespace=ns, context=context)
        self.boxes = {}
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def collect(self, msg_type, topic):
        box = self.boxes.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, box.append,
                                      QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE))
        return box

    def close(self):
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()


_probe = None   # the running test's probe: play() starts the player in its domain


@pytest.fixture
def probe(private_graph, request):
    global _probe
    name = request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    _probe = p = Probe(f"/play{os.getpid()}_{name}", *private_graph)
    yield p
    p.close()
    _probe = None


def play(ns, *params):
    args = [sys.executable, "-m", "icnet_ros.ros.player", "--ros-args", "-r", f"__ns:={ns}"]
    for p in params:
        args += ["-p", p]
    env = _probe.env if _probe is not None else None
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)


def test_kitti_folder_with_calib(probe):
    ns = probe.node.get_namespace()
    images = probe.collect(Image, f"{ns}/image")
    infos = probe.collect(CameraInfo, f"{ns}/camera_info")
    run = play(ns, f"source:={KITTI}", "rate:=20.0", "count:=3", "wait_for_subscribers:=1")
    assert run.returncode == 0, run.stderr
    assert wait_for(lambda: len(images) == 3 and len(infos) == 3, 15.0), (len(images), len(infos), run.stderr[-1500:])
    first = sorted((KITTI / "image_2").iterdir())[0]
    array, order = image_to_numpy(images[0])
    bgr = cv2.imread(str(first))
    np.testing.assert_array_equal(array if order == "bgr" else array[..., ::-1], bgr)
    assert images[0].header.frame_id == "camera"
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    calib = geometry.read_kitti_calib(KITTI / "calib/um_000000.txt")
    np.testing.assert_allclose(np.array(infos[0].k).reshape(3, 3), calib["P2"][:, :3])
    assert (infos[0].width, infos[0].height) == (bgr.shape[1], bgr.shape[0])
    assert infos[0].header.stamp == images[0].header.stamp
    assert "um_000000.png" in run.stderr


def test_compressed_transport_sends_the_files(probe):
    ns = probe.node.get_namespace()
    frames = probe.collect(CompressedImage, f"{ns}/image/compressed")
    run = play(ns, f"source:={KITTI / 'image_2'}", "transport:=compressed", "rate:=20.0", "count:=2",
               "wait_for_subscribers:=1", "frame_id:=cam0")
    assert run.returncode == 0, run.stderr
    assert wait_for(lambda: len(frames) == 2, 15.0)
    files = sorted((KITTI / "image_2").iterdir())
    assert bytes(frames[0].data) == files[0].read_bytes() and frames[0].format == "png"
    assert frames[1].header.frame_id == "cam0"


def test_loop_and_count(probe, tmp_path):
    for f in sorted((KITTI / "image_2").iterdir())[:2]:
        shutil.copy(f, tmp_path / f.name)
    ns = probe.node.get_namespace()
    images = probe.collect(Image, f"{ns}/image")
    infos = probe.collect(CameraInfo, f"{ns}/camera_info")
    run = play(ns, f"source:={tmp_path}", "loop:=true", "count:=5", "rate:=50.0", "wait_for_subscribers:=1")
    assert run.returncode == 0, run.stderr
    assert wait_for(lambda: len(images) == 5, 15.0)
    widths = [m.width for m in images]
    assert widths[0::2] == [widths[0]] * 3
    assert not infos    # a plain folder has no calibration


def test_bad_sources_fail_naming_the_parameter(probe, tmp_path):
    ns = probe.node.get_namespace()
    run = play(ns, "source:=/nonexistent/folder")
    assert run.returncode == 1 and "'source'" in run.stderr and "does not exist" in run.stderr
    run = play(ns, f"source:={tmp_path}")
    assert run.returncode == 1 and "no images" in run.stderr
    run = play(ns, f"source:={KITTI}", "calib_file:=/nonexistent.txt")
    assert run.returncode == 1 and "'calib_file'" in run.stderr
    run = play(ns, f"source:={KITTI}", "encoding:=32FC1")
    assert run.returncode == 1 and "parameter 'encoding'" in run.stderr and "bayer_rggb8" in run.stderr
    run = play(ns, f"source:={KITTI}", "encoding:=nv21", "transport:=compressed")
    assert run.returncode == 1 and "transport 'raw' only" in run.stderr


def test_driver_encoding_as_a_camera_would_publish(probe):
    """
    Check that encoding:=yuv422_yuy2 publishes what usb_cam would.

    That is 2 bytes a pixel, the frame's colours after decoding (the node's side is
    tested in test_node_encodings.py).
    """
    ns = probe.node.get_namespace()
    images = probe.collect(Image, f"{ns}/image")
    run = play(ns, f"source:={KITTI}", "encoding:=yuv422_yuy2", "count:=1", "rate:=20.0",
               "wait_for_subscribers:=1")
    assert run.returncode == 0, run.stderr
    assert wait_for(lambda: len(images) == 1, 15.0), run.stderr[-1500:]
    msg = images[0]
    assert msg.encoding == "yuv422_yuy2" and msg.step == 2 * msg.width and len(msg.data) == msg.step * msg.height
    array, order = image_to_numpy(msg)
    bgr = cv2.imread(str(sorted((KITTI / "image_2").iterdir())[0]))
    assert order == "rgb" and np.abs(array[..., ::-1].astype(int) - bgr).mean() < 3


# --- bags ---------------------------------------------------------------------------

def _frames():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(3)]


def _bag_messages(store, ros1=False):
    T = store.types
    Time = T["builtin_interfaces/msg/Time"]

    def Header(**kw):  # ROS 1 headers carry a sequence number
        return T["std_msgs/msg/Header"](**kw, **({"seq": 0} if ros1 else {}))

    calib = {"d": np.zeros(5), "k": np.array([20.0, 0, 8, 0, 20.0, 6, 0, 0, 1]), "r": np.eye(3).ravel(),
             "p": np.zeros(12)}
    if ros1:  # ROS 1 spells the matrices in capitals
        calib = {k.upper(): v for k, v in calib.items()}
    out = []
    info = T["sensor_msgs/msg/CameraInfo"](
        header=Header(stamp=Time(sec=1, nanosec=0), frame_id="bagcam"), height=12, width=16,
        distortion_model="plumb_bob", binning_x=0, binning_y=0, **calib,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    out.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", info))
    for i, a in enumerate(_frames()):
        img = T["sensor_msgs/msg/Image"](header=Header(stamp=Time(sec=1, nanosec=i + 1), frame_id="bagcam"),
                                         height=12, width=16, encoding="rgb8", is_bigendian=0, step=48,
                                         data=a.reshape(-1))
        out.append(("/cam/image_raw", "sensor_msgs/msg/Image", img))
    other = T["std_msgs/msg/String"](data="not an image")
    out.append(("/chatter", "std_msgs/msg/String", other))
    return out


def write_bag(path: Path, kind: str) -> Path:
    from rosbags.typesys import Stores, get_typestore

    if kind == "ros1":
        from rosbags.rosbag1 import Writer

        store = get_typestore(Stores.ROS1_NOETIC)
        path = path / "cam.bag"
        with Writer(path) as w:
            conns = {}
            for t, (topic, typ, m) in enumerate(_bag_messages(store, ros1=True)):
                if topic not in conns:
                    conns[topic] = w.add_connection(topic, typ, typestore=store)
                w.write(conns[topic], 10**9 + t, store.serialize_ros1(m, typ))
        return path
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = get_typestore(Stores.ROS2_KILTED)
    path = path / f"cam_{kind}"
    plugin = StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {}
        for t, (topic, typ, m) in enumerate(_bag_messages(store)):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, typ, typestore=store)
            w.write(conns[topic], 10**9 + t, store.serialize_cdr(m, typ))
    return path


def run_player(ns, **params):
    """Run a Player in this process, in the running test's probe graph, until it is done (60 s at most)."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from icnet_ros.ros.player import Player

    context = _probe.node.context
    node = Player(namespace=ns, context=context,
                  parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    deadline = time.monotonic() + 60.0
    try:
        while not node.done:
            assert time.monotonic() < deadline, "the player did not finish within 60 s"
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()


@pytest.mark.parametrize("kind", ["ros1", "sqlite3", "mcap"])
def test_bag_replay(probe, tmp_path, kind):
    bag = write_bag(tmp_path, kind)
    ns = probe.node.get_namespace()
    images = probe.collect(Image, f"{ns}/image")
    infos = probe.collect(CameraInfo, f"{ns}/camera_info")
    run_player(ns, source=str(bag), rate=50.0, wait_for_subscribers=1)
    assert wait_for(lambda: len(images) == 3, 15.0)
    for msg, a in zip(images, _frames()):
        np.testing.assert_array_equal(image_to_numpy(msg)[0], a)
        assert msg.header.frame_id == "bagcam" and msg.header.stamp.sec > 1000     # publish time
    assert len(infos) == 3 and list(infos[0].k)[:3] == [20.0, 0.0, 8.0]


def test_bag_topic_choice_and_errors(probe, tmp_path):
    from icnet_ros.ros.player import PlayError

    bag = write_bag(tmp_path, "sqlite3")
    ns = probe.node.get_namespace()
    frames = probe.collect(CompressedImage, f"{ns}/image/compressed")
    run_player(ns, source=str(bag), image_topic="/cam/image_raw", transport="compressed", rate=50.0,
               wait_for_subscribers=1, count=2)
    assert wait_for(lambda: len(frames) == 2, 15.0) and frames[0].format == "jpeg"
    with pytest.raises(PlayError, match="no image topic '/nope'.*/chatter"):
        run_player(ns, source=str(bag), image_topic="/nope")


def test_cut_off_bag_plays_what_is_readable_and_says_so_once(probe, tmp_path, capfd):
    bag = write_bag(tmp_path, "mcap")
    (storage,) = bag.glob("*.mcap")
    data = storage.read_bytes()
    third = data.find(_frames()[2].tobytes())
    cut = tmp_path / "cut"   # as a crash leaves it: no metadata.yaml, no summary, the third frame half written
    cut.mkdir()
    (cut / storage.name).write_bytes(data[:third + 100])
    ns = probe.node.get_namespace()
    images = probe.collect(Image, f"{ns}/image")
    run_player(ns, source=str(cut), rate=50.0, wait_for_subscribers=1, loop=True, count=4)
    assert wait_for(lambda: len(images) == 4, 15.0)
    for msg, a in zip(images, _frames()[:2] * 2):   # two passes over the two whole frames
        np.testing.assert_array_equal(image_to_numpy(msg)[0], a)
    err = capfd.readouterr().err
    assert err.count("recording cut off") == 1, err
    assert f"bag {cut}: recording cut off; read 3 messages up to 1970-01-01 00:00:01.0 UTC, the rest is " \
           "unreadable" in err
