"""
The report: the device line, the Markdown tables, the targets met and the JSON.

The tables are those ``bench`` prints; the JSON is the one it writes (the issue's keys
only).
"""

from __future__ import annotations

import math
import os

from .config import CITYSCAPES, KITTI, NODE_DEFAULT


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


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None                                   # JSON has no NaN
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def public(report: dict) -> dict:
    """Return the report as written to JSON: the issue's keys only, NaN as null."""
    out = {k: v for k, v in report.items() if not k.startswith("_")}
    out["models"] = [{k: v for k, v in r.items() if k != "reps"} for r in report["models"]]
    return _clean(out)
