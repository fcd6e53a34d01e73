"""
The shipped model per frame size, timed in turns: what probabilities and full resolution cost.

For every frame size of the run (375x1242, 1920x1080, 1280x720 ...), the shipped engine is
timed in one process, in short blocks taken in turn (the order rotated each round, as
``turns.py``): frames of that size with the arg-max outputs, with the drivable
probability too, and with the network-size maps only (``full_size=False``, what the
planner outputs read), and frames already at its network size, with and without the
probability.  The fps are 1000 / the median call (ms) of each block's calls over all
rounds: a ratio of a few percent is the target here, and a median does not move with the
odd call another process slowed (two quick runs' ratios differed by up to 0.3 with the
mean).  The ratios of the targets come from these fps (``size_ratios``):

- probabilities_vs_argmax: time with probabilities / time without (frames of that size);
- full_vs_network: fps on frames of that size / fps on frames at the network size;
- full_vs_network_all_outputs: the same, both with probabilities (every output);
- planner_vs_network: fps of the network-size maps only of frames of that size / fps on
  frames at the network size (both arg-max).

No ROS.
"""

from __future__ import annotations

import numpy as np

from .config import FHD, KITTI, log, SCHEDULES
from .models import build
from .threads import in_thread
from .timing import sample_frames, time_calls

ROUNDS = 7
MODES = {"argmax": {}, "probabilities": {"probabilities": True}, "planner": {"full_size": False}}
EVERY_BACKEND = (KITTI, FHD)      # the sizes of the targets; others with the node's CPU default only
DEFAULT_BACKEND = "fp32+ort"


def size_key(shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def plan(precisions: list[str], sizes: dict[tuple, tuple]) -> list[tuple[str, str, str]]:
    """
    (precision, frame size 'HxW', mode) for every block; sizes: {frame size: its network size}.

    Frames at the network size run once per network size and precision.  Sizes other
    than EVERY_BACKEND run with ONNX Runtime fp32 only (where it is among the precisions).
    """
    blocks = []
    for p in precisions:
        for size, net in sizes.items():
            if tuple(size) not in EVERY_BACKEND and p != DEFAULT_BACKEND:
                continue
            modes = ["argmax", "probabilities"] + (["planner"] if tuple(net) != tuple(size) else [])
            blocks += [(p, size_key(size), m) for m in modes]
            blocks += [(p, size_key(net), m) for m in ("argmax", "probabilities")]
    return list(dict.fromkeys(blocks))


def sizes_in_turns(spec: dict) -> dict:
    """
    Return the shipped model's fps per precision and frame size, from the blocks of ``plan``.

    {precision: {'HxW': {'net_size', 'argmax', 'probabilities', 'planner', 'network_argmax',
    'network_probabilities'}}}.  spec: 'checkpoint', 'sizes' (frame sizes), 'precisions',
    'quick', 'calibration', and optionally 'schedule' (tests) and 'rounds'.
    """
    from ..inference.engine import Engine

    model, meta = build("", spec["checkpoint"])
    sizes = {tuple(s): tuple(meta.network_size(*s)) for s in spec["sizes"]}
    blocks = plan(spec["precisions"], sizes)
    engines = {p: Engine(model, meta, "cpu", p.split("+")[0], warmup=False,
                         backend="onnxruntime" if p.endswith("+ort") else "torch",
                         calibration=spec.get("calibration") if p.startswith("int8") else None)
               for p in dict.fromkeys(b[0] for b in blocks)}
    frames = {key: sample_frames(tuple(int(v) for v in key.split("x")), 1)[0] for key in {b[1] for b in blocks}}
    sched = dict(spec.get("schedule") or SCHEDULES[("cpu", bool(spec["quick"]))])
    sched.update(min_s=sched["min_s"] / 2, max_s=sched["max_s"] / 2)   # five short blocks instead of one
    times: dict = {b: [] for b in blocks}
    rounds = int(spec.get("rounds", ROUNDS))
    for r in range(rounds):
        k = r % len(blocks)
        for p, key, mode in blocks[k:] + blocks[:k]:        # rotated: each block opens a round in turn
            engine, x, kw = engines[p], frames[key], MODES[mode]
            times[(p, key, mode)] += in_thread(lambda: time_calls(lambda: engine.infer(x, **kw), **sched))
    fps = {b: 1000.0 / float(np.median(t)) for b, t in times.items()}
    out: dict = {}
    for p in engines:
        for size, net in sizes.items():
            key, nkey = size_key(size), size_key(net)
            if (p, key, "argmax") not in fps:
                continue
            out.setdefault(p, {})[key] = {
                "net_size": nkey, "argmax": fps[(p, key, "argmax")], "probabilities": fps[(p, key, "probabilities")],
                "planner": fps.get((p, key, "planner"), fps[(p, key, "argmax")]),
                "network_argmax": fps[(p, nkey, "argmax")], "network_probabilities": fps[(p, nkey, "probabilities")]}
    log("bench: frame sizes in turns: " + "; ".join(f"{p} {k} " + ", ".join(f"{m} {v:.2f}" for m, v in d.items()
                                                                            if m != "net_size")
                                                    for p, s in out.items() for k, d in s.items()))
    return out


def size_ratios(sizes: dict | None) -> dict:
    """Return {precision: {'HxW': the four ratios of the module's docstring}} from ``sizes_in_turns``'s fps."""
    out: dict = {}
    for p, per in (sizes or {}).items():
        for key, f in per.items():
            out.setdefault(p, {})[key] = {
                "probabilities_vs_argmax": f["argmax"] / f["probabilities"],
                "full_vs_network": f["argmax"] / f["network_argmax"],
                "full_vs_network_all_outputs": f["probabilities"] / f["network_probabilities"],
                "planner_vs_network": f["planner"] / f["network_argmax"]}
    return out
