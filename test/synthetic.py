"""
Synthetic labelled data for the training/evaluation tests, written in the real layouts.

The layouts: KITTI road data_road, SegNet CamVid, image/mask folders.  Scenes are easy
to learn: a bluish sky over a grey road whose horizon moves from frame to frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

KITTI_CALIB = Path(__file__).parent / "data" / "kitti_road" / "calib" / "um_000000.txt"


def scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, road mask 0/1)."""
    rng = np.random.default_rng(seed)
    horizon = h // 2 + int(rng.integers(-h // 8, h // 8 + 1))
    label = np.zeros((h, w), np.uint8)
    label[horizon:] = 1
    image = np.empty((h, w, 3), np.float32)
    image[:horizon] = (90, 140, 220)
    image[horizon:] = (110, 110, 110)
    image += rng.normal(0, 12, image.shape)
    return image.clip(0, 255).astype(np.uint8), label


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def write_ids(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), ids)


def kitti_colours(road: np.ndarray, ignore_rows: int) -> np.ndarray:
    """Magenta road, red not-road, black (ignored) in the top rows."""
    gt = np.zeros(road.shape + (3,), np.uint8)
    gt[road == 1] = (255, 0, 255)
    gt[road == 0] = (255, 0, 0)
    gt[:ignore_rows] = 0
    return gt


def scaled_calib(scale: float) -> str:
    """Return the sample KITTI calib file with P2 scaled for images resized by ``scale``."""
    lines = []
    for line in KITTI_CALIB.read_text().splitlines():
        if line.startswith("P2:"):
            v = np.array(line.split(":", 1)[1].split(), float).reshape(3, 4)
            v[:2] *= scale
            line = "P2: " + " ".join(f"{x:.12e}" for x in v.ravel())
        lines.append(line)
    return "\n".join(lines) + "\n"


def make_kitti(root: Path, n: int = 4, h: int = 64, w: int = 96, seed: int = 0,
               calib_scale: float | None = None) -> Path:
    base = root / "training"
    kinds = ["um", "umm", "uu"]
    for i in range(n):
        image, road = scene(h, w, seed + i)
        name = f"{kinds[i % 3]}_{i:06d}"
        write_rgb(base / "image_2" / f"{name}.png", image)
        write_rgb(base / "gt_image_2" / f"{kinds[i % 3]}_road_{i:06d}.png", kitti_colours(road, h // 8))
        if calib_scale is not None:
            (base / "calib").mkdir(parents=True, exist_ok=True)
            (base / "calib" / f"{name}.txt").write_text(scaled_calib(calib_scale))
    return root


def make_folder(root: Path, n: int = 4, h: int = 64, w: int = 96, seed: int = 0) -> tuple[Path, Path]:
    for i in range(n):
        image, road = scene(h, w, seed + i)
        write_rgb(root / "images" / f"f{i:03d}.png", image)
        write_ids(root / "masks" / f"f{i:03d}.png", road)
    return root / "images", root / "masks"


def make_camvid(root: Path, split: str = "train", n: int = 3, h: int = 64, w: int = 96, seed: int = 0) -> Path:
    """Write CamVid ids: sky 0 over road 3, an unlabelled (11) strip at the horizon."""
    for i in range(n):
        image, road = scene(h, w, seed + i)
        ids = np.where(road == 1, 3, 0).astype(np.uint8)
        edge = int(np.argmax(road[:, 0]))
        ids[max(edge - 2, 0):edge + 2] = 11
        write_rgb(root / split / f"0001TP_{i:06d}.png", image)
        write_ids(root / f"{split}annot" / f"0001TP_{i:06d}.png", ids)
    return root
