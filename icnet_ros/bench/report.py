"""
The report: the device line, the Markdown tables, the targets met and the JSON.

The tables are those ``bench`` prints; the JSON is the one it writes (the issue's keys
only, and the targets' ratios).  CPU targets per backend: the shipped model against
LR-ASPP on the same 375x1242 frames and on frames at the shipped network's size, and
the shipped model on full frames against frames already at its network size; per frame
size (sizes.py), what the drivable probability and the full resolution cost; the node
with every output and with the planner's only.
"""

from __future__ import annotations

import math
import os

from .config import CITYSCAPES, FHD, KITTI, NODE_DEFAULT, PEER
from .map_cost import map_lines, map_targets
from .sizes import size_key, size_ratios
# CPU backends by precision, as the targets name them; any other precision (a later
# quantised one, say) is compared and named as it is.
BACKENDS = {"fp32": "PyTorch", "fp32+ort": "ONNX Runtime", "int8+ort": "ONNX Runtime INT8"}
INT8_SPEEDUP = 1.3
SAME_FRAMES = 1.5       # target: shipped fps / LR-ASPP fps, both on 375x1242 frames
SAME_NETWORK = 1.0      # aim (reported, not missed, below it): both on frames at the shipped network's size
FULL_FRAME = 0.9        # target: shipped fps on 375x1242 frames / on frames at its network size
PROB_COST = 1.10        # target: time with the drivable probability / arg-max only, 375x1242 and 1920x1080 frames
FULL_HD = 0.85          # target: fps on 1920x1080 frames / on frames at the network size, every output
PLANNER_NODE = 1.05     # target: planner-only node's time per frame / the bare engine's on network-size frames


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


def _matmul_note(report: dict) -> str:
    """Return the device line's ceiling: '; matmul ... GFLOP/s (...)', or '' when not measured."""
    gflops, m = report.get("matmul_gflops"), report.get("_matmul") or {}
    if gflops is None or not math.isfinite(gflops):
        return ""
    how = ""
    if m.get("n"):
        where = "on the device" if report["device"].startswith("cuda") else f"{m.get('threads')} torch threads"
        how = f" ({m.get('dtype')} torch.mm {m['n']}x{m['n']}, {where}, best of {m.get('reps')})"
    return f"; matmul ceiling {gflops:.1f} GFLOP/s{how}"


def markdown(report: dict) -> str:
    lines = [f"Device: {report['device']}{_matmul_note(report)}. {report['_notes']}", "",
             "| model | shipped | size | net size | batch | precision | fps | GFLOP | GFLOP/s | p50 ms | p99 ms "
             "| peak MB | reps |",
             "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["models"]:
        fps = f"failed: {r['error'].replace('|', '/')}" if r.get("error") else _f(r["fps"], 2)
        lines.append(f"| {r['name']} | {'yes' if r['shipped'] else 'no'} | {r['height']}x{r['width']} | "
                     f"{r['net_height']}x{r['net_width']} | {r['batch']} | {r['precision']} | {fps} | "
                     f"{_f(r.get('gflops'), 2)} | {_f(r.get('gflops_per_s'))} | "
                     f"{_f(r['p50_ms'])} | {_f(r['p99_ms'])} | {_f(r['peak_mb'], 0)} | {r.get('reps', '')} |")
    lines += ["", "GFLOP: the network's per frame at its net size (FlopCounterMode, a multiply-add is 2); "
                  "GFLOP/s: GFLOP x fps, next to torch.mm's rate above (ONNX Runtime has kernels of its own: "
                  "+ort rows can exceed it)."]
    lines += _turns_lines(report)
    lines += _sizes_lines(report)
    lines += map_lines(report)
    lines += _node_lines(report)
    lines += ["", "Targets:"] + [f"- {t}" for t in targets(report)]
    return "\n".join(lines)


def _turns_lines(report: dict) -> list[str]:
    """Return the in-turns table (turns.py), none when those engines were not timed in turns."""
    turns = report.get("turns")
    if not turns:
        return []
    net = next((f"{r['net_height']}x{r['net_width']}" for r in report["models"] if r["shipped"]
                and (r["height"], r["width"]) == KITTI), "network size")
    lines = ["", "The targets' engines timed in turns, one process, blocks rotated each round (fps; the "
                 "ratios below come from these):", "",
             f"| backend | shipped 375x1242 | shipped {net} | LR-ASPP 375x1242 | LR-ASPP {net} |",
             "|---|---:|---:|---:|---:|"]
    for p, t in turns.items():
        lines.append(f"| {BACKENDS.get(p, p)} | {_f(t.get('shipped_full'), 2)} | {_f(t.get('shipped_net'), 2)} | "
                     f"{_f(t.get('peer_full'), 2)} | {_f(t.get('peer_net'), 2)} |")
    cameras = [(p, k[len("shipped_"):]) for p, t in turns.items() for k in t if k.startswith("shipped_")
               and k not in ("shipped_full", "shipped_net") and f"peer_{k[len('shipped_'):]}" in t]
    if cameras:
        lines += ["", "| backend | frames | shipped | LR-ASPP | shipped / LR-ASPP |", "|---|---|---:|---:|---:|"]
        for p, size in cameras:
            a, b = turns[p][f"shipped_{size}"], turns[p][f"peer_{size}"]
            lines.append(f"| {BACKENDS.get(p, p)} | {size} | {_f(a, 2)} | {_f(b, 2)} | {_f(a / b, 2)}x |")
    return lines


def _sizes_lines(report: dict) -> list[str]:
    """Return the per-frame-size table (sizes.py), none when it was not timed."""
    sizes = report.get("sizes")
    if not sizes:
        return []
    ratios = size_ratios(sizes)
    lines = ["", "The shipped model per frame size, timed in turns in one process (fps; arg-max: class and drivable "
                 "masks at the frame's size; + prob: the drivable probability too; planner: the network-size maps "
                 "only; net: frames already at the network size):", "",
             "| backend | frames | net size | arg-max | + prob | planner | net | net + prob | prob / arg-max time "
             "| full / net | full / net, + prob | planner / net |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p, per in sizes.items():
        for key, f in per.items():
            r = ratios[p][key]
            lines.append(f"| {BACKENDS.get(p, p)} | {key} | {f['net_size']} | {_f(f['argmax'], 2)} | "
                         f"{_f(f['probabilities'], 2)} | {_f(f['planner'], 2)} | {_f(f['network_argmax'], 2)} | "
                         f"{_f(f['network_probabilities'], 2)} | {_f(r['probabilities_vs_argmax'], 3)} | "
                         f"{_f(r['full_vs_network'], 3)} | {_f(r['full_vs_network_all_outputs'], 3)} | "
                         f"{_f(r['planner_vs_network'], 3)} |")
    return lines


def _node_lines(report: dict) -> list[str]:
    """Return the node and soak paragraphs of the Markdown (none when those phases did not run)."""
    lines = _node_run(report.get("node"), report.get("_node_details", {}), "~/mask subscribed")
    lines += _node_run(report.get("node_every"), report.get("_node_every_details", {}),
                       "every output subscribed (no target: seven outputs against the bare engine's arg-max)")
    lines += _node_run(report.get("node_planner"), report.get("_node_planner_details", {}),
                       "the planner's outputs only (drivable_area, obstacles, free_space); the bare engine on frames "
                       "at the network size")
    s = report.get("soak") or {}
    if s.get("seconds"):
        lines += ["", f"Soak {s['seconds']:.0f} s at {s['rate_hz']:.2f} Hz: RSS {_f(s['rss_start_mb'], 0)} -> "
                      f"{_f(s['rss_end_mb'], 0)} MB, p50 {_f(s['p50_ms_start'])} -> {_f(s['p50_ms_end'])} ms "
                      f"(trend {_f(s['latency_trend_ms_per_min'], 2)} ms/min), {s['frames']} masks, "
                      f"{s['dropped']} dropped, crashes {s['crashes']}, node exit code {s.get('exit_code')}"]
    return lines


def _node_run(n: dict | None, d: dict, what: str) -> list[str]:
    """Return one node run's paragraph and table."""
    if not n:
        return []
    rounds = d.get("rounds", [])
    rate = (f"{d['rate_hz']:.2f} Hz" if d.get("fixed_rate") else
            f"{d.get('rate_factor', 1):g}x the engine's fps of the window before (mean {d['rate_hz']:.2f} Hz)")
    with_map = (f", ~/drivable_map subscribed too ({d.get('maps_received', 0)} maps received; in the node "
                f"{_f(d.get('map_fuse_ms'), 2)} ms a frame to fuse, {_f(d.get('map_render_ms'), 2)} ms a map to "
                f"render and publish)" if d.get("drivable_map") else "")
    lines = ["", f"Node end to end over DDS ({d['shape'][0]}x{d['shape'][1]}, {what}{with_map}; the node a separate "
                 f"process; {len(rounds)} node windows with the publisher at {rate}, taken in turn with "
                 f"{len(d.get('engine_windows_fps', []))} bare-engine windows "
                 f"({', '.join(_f(v, 2) for v in d.get('engine_windows_fps', []))} fps); node/engine "
                 f"ratio per round {', '.join(_f(r['ratio'], 2) for r in rounds)}; "
                 f"then 2x at {_f(d.get('overload_rate_hz'), 2)} Hz):", "",
             "| node fps | engine fps | ratio | p50 ms | p99 ms | 2x p99 ms | 2x fps | 2x dropped |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {_f(n['fps'], 2)} | {_f(n['engine_fps'], 2)} | {_f(n['ratio'], 2)} | {_f(n['p50_ms'])} | "
             f"{_f(n['p99_ms'])} | {_f(n['overload_p99_ms'])} | {_f(d.get('overload_fps'), 2)} | "
             f"{n['dropped']} of {d.get('overload_received')} received |"]
    if "infer_ms" in n:
        lines += ["", f"Inside the node (its diagnostics, same windows): network {_f(n['infer_ms'], 2)} ms of "
                      f"{_f(n['process_ms'], 2)} ms per frame (the rest: conversion and outputs), against "
                      f"{_f(1000 / n['engine_fps'], 2)} ms for the bare engine (the difference: CPU the "
                      f"transport and the publisher took from the network)."]
    return lines


# --- targets --------------------------------------------------------------------------

def _comparisons(report: dict) -> dict[str, dict]:
    """
    Return, per CPU precision of the shipped model, the batch-1 rows the CPU targets compare.

    {precision: {"ship": shipped at 375x1242, "ship_net": shipped on frames at its network
    size, "lr": LR-ASPP at 375x1242, "lr_net": LR-ASPP on those frames}}, a missing row
    None; known backends first (BACKENDS), then any other precision.  Without a shipped
    model NODE_DEFAULT (random weights) stands in.  Where the engines were also timed in
    turns (``turns.py``, the report's "turns"), each row's fps is the one timed in turns
    and "turns" is True.  Empty off the CPU.
    """
    if not report["device"].startswith("cpu"):
        return {}
    rows = [r for r in report["models"] if not r.get("error") and r["batch"] == 1]
    ship_rows = [r for r in rows if r["shipped"]] or [r for r in rows if r["name"] == NODE_DEFAULT]
    lr_rows = [r for r in rows if r["name"] == PEER and not r["shipped"]]

    def at(group, shape, precision):
        return next((r for r in group if (r["height"], r["width"]) == tuple(shape)
                     and r["precision"] == precision), None)

    known = list(BACKENDS)
    precisions = sorted({r["precision"] for r in ship_rows if (r["height"], r["width"]) == KITTI},
                        key=lambda p: (known.index(p) if p in known else len(known), p))
    out = {}
    turns = report.get("turns") or {}
    for p in precisions:
        ship = at(ship_rows, KITTI, p)
        net = (ship["net_height"], ship["net_width"])
        c = {"ship": ship, "ship_net": at(ship_rows, net, p), "lr": at(lr_rows, KITTI, p),
             "lr_net": at(lr_rows, net, p), "turns": p in turns}
        for key, name in (("ship", "shipped_full"), ("ship_net", "shipped_net"), ("lr", "peer_full"),
                          ("lr_net", "peer_net")):
            if name in turns.get(p, {}):
                c[key] = dict(c[key] or {}, fps=turns[p][name])
        out[p] = c
    return out


def _ratio(a: dict | None, b: dict | None) -> float | None:
    return a["fps"] / b["fps"] if a and b and b["fps"] else None


def ratios(report: dict) -> dict[str, dict]:
    """
    Return the CPU targets' ratios per backend (precision), as the JSON's 'ratios'.

    same_frames: shipped fps / LR-ASPP fps at 375x1242; same_network_size: the same on
    frames at the shipped network's size for KITTI (193x640); full_frame_vs_network:
    shipped fps at 375x1242 / on those frames; in_turns: whether these fps were timed in
    turns (else they are the rows').  None where a row is missing.
    """
    comps = _comparisons(report)
    out = {p: {"same_frames": _ratio(c["ship"], c["lr"]), "same_network_size": _ratio(c["ship_net"], c["lr_net"]),
               "full_frame_vs_network": _ratio(c["ship"], c["ship_net"]), "in_turns": c["turns"]}
           for p, c in comps.items()}
    if "int8+ort" in comps and "fp32+ort" in comps:       # INT8 ships as an option at >= INT8_SPEEDUP
        out["int8+ort"]["vs_fp32"] = _ratio(comps["int8+ort"]["ship"], comps["fp32+ort"]["ship"])
    return out


def _cpu_targets(report: dict) -> list[str]:
    """Return the CPU target lines, three per backend where their rows are there."""
    out = []
    for p, c in _comparisons(report).items():
        label, ship, lr, ship_net, lr_net = BACKENDS.get(p, p), c["ship"], c["lr"], c["ship_net"], c["lr_net"]
        if c["turns"]:
            label += " (in turns)"
        net = (ship["net_height"], ship["net_width"])
        which = "shipped" if ship["shipped"] else f"{ship['name']} (random weights, no shipped model yet)"
        if net != KITTI:
            which += f" (network at {net[0]}x{net[1]})"
        if lr:
            r = _ratio(ship, lr)
            out.append(f"CPU, {label}, same frames (375x1242): {which} {ship['fps']:.2f} fps vs LR-ASPP "
                       f"{lr['fps']:.2f} fps = {r:.2f}x (target >= {SAME_FRAMES:g}x): "
                       f"{'met' if r >= SAME_FRAMES else 'MISSED'}")
        if net == KITTI:                                # the network runs the frames as they are: nothing more
            continue
        size = f"{net[0]}x{net[1]}"
        if ship_net and lr_net:
            r = _ratio(ship_net, lr_net)
            out.append(f"CPU, {label}, same network size ({size} frames for both): shipped {ship_net['fps']:.2f} fps "
                       f"vs LR-ASPP {lr_net['fps']:.2f} fps = {r:.2f}x (aim >= {SAME_NETWORK:g}x): "
                       f"{'met' if r >= SAME_NETWORK else 'reported'}")
        if ship_net:
            r = _ratio(ship, ship_net)
            out.append(f"CPU, {label}, full frame vs network size: shipped {ship['fps']:.2f} fps at 375x1242 vs "
                       f"{ship_net['fps']:.2f} fps on {size} frames = {r:.2f} (target >= {FULL_FRAME:g}): "
                       f"{'met' if r >= FULL_FRAME else 'MISSED'}")
    r = ratios(report).get("int8+ort", {}).get("vs_fp32")
    if r is not None:
        how = " (in turns)" if (report.get("turns") or {}).get("int8+ort") else ""
        out.append(f"CPU, INT8 vs fp32 ONNX Runtime{how} at 375x1242: {r:.2f}x (an option worth shipping at "
                   f">= {INT8_SPEEDUP:g}x): {'met' if r >= INT8_SPEEDUP else 'MISSED'}")
    return out


def _size_targets(report: dict) -> list[str]:
    """Return the per-frame-size target lines: the probability's cost at 375x1242 and 1920x1080, and 1080p frames."""
    out = []
    for p, per in size_ratios(report.get("sizes")).items():
        label = f"CPU, {BACKENDS.get(p, p)} (in turns)"
        for shape in (KITTI, FHD):
            r = per.get(size_key(shape))
            if r is None:
                continue
            v = r["probabilities_vs_argmax"]
            out.append(f"{label}, {size_key(shape)} frames: with the drivable probability {v:.3f}x the arg-max "
                       f"time (target <= {PROB_COST:g}x): {'met' if v <= PROB_COST else 'MISSED'}")
        r = per.get(size_key(FHD))
        if r is not None:
            v = r["full_vs_network_all_outputs"]
            net = report["sizes"][p][size_key(FHD)]["net_size"]
            out.append(f"{label}, {size_key(FHD)} frames vs frames at the network size ({net}), every output: "
                       f"{v:.3f} (target >= {FULL_HD:g}): {'met' if v >= FULL_HD else 'MISSED'}")
    return out


def _planner_node_target(report: dict) -> list[str]:
    """Return the planner-only node's line: its own time per frame against the bare engine's on network-size frames."""
    n = report.get("node_planner")
    if not n or not n.get("engine_fps") or not math.isfinite(n.get("process_ms", float("nan"))):
        return []
    engine_ms = 1000.0 / n["engine_fps"]
    v = n["process_ms"] / engine_ms
    return [f"planner-only node: {n['process_ms']:.2f} ms of its own per frame vs the bare engine's {engine_ms:.2f} ms "
            f"on frames at the network size = {v:.3f}x (target <= {PLANNER_NODE:g}x): "
            f"{'met' if v <= PLANNER_NODE else 'MISSED'}; fps {n['fps']:.2f} vs {n['engine_fps']:.2f}"]


def targets(report: dict) -> list[str]:
    """Return the target lines: CPU ratios per backend, the node's, and on CUDA the GPU's."""
    out = _cpu_targets(report) + _size_targets(report)
    rows = [r for r in report["models"] if not r.get("error")]
    out += map_targets(report)
    n = report.get("node")
    if n:
        what = "~/mask and ~/drivable_map" if report.get("_node_details", {}).get("drivable_map") else "~/mask"
        out.append(f"node fps >= 0.9 x engine fps ({what} subscribed): ratio {n['ratio']:.2f}: "
                   f"{'met' if n['ratio'] >= 0.9 else 'MISSED'}")
        ok = n["p99_ms"] <= 1.5 * n["p50_ms"]
        out.append(f"node p99 <= 1.5 x p50: {n['p99_ms']:.1f} vs {n['p50_ms']:.1f} ms: {'met' if ok else 'MISSED'}")
    out += _planner_node_target(report)
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


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None                                   # JSON has no NaN
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def public(report: dict) -> dict:
    """Return the report as written to JSON: the issue's keys and the targets' ratios, NaN as null."""
    out = {k: v for k, v in report.items() if not k.startswith("_")}
    out["models"] = [{k: v for k, v in r.items() if k != "reps"} for r in report["models"]]
    out["ratios"] = ratios(report)
    out["size_ratios"] = size_ratios(report.get("sizes"))
    return _clean(out)
