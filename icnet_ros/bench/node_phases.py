"""
The node over DDS: ``segment`` as a separate process, fed and timed by this one.

A publisher feeds it and a subscriber times its masks
(``icnet_ros.ros.bench_harness.NodeHarness``, imported only when the node phases run:
this module imports no ROS).  Node windows alternate with bare-engine windows
(``workers.EngineWorker``); then twice the engine's fps.  Three times, in one node
process: with ``~/mask`` subscribed (the node/engine target, as measured since the
first release; the soak after it), with every output subscribed (the engine on the same
frames), then with only the planner's outputs (the ground grid and clouds; the engine on
frames already at the network size, as the node should then do no full-resolution
work).  ``--node-map`` adds ``~/drivable_map`` to all three.
"""

from __future__ import annotations

from pathlib import Path
import random
import tempfile
import time

import numpy as np

from .config import BenchConfig, log, NODE_DEFAULT
from .models import build
from .timing import sample_frames
from .workers import EngineWorker


def _pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def node_report(cfg: BenchConfig, shipped: str | None) -> dict:
    """
    Return the report's node, node_every, node_planner, soak and their _details keys.

    cfg: a resolved BenchConfig.  Without a shipped model the node runs NODE_DEFAULT with
    random weights.
    """
    from ..paths import use_large_frame_transport

    use_large_frame_transport()  # as the node does; inherited by the node process
    tmp = None
    ckpt = shipped
    if ckpt is None:
        from ..inference.checkpoint import save_checkpoint

        model, meta = build(NODE_DEFAULT)
        tmp = tempfile.TemporaryDirectory(prefix="icnet_bench_")
        ckpt = str(save_checkpoint(Path(tmp.name) / "random.pt", model, meta))
    domain = cfg.domain_id if cfg.domain_id is not None else random.Random().randrange(1, 100)
    try:
        runs, soak_out = bench_node(cfg, ckpt, domain)
    finally:
        if tmp is not None:
            tmp.cleanup()
    out = {"soak": soak_out}
    for key, (row, details) in runs.items():
        out[key], out[f"_{key}_details"] = row, details
    return out


def _phase(h, rate: float, seconds: float, settle: float) -> dict:
    first, last = h.publish(rate, seconds)
    time.sleep(settle)                                   # the last frames in flight
    got = h.masks_between(first, last)
    lat = [(r - s) / 1e6 for s, r in got]
    span = (last - first) / 1e9 + 1.0 / rate            # n frames published over n periods
    return {"fps": len(got) / span, "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "frames": len(got),
            "span_s": span, "latencies": lat}


def nominal_windows(h, engine, rate: float | None, seconds: float, rounds: int, settle: float,
                    first_fps: float, factor: float = 1.0) -> tuple[dict, list[float], list[dict]]:
    """
    Engine and node windows in turn, E N E N ..

    E: a slow drift in the machine's speed (a noisy neighbour on a shared VM) falls on
    both alike instead of on one of them.  Each node window's publisher runs at the
    given rate (Hz), or at factor x the engine's fps just measured.  h: a NodeHarness,
    engine: an EngineWorker (or fakes with publish / masks_between and fps).  Returns
    (pooled node window, engine fps per window, per-round rows).
    """
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


class _Frames:
    """An EngineWorker's windows on one of its frame sets, as nominal_windows asks for them (``fps(seconds)``)."""

    def __init__(self, engine, which: str):
        self.engine, self.which = engine, which

    def fps(self, seconds: float) -> float:
        return self.engine.fps(seconds, self.which)


def bench_node(cfg: BenchConfig, checkpoint: str, domain_id: int, rounds: int = 3):
    """
    Return ({"node" | "node_every" | "node_planner": (row, details)}, soak); cfg: a resolved BenchConfig.

    One node process, first with ~/mask subscribed (the engine windows on the same frames;
    then 2x; then the soak), then with every output (the same engine windows), then with
    only the planner's (the other subscriptions dropped; the engine windows on frames at
    the network size; then 2x).
    """
    from ..inference.checkpoint import read_checkpoint

    shape, seconds = cfg.node_shape, cfg.node_seconds
    net = tuple(read_checkpoint(checkpoint)[0].network_size(*shape))
    engine = EngineWorker(checkpoint, cfg.device, shape, net)
    h = None
    soak_out: dict = {"seconds": 0}
    try:
        first_fps = engine.fps(max(seconds / rounds / 2, 1.0))
        log(f"bench: bare engine {first_fps:.2f} fps on {shape[0]}x{shape[1]}; node and engine windows in turn")
        from ..ros.bench_harness import EVERY, NodeHarness, PLANNER   # ROS only here: the models need none

        h = NodeHarness(checkpoint, cfg.device, sample_frames(shape), domain_id, outputs=("mask",),
                        drivable_map=cfg.node_map)
        h.wait_ready(timeout=180)
        settle = max(3.0 / first_fps, 0.5)
        warm = cfg.rate or cfg.rate_factor * first_fps

        def run(frames: str, fps: float) -> tuple[dict, dict]:
            h.publish(warm, max(2.0 / warm, 1.0))         # warm the path (a new output), fill caches
            time.sleep(settle)
            return _windows(cfg, h, _Frames(engine, frames), rounds, settle, fps)

        runs = {"node": run("node", first_fps)}
        if cfg.soak > 0:
            soak_out = soak(h, runs["node"][1]["overload_rate_hz"], cfg.soak, settle)
        h.subscribe(EVERY)
        log("bench: node with every output subscribed")
        runs["node_every"] = run("node", engine.fps(max(seconds / rounds / 2, 1.0)))
        h.keep_only(PLANNER)
        net_fps = engine.fps(max(seconds / rounds / 2, 1.0), "net")
        log(f"bench: bare engine {net_fps:.2f} fps on {net[0]}x{net[1]}; node with the planner's outputs only")
        runs["node_planner"] = run("net", net_fps)
    finally:
        engine.close()
        code = h.close() if h is not None else None
    if cfg.soak > 0:
        soak_out["exit_code"] = code
        if code not in (0, None) and soak_out.get("crashes", 0) == 0:
            soak_out["crashes"] = 1
    for _, details in runs.values():
        details["node_exit_code"], details["drivable_map"] = code, cfg.node_map
    runs["node_planner"][1]["engine_shape"] = list(net)
    return runs, soak_out


def _windows(cfg: BenchConfig, h, engine, rounds: int, settle: float, first_fps: float) -> tuple[dict, dict]:
    """Run the nominal windows, then twice the engine's fps: (node, details) dicts."""
    shape, seconds, rate, factor = cfg.node_shape, cfg.node_seconds, cfg.rate, cfg.rate_factor
    start = time.time_ns()
    nominal, e_list, rows = nominal_windows(h, engine, rate, seconds, rounds, settle, first_fps, factor)
    inside = in_node_ms(h.diags_between(start, time.time_ns()) + [h.diag_after(time.time_ns())])
    map_ms = in_node_ms(h.diags_between(start, time.time_ns(), drivable_map=True),
                        ("fusion (ms per frame)", "render and publish (ms per map)"))
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
               "overload_received": received, "maps_received": h.maps_received(),
               "map_fuse_ms": map_ms["fusion (ms per frame)"],
               "map_render_ms": map_ms["render and publish (ms per map)"]}
    node = {"fps": nominal["fps"], "engine_fps": e_fps, "ratio": nominal["fps"] / e_fps,
            "p50_ms": nominal["p50_ms"], "p99_ms": nominal["p99_ms"],
            "overload_p99_ms": over["p99_ms"], "dropped": dropped, **inside}
    return node, details


def in_node_ms(diags: list[dict], keys: tuple | None = None) -> dict:
    """
    Return the node's own per-frame times in its diagnostics windows: network, and all its work.

    infer_ms against process_ms is the node's overhead (conversion, outputs) alone; the
    bare engine's time against infer_ms is what the transport and the publisher took
    from the network's CPU (on a 2-core machine, most of the node/engine gap).
    """
    def mean(key):
        vals = [float(d[key]) for d in diags if key in d and d[key] != "nan"]
        return float(np.mean(vals)) if vals else float("nan")

    if keys is not None:                        # other values of the same windows (the map's status)
        return {k: mean(k) for k in keys}
    return {"infer_ms": mean("inference (ms)"), "process_ms": mean("processing (ms)")}


def soak(h, rate: float, seconds: float, settle: float) -> dict:
    """
    Run the node at rate for seconds, in windows: RSS, p50 latency and its trend, drops, whether it crashed.

    h: a NodeHarness.
    """
    windows = min(20, max(2, int(seconds // 5)))
    width = seconds / windows
    before = h.diag_after(time.time_ns())
    rss_start = h.rss_mb()
    rows = []
    crashed = False
    for k in range(windows):
        first, last = h.publish(rate, width)
        if not h.running():
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
