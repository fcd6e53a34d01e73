"""
See what a model does on a few frames: overlays stacked into one PNG.

    python -m icnet_ros.tools.preview --images ../shared/data/kitti_road/testing/image_2 --out preview.png

With ``--grid`` each row also shows the bird's-eye drivable grid the node would publish
for that frame (its default extent: 40 m ahead, 10 m either side, 0.1 m cells), from the
frame's KITTI calib file (``image_2/`` + ``calib/`` layout, as ``play`` reads it).  The
README's picture is made this way (docs/images/overview.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import cv2
import numpy as np

from ..data.image_io import DataError, list_images, read_image
from ..data.play_source import folder_frames
from ..ground import geometry
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


def kitti_calib(path: Path) -> dict:
    """Return the calib ``play`` would send with this frame: its own calib/ file, or any one of the folder's."""
    for name, _, _, calib in folder_frames(path.parent):
        if name == path.name:
            if calib is None:
                break
            return calib
    raise DataError(f"--grid: no KITTI calib file for {path} (expected {path.parent.parent / 'calib'}/*.txt)")


def grid_panel(drivable: np.ndarray, calib: dict, height: int) -> np.ndarray:
    """Draw the node's grid for this mask (white drivable, black not, grey unseen; forward up), ``height`` tall."""
    grid = geometry.occupancy_grid(drivable, geometry.kitti_ground_homography(calib), geometry.GridSpec())
    picture = geometry.grid_to_png(grid)
    width = round(picture.shape[1] * height / picture.shape[0])
    picture = cv2.resize(picture, (width, height), interpolation=cv2.INTER_NEAREST)
    return np.repeat(picture[..., None], 3, axis=2)


def render(engine: Engine, files: list[Path], width: int, alpha: float = 0.5, grid: bool = False) -> np.ndarray:
    """
    Render one row per frame: the frame and its overlay.

    With ``grid``, one block per frame instead, side by side: the frame over its overlay,
    and the grid beside them at their joint height.
    """
    blocks = []
    for f in files:
        image = read_image(f)
        res = engine.infer(image)[0]
        shown = overlay(image, res.classes, engine.classes.colors, alpha)
        if grid:
            left = np.concatenate([image, _gap(8, image.shape[1]), shown], axis=0)
            panel = grid_panel(res.drivable, kitti_calib(f), left.shape[0])
            blocks.append(np.concatenate([left, _gap(left.shape[0], 8), panel], axis=1))
        else:
            blocks.append(np.concatenate([image, shown], axis=1))
    if grid:   # blocks side by side, scaled to one height
        h = min(b.shape[0] for b in blocks)
        blocks = [cv2.resize(b, (round(b.shape[1] * h / b.shape[0]), h), interpolation=cv2.INTER_AREA)
                  for b in blocks]
        blocks = [np.concatenate([x for b in blocks for x in (b, _gap(h, 16))][:-1], axis=1)]
    rows = [cv2.resize(b, (width, round(b.shape[0] * width / b.shape[1])), interpolation=cv2.INTER_AREA)
            for b in blocks]
    return np.concatenate(rows, axis=0)


def _gap(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), 255, np.uint8)


def write_png(path: Path, sheet: np.ndarray, colors: int) -> None:
    """Full colour with OpenCV, or (``colors`` > 0) a palette PNG a few times smaller, for docs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if colors:
        from PIL import Image   # Pillow comes with matplotlib

        Image.fromarray(sheet).quantize(colors).save(path, optimize=True)
    else:
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="preview", description="overlay a model's classes on a few frames")
    p.add_argument("--checkpoint", help="model file (default: the shipped model)")
    p.add_argument("--images", nargs="+", required=True, type=Path, help="image files or folders")
    p.add_argument("--count", type=int, default=4)
    p.add_argument("--width", type=int, default=1600, help="width of the output PNG in pixels")
    p.add_argument("--grid", action="store_true",
                   help="add the bird's-eye drivable grid per frame (needs KITTI calib files)")
    p.add_argument("--colors", type=int, default=0, choices=range(0, 257), metavar="N",
                   help="write a palette PNG of N colours (2-256; 0: full colour)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    try:
        engine = Engine.from_checkpoint(args.checkpoint, device=args.device)
        sheet = render(engine, pick_frames(args.images, args.count), args.width, grid=args.grid)
    except (CheckpointError, EngineError, DataError, geometry.GeometryError, FileNotFoundError) as e:
        print(f"preview: error: {e}", file=sys.stderr)
        return 2
    write_png(args.out, sheet, args.colors)
    print(f"wrote {args.out} ({len(sheet)} px tall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
