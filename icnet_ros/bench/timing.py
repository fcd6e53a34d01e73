"""
Measuring one model: sample frames, per-call wall times and the peak memory.

Wall times are taken on a fresh thread.  The peak memory is the process's VmHWM from
/proc on the CPU (reset per configuration) and ``torch.cuda.max_memory_allocated`` on
CUDA.
"""

from __future__ import annotations

from pathlib import Path
import time

import numpy as np

from .config import log, SCHEDULES
from .flops import gflops_per_frame
from .models import build
from .threads import in_thread

# the source checkout's sample frames (icnet_ros/bench/timing.py -> the checkout root)
CHECKOUT_FRAMES = Path(__file__).resolve().parents[2] / "test" / "data" / "kitti_road" / "image_2"


# --- frames ---------------------------------------------------------------------------

def sample_frames(shape: tuple[int, int], count: int = 6) -> list[np.ndarray]:
    """
    Return KITTI road frames resized to shape, or synthetic frames when they are not there.

    The KITTI frames come from the source checkout's test data; content does not change
    the timings.
    """
    import cv2

    h, w = shape
    files = sorted(CHECKOUT_FRAMES.glob("*.png"))[:count] if CHECKOUT_FRAMES.is_dir() else []
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

def status_mb(key: str, pid: int | str = "self") -> float:
    """Return a /proc/PID/status size (VmRSS, VmHWM ...) in MB; NaN where the key is missing."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --- timing ---------------------------------------------------------------------------

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


# --- one model ------------------------------------------------------------------------

def measure_model(spec: dict) -> list[dict]:
    """
    Time one model in several (height, width, batch, precision) configurations.

    ``workers.bench_models`` runs it in a subprocess of its own.  A configuration that
    fails (out of memory, bf16 on a pre-Ampere GPU, a graph that does not capture) is a
    row too, with its reason in "error" and no numbers: a missing row would read as
    never tried.  Each row also has the network's GFLOP per frame at its net size
    (``flops``, counted once per size) and the GFLOP/s its fps achieved.
    """
    model, meta = build(spec["name"], spec.get("checkpoint"))
    key = (spec["name"], spec.get("checkpoint"))
    # FLOPs first, once per network size: the copy counting makes is gone before any peak is taken
    nets = {(h, w): meta.network_size(h, w) for h, w, _, _ in spec["configs"]}
    gflops = {net: gflops_per_frame(key, model, *net) for net in dict.fromkeys(nets.values())}
    rows = []
    for h, w, batch, precision in spec["configs"]:
        net_h, net_w = nets[(h, w)]
        row = {"name": spec["name"], "shipped": bool(spec.get("checkpoint")), "height": h, "width": w,
               "net_height": net_h, "net_width": net_w, "batch": batch, "precision": precision,
               "gflops": gflops[(net_h, net_w)]}
        try:
            row.update(_measure(spec, model, meta, h, w, batch, precision), error=None)
        except Exception as e:  # one configuration failing is reported in its row, not fatal
            first = str(e).strip().splitlines()[:1]
            reason = f"{type(e).__name__}: {first[0]}" if first else type(e).__name__
            row.update(fps=float("nan"), p50_ms=float("nan"), p99_ms=float("nan"), peak_mb=float("nan"),
                       reps=0, error=reason)
            log(f"bench: {spec['name']} {h}x{w} batch {batch} {precision} failed: {reason}")
        # fps counts frames (batch x calls per second), gflops is per frame: achieved GFLOP/s
        row["gflops_per_s"] = row["gflops"] * row["fps"]
        rows.append(row)
        if not row["error"]:
            log(f"bench: {spec['name']:30s} {h}x{w} (net {net_h}x{net_w}) b{batch} {precision:10s} "
                f"{row['fps']:8.2f} fps  p50 {row['p50_ms']:8.1f} ms  peak {row['peak_mb']:7.0f} MB  "
                f"{row['gflops_per_s']:7.1f} GFLOP/s  ({row['reps']} reps)")
    return rows


def _measure(spec: dict, model, meta, h: int, w: int, batch: int, precision: str) -> dict:
    """fps, p50_ms, p99_ms, peak_mb and reps of one configuration."""
    import torch

    from ..inference.engine import Engine
    from .graphs import GraphedPath

    prec = precision.split("+")[0]
    backend = "onnxruntime" if precision.endswith("+ort") else "torch"
    engine = Engine(model, meta, spec["device"], prec, warmup=False, backend=backend,
                    calibration=spec.get("calibration") if prec == "int8" else None)
    cuda = engine.device.type == "cuda"
    frames = sample_frames((h, w), batch)
    if cuda:
        torch.cuda.synchronize(engine.device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(engine.device)
    reset = reset_peak_rss()
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
        peak = status_mb("VmHWM") if reset else float("nan")
    t = np.asarray(times)
    return {"fps": batch * len(t) / (t.sum() / 1000.0), "p50_ms": float(np.percentile(t, 50)),
            "p99_ms": float(np.percentile(t, 99)), "peak_mb": float(peak), "reps": len(t)}
