"""
Accuracy against speed: the shipped model at several input widths (and INT8), with LR-ASPP.

    python -m icnet_ros.tools.tradeoff --data SPEC labels=YAML val=F ... --widths 512 640 768 896 \
        --calibration DIR --out models/accuracy_speed.png --json output/tradeoff.json

For each input width: the drivable IoU on each --data set (as ``evaluate --input-width W``
scores it) and the CPU fps on 375x1242 KITTI frames (the engine, ONNX Runtime, one run);
LR-ASPP MobileNetV3 (random weights: speed only) runs the same frames at the same network
size.  The engines are timed in turns (five rounds), so a drift in the machine's speed
falls on all points alike.  With --calibration, the INT8 backend at the checkpoint's own width is one more
point.  Draws one PNG: mean drivable IoU against fps, one line per model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np

from .cli import add_data_args, DATA_FORMS
from .evaluate import evaluate, held_out
from ..data.datasets import DataError
from ..data.sources import open_source, parse_source
from ..inference.checkpoint import CheckpointError, load_checkpoint
from ..inference.engine import Engine, EngineError

KITTI = (375, 1242)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tradeoff", description=__doc__.strip().split("\n\n")[0])
    p.add_argument("--checkpoint", help="model (default: the shipped model)")
    p.add_argument("--data", required=True, action="append", nargs="+", metavar="SPEC [labels=YAML val=F|PATTERN]",
                   help=f"{DATA_FORMS} with options as for evaluate; repeatable")
    add_data_args(p)
    p.add_argument("--widths", type=int, nargs="+", default=[512, 640, 768, 896])
    p.add_argument("--calibration", metavar="DIR", help="also the INT8 backend, calibrated on these images")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--calls", type=int, default=100, help="timed calls per point, in 5 rounds taken in turn (median)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--json", help="also write the points here")
    return p


def frames_per_second(engines: list[Engine], frames: list[np.ndarray], calls: int, rounds: int = 5) -> list[float]:
    """
    Return each engine's fps: 1 / the median time of its single-frame calls.

    The engines take turns, ``calls / rounds`` calls each per round, so a drift in the
    machine's speed (a shared VM's) falls on all of them alike.
    """
    times: list[list[float]] = [[] for _ in engines]
    for engine in engines:
        for f in frames[:3]:
            engine.infer(f)                 # warm-up: traces, first allocations
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for engine, box in zip(engines, times):
            for i in range(per_round):
                t0 = time.perf_counter()
                engine.infer(frames[i % len(frames)])
                box.append(time.perf_counter() - t0)
    return [1.0 / float(np.median(box)) for box in times]


def _datasets(args, classes) -> list[tuple[str, object]]:
    out = []
    for tokens in args.data:
        src = parse_source(tokens)
        data = open_source(src, classes, image_topic=args.image_topic, mask_topic=args.mask_topic, max_dt=args.max_dt)
        out.append((src.held_name() if src.val else src.spec, held_out(data, src) if src.val else data))
    return out


def measure(args) -> list[dict]:
    """
    Return the points: {model, width, precision, net_size, fps}.

    The shipped model's also carry variant ('effl2 w0.5'), drivable_iou {set: IoU} and mean_drivable_iou.
    """
    from ..bench.models import build
    from ..bench.timing import sample_frames
    from ..paths import default_model_path

    path = args.checkpoint or default_model_path()
    runs = [("shipped", w, "fp32") for w in args.widths]
    if args.calibration:
        runs.append(("shipped", load_checkpoint(path)[1].input_width or args.widths[0], "int8"))
    runs += [("lraspp_mobilenet_v3_large", w, "fp32") for w in args.widths]
    points, engines, sets = [], [], None
    for name, width, precision in runs:
        model, meta = load_checkpoint(path)[:2] if name == "shipped" else build(name)
        meta.input_size, meta.input_width = None, width
        engine = Engine(model, meta, "cpu", precision, warmup=False, backend="onnxruntime", threads=args.threads,
                        calibration=args.calibration if precision == "int8" else None)
        point = {"model": name, "width": width, "precision": precision, "net_size": list(meta.network_size(*KITTI))}
        if name == "shipped":               # accuracy: the shipped model only (LR-ASPP has random weights)
            point["variant"] = f"{meta.variant} w{meta.width:g}"
            sets = sets or _datasets(args, engine.classes)
            ious = {label: evaluate(engine, data)["drivable_iou"] for label, data in sets}
            point.update(drivable_iou=ious, mean_drivable_iou=float(np.mean(list(ious.values()))))
        points.append(point)
        engines.append(engine)
    for point, fps in zip(points, frames_per_second(engines, sample_frames(KITTI), args.calls)):
        point["fps"] = fps
        iou = f", mean drivable IoU {point['mean_drivable_iou']:.4f}" if "mean_drivable_iou" in point else ""
        print(f"tradeoff: {point['model']} {point['precision']} width {point['width']}: {fps:.1f} fps{iou}", flush=True)
    return points


def plot(points: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    ship = [p for p in points if p["model"] == "shipped" and p["precision"] == "fp32"]
    ax.plot([p["fps"] for p in ship], [100 * p["mean_drivable_iou"] for p in ship], "o-", color="tab:purple",
            label=f"shipped ICNet {ship[0].get('variant', '')} (ONNX Runtime fp32)")
    for p in ship:
        ax.annotate(f"{p['width']}", (p["fps"], 100 * p["mean_drivable_iou"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    for p in (p for p in points if p["precision"] == "int8"):
        ax.plot(p["fps"], 100 * p["mean_drivable_iou"], "s", color="tab:red", label=f"shipped INT8, width {p['width']}")
    lo, hi = ax.get_ylim()
    for p in (p for p in points if p["model"] != "shipped"):
        ax.axvline(p["fps"], color="tab:gray", linestyle=":", linewidth=1)
        ax.text(p["fps"], lo + 0.02 * (hi - lo), f" LR-ASPP {p['width']}", rotation=90, fontsize=7, color="tab:gray")
    ax.set_xlabel("frames/s on 375x1242 KITTI frames (CPU, ONNX Runtime, one run)")
    ax.set_ylabel("mean drivable IoU on the held-out sets (%)")
    ax.set_title("Accuracy against speed (labels: input width)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if any(w < 8 for w in args.widths):
            raise DataError(f"--widths {args.widths}: each must be at least 8")
        points = measure(args)
    except (DataError, CheckpointError, EngineError, FileNotFoundError, ValueError) as e:
        print(f"tradeoff: error: {e}", file=sys.stderr)
        return 2
    plot(points, Path(args.out))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(points, indent=2) + "\n")
    print(f"tradeoff: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
