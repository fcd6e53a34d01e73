"""
See what a model does on a few frames: overlays stacked into one PNG.

    python -m icnet_ros.tools.preview --images ../shared/data/kitti_road/testing/image_2 --out preview.png
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import cv2
import numpy as np

from ..data.image_io import DataError, list_images, read_image
from ..inference.checkpoint import CheckpointError
from ..inference.engine import Engine, EngineError
from ..visualize import overlay


def pick_frames(paths: list[Path], count: int) -> list[Path]:
    files = []
    for p in paths:
        if p.is_dir():
            files += list_images(p)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"image path {p} does not exist")
    if not files:
        raise DataError(f"no images found in {', '.join(map(str, paths))}")
    step = max(1, len(files) // count)  # spread over the folder (um, umm, uu ...)
    return files[::step][:count]


def render(engine: Engine, files: list[Path], width: int, alpha: float = 0.5) -> np.ndarray:
    rows = []
    for f in files:
        image = read_image(f)
        classes = engine.infer(image)[0].classes
        row = np.concatenate([image, overlay(image, classes, engine.classes.colors, alpha)], axis=1)
        h = round(row.shape[0] * width / row.shape[1])
        rows.append(cv2.resize(row, (width, h), interpolation=cv2.INTER_AREA))
    return np.concatenate(rows, axis=0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="preview", description="overlay a model's classes on a few frames")
    p.add_argument("--checkpoint", help="model file (default: the shipped model)")
    p.add_argument("--images", nargs="+", required=True, type=Path, help="image files or folders")
    p.add_argument("--count", type=int, default=4)
    p.add_argument("--width", type=int, default=1600, help="width of the output PNG in pixels")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    try:
        engine = Engine.from_checkpoint(args.checkpoint, device=args.device)
        sheet = render(engine, pick_frames(args.images, args.count), args.width)
    except (CheckpointError, EngineError, DataError, FileNotFoundError) as e:
        print(f"preview: error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({len(sheet)} px tall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
