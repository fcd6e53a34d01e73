"""
`bench`: speed, latency and memory of ICNet and of the node, next to other models.

`bench`: speed, latency and memory of ICNet and of the node, next to the models a user
would pick instead, in one run on one machine.

The command line (the paragraph above is ``--help``'s description); the hidden
worker arguments go to ``workers.worker_main`` before any parsing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from .config import ALL_MODELS, BenchConfig, BenchError, KITTI, log, RATE_FACTOR
from .report import markdown, public
from .runner import run
from .workers import worker_main


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


def parser() -> argparse.ArgumentParser:
    # --help's description: the docstring's paragraph after the summary line
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.strip().split("\n\n")[1],
                                 epilog="Docs: the icnet_ros sources' docs/benchmarks.md (what it measures, "
                                        "every option, the results).")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    ap.add_argument("--json", default="", help="write the results to this JSON file")
    ap.add_argument("--quick", action="store_true",
                    help="375x1242 (and 1080x1920 for the shipped model and LR-ASPP) and batch 1 only, fewer "
                         "reps, shorter node phases")
    ap.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                    help="then run the node at 2x rate for SECONDS (RSS, latency trend, crashes)")
    ap.add_argument("--models", nargs="+", choices=ALL_MODELS, help="models to compare (default: all)")
    ap.add_argument("--shapes", nargs="+", type=_shape, metavar="HxW",
                    help="frame sizes (default 375x1242 1024x2048, and 1080x1920 720x1280 for the shipped model "
                         "and LR-ASPP; --quick: 375x1242, 1080x1920)")
    ap.add_argument("--batches", nargs="+", type=int, help="batch sizes (default 1 4; --quick: 1)")
    ap.add_argument("--model", default="", help="checkpoint to bench as the shipped model and run in the node")
    ap.add_argument("--rate", type=_rate, default=(None, RATE_FACTOR), metavar="HZ|FACTORx",
                    help=f"publisher rate: Hz, or a factor of the bare engine's fps such as 1x "
                         f"(default {RATE_FACTOR:g}x)")
    ap.add_argument("--node-shape", type=_shape, default=KITTI, metavar="HxW", help="node frame size (375x1242)")
    ap.add_argument("--node-seconds", type=float, help="seconds per node phase (6 quick, 20 full)")
    ap.add_argument("--no-node", action="store_true", help="models only")
    ap.add_argument("--no-map", action="store_true", help="without the drivable map's cost per frame")
    ap.add_argument("--node-map", action="store_true",
                    help="node phases with ~/drivable_map subscribed too (odometry and CameraInfo fed)")
    ap.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID for the node (default: a random private one)")
    ap.add_argument("--calibration", metavar="DIR",
                    help="images the shipped model's int8+ort rows calibrate on (default: the sample KITTI frames)")
    return ap


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    code = worker_main(argv)                            # a model or the bare engine in a subprocess
    if code is not None:
        return code
    ap = parser()
    args = ap.parse_args(argv)
    if args.batches and min(args.batches) < 1:
        ap.error(f"--batches must be 1 or more, got {args.batches}")
    if args.model and not Path(args.model).is_file():
        ap.error(f"--model: checkpoint {args.model} does not exist")
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        ap.error(f"--domain-id must be within 0..232, got {args.domain_id}")
    try:
        report = run(BenchConfig.from_args(args))
    except BenchError as e:
        ap.error(str(e))
    print(markdown(report))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(public(report), indent=2) + "\n")
        log(f"bench: wrote {path}")
    return 0
