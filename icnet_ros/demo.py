"""`make demo`: the real thing on the bundled KITTI frames.

Starts `play` (the frames, with their KITTI calibration) and `segment` as two separate
processes talking over real DDS on a private ROS_DOMAIN_ID, collects the node's outputs
here, writes overlay, mask and drivable-grid PNGs to --out, prints frames, fps and
latency, stops the node and exits.  Uses the shipped model when it exists; otherwise a
randomly initialised one, and says so: its masks mean nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _share_file(relative: str) -> Path | None:
    from .paths import find_share_file

    try:
        return find_share_file(relative)
    except OSError:  # ament_index without AMENT_PREFIX_PATH (a plain venv)
        for base in (Path(sys.prefix) / "share/icnet_ros", ROOT):
            if (base / relative).is_file():
                return base / relative
        return None


def pick_model(model: str | None, workdir: Path) -> tuple[Path, bool]:
    """(checkpoint, trained?)."""
    from .paths import default_model_path

    if model:
        return Path(model), True
    try:
        return default_model_path(), True
    except FileNotFoundError:
        pass
    from .checkpoint import ModelMeta, save_checkpoint
    from .classes import CAMVID

    meta = ModelMeta(CAMVID, variant="r18", width=0.5, info={"note": "untrained demo stand-in"})
    return save_checkpoint(workdir / "untrained.pt", meta.build(), meta), False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="output", help="folder for the PNGs")
    ap.add_argument("--source", default=None,
                    help="folder or bag to play (default: the bundled KITTI sample frames)")
    ap.add_argument("--model", default=None, help="checkpoint; default: the shipped model")
    ap.add_argument("--rate", type=float, default=2.0, help="frames per second played")
    ap.add_argument("--encoding", default="",
                    help="raw encoding play publishes, as a camera driver would (bayer_rggb8, yuv422, "
                         "nv21, rgb16 ...; default bgr8)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    args = ap.parse_args(argv)

    from .paths import sample_frames_dir, use_large_frame_transport, use_private_ros_domain

    try:
        source = Path(args.source) if args.source else sample_frames_dir()
    except FileNotFoundError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    use_private_ros_domain()     # the demo never talks to other ROS graphs on this host
    use_large_frame_transport()  # inherited by play and segment
    import cv2
    import numpy as np
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import OccupancyGrid
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image

    from .checkpoint import read_checkpoint
    from .geometry import grid_to_png
    from .ros.conversions import image_to_numpy
    from .visualize import colorize

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="icnet_demo_"))
    model, trained = pick_model(args.model, work)
    colors = read_checkpoint(model)[0].classes.colors
    if not trained:
        print("WARNING: the shipped model is not installed; this demo runs a "
              "RANDOMLY INITIALISED, UNTRAINED network: the pipeline is real, the masks are meaningless.",
              flush=True)
    calibs = sorted((source / "calib").glob("*.txt")) if (source / "calib").is_dir() else []
    params = _share_file("config/icnet.yaml")
    print(f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}  model={model}  source={source}", flush=True)

    node_cmd = [sys.executable, "-m", "icnet_ros.ros.node", "--ros-args",
                *(["--params-file", str(params)] if params else []),
                "-p", f"model_path:={model}", "-p", f"device:={args.device}",
                # full-size frames: reliable, so DDS does not drop big images' fragments
                "-p", "qos_reliability:=reliable"]
    if calibs:
        node_cmd += ["-p", f"calib_file:={calibs[0]}"]
    node_log = open(work / "segment.log", "w+")
    node = subprocess.Popen(node_cmd, stdout=node_log, stderr=subprocess.STDOUT)
    player = None

    rclpy.init(args=[])
    collector = rclpy.create_node("demo_collector")
    qos = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
    got: dict[str, dict] = {"overlay": {}, "mask": {}, "drivable_area": {}}
    arrival: dict[int, float] = {}
    diag: dict[str, list] = {}

    def on_diag(msg):
        for status in msg.status:
            if status.name.startswith("icnet"):
                for kv in status.values:
                    diag.setdefault(kv.key, []).append(kv.value)

    def key(msg) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def keep(name):
        def cb(msg):
            got[name][key(msg)] = msg
            arrival.setdefault(key(msg), time.time())
        return cb

    collector.create_subscription(Image, "/icnet/overlay", keep("overlay"), qos)
    collector.create_subscription(Image, "/icnet/mask", keep("mask"), qos)
    collector.create_subscription(OccupancyGrid, "/icnet/drivable_area", keep("drivable_area"), qos)
    collector.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)

    deadline = time.monotonic() + args.timeout
    code = 0
    try:
        print("starting segment ...", flush=True)
        while collector.count_publishers("/icnet/overlay") == 0:
            if node.poll() is not None or time.monotonic() > deadline:
                node_log.seek(0)
                print(node_log.read(), file=sys.stderr)
                print("segment did not start; see its log above", file=sys.stderr)
                return 1
            rclpy.spin_once(collector, timeout_sec=0.1)
        print(f"segment is active; playing {source} at {args.rate} Hz", flush=True)
        player = subprocess.Popen([sys.executable, "-m", "icnet_ros.ros.player", "--ros-args",
                                   "-p", f"source:={source}", "-p", f"rate:={args.rate}",
                                   "-p", "wait_for_subscribers:=1",
                                   *(["-p", f"encoding:={args.encoding}"] if args.encoding else [])],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while player.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(collector, timeout_sec=0.05)
        played = {}
        for line in (player.stdout.read() if player.poll() is not None else "").splitlines():
            m = re.search(r"frame (\d+) (\S+) stamp (\d+)\.(\d{9})", line)
            if m:
                played[int(m.group(3)) * 1_000_000_000 + int(m.group(4))] = m.group(2)
        if player.returncode != 0:
            print(f"play failed (exit {player.returncode})", file=sys.stderr)
            code = 1
        # the last frames may still be in the network: wait until all are out or quiet
        quiet = time.monotonic()
        while time.monotonic() < min(deadline, quiet + 3.0):
            before = sum(len(v) for v in got.values())
            rclpy.spin_once(collector, timeout_sec=0.05)
            if sum(len(v) for v in got.values()) != before:
                quiet = time.monotonic()
            if all(k in got["overlay"] and k in got["drivable_area"] for k in played):
                break
        end = time.monotonic() + 1.2     # one more diagnostics message
        while time.monotonic() < end:
            rclpy.spin_once(collector, timeout_sec=0.05)

        for k, msg in sorted(got["overlay"].items()):
            name = Path(played.get(k, f"frame_{k}")).stem
            rgb, _ = image_to_numpy(msg)
            cv2.imwrite(str(out / f"{name}_overlay.png"), np.ascontiguousarray(rgb[..., ::-1]))
            if k in got["mask"]:
                classes, _ = image_to_numpy(got["mask"][k])
                cv2.imwrite(str(out / f"{name}_mask.png"), colorize(classes, colors)[..., ::-1])
            if k in got["drivable_area"]:
                g = got["drivable_area"][k]
                grid = np.array(g.data, np.int8).reshape(g.info.height, g.info.width)
                cv2.imwrite(str(out / f"{name}_grid.png"), grid_to_png(grid))
        done = sorted(got["overlay"])
        latency = [(arrival[k] - k / 1e9) * 1000 for k in done]
        if done:
            span = arrival[done[-1]] - min(played or done) / 1e9
            fps = len(done) / span if span > 0 else float("nan")
            print(f"frames: {len(played)} played, {len(done)} segmented, "
                  f"{len(played) - len(done)} dropped (newest-frame policy)")
            print(f"throughput: {fps:.2f} fps (played at {args.rate} Hz)")
            print(f"end-to-end latency (publish -> overlay received): median {np.median(latency):.0f} ms, "
                  f"mean {np.mean(latency):.0f} ms, max {np.max(latency):.0f} ms")
            if diag:
                def median(name):
                    # over the node's 1 s diagnostics windows: one slow frame (a new frame
                    # size traced for onnxruntime) does not set the figure
                    values = [float(v) for v in diag.get(name, []) if v != "nan"]
                    return float(np.median(values)) if values else float("nan")

                last = {k: v[-1] for k, v in diag.items()}
                print(f"node (median of 1 s windows): inference {median('inference (ms)'):.0f} ms, whole frame "
                      f"(convert, network, overlay, grid, publish) {median('processing (ms)'):.0f} ms -> capacity "
                      f"about {1000.0 / median('processing (ms)'):.1f} fps on {last.get('device', '?')} "
                      f"({last.get('precision', '?')}, {last.get('backend', '?')}); dropped {last.get('dropped frames', '?')}, "
                      f"bad messages {last.get('bad messages', '?')}")
            print(f"wrote {len(list(out.glob('*.png')))} PNGs (overlay, mask, grid per frame) to {out}/")
            if not trained:
                print("reminder: the weights were untrained, so the masks are noise.")
        else:
            print("no frames came out of the node", file=sys.stderr)
            code = 1
    finally:
        if player is not None and player.poll() is None:
            player.send_signal(signal.SIGINT)
            player.wait(timeout=10)
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
            try:
                rc = node.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.kill()
                rc = node.wait()
            if rc != 0:
                print(f"segment exited with {rc}", file=sys.stderr)
                code = code or 1
        collector.destroy_node()
        rclpy.try_shutdown()
        node_log.close()
        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
