"""
Several labelled sources in one run: ``--data SPEC [weight=W] [labels=YAML] [val=F]``.

* ``weight``: the source's share of the training samples drawn each epoch (default: its
  size, i.e. plain concatenation).  Shares are normalised over the sources.
* ``labels``: a label map (label_maps.py) from the source's ids to the model's classes
  (``--classes``); without one the source must already have the model's classes.
* ``val``: hold out this fraction of the source for validation: the *last* files in
  sorted order, so that (for folders sorted by city or sequence, as Cityscapes and
  IDD are) whole cities / sequences stay out of training rather than near-duplicates;
  or a file-name pattern (``val=0006R0_*``): hold out the frames whose image name
  matches it, e.g. one whole CamVid sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
import fnmatch
import math
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Sampler, Subset

from .datasets import DataError, open_dataset, SegmentationDataset
from .label_maps import LabelMap, MappedDecode
from ..classes import ClassSet

OPTIONS = ("weight", "labels", "val")


@dataclass
class Source:
    spec: str
    weight: float | None = None
    labels: str | None = None
    val: float | str = 0.0              # a fraction (the last files) or a file-name pattern

    def held_name(self) -> str:
        """How reports name the held-out part: ``SPEC (last 0.1)`` or ``SPEC (0006R0_*)``."""
        return f"{self.spec} (last {self.val:g})" if isinstance(self.val, float) else f"{self.spec} ({self.val})"


def parse_source(tokens: list[str] | str) -> Source:
    """``["camvid:data:train", "weight=0.3", "labels=config/label_maps/camvid.yaml"]``."""
    if isinstance(tokens, str):
        tokens = [tokens]
    src = Source(tokens[0])
    for tok in tokens[1:]:
        key, eq, value = tok.partition("=")
        if not eq or key not in OPTIONS or not value:
            raise DataError(f"--data {tokens[0]}: option {tok!r} is not one of weight=W, labels=YAML, val=F|PATTERN")
        if key == "labels":
            src.labels = value
            continue
        try:
            number = float(value)
        except ValueError:
            if key == "val":  # a file-name pattern
                src.val = value
                continue
            raise DataError(f"--data {tokens[0]}: {key}={value!r} is not a number") from None
        if key == "weight":
            if not (math.isfinite(number) and number > 0):
                raise DataError(f"--data {tokens[0]}: weight={value} must be a positive number")
            src.weight = number
        else:
            if not 0 < number < 1:
                raise DataError(f"--data {tokens[0]}: val={value} must be a fraction between 0 and 1")
            src.val = number
    return src


def open_source(src: Source, classes: ClassSet | None, **bag_args) -> SegmentationDataset:
    """Return the dataset of one source, its masks mapped into ``classes`` when it has a label map."""
    if src.labels is None:
        # kitti: and camvid: bring their own classes; the caller compares them with the
        # model's and suggests a label map when they differ.
        fixed = src.spec.startswith(("kitti:", "camvid:"))
        return open_dataset(src.spec, None if fixed else classes, **bag_args)
    if classes is None:
        raise DataError(f"--data {src.spec}: labels={src.labels} needs --classes (the model's class file)")
    # Read the source with its own class set, then map: the label map decides which ids
    # are valid (the dataset checks the mapped ids against the model's classes).
    data = open_dataset(src.spec, None, **bag_args)
    data.decode = MappedDecode(data.decode, LabelMap.from_yaml(src.labels, classes))
    data.classes = classes
    return data


def split_held(data: Dataset, src: Source) -> tuple[list[int], list[int]]:
    """(train indices, validation indices) for ``val=``: the last fraction, or the names matching."""
    if isinstance(src.val, float):
        return split_tail(data, src.val, src.spec)
    names = [_image_name(s, src.spec) for s in data.samples]
    held = [i for i, name in enumerate(names) if fnmatch.fnmatchcase(name, src.val)]
    if not held:
        raise DataError(f"--data {src.spec}: val={src.val} matches none of its {len(names)} image names")
    if len(held) == len(names):
        raise DataError(f"--data {src.spec}: val={src.val} matches all of its {len(names)} images, "
                        "leaving none for training")
    keep = sorted(set(range(len(names))) - set(held))
    return keep, held


def _image_name(sample, spec: str) -> str:
    if not isinstance(sample.image, Path):
        raise DataError(f"--data {spec}: val=PATTERN needs image files; give a bag source val=F instead")
    return sample.image.name


def split_tail(data: Dataset, fraction: float, name: str) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): the last ``fraction`` of the items."""
    n = len(data)
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise DataError(f"--data {name}: val={fraction} leaves no training images out of {n}")
    return list(range(n - n_val)), list(range(n - n_val, n))


class MixSampler(Sampler):
    """
    Draw ``num_samples`` indices into a ConcatDataset, source s supplying ``shares[s]`` of them.

    Draws with replacement inside a source only when it is too small.  Seeded by (seed,
    epoch): a resumed run draws the same; under DDP each rank takes every world-th
    index.
    """

    def __init__(self, sizes: list[int], shares: list[float], num_samples: int, seed: int = 0,
                 rank: int = 0, world: int = 1):
        if len(sizes) != len(shares) or not sizes:
            raise ValueError("one share per source is needed")
        total = float(sum(shares))
        self.sizes, self.shares = list(sizes), [s / total for s in shares]
        self.num_samples, self.seed, self.rank, self.world = num_samples, seed, rank, world
        self.epoch = 0
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def counts(self) -> list[int]:
        """How many samples each source gives per epoch (largest remainder rounding)."""
        raw = np.array(self.shares) * self.num_samples
        counts = np.floor(raw).astype(int)
        for i in np.argsort(-(raw - counts))[: self.num_samples - counts.sum()]:
            counts[i] += 1
        return counts.tolist()

    def _indices(self) -> list[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        picks = []
        for size, offset, count in zip(self.sizes, self.offsets, self.counts()):
            reps = [rng.permutation(size) for _ in range(-(-count // size))] if count else []
            picks.append(offset + np.concatenate(reps)[:count] if reps else np.zeros(0, int))
        order = np.concatenate(picks)
        return order[rng.permutation(len(order))].tolist()

    def __iter__(self):
        idx = self._indices()
        usable = len(idx) - len(idx) % self.world
        return iter(idx[self.rank:usable:self.world])

    def __len__(self) -> int:
        return self.num_samples // self.world


def set_epoch(datasets, epoch: int) -> None:
    """Augmentation streams are per (seed, epoch, index): tell every source the epoch."""
    for d in datasets:
        base = d.dataset if isinstance(d, Subset) else d
        base.epoch = epoch


__all__ = ["Source", "parse_source", "open_source", "split_held", "split_tail", "MixSampler", "set_epoch"]
