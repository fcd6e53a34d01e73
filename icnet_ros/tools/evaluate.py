"""
``ros2 run icnet_ros evaluate``: score a checkpoint on labelled data.

    evaluate --checkpoint runs/kitti/best.pt --data kitti:data_road --json scores.json [--bev]
    evaluate --data camvid:data/camvid:val labels=config/label_maps/camvid.yaml \
             --data folder:data/idd/images:data/idd/labels labels=config/label_maps/idd_lite.yaml val=0.1

Reports per-class IoU, mIoU, pixel accuracy, the drivable mask's IoU and, per
ground-truth class, the share of its pixels called drivable, and the KITTI road benchmark metrics of
the drivable classes (MaxF, AP, precision, recall, FPR, FNR) computed as KITTI's devkit
does.  When the model's classes differ from the data's (a CamVid model on KITTI road
ground truth), drivable is compared with drivable: the KITTI metrics and a two-class
(not_drivable, drivable) IoU.  ``labels=YAML`` after a spec maps the data's ids into the
model's classes (a label map, label_maps.py), so it is scored class by class; ``val=F``
scores only the held-out tail that ``train`` validated on with the same option.  ``--bev``
scores the KITTI metrics in KITTI's bird's-eye view (x -10..10 m, z 6..46 m, 0.05 m
cells) using each frame's calib file.  ``--perturb shift=0.1`` (or zoom, gamma, blur, jpeg;
data/perturb.py) scores the frames as another camera would see them.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
import sys
import time

import numpy as np

from .cli import add_data_args, DATA_FORMS
from ..classes import ClassSet
from ..data.damaged import Damaged, DamagedSample, DamagedSamples, prescan
from ..data.datasets import DataError, kitti_base
from ..data.perturb import parse_perturbation, Perturbation
from ..data.sources import open_source, parse_source, split_held
from ..ground.drivable import connected_to_vehicle
from ..inference.checkpoint import CheckpointError
from ..inference.engine import Engine, EngineError
from ..metrics import CalledDrivable, ConfusionMatrix, RoadEval


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evaluate", description=__doc__.strip().split("\n\n")[0],
                                epilog="Docs: the icnet_ros sources' docs/training.md (evaluate, data specs, "
                                       "the metrics).")
    p.add_argument("--checkpoint", help="model to score (default: the shipped model)")
    p.add_argument("--data", required=True, action="append", nargs="+", metavar="SPEC [labels=YAML val=F|PATTERN]",
                   help=f"{DATA_FORMS}; labels: a label map into the model's classes; val: only the last F "
                        f"(train's held-out part); repeatable")
    add_data_args(p)
    p.add_argument("--json", help="write the scores to this JSON file")
    p.add_argument("--bev", action="store_true", help="KITTI metrics in the bird's-eye view (needs calib files)")
    p.add_argument("--calib", help="folder of KITTI calib files named like the images (default: kitti:PATH's calib/)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", help="auto | fp32 | fp16 | bf16 | int8 (CPU, ONNX Runtime)")
    p.add_argument("--calibration", metavar="DIR",
                   help="int8: a folder of images to calibrate on (frames from the training sets)")
    p.add_argument("--backend", default="auto", help="auto | torch | onnxruntime (as the node's parameter)")
    p.add_argument("--limit", type=int, default=0, help="score only the first N frames")
    p.add_argument("--input-width", type=int, help="run frames at this width, aspect kept, instead of the "
                                                   "checkpoint's network size (0: each frame's own size)")
    p.add_argument("--drivable-threshold", type=float, default=0.0, metavar="T",
                   help="drivable when the drivable probability reaches T (0: the arg-max class), as the "
                        "node's drivable_threshold")
    p.add_argument("--perturb", metavar="NAME=VALUE",
                   help="score the frames changed as by another camera: shift=F (picture moved down by F of "
                        "its height), zoom=F (focal length x F), gamma=G, blur=SIGMA or jpeg=QUALITY")
    p.add_argument("--connected", action="store_true",
                   help="keep only drivable area connected to the bottom centre, as the node's drivable_connected")
    return p


class BevView:
    """KITTI's bird's-eye view of a frame, from its calib file (geometry.py's projector)."""

    def __init__(self, calib_dir: Path):
        from ..ground import geometry

        self.geometry, self.calib_dir = geometry, calib_dir
        if not calib_dir.is_dir():
            raise DataError(f"calib directory {calib_dir} does not exist (--bev needs KITTI calib files)")
        self._cache: dict = {}

    def __call__(self, image_path: Path, prob: np.ndarray, label: np.ndarray, ignore: int):
        g = self.geometry
        calib = self.calib_dir / f"{Path(image_path).stem}.txt"
        key = (calib, prob.shape)
        if key not in self._cache:
            if not calib.is_file():
                raise DataError(f"image {image_path} has no calib file {calib} (needed by --bev)")
            try:
                H = g.kitti_ground_homography(calib)
            except g.GeometryError as e:
                raise DataError(str(e)) from None
            self._cache = {key: g.GroundProjector(H, g.KITTI_BEV, prob.shape)}
        proj = self._cache[key]
        return proj.sample(prob.astype(np.float32), fill=0.0), proj.sample(label, fill=ignore)


def evaluate(engine: Engine, dataset, bev: BevView | None = None, limit: int = 0, threshold: float = 0.0,
             connected: bool = False, perturb: Perturbation | None = None, damaged=None) -> dict:
    """
    Score the engine on a dataset: class IoU, the drivable IoU and KITTI's road metrics.

    threshold and connected decide the drivable mask as the node's drivable_threshold
    and drivable_connected do; perturb changes every frame (and its label) first.  A
    damaged sample is skipped and handed to ``damaged`` (DamagedSamples), if given.
    """
    model_cs, data_cs = engine.classes, dataset.classes
    same = model_cs.names == data_cs.names
    names = list(data_cs.names) if same else ["not_drivable", "drivable"]
    cm = ConfusionMatrix(len(names), data_cs.ignore_index if same else 255)
    drivable_cm = ConfusionMatrix(2, 255)     # the drivable mask the node would publish
    called = CalledDrivable(len(data_cs.names), data_cs.ignore_index)   # ... per ground-truth class
    road = RoadEval()
    drivable = np.array(sorted(data_cs.drivable_ids), np.int64)
    n = min(len(dataset), limit) if limit else len(dataset)
    seconds, scored = 0.0, 0
    for i in range(n):
        try:
            image, label = dataset.load(i)
        except DamagedSample as e:
            if damaged is None:
                raise
            damaged.add([Damaged(e.file, str(e))])
            continue
        if perturb is not None:
            image, label = perturb(image, label, data_cs.ignore_index)
        if scored == 0:
            engine.infer(image, probabilities=True)  # warm-up, not timed: the graph with the probability
        scored += 1
        t0 = time.perf_counter()
        (res,) = engine.infer(image, probabilities=True, drivable_threshold=threshold)
        if connected:
            res.drivable = connected_to_vehicle(res.drivable)
        seconds += time.perf_counter() - t0
        valid = label != data_cs.ignore_index
        gt_drivable = np.isin(label, drivable)
        gt = np.where(valid, gt_drivable.astype(np.uint8), 255)
        cm.update(res.classes if same else res.drivable.astype(np.uint8), label if same else gt)
        drivable_cm.update(res.drivable.astype(np.uint8), gt)
        called.update(res.drivable, label)
        if len(drivable):
            prob = res.drivable_prob
            if bev is not None:
                prob, label = bev(dataset.samples[i].image, prob, label, data_cs.ignore_index)
                valid, gt_drivable = label != data_cs.ignore_index, np.isin(label, drivable)
            road.update(prob, gt_drivable, valid)
    kitti = road.scores() if len(drivable) else None
    return {"miou": _num(cm.miou()), "pixel_accuracy": _num(cm.pixel_accuracy()),
            "drivable_iou": _num(drivable_cm.group_iou([1])) if len(drivable) else None,
            "drivable_threshold": threshold, "connected": connected,
            "class_iou": cm.class_iou(names), "called_drivable": called.shares(data_cs.names), "kitti": kitti,
            "fps": scored / seconds if seconds > 0 else None, "images": scored,
            "perturb": str(perturb) if perturb else None,
            "compared": "classes" if same else "drivable", "view": "bev" if bev is not None else "image"}


def _num(v: float):
    return None if v is None or math.isnan(v) else float(v)


DATA_NAMES = {"kitti": "KITTI road", "camvid": "CamVid", "folder": "an image/mask folder", "bag": "a bag"}


def road_label(scores: dict) -> str:
    """Name the road metrics' line for the data they were computed on: KITTI road's, or KITTI's metric on other data."""
    kind = (scores.get("data") or "").split(":", 1)[0]
    if kind == "kitti":
        return f"KITTI road ({scores['view']})"
    return f"drivable by KITTI road's metric, on {DATA_NAMES.get(kind, kind or 'this data')} ({scores['view']})"


def table(scores: dict) -> str:
    def f(v):
        return "   n/a" if v is None else f"{100 * v:6.2f}"
    lines = [f"{'class':<20}{'IoU %':>8}"]
    lines += [f"{name:<20}{f(v):>8}" for name, v in scores["class_iou"].items()]
    lines += [f"{'mIoU':<20}{f(scores['miou']):>8}", f"{'pixel accuracy':<20}{f(scores['pixel_accuracy']):>8}"]
    if scores.get("drivable_iou") is not None:
        lines.append(f"{'drivable IoU':<20}{f(scores['drivable_iou']):>8}")
    shares = [f"{name} {f(v).strip()}" for name, v in scores.get("called_drivable", {}).items() if v is not None]
    if shares:
        lines.append("called drivable, % of each ground-truth class: " + ", ".join(shares))
    k = scores["kitti"]
    if k:
        lines.append(f"{road_label(scores)}: MaxF {f(k['maxf'])}  AP {f(k['ap'])}  PRE {f(k['precision'])}  "
                     f"REC {f(k['recall'])}  FPR {f(k['fpr'])}  FNR {f(k['fnr'])}  at threshold {k['threshold']:.3f}")
    if scores.get("damaged"):
        lines.append(f"skipped {len(scores['damaged'])} damaged: "
                     + ", ".join(d["file"] for d in scores["damaged"]))
    fps = scores["fps"]
    lines.append(f"{scores['images']} images, {fps:.1f} frames/s" if fps else f"{scores['images']} images")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (DataError, CheckpointError, EngineError, FileNotFoundError, ValueError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    classes = ClassSet.from_yaml(args.classes) if args.classes else None
    sources = [parse_source(tokens) for tokens in args.data]
    if args.bev and len(sources) > 1:
        raise DataError("--bev scores one --data source at a time")
    if not 0.0 <= args.drivable_threshold <= 1.0:
        raise DataError(f"--drivable-threshold {args.drivable_threshold} must be between 0 and 1")
    perturb = parse_perturbation(args.perturb) if args.perturb else None
    if args.bev and perturb is not None and perturb.name in ("shift", "zoom"):
        raise DataError(f"--bev projects with the camera's own calibration, which --perturb {perturb} no longer fits")
    engine = _engine(args)
    results = []
    damaged = DamagedSamples(args.max_bad, args.strict)
    for src in sources:
        # A label map maps into the model's classes; otherwise --classes describes the data.
        dataset = open_source(src, engine.classes if src.labels else classes, image_topic=args.image_topic,
                              mask_topic=args.mask_topic, max_dt=args.max_dt)
        before = len(damaged.found)
        damaged.total += len(dataset.samples)
        damaged.add(prescan(dataset), quiet=True)   # before the first frame: fails in seconds
        if src.val:
            dataset = held_out(dataset, src)
        scores = evaluate(engine, dataset, _bev(args, src.spec, dataset) if args.bev else None, args.limit,
                          args.drivable_threshold, args.connected, perturb, damaged)
        scores["damaged"] = damaged.as_list()[before:]
        scores["data"] = src.held_name() if src.val else src.spec
        if len(sources) > 1:
            print(f"== {scores['data']}")
        print(table(scores))
        results.append(scores)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results[0] if len(results) == 1 else results, indent=2) + "\n")
    return 0


def _engine(args) -> Engine:
    from ..inference.checkpoint import load_checkpoint
    from ..paths import default_model_path

    model, meta, _ = load_checkpoint(args.checkpoint or default_model_path())
    if args.input_width is not None:  # tuning the network size on one's own validation data
        if args.input_width and args.input_width < 8:
            raise DataError(f"--input-width {args.input_width} must be 0 (each frame's own size) or at least 8")
        meta.input_size, meta.input_width = None, args.input_width or None
    engine = Engine(model, meta, device=args.device, precision=args.precision, warmup=False, backend=args.backend,
                    calibration=args.calibration)
    if engine.device_note:
        print(f"evaluate: {engine.device_note}")
    return engine


def held_out(dataset, src):
    """Return the part ``train`` validated on with the same ``val=``: the last files, or those matching."""
    import copy

    _, held = split_held(dataset, src)
    part = copy.copy(dataset)
    part.samples = [dataset.samples[i] for i in held]
    return part


def _bev(args, spec: str, dataset) -> BevView:
    if args.calib:
        calib_dir = Path(args.calib)
    elif spec.startswith("kitti:"):
        calib_dir = kitti_base(Path(spec.partition(":")[2])) / "calib"
    else:
        raise DataError("--bev needs --calib DIR for data that is not kitti:PATH")
    if not isinstance(dataset.samples[0].image, Path):
        raise DataError("--bev needs image files named like their calib files (not bag frames)")
    return BevView(calib_dir)


if __name__ == "__main__":
    sys.exit(main())
