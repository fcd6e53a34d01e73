"""
Image/label datasets for training and evaluation, selected by a spec string.

* ``kitti:PATH``            KITTI road ``data_road`` root (colour-coded ground truth)
* ``camvid:PATH:SPLIT``     SegNet-layout CamVid (``SPLIT/`` and ``SPLITannot/``)
* ``folder:IMAGES:MASKS``   images and class-id PNG masks paired by file stem
* ``bag:PATH``              a ROS 1 or ROS 2 bag (see ``bags/dataset.py``)

Each item is (RGB uint8 H x W x 3, class ids uint8 H x W) with the class set's ignore
index where the label says "don't know".  Files are read lazily; every problem with one
(unreadable, wrong size, unknown class id) is a DataError naming it.  A damaged file (one
that does not decode, a mask of the wrong size) is a DamagedSample; with
``skip_damaged`` the dataset returns a ``Damaged`` marker in its place (damaged.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .bags.dataset import bag_samples
from .damaged import Damaged, DamagedSample
# Image files and DataError live in image_io (bags/dataset.py reads them too); they are named
# here as well because training, evaluation and the tests know them as datasets.*.
from .image_io import (DataError, decode_kitti_gt, Encoded, IMAGE_EXTS, list_images, read_id_mask,  # noqa: F401
                       read_image, read_kitti_gt)
from ..classes import CAMVID, ClassSet, KITTI_ROAD


@dataclass
class Sample:
    image: Path | Encoded
    label: Path | Encoded


class SegmentationDataset(Dataset):
    def __init__(self, samples: list[Sample], classes: ClassSet, decode: Callable[[object], np.ndarray],
                 augment=None, seed: int = 0, name: str = "data"):
        if not samples:
            raise DataError(f"{name}: no image/label pairs found")
        self.samples, self.classes, self.decode = samples, classes, decode
        self.augment, self.seed, self.name = augment, seed, name
        self.epoch = 0
        self.skip_damaged = False       # True: a damaged sample comes back as a Damaged marker

    def __len__(self) -> int:
        return len(self.samples)

    def with_augment(self, augment, seed: int = 0) -> "SegmentationDataset":
        """Return a shallow copy that shares the sample list but augments differently."""
        other = copy.copy(self)
        other.augment, other.seed = augment, seed
        return other

    def label(self, i: int) -> np.ndarray:
        s = self.samples[i]
        label = _decoded(self.decode, s.label)
        bad = label[(label != self.classes.ignore_index) & (label >= self.classes.num_classes)]
        if bad.size:
            raise DataError(f"mask {s.label} holds class id {int(bad.max())} but there are only "
                            f"{self.classes.num_classes} classes (ids 0..{self.classes.num_classes - 1}, "
                            f"ignore {self.classes.ignore_index}); pass a --classes file that lists them")
        return label

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.samples[i]
        image, label = _decoded(read_image, s.image), self.label(i)
        if image.shape[:2] != label.shape[:2]:
            raise DamagedSample(f"mask {s.label} is {label.shape[1]}x{label.shape[0]} but image {s.image} is "
                                f"{image.shape[1]}x{image.shape[0]}", s.label)
        return image, label

    def __getitem__(self, i: int):
        try:
            image, label = self.load(i)
        except DamagedSample as e:
            if not self.skip_damaged:
                raise
            return Damaged(e.file, str(e))
        if self.augment is not None:
            # One stream per (seed, epoch, index): the same run gives the same crops
            # whatever the worker or process count, which makes resumed runs exact.
            rng = np.random.default_rng((self.seed, self.epoch, i))
            image, label = self.augment(image, label, rng)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(label.astype(np.int64))


def _decoded(decode, src):
    """``decode(src)``; a file that does not decode is a DamagedSample (a label map's misses are not)."""
    try:
        return decode(src)
    except DamagedSample:
        raise
    except DataError as e:
        raise DamagedSample(str(e), src) from None


def _pair_by_stem(images: Path, masks: Path, mask_stem=lambda stem: stem) -> list[Sample]:
    if not images.is_dir():
        raise DataError(f"image directory {images} does not exist")
    if not masks.is_dir():
        raise DataError(f"mask directory {masks} does not exist")
    by_stem = {p.stem: p for p in list_images(masks)}
    samples = []
    for img in list_images(images):
        m = by_stem.get(mask_stem(img.stem))
        if m is None:
            raise DataError(f"image {img} has no mask named {mask_stem(img.stem)}.* in {masks}")
        samples.append(Sample(img, m))
    if not samples:
        raise DataError(f"image directory {images} holds no images ({', '.join(IMAGE_EXTS)})")
    return samples


def kitti_base(root: Path) -> Path:
    """Return the folder holding image_2/ and gt_image_2/ (``data_road/training`` or itself)."""
    if not root.is_dir():
        raise DataError(f"KITTI road directory {root} does not exist")
    return root / "training" if (root / "training").is_dir() else root


def kitti_samples(root: Path) -> list[Sample]:
    def stem(s: str) -> str:  # um_000000 -> um_road_000000
        kind, _, num = s.partition("_")
        return f"{kind}_road_{num}" if num else s
    base = kitti_base(root)
    return _pair_by_stem(base / "image_2", base / "gt_image_2", stem)


def _fixed_classes(kind: str, own: ClassSet, given: ClassSet | None) -> ClassSet:
    if given is not None and given.names != own.names:
        raise DataError(f"{kind}: data has its own classes ({', '.join(own.names)}); "
                        f"--classes applies to folder: and bag: data only")
    return own


def open_dataset(spec: str, classes: ClassSet | None = None, augment=None, seed: int = 0,
                 image_topic: str | None = None, mask_topic: str | None = None,
                 max_dt: float = 0.05) -> SegmentationDataset:
    """
    Parse a ``--data`` spec.

    ``classes`` (from --classes) sets the class set of ``folder:`` and ``bag:``
    data (default: KITTI road's not_road/road).
    """
    kind, _, rest = spec.partition(":")
    if kind == "kitti" and rest:
        cs = _fixed_classes("kitti", KITTI_ROAD, classes)
        return SegmentationDataset(kitti_samples(Path(rest)), cs, read_kitti_gt, augment, seed, spec)
    if kind == "camvid" and rest:
        root, _, split = rest.rpartition(":")
        if not root or not split:
            raise DataError(f"dataset spec {spec!r}: use camvid:PATH:SPLIT (e.g. camvid:data/camvid:train)")
        if not Path(root).is_dir():
            raise DataError(f"CamVid directory {root} does not exist")
        cs = _fixed_classes("camvid", CAMVID, classes)
        samples = _pair_by_stem(Path(root) / split, Path(root) / f"{split}annot")
        return SegmentationDataset(samples, cs, read_id_mask, augment, seed, spec)
    if kind == "folder" and rest:
        images, _, masks = rest.partition(":")
        if not images or not masks:
            raise DataError(f"dataset spec {spec!r}: use folder:IMAGES:MASKS")
        return SegmentationDataset(_pair_by_stem(Path(images), Path(masks)), classes or KITTI_ROAD,
                                   read_id_mask, augment, seed, spec)
    if kind == "bag" and rest:
        pairs, decode, cs = bag_samples(Path(rest), image_topic, mask_topic, max_dt, classes)
        return SegmentationDataset([Sample(image, mask) for image, mask in pairs], cs, decode, augment, seed, spec)
    raise DataError(f"dataset spec {spec!r} is not kitti:PATH, camvid:PATH:SPLIT, folder:IMAGES:MASKS or bag:PATH")
