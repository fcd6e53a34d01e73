"""
`make demo`: the real thing on the bundled KITTI frames.

Starts `play` (the frames, with their KITTI calibration) and `segment` as two separate
processes talking over real DDS on a private ROS_DOMAIN_ID, collects the node's outputs
here, writes overlay, mask and drivable-grid PNGs to --out, prints frames, fps and
latency, stops the node and exits.  Uses the shipped model when it exists; otherwise a
randomly initialised one, and says so: its masks mean nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[2]


def _share_file(relative: str) -> Path | None:
    from ..paths import find_share_file

    try:
        return find_share_file(relative)
    except OSError:  # ament_index without AMENT_PREFIX_PATH (a plain venv)
        for base in (Path(sys.prefix) / "share/icnet_ros", ROOT):
            if (base / relative).is_file():
                return base / relative
        return None


def domain_note(before: str, domain: int) -> str:
    """Say that the demo sets its own ROS_DOMAIN_ID, in place of the user's when there was one, and how to watch it."""
    whose = f"in place of your {before}" if before and before != str(domain) else "a private one"
    return (f"demo: ROS_DOMAIN_ID={domain}, {whose}, so that the demo never meets other ROS graphs on this host; "
            f"to watch it from another shell, set ROS_DOMAIN_ID={domain} there")


def pick_model(model: str | None, workdir: Path) -> tuple[Path, bool]:
    """(checkpoint, trained?)."""
    from ..paths import default_model_path

    if model:
        return Path(model), True
    try:
        return default_model_path(), True
    except FileNotFoundError:
        pass
    from ..inference.checkpoint import ModelMeta, save_checkpoint
    from ..classes import CAMVID

    meta = ModelMeta(CAMVID, variant="r18", width=0.5, info={"note": "untrained demo stand-in"})
    return save_checkpoint(workdir / "untrained.pt", meta.build(), meta), False


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="demo", description=__doc__.strip().split("\n\n")[1],
                                 epilog="Docs: the icnet_ros sources' docs/node.md (make demo).")
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
    return ap.parse_args(argv)


def node_command(model: Path, device: str, source: Path) -> list[str]:
    """`segment` with the installed parameters, the model and the source's KITTI calibration."""
    params = _share_file("config/icnet.yaml")
    calibs = sorted((source / "calib").glob("*.txt")) if (source / "calib").is_dir() else []
    cmd = [sys.executable, "-m", "icnet_ros.ros.node", "--ros-args",
           *(["--params-file", str(params)] if params else []),
           "-p", f"model_path:={model}", "-p", f"device:={device}",
           # full-size frames: reliable, so DDS does not drop big images' fragments
           "-p", "qos_reliability:=reliable"]
    if calibs:
        cmd += ["-p", f"calib_file:={calibs[0]}"]
    return cmd


def player_command(source: Path, rate: float, encoding: str) -> list[str]:
    """`play` on the source; it starts once the node and the demo's collector listen."""
    return [sys.executable, "-m", "icnet_ros.ros.player", "--ros-args",
            "-p", f"source:={source}", "-p", f"rate:={rate}", "-p", "wait_for_subscribers:=2",
            *(["-p", f"encoding:={encoding}"] if encoding else [])]


def wait_for_segment(collector, node: subprocess.Popen, node_log, deadline: float) -> bool:
    """Spin until the node publishes; False (its log on stderr) if it exits or time runs out."""
    while not collector.segment_ready():
        if node.poll() is not None or time.monotonic() > deadline:
            node_log.seek(0)
            print(node_log.read(), file=sys.stderr)
            print("segment did not start; see its log above", file=sys.stderr)
            return False
        collector.spin(0.1)
    return True


def drain(collector, deadline: float) -> None:
    """
    Wait until the last frames are out of the network.

    Waits until all are out or 3 s pass with nothing new, then 1.2 s more for one more
    diagnostics message.
    """
    quiet = time.monotonic()
    while time.monotonic() < min(deadline, quiet + 3.0):
        before = collector.received()
        collector.spin(0.05)
        if collector.received() != before:
            quiet = time.monotonic()
        if collector.complete():
            break
    end = time.monotonic() + 1.2
    while time.monotonic() < end:
        collector.spin(0.05)


def played_names(source: Path, stamps: list[int]) -> dict[int, str]:
    """Map stamp -> the name play gave that frame: play publishes its source's frames in order."""
    from ..data.play_source import frame_names

    try:
        names = frame_names(source, count=len(stamps))
    except Exception:  # names are only for the PNGs: a source play could not read has none
        names = []
    return dict(zip(stamps, names))


def write_pngs(frames, names: dict[int, str], out: Path, colors) -> None:
    """overlay, coloured mask and grid PNGs per frame, named after the played frame."""
    import cv2
    import numpy as np

    from ..ground.geometry import grid_to_png
    from ..visualize import colorize

    for f in frames:
        name = Path(names.get(f.stamp, f"frame_{f.stamp}")).stem
        cv2.imwrite(str(out / f"{name}_overlay.png"), np.ascontiguousarray(f.overlay[..., ::-1]))
        if f.classes is not None:
            cv2.imwrite(str(out / f"{name}_mask.png"), colorize(f.classes, colors)[..., ::-1])
        if f.grid is not None:
            cv2.imwrite(str(out / f"{name}_grid.png"), grid_to_png(f.grid))


def node_line(diag: dict[str, list[str]]) -> str:
    """Return the node's own figures from its diagnostics."""
    import numpy as np

    def median(name):
        # over the node's 1 s diagnostics windows: one slow frame (a new frame size traced
        # for onnxruntime) does not set the figure
        values = [float(v) for v in diag.get(name, []) if v != "nan"]
        return float(np.median(values)) if values else float("nan")

    last = {k: v[-1] for k, v in diag.items()}
    return (f"node (median of 1 s windows): inference {median('inference (ms)'):.0f} ms, whole frame "
            f"(convert, network, overlay, grid, publish) {median('processing (ms)'):.0f} ms -> capacity "
            f"about {1000.0 / median('processing (ms)'):.1f} fps on {last.get('device', '?')} "
            f"({last.get('precision', '?')}, {last.get('backend', '?')}); dropped {last.get('dropped frames', '?')}, "
            f"bad messages {last.get('bad messages', '?')}")


def print_summary(collector, rate: float, out: Path, trained: bool) -> bool:
    """Frames, throughput, latency and the node's figures; False when nothing came out."""
    import numpy as np

    done, played, arrival = sorted(collector.got["overlay"]), collector.played, collector.arrival
    if not done:
        print("no frames came out of the node", file=sys.stderr)
        return False
    latency = [(arrival[k] - k / 1e9) * 1000 for k in done]
    span = arrival[done[-1]] - min(played or done) / 1e9
    fps = len(done) / span if span > 0 else float("nan")
    print(f"frames: {len(played)} played, {len(done)} segmented, "
          f"{len(played) - len(done)} dropped (newest-frame policy)")
    print(f"throughput: {fps:.2f} fps (played at {rate} Hz)")
    print(f"end-to-end latency (publish -> overlay received): median {np.median(latency):.0f} ms, "
          f"mean {np.mean(latency):.0f} ms, max {np.max(latency):.0f} ms")
    if collector.diag:
        print(node_line(collector.diag))
    print(f"wrote {len(list(out.glob('*.png')))} PNGs (overlay, mask, grid per frame) to {out}/")
    if not trained:
        print("reminder: the weights were untrained, so the masks are noise.")
    return True


def stop(node: subprocess.Popen, player: subprocess.Popen | None) -> int:
    """SIGINT to play and segment (as Ctrl-C would); segment's exit status."""
    if player is not None and player.poll() is None:
        player.send_signal(signal.SIGINT)
        player.wait(timeout=10)
    if node.poll() is not None:
        return 0  # already gone: wait_for_segment showed its log
    node.send_signal(signal.SIGINT)
    try:
        return node.wait(timeout=20)
    except subprocess.TimeoutExpired:
        node.kill()
        return node.wait()


def run(args, source: Path, model: Path, colors, trained: bool, work: Path) -> int:
    """Run segment and play as processes, the collector here; PNGs and the summary."""
    from ..ros.demo_collector import Collector   # the demo's only ROS import

    out = Path(args.out)
    node_log = open(work / "segment.log", "w+")
    node = subprocess.Popen(node_command(model, args.device, source), stdout=node_log, stderr=subprocess.STDOUT)
    player = None
    collector = Collector()
    deadline = time.monotonic() + args.timeout
    code = 0
    try:
        print("starting segment ...", flush=True)
        if not wait_for_segment(collector, node, node_log, deadline):
            return 1
        print(f"segment is active; playing {source} at {args.rate} Hz", flush=True)
        with open(work / "play.log", "w") as play_log:
            player = subprocess.Popen(player_command(source, args.rate, args.encoding),
                                      stdout=play_log, stderr=subprocess.STDOUT)
            while player.poll() is None and time.monotonic() < deadline:
                collector.spin(0.05)
        if player.returncode != 0:
            print(f"play failed (exit {player.returncode})", file=sys.stderr)
            code = 1
        drain(collector, deadline)
        write_pngs(collector.frames(), played_names(source, collector.played), out, colors)
        if not print_summary(collector, args.rate, out, trained):
            code = 1
    finally:
        rc = stop(node, player)
        if rc != 0:
            print(f"segment exited with {rc}", file=sys.stderr)
            code = code or 1
        collector.close()
        node_log.close()
    return code


def main(argv=None) -> int:
    args = parse_args(argv)
    from ..paths import sample_frames_dir, use_large_frame_transport, use_private_ros_domain

    try:
        source = Path(args.source) if args.source else sample_frames_dir()
    except FileNotFoundError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    before = os.environ.get("ROS_DOMAIN_ID", "")
    print(domain_note(before, use_private_ros_domain()), flush=True)   # never other ROS graphs on this host
    use_large_frame_transport()  # inherited by play and segment
    from ..inference.checkpoint import read_checkpoint

    Path(args.out).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="icnet_demo_"))
    try:
        model, trained = pick_model(args.model, work)
        colors = read_checkpoint(model)[0].classes.colors
        if not trained:
            print("WARNING: the shipped model is not installed; this demo runs a "
                  "RANDOMLY INITIALISED, UNTRAINED network: the pipeline is real, the masks are meaningless.",
                  flush=True)
        print(f"model={model}  source={source}", flush=True)
        return run(args, source, model, colors, trained, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
