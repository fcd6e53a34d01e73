"""
The demo's ROS-free side (icnet_ros/tools/demo.py).

The commands it starts, the names of the played frames, the PNGs and the summary it prints.
The whole demo over DDS is `make demo`; one short run of it is marked slow here.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import HAVE_RCLPY
from icnet_ros.classes import KITTI_ROAD
from icnet_ros.tools import demo

ROOT = Path(__file__).resolve().parent.parent
KITTI = ROOT / "test/data/kitti_road"


def test_commands_play_waits_for_the_node_and_the_collector():
    cmd = demo.player_command(KITTI, 2.0, "nv21")
    assert cmd[1:3] == ["-m", "icnet_ros.ros.player"]
    assert {"source:=" + str(KITTI), "rate:=2.0", "wait_for_subscribers:=2", "encoding:=nv21"} <= set(cmd)
    assert "encoding:=" not in " ".join(demo.player_command(KITTI, 2.0, ""))
    node = demo.node_command(Path("m.pt"), "cpu", KITTI)
    assert node[1:3] == ["-m", "icnet_ros.ros.node"] and "model_path:=m.pt" in node and "device:=cpu" in node
    assert f"calib_file:={sorted((KITTI / 'calib').glob('*.txt'))[0]}" in node


def test_the_demo_says_it_sets_its_own_domain_id():
    assert demo.domain_note("71", 65) == (
        "demo: ROS_DOMAIN_ID=65, in place of your 71, so that the demo never meets other ROS graphs on this host; "
        "to watch it from another shell, set ROS_DOMAIN_ID=65 there")
    assert demo.domain_note("", 65).startswith("demo: ROS_DOMAIN_ID=65, a private one, so that")


def test_played_frames_are_named_as_play_names_them(tmp_path):
    files = sorted(p.name for p in (KITTI / "image_2").iterdir())
    assert demo.played_names(KITTI, [30, 10, 20]) == {30: files[0], 10: files[1], 20: files[2]}
    assert demo.played_names(tmp_path / "missing", [1]) == {}    # play could not read it either


def test_played_bag_frames_are_named_topic_and_index(tmp_path):
    pytest.importorskip("rosbags")
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    with Writer(tmp_path / "bag", version=9) as w:
        conn = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        for i in range(3):
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=i), frame_id="c")
            msg = T["sensor_msgs/msg/Image"](header=header, height=2, width=2, encoding="mono8", is_bigendian=0,
                                             step=2, data=np.zeros(4, np.uint8))
            w.write(conn, i, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    assert demo.played_names(tmp_path / "bag", [5, 6]) == {5: "/cam/image_raw#0", 6: "/cam/image_raw#1"}


def test_pngs_are_named_after_the_played_frames(tmp_path):
    frame = SimpleNamespace(stamp=7, overlay=np.zeros((4, 6, 3), np.uint8), classes=np.ones((4, 6), np.uint8),
                            grid=np.full((3, 5), 100, np.int8))
    bare = SimpleNamespace(stamp=8, overlay=np.zeros((4, 6, 3), np.uint8), classes=None, grid=None)
    demo.write_pngs([frame, bare], {7: "um_000000.png"}, tmp_path, KITTI_ROAD.colors)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "frame_8_overlay.png", "um_000000_grid.png", "um_000000_mask.png", "um_000000_overlay.png"]


def test_summary_lines(tmp_path, capsys):
    (tmp_path / "a_overlay.png").write_bytes(b"")
    t0 = 1000.0
    stamps = [int((t0 + i * 0.5) * 1e9) for i in range(3)]
    collector = SimpleNamespace(
        played=stamps, got={"overlay": dict.fromkeys(stamps[:2])},
        arrival={stamps[0]: t0 + 0.1, stamps[1]: t0 + 0.7},
        diag={"inference (ms)": ["50", "nan", "70"], "processing (ms)": ["100"], "device": ["cpu"],
              "precision": ["fp32"], "backend": ["onnxruntime"], "dropped frames": ["1"], "bad messages": ["0"]})
    assert demo.print_summary(collector, 2.0, tmp_path, trained=False)
    assert capsys.readouterr().out.splitlines() == [
        "frames: 3 played, 2 segmented, 1 dropped (newest-frame policy)",
        "throughput: 2.86 fps (played at 2.0 Hz)",
        "end-to-end latency (publish -> overlay received): median 150 ms, mean 150 ms, max 200 ms",
        "node (median of 1 s windows): inference 60 ms, whole frame (convert, network, overlay, grid, publish) "
        "100 ms -> capacity about 10.0 fps on cpu (fp32, onnxruntime); dropped 1, bad messages 0",
        f"wrote 1 PNGs (overlay, mask, grid per frame) to {tmp_path}/",
        "reminder: the weights were untrained, so the masks are noise."]
    empty = SimpleNamespace(played=stamps, got={"overlay": {}}, arrival={}, diag={})
    assert not demo.print_summary(empty, 2.0, tmp_path, trained=True)
    assert capsys.readouterr().err == "no frames came out of the node\n"


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")
def test_demo_end_to_end(tmp_path):
    """Two frames of the bundled KITTI samples through play and segment over DDS."""
    src = tmp_path / "src"
    for sub in ("image_2", "calib"):
        (src / sub).mkdir(parents=True)
        for f in sorted((KITTI / sub).iterdir())[:2]:
            (src / sub / f.name).write_bytes(f.read_bytes())
    run = subprocess.run([sys.executable, "-m", "icnet_ros.tools.demo", "--out", str(tmp_path / "out"), "--source",
                          str(src), "--rate", "5", "--timeout", "120"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "frames: 2 played, 2 segmented, 0 dropped" in run.stdout, run.stdout
    assert run.stdout.startswith("demo: ROS_DOMAIN_ID=")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    stems = sorted(f.stem for f in (src / "image_2").iterdir())
    assert names == sorted(f"{s}_{k}.png" for s in stems for k in ("grid", "mask", "overlay"))
