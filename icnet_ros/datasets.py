"""Image/label datasets for training and evaluation, selected by a spec string:

* ``kitti:PATH``            KITTI road ``data_road`` root (colour-coded ground truth)
* ``camvid:PATH:SPLIT``     SegNet-layout CamVid (``SPLIT/`` and ``SPLITannot/``)
* ``folder:IMAGES:MASKS``   images and class-id PNG masks paired by file stem

Each yields (RGB uint8 H x W x 3, class ids uint8 H x W) with the class set's ignore index
where the label says "don't know".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .classes import CAMVID, KITTI_ROAD, ClassSet

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


class DataError(ValueError):
    """A dataset spec, folder or file that cannot be used."""


def read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"image {path} cannot be read (missing, corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_id_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(f"mask {path} cannot be read (missing, corrupt or not an image)")
    if mask.ndim != 2:
        raise DataError(f"mask {path} has {mask.shape[2]} channels; class-id masks must be single-channel")
    if mask.dtype != np.uint8:
        if mask.max() > 255:
            raise DataError(f"mask {path} holds ids above 255")
        mask = mask.astype(np.uint8)
    return mask


def decode_kitti_gt(rgb: np.ndarray) -> np.ndarray:
    """KITTI road colours: magenta road -> 1, red not-road -> 0, anything else (black,
    outside the evaluated area) -> 255 (ignored)."""
    r, g, b = rgb[..., 0] > 127, rgb[..., 1] > 127, rgb[..., 2] > 127
    out = np.full(rgb.shape[:2], 255, np.uint8)
    out[r & ~g & ~b] = 0
    out[r & ~g & b] = 1
    return out


@dataclass
class Sample:
    image: Path
    label: Path


class SegmentationDataset(Dataset):
    def __init__(self, samples: list[Sample], classes: ClassSet, decode: Callable[[Path], np.ndarray],
                 augment=None, seed: int = 0, name: str = "data"):
        if not samples:
            raise DataError(f"{name}: no image/label pairs found")
        self.samples, self.classes, self.decode = samples, classes, decode
        self.augment, self.seed, self.name = augment, seed, name
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.samples[i]
        image, label = read_image(s.image), self.decode(s.label)
        if image.shape[:2] != label.shape[:2]:
            raise DataError(f"mask {s.label} is {label.shape[1]}x{label.shape[0]} but image {s.image} is "
                            f"{image.shape[1]}x{image.shape[0]}")
        bad = label[(label != self.classes.ignore_index) & (label >= self.classes.num_classes)]
        if bad.size:
            raise DataError(f"mask {s.label} holds class id {int(bad.max())} but there are only "
                            f"{self.classes.num_classes} classes (ignore index {self.classes.ignore_index})")
        return image, label

    def __getitem__(self, i: int):
        image, label = self.load(i)
        if self.augment is not None:
            # One stream per (seed, epoch, index): the same run gives the same crops,
            # whatever the worker count, which makes resumed runs repeatable.
            rng = np.random.default_rng((self.seed, self.epoch, i))
            image, label = self.augment(image, label, rng)
        return torch.from_numpy(image), torch.from_numpy(label.astype(np.int64))


def _pair_by_stem(images: Path, masks: Path, mask_stem=lambda stem: stem) -> list[Sample]:
    if not images.is_dir():
        raise DataError(f"image directory {images} does not exist")
    if not masks.is_dir():
        raise DataError(f"mask directory {masks} does not exist")
    by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    samples = []
    for img in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTS):
        m = by_stem.get(mask_stem(img.stem))
        if m is None:
            raise DataError(f"image {img} has no mask named {mask_stem(img.stem)}.* in {masks}")
        samples.append(Sample(img, m))
    return samples


def kitti_samples(root: Path) -> list[Sample]:
    base = root / "training" if (root / "training").is_dir() else root
    def stem(s):  # um_000000 -> um_road_000000
        kind, num = s.split("_", 1)
        return f"{kind}_road_{num}"
    return _pair_by_stem(base / "image_2", base / "gt_image_2", stem)


def open_dataset(spec: str, classes: ClassSet | None = None, augment=None, seed: int = 0) -> SegmentationDataset:
    """Parse a ``--data`` spec; ``classes`` is needed for ``folder:`` specs."""
    kind, _, rest = spec.partition(":")
    if kind == "kitti" and rest:
        decode = lambda p: decode_kitti_gt(read_image(p))  # noqa: E731
        return SegmentationDataset(kitti_samples(Path(rest)), KITTI_ROAD, decode, augment, seed, spec)
    if kind == "camvid" and rest:
        root, _, split = rest.rpartition(":")
        if not root:
            raise DataError(f"dataset spec {spec!r}: use camvid:PATH:SPLIT (e.g. camvid:data/camvid:train)")
        samples = _pair_by_stem(Path(root) / split, Path(root) / f"{split}annot")
        return SegmentationDataset(samples, CAMVID, read_id_mask, augment, seed, spec)
    if kind == "folder" and rest:
        images, _, masks = rest.partition(":")
        if not masks:
            raise DataError(f"dataset spec {spec!r}: use folder:IMAGES:MASKS")
        return SegmentationDataset(_pair_by_stem(Path(images), Path(masks)), classes or KITTI_ROAD,
                                   read_id_mask, augment, seed, spec)
    if kind == "bag" and rest:
        from .bags import open_bag_dataset  # optional dependency on rosbags

        return open_bag_dataset(rest, classes, augment, seed)
    raise DataError(f"dataset spec {spec!r} is not kitti:PATH, camvid:PATH:SPLIT, folder:IMAGES:MASKS or bag:PATH")
