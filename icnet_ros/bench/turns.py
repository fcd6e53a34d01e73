"""
The CPU targets' ratios timed in turns: every engine they compare, in one process, block after block.

The model rows time each configuration on its own, in a process per model, seconds to
minutes apart.  On a shared machine whose speed drifts (this project's VM swings by tens
of percent within a minute), a ratio of two such rows measures the drift as much as the
models.  Here the shipped model and LR-ASPP, on 375x1242 frames and on frames at the
shipped network's size, with each CPU backend, are timed in short blocks taken in turn
(the order rotated each round), so a slow drift falls on all of them alike; and both on
the run's camera frames (1920x1080 by default: ``shipped_1080x1920``, ``peer_1080x1920``).
The ratios in the targets and the JSON come from these fps.  No ROS.
"""

from __future__ import annotations

from .config import KITTI, log, PEER, SCHEDULES
from .models import build
from .threads import in_thread
from .timing import sample_frames, time_calls

ROUNDS = 5


def plan(precisions: list[str], cameras=()) -> list[tuple[str, str, str]]:
    """
    (precision, 'shipped' | 'peer', 'full' | 'net' | 'HxW') for every block; INT8 is the shipped model's only.

    cameras: further frame sizes both models run (the camera shapes).
    """
    sizes = ["full", "net"] + [f"{h}x{w}" for h, w in cameras]
    return [(p, who, size) for p in precisions for who in ("shipped", "peer") for size in sizes
            if not (p == "int8+ort" and who == "peer")]


def compare_in_turns(spec: dict) -> dict[str, dict[str, float]]:
    """
    Return {precision: {'shipped_full', 'shipped_net', 'peer_full', 'peer_net': fps}} (no peer for INT8).

    spec: 'checkpoint' (the shipped model), 'net' (its network size for KITTI frames),
    'precisions' (fp32, fp32+ort, int8+ort), 'quick', 'calibration', and optionally
    'cameras' (further frame sizes: 'shipped_HxW' and 'peer_HxW'), 'schedule' (tests) and
    'rounds'.
    """
    from ..inference.engine import Engine

    models = {"shipped": build("", spec["checkpoint"]), "peer": build(PEER)}
    cameras = [tuple(s) for s in spec.get("cameras") or ()]
    frames = {"full": sample_frames(KITTI, 1), "net": sample_frames(tuple(spec["net"]), 1),
              **{f"{h}x{w}": sample_frames((h, w), 1) for h, w in cameras}}
    engines = {}
    for p in spec["precisions"]:
        prec = p.split("+")[0]
        for who in ("shipped", "peer"):
            if p == "int8+ort" and who == "peer":
                continue
            model, meta = models[who]
            engines[(p, who)] = Engine(model, meta, "cpu", prec, warmup=False,
                                       backend="onnxruntime" if p.endswith("+ort") else "torch",
                                       calibration=spec.get("calibration") if prec == "int8" else None)
    sched = dict(spec.get("schedule") or SCHEDULES[("cpu", bool(spec["quick"]))])
    sched.update(min_s=sched["min_s"] / 2, max_s=sched["max_s"] / 2)   # five short blocks instead of one
    blocks = plan(spec["precisions"], cameras)
    times: dict = {b: [] for b in blocks}
    rounds = int(spec.get("rounds", ROUNDS))
    for r in range(rounds):
        k = r % len(blocks)
        for p, who, size in blocks[k:] + blocks[:k]:        # rotated: each block opens a round in turn
            engine, x = engines[(p, who)], frames[size]
            times[(p, who, size)] += in_thread(lambda: time_calls(lambda: engine.infer(x), **sched))
    out: dict[str, dict[str, float]] = {}
    for (p, who, size), t in times.items():
        out.setdefault(p, {})[f"{who}_{size}"] = len(t) / (sum(t) / 1000.0)
    log("bench: in turns (" + f"{rounds} rounds): " + "; ".join(
        f"{p} " + ", ".join(f"{k} {v:.2f}" for k, v in d.items()) for p, d in out.items()))
    return out
