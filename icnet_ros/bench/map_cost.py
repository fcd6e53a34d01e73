"""
The drivable map's cost per frame and its memory over a long drive (``~/drivable_map``'s core).

No ROS, no model.  A KITTI-sized camera (375x1242, KITTI's focal length, 1.65 m high) on
a vehicle driving a gentle curve at 10 m/s, 10 frames a second: per frame, the map plane ->
image homography, the window's move, the fusion of the frame's drivable probability and
the render to int8 (what the node publishes), timed per phase; the process's RSS before
and after the drive and the map's own bytes.  The engine's probabilities, which the node
asks for when the map is subscribed, are the engine's cost and show in the node phases.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .config import KITTI, log

# (size m, resolution m): the 40 x 40 m at 0.1 m, and the node's default window
SIZES = ((40.0, 0.1), (80.0, 0.1))
TARGET_MS = 5.0          # "a few ms" a frame for the 40 x 40 m map at 0.1 m on this project's CPU


def _camera(shape: tuple[int, int]) -> np.ndarray:
    """Return the ground -> pixel homography of a KITTI-like camera for frames of shape (h, w)."""
    from ..ground.geometry import ground_homography

    h, w = shape
    f = 721.5 * w / 1242.0
    K = np.array([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])
    return ground_homography(K, 1.65, 0.02)


def _probability(shape: tuple[int, int]) -> np.ndarray:
    """Return a frame's drivable probability: road in the lower middle, a smooth edge, the rest not."""
    h, w = shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    road = np.clip((v - 0.55 * h) / (0.05 * h), 0, 1) * np.clip(1.5 - np.abs(u - w / 2) / (0.3 * w), 0, 1)
    return (0.05 + 0.9 * road).astype(np.float32)


def drive(size: float, resolution: float, frames: int, shape: tuple[int, int] = KITTI) -> dict:
    """Drive frames frames through one map; return ms per phase (medians) and memory."""
    from ..ground.drivable_map import map_homography, RollingMap
    from .timing import status_mb

    Hb, prob = _camera(shape), _probability(shape)
    m = RollingMap(size, resolution, 10.0)
    names = ("homography", "move", "fuse", "render")
    # written through now (np.zeros' pages would be committed as the drive fills them): the RSS
    # from frame 10 to the end is the map's, not this loop's bookkeeping
    ms = np.full((frames, len(names)), np.nan)
    cells, rss_start = np.full(frames, -1, np.int64), None
    x = y = yaw = 0.0
    for k in range(frames):
        t = k * 0.1
        yaw = 0.2 * math.sin(t / 20.0)                 # a gentle curve, left then right
        x, y = x + math.cos(yaw), y + math.sin(yaw)    # 1 m a frame: 10 m/s at 10 Hz
        t0 = time.perf_counter()
        Hm = map_homography(Hb, x, y, yaw)
        t1 = time.perf_counter()
        m.move_to(x, y)
        t2 = time.perf_counter()
        cells[k] = m.fuse(prob, Hm, t)
        t3 = time.perf_counter()
        m.render(t)
        t4 = time.perf_counter()
        ms[k] = np.diff([t0, t1, t2, t3, t4]) * 1000.0
        if k == 10:
            rss_start = status_mb("VmRSS")            # after the first frames' lazy allocations
    rss_end = status_mb("VmRSS")                      # before the statistics' own temporaries
    total = ms.sum(1)
    return {"size_m": size, "resolution_m": resolution, "cells": m.n * m.n, "frames": frames,
            "km": frames / 1000.0, "ms": dict(zip(names, map(float, np.median(ms, 0)))),
            "total_ms": float(np.median(total)),
            "p99_ms": float(np.percentile(total, 99)), "cells_fused": int(np.median(cells)),
            "map_mb": m.nbytes / 2**20, "rss_start_mb": rss_start, "rss_end_mb": rss_end}


def map_report(quick: bool, frames: int | None = None) -> dict:
    """Return the report's 'map' key: one row per map size (frames: for the 40 m map; the 80 m one a third)."""
    frames = frames or (600 if quick else 3000)
    rows = []
    for size, resolution in SIZES:
        row = drive(size, resolution, frames if size <= 40.0 else frames // 3)
        log(f"bench: drivable map {size:g} m at {resolution:g} m: {row['total_ms']:.2f} ms a frame "
            f"(fuse {row['ms']['fuse']:.2f}, render {row['ms']['render']:.2f}), RSS {row['rss_start_mb']:.0f} -> "
            f"{row['rss_end_mb']:.0f} MB over {row['km']:.1f} km")
        rows.append(row)
    return {"map": {"shape": list(KITTI), "rows": rows}}


def map_lines(report: dict) -> list[str]:
    """Return the map paragraph of the Markdown (none when the phase did not run)."""
    m = report.get("map")
    if not m:
        return []
    h, w = m["shape"]
    lines = ["", f"Drivable map (`~/drivable_map`'s core, {h}x{w} frames, 10 m/s at 10 Hz, ms per frame, "
                 "medians; RSS of this process before and after the drive):", "",
             "| map | cells | cells fused | homography | move | fuse | render | total | p99 | map MB | "
             "RSS MB start -> end | km |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in m["rows"]:
        ms = r["ms"]
        lines.append(f"| {r['size_m']:g} m at {r['resolution_m']:g} m | {r['cells']} | {r['cells_fused']} | "
                     f"{ms['homography']:.2f} | {ms['move']:.2f} | {ms['fuse']:.2f} | {ms['render']:.2f} | "
                     f"{r['total_ms']:.2f} | {r['p99_ms']:.2f} | {r['map_mb']:.1f} | "
                     f"{r['rss_start_mb']:.1f} -> {r['rss_end_mb']:.1f} | {r['km']:.1f} |")
    return lines


def map_targets(report: dict) -> list[str]:
    """Return the map's target line: the 40 x 40 m map at 0.1 m in a few ms a frame."""
    rows = [r for r in (report.get("map") or {}).get("rows", []) if (r["size_m"], r["resolution_m"]) == SIZES[0]]
    return [f"drivable map 40 x 40 m at 0.1 m: {r['total_ms']:.2f} ms a frame (target <= {TARGET_MS:g}), RSS "
            f"{r['rss_start_mb']:.0f} -> {r['rss_end_mb']:.0f} MB over {r['km']:.1f} km: "
            f"{'met' if r['total_ms'] <= TARGET_MS else 'MISSED'}" for r in rows]


if __name__ == "__main__":          # python -m icnet_ros.bench.map_cost [--quick] [--frames N]: this phase alone
    import argparse

    ap = argparse.ArgumentParser(prog="python -m icnet_ros.bench.map_cost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="600 frames (0.6 km) instead of 3000")
    ap.add_argument("--frames", type=int, help="frames into the 40 m map (a third into the 80 m one)")
    args = ap.parse_args()
    if args.frames is not None and args.frames < 20:
        ap.error(f"--frames must be 20 or more, got {args.frames}")
    print("\n".join(map_lines(map_report(args.quick, args.frames))))
