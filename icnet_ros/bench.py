"""`bench`: speed, latency and memory of ICNet and of the node, next to the models a user
would pick instead, in one run on one machine.

1. Models: every model goes through the same full path the node uses (``Engine.infer``:
   uint8 frames in, normalise, network, argmax, class maps back on the host), so
   torchvision's models pay the same pre/post-processing as ICNet.  Each model runs in a
   subprocess of its own so that its peak RSS (VmHWM, reset per configuration) is its
   own; on CUDA the peak is ``torch.cuda.max_memory_allocated``.
2. Node: ``segment`` as a separate process (as deployed), fed over real DDS by a
   publisher in this process, a subscriber to ``~/mask`` measuring receive time - header
   stamp.  Node windows alternate with bare-engine windows on the same frames in a
   process of its own, so that drifts in machine speed fall on both.  The publisher
   runs at 1.2x the engine's fps just measured (--rate: another factor, or Hz): at
   exactly 1x, jitter in the frame times alone would leave the node now waiting for a
   frame, now replacing one, and the ratio would measure that queue, not the node.
   Then twice the engine's fps, with drops read from the node's /diagnostics.
3. ``--soak S``: the node at twice the rate for S seconds: RSS, latency trend, crashes.

Everything runs on a private ROS_DOMAIN_ID; nothing is downloaded (random weights for
every model but the shipped one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ICNETS = ("icnet_r50_w0.5", "icnet_r18_w0.5", "icnet_r18_w0.25")
TORCHVISION = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50")
ALL_MODELS = ICNETS + TORCHVISION
KITTI = (375, 1242)
CITYSCAPES = (1024, 2048)
NODE_DEFAULT = "icnet_r18_w0.5"       # the node's model when no shipped model is installed
RATE_FACTOR = 1.2                     # node windows: publisher at this x the engine's fps

# Timing schedules: warmup calls, then reps until (n >= min_reps and elapsed >= min_s),
# or n >= 2 and elapsed >= max_s, or n >= max_reps.  p99 of a handful of reps is close
# to their maximum; the Markdown table says how many there were.
SCHEDULES = {
    ("cpu", True): dict(warmup=1, min_reps=3, min_s=1.0, max_s=4.0, max_reps=100),
    ("cpu", False): dict(warmup=1, min_reps=10, min_s=3.0, max_s=10.0, max_reps=200),
    ("cuda", True): dict(warmup=5, min_reps=20, min_s=0.5, max_s=2.0, max_reps=500),
    ("cuda", False): dict(warmup=20, min_reps=100, min_s=2.0, max_s=5.0, max_reps=2000),
}


class BenchError(ValueError):
    """A bench option that cannot be used; the message names it."""


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


# --- frames ---------------------------------------------------------------------------

def sample_frames(shape: tuple[int, int], count: int = 6) -> list[np.ndarray]:
    """KITTI road frames from the source checkout's test data resized to shape, or
    synthetic frames when they are not there (content does not change the timings)."""
    import cv2

    h, w = shape
    folder = Path(__file__).resolve().parent.parent / "test" / "data" / "kitti_road" / "image_2"
    files = sorted(folder.glob("*.png"))[:count] if folder.is_dir() else []
    frames = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is not None:
            frames.append(np.ascontiguousarray(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)[..., ::-1]))
    rng = np.random.default_rng(0)
    while len(frames) < count:
        frames.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return frames


# --- memory ---------------------------------------------------------------------------

def _status_mb(key: str, pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --- models ---------------------------------------------------------------------------

def _torchvision_model(name: str, num_classes: int):
    """torchvision returns {'out': logits}, as ICNet does: the engine runs either."""
    from torchvision.models import segmentation

    builder = getattr(segmentation, name)
    return builder(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)


def build(name: str, checkpoint: str | None = None):
    """(model, meta) for a bench model name; ICNet from checkpoint when one is given.
    A checkpoint keeps its meta, so it runs exactly as the engine runs it (at its
    input_size or input_width: the table's "net size"); the model-zoo entries have no
    input size and run at the size they are given."""
    from .checkpoint import ModelMeta, load_checkpoint
    from .classes import CAMVID

    if checkpoint:
        model, meta, _ = load_checkpoint(checkpoint)
        return model, meta
    if name.startswith("icnet_"):
        _, variant, width = name.split("_")
        meta = ModelMeta(CAMVID, variant=variant, width=float(width[1:]))
        return meta.build(), meta
    if name in TORCHVISION:
        meta = ModelMeta(CAMVID, arch=name)
        return _torchvision_model(name, CAMVID.num_classes), meta
    raise BenchError(f"unknown model {name!r}; choose from {', '.join(ALL_MODELS)}")


class GraphedPath:
    """The engine's CUDA path (uint8 upload, the engine's own device step: normalise,
    resize to the network size, network under autocast, resize back; argmax, class maps
    to the host) with the device part captured in one CUDA graph: a replay launches
    everything at once instead of one Python call per kernel.  capture=False runs the
    same step eagerly (the CPU test compares it with Engine.infer)."""

    def __init__(self, engine, batch: int, h: int, w: int, capture: bool = True):
        import torch

        self.engine = engine
        self.dev_in = torch.empty((batch, h, w, 3), dtype=torch.uint8, device=engine.device)
        self.graph = None
        if not capture:
            return
        with torch.cuda.device(engine.device), torch.inference_mode():   # streams on the engine's GPU
            self.host_in = torch.empty((batch, h, w, 3), dtype=torch.uint8).pin_memory()
            self.host_out = torch.empty((batch, h, w), dtype=torch.uint8).pin_memory()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # cuDNN autotune and allocations happen before the capture
                    self.step()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.dev_out = self.step()
        self._host_np = self.host_in.numpy()

    def step(self):
        """Device work only: dev_in (uint8 N x H x W x 3 RGB) -> uint8 class maps."""
        import torch

        return self.engine.logits(self.dev_in, graph_safe=True).argmax(1).to(torch.uint8)

    def infer(self, frames: list[np.ndarray]) -> np.ndarray:
        import torch

        if self.graph is None:
            self.dev_in.copy_(torch.from_numpy(np.stack(frames)))
            with torch.inference_mode():
                return self.step().cpu().numpy()
        for i, f in enumerate(frames):
            self._host_np[i] = f
        with torch.cuda.device(self.engine.device):
            self.dev_in.copy_(self.host_in, non_blocking=True)
            self.graph.replay()
            self.host_out.copy_(self.dev_out, non_blocking=True)
            torch.cuda.current_stream().synchronize()
        return self.host_out.numpy()


def in_thread(fn, *args):
    """fn(*args) on a fresh thread, as the node's worker runs the engine.  On this
    project's loaded 2-core machine the same engine ran ~6x slower on the thread that
    first ran torch than on a later thread (both threads of torch's pool spinning), so
    engine, models and node are all timed the same way: built on the main thread, run
    on another."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # re-raised on the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name="bench-worker")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def time_calls(call, warmup: int, min_reps: int, min_s: float, max_s: float, max_reps: int) -> list[float]:
    """Per-call wall times in ms (each call ends with the class maps on the host)."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000.0)
        elapsed = time.perf_counter() - start
        n = len(times)
        if n >= max_reps or (n >= min_reps and elapsed >= min_s) or (n >= 2 and elapsed >= max_s):
            return times


def measure_model(spec: dict) -> list[dict]:
    """One model, several (height, width, batch, precision) configurations; run in a
    subprocess of its own by ``bench_models``.  A configuration that fails (out of
    memory, bf16 on a pre-Ampere GPU, a graph that does not capture) is a row too, with
    its reason in "error" and no numbers: a missing row would read as never tried."""
    model, meta = build(spec["name"], spec.get("checkpoint"))
    rows = []
    for h, w, batch, precision in spec["configs"]:
        net_h, net_w = meta.network_size(h, w)
        row = {"name": spec["name"], "shipped": bool(spec.get("checkpoint")), "height": h, "width": w,
               "net_height": net_h, "net_width": net_w, "batch": batch, "precision": precision}
        try:
            row.update(_measure(spec, model, meta, h, w, batch, precision), error=None)
        except Exception as e:  # one configuration failing is reported in its row, not fatal
            first = str(e).strip().splitlines()[:1]
            reason = f"{type(e).__name__}: {first[0]}" if first else type(e).__name__
            row.update(fps=float("nan"), p50_ms=float("nan"), p99_ms=float("nan"), peak_mb=float("nan"),
                       reps=0, error=reason)
            log(f"bench: {spec['name']} {h}x{w} batch {batch} {precision} failed: {reason}")
            rows.append(row)
            continue
        rows.append(row)
        log(f"bench: {spec['name']:30s} {h}x{w} (net {net_h}x{net_w}) b{batch} {precision:10s} "
            f"{row['fps']:8.2f} fps  p50 {row['p50_ms']:8.1f} ms  peak {row['peak_mb']:7.0f} MB  ({row['reps']} reps)")
    return rows


def _measure(spec: dict, model, meta, h: int, w: int, batch: int, precision: str) -> dict:
    """fps, p50_ms, p99_ms, peak_mb and reps of one configuration."""
    import torch

    from .engine import Engine

    prec = precision.split("+")[0]
    backend = "onnxruntime" if precision.endswith("+ort") else "torch"
    engine = Engine(model, meta, spec["device"], prec, warmup=False, backend=backend)
    cuda = engine.device.type == "cuda"
    frames = sample_frames((h, w), batch)
    if cuda:
        torch.cuda.synchronize(engine.device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(engine.device)
    reset = _reset_peak_rss()
    if precision.endswith("+graph"):
        path = GraphedPath(engine, batch, h, w)
        call = lambda: path.infer(frames)  # noqa: E731
    else:
        call = lambda: engine.infer(frames)  # noqa: E731
    times = in_thread(lambda: time_calls(
        call, **(spec.get("schedule") or SCHEDULES[(engine.device.type, bool(spec["quick"]))])))
    if cuda:
        peak = torch.cuda.max_memory_allocated(engine.device) / 2**20
    else:
        peak = _status_mb("VmHWM") if reset else float("nan")
    t = np.asarray(times)
    return {"fps": batch * len(t) / (t.sum() / 1000.0), "p50_ms": float(np.percentile(t, 50)),
            "p99_ms": float(np.percentile(t, 99)), "peak_mb": float(peak), "reps": len(t)}


def model_plan(device: str, quick: bool, models, shapes, batches) -> dict[str, list]:
    """{model name: [(h, w, batch, precision), ...]}, smallest work first.  On the CPU,
    'fp32' is PyTorch and 'fp32+ort' ONNX Runtime (the node's default there), batch 1."""
    from .engine import _have_onnxruntime

    cuda = device.startswith("cuda")
    precisions = ["fp32", "fp16", "bf16", "fp16+graph"] if cuda else ["fp32"]
    if not cuda and _have_onnxruntime():
        precisions.append("fp32+ort")
    plan = {}
    for name in models:
        configs = []
        for h, w in shapes:
            for b in batches:
                # deeplabv3_resnet50 at 1024x2048 costs minutes per call on a small CPU.
                if not cuda and quick and name == "deeplabv3_resnet50" and (h * w > KITTI[0] * KITTI[1] or b > 1):
                    continue
                configs += [(h, w, b, p) for p in precisions if b == 1 or not p.endswith("+ort")]
        plan[name] = sorted(configs, key=lambda c: (c[0] * c[1] * c[2], precisions.index(c[3])))
    return plan


def bench_models(device: str, quick: bool, models, shapes, batches, shipped: str | None,
                 isolate: bool = True, schedule: dict | None = None) -> list[dict]:
    shipped_name = None
    if shipped:
        from .checkpoint import read_checkpoint

        meta = read_checkpoint(shipped)[0]
        shipped_name = f"icnet_{meta.variant}_w{meta.width:g}"
        if shipped_name not in models:
            models = [shipped_name] + list(models)
    rows = []
    for name, configs in model_plan(device, quick, models, shapes, batches).items():
        if not configs:
            continue
        spec = {"name": name, "device": device, "quick": quick, "configs": configs,
                "checkpoint": shipped if name == shipped_name else None, "schedule": schedule}
        if not isolate:
            rows += measure_model(spec)
            continue
        proc = subprocess.run([sys.executable, "-m", "icnet_ros.bench", "--worker", json.dumps(spec)],
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench worker for {name} failed with exit code {proc.returncode}")
        rows += json.loads(proc.stdout.strip().splitlines()[-1])
    return rows


# --- the node over DDS ----------------------------------------------------------------

def _pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


class NodeHarness:
    """``segment`` in a subprocess; a publisher, a ~/mask subscriber and a /diagnostics
    subscriber in this process, on a private context and ROS domain."""

    def __init__(self, checkpoint: str, device: str, frames: list[np.ndarray], domain_id: int,
                 num_threads: int = 0):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy
        from sensor_msgs.msg import Image

        from .ros.conversions import numpy_to_image

        self.ns = f"/bench{os.getpid()}"
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED="1")
        self.log_file = tempfile.NamedTemporaryFile("w+", prefix="icnet_bench_node_", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "icnet_ros.ros.node", "--ros-args", "-r", f"__ns:={self.ns}",
               "-p", f"model_path:={checkpoint}", "-p", f"device:={device}",
               "-p", f"num_threads:={num_threads}", "-p", "qos_reliability:=reliable", "--log-level", "warn"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context, domain_id=domain_id)
        self.probe = rclpy.create_node("icnet_bench", namespace=self.ns, context=self.context)
        self.msgs = [numpy_to_image(f, "rgb8") for f in frames]
        for m in self.msgs:
            m.header.frame_id = "camera"
        # Reliable keep-last-1 in and out of the node: a newer frame still replaces an
        # unsent one (no back-pressure), but megabyte frames are not lost in UDP
        # fragments when Fast DDS has no shared memory (as on this project's machine),
        # so the bench measures the node and not the transport.
        camera_qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.image_pub = self.probe.create_publisher(Image, f"{self.ns}/image", camera_qos)
        self._lock = threading.Lock()
        self.masks: list[tuple[int, int]] = []          # (stamp ns, receive ns)
        self.diag: list[tuple[int, dict]] = []          # (receive ns, values)
        self.mask_sub = self.probe.create_subscription(
            Image, f"{self.ns}/icnet/mask", self._on_mask,
            QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
        self.probe.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.probe)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()
        self.published = 0

    def _on_mask(self, msg) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self.masks.append((stamp, now))

    def _on_diag(self, msg) -> None:
        now = time.time_ns()
        for status in msg.status:
            if status.name == "icnet: camera":
                with self._lock:
                    self.diag.append((now, {kv.key: kv.value for kv in status.values}))

    def node_output(self) -> str:
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read()[-3000:]

    def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the node exited with code {self.proc.returncode} before it was ready:\n"
                                   f"{self.node_output()}")
            if self.image_pub.get_subscription_count() > 0 and self.mask_sub.get_publisher_count() > 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"the node did not subscribe to {self.ns}/image within {timeout:.0f} s:\n"
                           f"{self.node_output()}")

    def publish(self, rate: float, seconds: float, on_tick=None) -> tuple[int, int]:
        """Publish at rate (absolute deadlines, no catch-up bursts) for seconds; returns
        the (first, last) stamps in ns."""
        period = 1.0 / rate
        start = time.monotonic()
        end = start + seconds
        due = start
        i = 0
        first = last = time.time_ns()
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now < due:
                time.sleep(min(due - now, end - now))
                continue
            msg = self.msgs[i % len(self.msgs)]
            stamp = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            self.image_pub.publish(msg)
            if i == 0:
                first = stamp
            last = stamp
            i += 1
            self.published += 1
            due = max(due + period, now - period)
            if on_tick is not None:
                on_tick()
        return first, last

    def masks_between(self, first: int, last: int) -> list[tuple[int, int]]:
        with self._lock:
            return [m for m in self.masks if first <= m[0] <= last]

    def diag_after(self, t_ns: int, timeout: float = 5.0) -> dict:
        """The first diagnostics the node sent after t_ns (it sends them once a second)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                later = [d for t, d in self.diag if t > t_ns]
            if later:
                return later[0]
            time.sleep(0.05)
        raise RuntimeError(f"no /diagnostics from the node within {timeout:.0f} s")

    def rss_mb(self) -> float:
        return _status_mb("VmRSS", self.proc.pid)

    def close(self) -> int | None:
        """Stop the node with SIGINT (as Ctrl-C); its exit code, None if it had to be killed."""
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                code = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            code = self.proc.returncode
        self.executor.shutdown(timeout_sec=2.0)
        self._spin.join(timeout=5.0)     # a daemon thread left inside rclpy aborts the exit
        self.probe.destroy_node()
        self.context.try_shutdown()
        self.log_file.close()
        os.unlink(self.log_file.name)
        return code


class EngineWorker:
    """The bare engine on the node's frames, one frame a call as the node gets them, in a
    process of its own like the node.  It stays loaded between windows (blocked on its
    stdin, idle) so that engine and node windows can be taken in turn."""

    def __init__(self, checkpoint: str, device: str, shape):
        spec = {"checkpoint": checkpoint, "device": device, "shape": list(shape)}
        self.proc = subprocess.Popen([sys.executable, "-m", "icnet_ros.bench", "--engine-worker", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def fps(self, seconds: float) -> float:
        self.proc.stdin.write(f"{seconds}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench engine worker failed with exit code {self.proc.wait()}")
        return float(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _engine_worker(checkpoint: str, device: str, frames: list[np.ndarray]) -> None:
    """Answer each line of stdin (seconds) with the engine's fps over that long."""
    from .engine import Engine

    # As in the node: loaded and warmed up on the main thread, run on a worker thread.
    engine = Engine.from_checkpoint(checkpoint, device, "auto", warmup=True)

    def loop(seconds: float) -> float:
        for f in frames[:2]:
            engine.infer(f)
        n, start = 0, time.perf_counter()
        while n < 5 or time.perf_counter() - start < seconds:
            engine.infer(frames[n % len(frames)])
            n += 1
        return n / (time.perf_counter() - start)

    for line in sys.stdin:
        print(in_thread(loop, float(line)), flush=True)


def _phase(h: NodeHarness, rate: float, seconds: float, settle: float) -> dict:
    first, last = h.publish(rate, seconds)
    time.sleep(settle)                                   # the last frames in flight
    got = h.masks_between(first, last)
    lat = [(r - s) / 1e6 for s, r in got]
    span = (last - first) / 1e9 + 1.0 / rate            # n frames published over n periods
    return {"fps": len(got) / span, "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "frames": len(got),
            "span_s": span, "latencies": lat}


def _nominal(h: NodeHarness, engine: EngineWorker, rate: float | None, seconds: float, rounds: int,
             settle: float, first_fps: float, factor: float = 1.0) -> tuple[dict, list[float], list[dict]]:
    """Engine and node windows in turn, E N E N .. E: a slow drift in the machine's speed
    (a noisy neighbour on a shared VM) falls on both alike instead of on one of them.
    Each node window's publisher runs at the given rate (Hz), or at factor x the
    engine's fps just measured.  Returns (pooled node window, engine fps per window, per-round rows)."""
    width = seconds / rounds
    e_fps = [first_fps]
    windows, rows = [], []
    for _ in range(rounds):
        r = rate or factor * e_fps[-1]
        w = _phase(h, r, width, settle)
        e_fps.append(engine.fps(max(width / 2, 1.0)))
        windows.append(w)
        rows.append({"rate_hz": r, "node_fps": w["fps"], "engine_fps": (e_fps[-2] + e_fps[-1]) / 2})
        rows[-1]["ratio"] = w["fps"] / rows[-1]["engine_fps"]
    lat = [x for w in windows for x in w["latencies"]]
    frames = sum(w["frames"] for w in windows)
    pooled = {"fps": frames / sum(w["span_s"] for w in windows), "p50_ms": _pct(lat, 50),
              "p99_ms": _pct(lat, 99), "frames": frames}
    return pooled, e_fps, rows


def bench_node(checkpoint: str, device: str, shape: tuple[int, int], seconds: float, rate: float | None,
               soak: float, domain_id: int, rounds: int = 3, factor: float = RATE_FACTOR) -> tuple[dict, dict, dict]:
    """(node, soak, details) dicts."""
    frames = sample_frames(shape)
    engine = EngineWorker(checkpoint, device, shape)
    h = None
    soak_out: dict = {"seconds": 0}
    try:
        first_fps = engine.fps(max(seconds / rounds / 2, 1.0))
        log(f"bench: bare engine {first_fps:.2f} fps on {shape[0]}x{shape[1]}; node and engine windows in turn")
        h = NodeHarness(checkpoint, device, frames, domain_id)
        h.wait_ready(timeout=180)
        settle = max(3.0 / first_fps, 0.5)
        warm = rate or factor * first_fps
        h.publish(warm, max(2.0 / warm, 1.0))             # warm the path, fill caches
        time.sleep(settle)
        nominal, e_list, rows = _nominal(h, engine, rate, seconds, rounds, settle, first_fps, factor)
        if nominal["frames"] == 0:
            raise RuntimeError(f"no mask came back from the node in {seconds:.0f} s "
                               f"({h.published} frames published):\n{h.node_output()}")
        e_fps = float(np.mean(e_list))
        log("bench: node/engine per round " + ", ".join(f"{r['node_fps']:.2f}/{r['engine_fps']:.2f}" for r in rows))
        over_rate = 2 * (rate or e_fps)
        before = h.diag_after(time.time_ns())
        over = _phase(h, over_rate, seconds, settle)
        after = h.diag_after(time.time_ns())
        dropped = int(after["dropped frames"]) - int(before["dropped frames"])
        received = int(after["frames received"]) - int(before["frames received"])
        details = {"rate_hz": float(np.mean([r["rate_hz"] for r in rows])), "fixed_rate": rate is not None,
                   "rate_factor": None if rate else factor, "shape": list(shape),
                   "engine_windows_fps": e_list, "rounds": rows, "nominal_frames": nominal["frames"],
                   "overload_rate_hz": over_rate, "overload_fps": over["fps"], "overload_p50_ms": over["p50_ms"],
                   "overload_frames": over["frames"], "overload_published": int(over_rate * seconds),
                   "overload_received": received}
        node = {"fps": nominal["fps"], "engine_fps": e_fps, "ratio": nominal["fps"] / e_fps,
                "p50_ms": nominal["p50_ms"], "p99_ms": nominal["p99_ms"],
                "overload_p99_ms": over["p99_ms"], "dropped": dropped}
        engine.close()                                     # its memory is not the soak's
        if soak > 0:
            soak_out = _soak(h, over_rate, soak, settle)
    finally:
        engine.close()
        code = h.close() if h is not None else None
    if soak > 0:
        soak_out["exit_code"] = code
        if code not in (0, None) and soak_out.get("crashes", 0) == 0:
            soak_out["crashes"] = 1
    details["node_exit_code"] = code
    return node, soak_out, details


def _soak(h: NodeHarness, rate: float, seconds: float, settle: float) -> dict:
    windows = min(20, max(2, int(seconds // 5)))
    width = seconds / windows
    before = h.diag_after(time.time_ns())
    rss_start = h.rss_mb()
    rows = []
    crashed = False
    for k in range(windows):
        first, last = h.publish(rate, width)
        if h.proc.poll() is not None:
            crashed = True
            break
        time.sleep(min(settle, 0.5))
        got = h.masks_between(first, last)
        lat = [(r - s) / 1e6 for s, r in got]
        rows.append({"t_s": round((k + 1) * width, 2), "fps": len(got) / width, "frames": len(got),
                     "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "rss_mb": h.rss_mb()})
    after = h.diag_after(time.time_ns()) if not crashed else before
    t = np.array([r["t_s"] for r in rows])
    p50 = np.array([r["p50_ms"] for r in rows])
    ok = np.isfinite(p50)
    slope = float(np.polyfit(t[ok] / 60.0, p50[ok], 1)[0]) if ok.sum() >= 2 else float("nan")
    return {"seconds": seconds, "rate_hz": rate, "rss_start_mb": rss_start,
            "rss_end_mb": rows[-1]["rss_mb"] if rows else float("nan"),
            "p50_ms_start": rows[0]["p50_ms"] if rows else float("nan"),
            "p50_ms_end": rows[-1]["p50_ms"] if rows else float("nan"),
            "latency_trend_ms_per_min": slope,
            "frames": sum(r["frames"] for r in rows),
            "dropped": int(after["dropped frames"]) - int(before["dropped frames"]),
            "crashes": int(crashed), "windows": rows}


# --- report ---------------------------------------------------------------------------

def describe_device(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    cpu = "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"cpu: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _f(v, digits=1) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def markdown(report: dict) -> str:
    lines = [f"Device: {report['device']}. {report['_notes']}", "",
             "| model | shipped | size | net size | batch | precision | fps | p50 ms | p99 ms | peak MB | reps |",
             "|---|---|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in report["models"]:
        fps = f"failed: {r['error'].replace('|', '/')}" if r.get("error") else _f(r["fps"], 2)
        lines.append(f"| {r['name']} | {'yes' if r['shipped'] else 'no'} | {r['height']}x{r['width']} | "
                     f"{r['net_height']}x{r['net_width']} | {r['batch']} | {r['precision']} | {fps} | "
                     f"{_f(r['p50_ms'])} | {_f(r['p99_ms'])} | {_f(r['peak_mb'], 0)} | {r.get('reps', '')} |")
    n, d = report.get("node"), report.get("_node_details", {})
    if n:
        rounds = d.get("rounds", [])
        rate = (f"{d['rate_hz']:.2f} Hz" if d.get("fixed_rate") else
                f"{d.get('rate_factor', 1):g}x the engine's fps of the window before (mean {d['rate_hz']:.2f} Hz)")
        lines += ["", f"Node end to end over DDS ({d['shape'][0]}x{d['shape'][1]}, the node a separate process; "
                      f"{len(rounds)} node windows with the publisher at {rate}, taken in turn with "
                      f"{len(d.get('engine_windows_fps', []))} bare-engine windows "
                      f"({', '.join(_f(v, 2) for v in d.get('engine_windows_fps', []))} fps); node/engine "
                      f"ratio per round {', '.join(_f(r['ratio'], 2) for r in rounds)}; "
                      f"then 2x at {_f(d.get('overload_rate_hz'), 2)} Hz):", "",
                  "| node fps | engine fps | ratio | p50 ms | p99 ms | 2x p99 ms | 2x fps | 2x dropped |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {_f(n['fps'], 2)} | {_f(n['engine_fps'], 2)} | {_f(n['ratio'], 2)} | {_f(n['p50_ms'])} | "
                  f"{_f(n['p99_ms'])} | {_f(n['overload_p99_ms'])} | {_f(d.get('overload_fps'), 2)} | "
                  f"{n['dropped']} of {d.get('overload_received')} received |"]
    s = report.get("soak") or {}
    if s.get("seconds"):
        lines += ["", f"Soak {s['seconds']:.0f} s at {s['rate_hz']:.2f} Hz: RSS {_f(s['rss_start_mb'], 0)} -> "
                      f"{_f(s['rss_end_mb'], 0)} MB, p50 {_f(s['p50_ms_start'])} -> {_f(s['p50_ms_end'])} ms "
                      f"(trend {_f(s['latency_trend_ms_per_min'], 2)} ms/min), {s['frames']} masks, "
                      f"{s['dropped']} dropped, crashes {s['crashes']}, node exit code {s.get('exit_code')}"]
    lines += ["", "Targets:"] + [f"- {t}" for t in targets(report)]
    return "\n".join(lines)


def targets(report: dict) -> list[str]:
    out = []
    rows = [r for r in report["models"] if not r.get("error")]

    def find(pred):
        return next((r for r in rows if pred(r)), None)

    kitti = lambda r: (r["height"], r["width"], r["batch"]) == (*KITTI, 1)  # noqa: E731
    for prec, label in (("fp32", "PyTorch"), ("fp32+ort", "ONNX Runtime")):
        ship = find(lambda r: r["shipped"] and kitti(r) and r["precision"] == prec)
        ship = ship or find(lambda r: r["name"] == NODE_DEFAULT and kitti(r) and r["precision"] == prec)
        lr = find(lambda r: r["name"] == "lraspp_mobilenet_v3_large" and kitti(r) and r["precision"] == prec)
        if ship and lr and report["device"].startswith("cpu"):
            which = "shipped" if ship["shipped"] else f"{ship['name']} (random weights, no shipped model yet)"
            if (ship["net_height"], ship["net_width"]) != KITTI:
                which += f" (network at {ship['net_height']}x{ship['net_width']})"
            out.append(f"CPU, 375x1242, {label}: {which} {ship['fps']:.2f} fps vs LR-ASPP {lr['fps']:.2f} fps: "
                       f"{'met' if ship['fps'] >= lr['fps'] else 'MISSED'}")
    n = report.get("node")
    if n:
        out.append(f"node fps >= 0.9 x engine fps: ratio {n['ratio']:.2f}: {'met' if n['ratio'] >= 0.9 else 'MISSED'}")
        ok = n["p99_ms"] <= 1.5 * n["p50_ms"]
        out.append(f"node p99 <= 1.5 x p50: {n['p99_ms']:.1f} vs {n['p50_ms']:.1f} ms: {'met' if ok else 'MISSED'}")
    if report["device"].startswith("cuda"):
        best = [r for r in rows if (r["height"], r["width"], r["batch"]) == (*CITYSCAPES, 1)
                and r["precision"].startswith("fp16") and r["name"].startswith("icnet")]
        if best:
            b = max(best, key=lambda r: r["fps"])
            net = "" if (b["net_height"], b["net_width"]) == CITYSCAPES else \
                f" (network at {b['net_height']}x{b['net_width']})"
            out.append(f"GPU 1024x2048 fp16 batch 1: best ICNet {b['name']}{net} {b['precision']} {b['fps']:.0f} fps "
                       f"(target 300): {'met' if b['fps'] >= 300 else 'MISSED'}")
        if n:
            out.append(f"GPU node p50 at KITTI size {n['p50_ms']:.1f} ms (target 10): "
                       f"{'met' if n['p50_ms'] <= 10 else 'MISSED'}")
    return out or ["(nothing to compare in this run)"]


# --- entry points ---------------------------------------------------------------------

def shipped_checkpoint() -> str | None:
    from .paths import default_model_path

    try:
        return str(default_model_path())
    except FileNotFoundError:
        return None


def run(device: str = "cpu", quick: bool = False, soak: float = 0.0, models=None, shapes=None,
        batches=None, node: bool = True, node_shape=KITTI, node_seconds: float | None = None,
        rate: float | None = None, domain_id: int | None = None, checkpoint: str | None = None,
        rate_factor: float | None = None,
        isolate: bool = True, schedule: dict | None = None) -> dict:
    """The whole bench; returns the report (JSON shape of the issue, plus '_'-keys that
    ``main`` prints but does not write).  isolate=False measures the models in this
    process (peak RSS then includes what came before); schedule overrides SCHEDULES
    (tests use a tiny one)."""
    from .engine import EngineError, resolve_device

    try:
        dev = resolve_device(device)
    except EngineError as e:
        raise BenchError(f"--device: {e}") from None
    device = str(dev) if dev.type == "cuda" else "cpu"
    if soak < 0:
        raise BenchError(f"--soak must be 0 or more seconds, got {soak}")
    if rate is not None and rate <= 0:
        raise BenchError(f"--rate must be positive, got {rate}")
    rate_factor = RATE_FACTOR if rate_factor is None else rate_factor
    if rate_factor <= 0:
        raise BenchError(f"--rate must be positive, got {rate_factor}x")
    models = list(models or ALL_MODELS)
    shapes = [tuple(s) for s in (shapes or ([KITTI] if quick else [KITTI, CITYSCAPES]))]
    batches = list(batches or ([1] if quick else [1, 4]))
    shipped = checkpoint or shipped_checkpoint()
    notes = (f"Shipped model: {shipped}." if shipped else
             "No shipped model installed: every model has random weights (speed does not depend on them).")
    if os.getloadavg()[0] > 0.5 and dev.type == "cpu":
        notes += f" Load average at start {os.getloadavg()[0]:.2f}: other work shared the CPU."
    log(f"bench: {describe_device(device)}; {notes}")
    report = {"device": describe_device(device),
              "models": bench_models(device, quick, models, shapes, batches, shipped, isolate, schedule),
              "node": None, "soak": {"seconds": 0}, "_notes": notes}
    if node:
        from .paths import use_large_frame_transport

        use_large_frame_transport()  # as the node does; inherited by the node process
        tmp = None
        ckpt = shipped
        if ckpt is None:
            from .checkpoint import save_checkpoint

            model, meta = build(NODE_DEFAULT)
            tmp = tempfile.TemporaryDirectory(prefix="icnet_bench_")
            ckpt = str(save_checkpoint(Path(tmp.name) / "random.pt", model, meta))
        domain = domain_id if domain_id is not None else random.Random().randrange(1, 100)
        seconds = node_seconds or (6.0 if quick else 20.0)
        try:
            node_out, soak_out, details = bench_node(ckpt, device, tuple(node_shape), seconds, rate, soak, domain,
                                                       factor=rate_factor)
        finally:
            if tmp is not None:
                tmp.cleanup()
        report.update(node=node_out, soak=soak_out, _node_details=details)
    return report


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None                                   # JSON has no NaN
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def public(report: dict) -> dict:
    """The report as written to JSON: the issue's keys only, NaN as null."""
    out = {k: v for k, v in report.items() if not k.startswith("_")}
    out["models"] = [{k: v for k, v in r.items() if k != "reps"} for r in report["models"]]
    return _clean(out)


def _rate(text: str) -> tuple[float | None, float | None]:
    """'15' -> (15.0 Hz, None); '1.2x' -> (None, factor 1.2)."""
    factor = text.strip().lower().endswith("x")
    try:
        value = float(text.strip()[:-1] if factor else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate in Hz (15) or a factor of the "
                                         f"engine's fps (1.2x)") from None
    return (None, value) if factor else (value, None)


def _shape(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HEIGHTxWIDTH, e.g. 375x1242") from None
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"{text!r} is smaller than 8x8")
    return h, w


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:                       # one model in a subprocess
        print(json.dumps(measure_model(json.loads(argv[1]))))
        return 0
    if argv[:1] == ["--engine-worker"]:                # the bare engine in a subprocess
        spec = json.loads(argv[1])
        _engine_worker(spec["checkpoint"], spec["device"], sample_frames(tuple(spec["shape"])))
        return 0
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    ap.add_argument("--json", default="", help="write the results to this JSON file")
    ap.add_argument("--quick", action="store_true",
                    help="375x1242 and batch 1 only, fewer reps, shorter node phases")
    ap.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                    help="then run the node at 2x rate for SECONDS (RSS, latency trend, crashes)")
    ap.add_argument("--models", nargs="+", choices=ALL_MODELS, help="models to compare (default: all)")
    ap.add_argument("--shapes", nargs="+", type=_shape, metavar="HxW", help="frame sizes (default 375x1242 1024x2048)")
    ap.add_argument("--batches", nargs="+", type=int, help="batch sizes (default 1 4; --quick: 1)")
    ap.add_argument("--model", default="", help="checkpoint to bench as the shipped model and run in the node")
    ap.add_argument("--rate", type=_rate, default=(None, RATE_FACTOR), metavar="HZ|FACTORx",
                    help=f"publisher rate: Hz, or a factor of the bare engine's fps such as 1x "
                         f"(default {RATE_FACTOR:g}x)")
    ap.add_argument("--node-shape", type=_shape, default=KITTI, metavar="HxW", help="node frame size (375x1242)")
    ap.add_argument("--node-seconds", type=float, help="seconds per node phase (6 quick, 20 full)")
    ap.add_argument("--no-node", action="store_true", help="models only")
    ap.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID for the node (default: a random private one)")
    args = ap.parse_args(argv)
    if args.batches and min(args.batches) < 1:
        ap.error(f"--batches must be 1 or more, got {args.batches}")
    if args.model and not Path(args.model).is_file():
        ap.error(f"--model: checkpoint {args.model} does not exist")
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        ap.error(f"--domain-id must be within 0..232, got {args.domain_id}")
    try:
        report = run(args.device, args.quick, args.soak, args.models, args.shapes, args.batches,
                     not args.no_node, args.node_shape, args.node_seconds, args.rate[0], args.domain_id,
                     args.model or None, rate_factor=args.rate[1])
    except BenchError as e:
        ap.error(str(e))
    print(markdown(report))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(public(report), indent=2) + "\n")
        log(f"bench: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
