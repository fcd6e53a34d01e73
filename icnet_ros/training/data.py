"""
The training set, the validation sets, and the loader that draws each epoch's batches.

The training set is one source, or several mixed by share; the loader uses plain shuffling,
MixSampler or DistributedSampler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, default_collate, Subset
from torch.utils.data.distributed import DistributedSampler

from ..classes import ClassSet
from ..data.damaged import Damaged, DamagedSamples, prescan
from ..data.datasets import DataError
from ..data.sources import MixSampler, open_source, parse_source, split_held
from ..data.transforms import TrainAugment


@dataclass
class TrainData:
    classes: ClassSet
    train: object                       # dataset of (uint8 image, int64 label) training pairs
    val: list                           # (name, dataset) validation sets
    bases: list                         # each source's training dataset (class weights, epochs)
    sizes: list[int]                    # training items per source
    shares: list[float] | None          # sampling shares; None: plain shuffling
    damaged: DamagedSamples             # the samples left out as damaged, and the limit


def build_data(args) -> TrainData:
    """Return the training set (one source, or several mixed by share) and the validation sets."""
    classes = ClassSet.from_yaml(args.classes) if args.classes else None
    bag = {"image_topic": args.image_topic, "mask_topic": args.mask_topic, "max_dt": args.max_dt}
    sources = [parse_source(tokens) for tokens in args.data]
    opened = [open_source(src, classes, **bag) for src in sources]
    first = f"--classes {args.classes}" if classes is not None else f"--data {sources[0].spec}"
    classes = classes or opened[0].classes
    for src, d in zip(sources, opened):
        _same_classes(d, classes, f"--data {src.spec}", first)
    val_sources = [parse_source(tokens) for tokens in args.val or []]
    val_opened = []
    for src in val_sources:
        v = open_source(src, classes if src.labels else (ClassSet.from_yaml(args.classes) if args.classes else None),
                        **bag)
        _same_classes(v, classes, f"--val {src.spec}", f"--data {sources[0].spec}")
        val_opened.append(v)
    damaged = check_damaged(opened + val_opened, args)
    augment = TrainAugment(args.crop, tuple(args.scale), ignore_index=classes.ignore_index,
                           base_size=args.base_size, base_width=args.base_width,
                           camera=getattr(args, "augment", ()))
    trains, vals, bases = [], [], []
    for src, d in zip(sources, opened):
        aug = d.with_augment(augment, args.seed)
        bases.append(aug)
        if src.val:
            keep, held = split_held(d, src)
            trains.append(Subset(aug, keep))
            vals.append((src.held_name(), _subset(d, held, classes)))
        else:
            trains.append(aug)
    vals += [(src.spec, v) for src, v in zip(val_sources, val_opened)]
    if not vals and args.val_split > 0:
        _split_val(args, sources[0].spec, opened[0], trains, vals, classes)
    sizes = [len(t) for t in trains]
    mixed = len(trains) > 1 or any(s.weight for s in sources)
    shares = [s.weight if s.weight else n for s, n in zip(sources, sizes)] if mixed else None
    train = trains[0] if len(trains) == 1 else ConcatDataset(trains)
    return TrainData(classes, train, vals, bases, sizes, shares, damaged)


def check_damaged(datasets: list, args) -> DamagedSamples:
    """
    Leave out the samples whose file headers show damage, before the first epoch.

    One warning line each; one error line, now, when there are more than --max-bad (or
    any, with --strict).  Later finds (files that fail to decode) come back as Damaged
    markers (``skip_damaged``) and count against the same limit.
    """
    damaged = DamagedSamples(args.max_bad, args.strict)
    found = []
    for d in datasets:
        damaged.total += len(d.samples)
        found += prescan(d)
        d.skip_damaged = True
    damaged.add(found, quiet=True)
    for d in datasets:
        if not d.samples:
            raise DataError(f"{d.name}: every sample is damaged")
    return damaged


def _split_val(args, spec: str, dataset, trains: list, vals: list, classes: ClassSet) -> None:
    """--val-split: a seeded random fraction of the one --data source held out for validation."""
    if len(trains) > 1:
        raise DataError("--val-split takes one --data source; with several, give each val=F")
    if not 0 < args.val_split < 1:
        raise DataError(f"--val-split {args.val_split} must be between 0 and 1")
    order = np.random.default_rng(args.seed).permutation(len(dataset))
    n_val = max(1, int(round(len(order) * args.val_split)))
    if n_val >= len(order):
        raise DataError(f"--val-split {args.val_split} leaves no training images out of {len(order)}")
    vals.append((spec, _subset(dataset, sorted(order[:n_val].tolist()), classes)))
    trains[0] = Subset(trains[0], sorted(order[n_val:].tolist()))


def _subset(dataset, indices, classes):
    sub = Subset(dataset, indices)
    sub.classes = classes
    return sub


def _same_classes(d, classes: ClassSet, what: str, first: str) -> None:
    if d.classes.names != classes.names:
        raise DataError(f"{what} has classes ({', '.join(d.classes.names)}) that differ from {first} "
                        f"({', '.join(classes.names)}); give it labels=YAML to map them")


def collate(items: list):
    """
    Return (images, labels, [Damaged]) for a batch: damaged samples are left out and handed on.

    They travel with the batch from the DataLoader worker to the main process, which
    counts them (DamagedSamples).  A batch of damaged samples only has images None.
    """
    bad = [x for x in items if isinstance(x, Damaged)]
    good = [x for x in items if not isinstance(x, Damaged)]
    images, labels = default_collate(good) if good else (None, None)
    return images, labels, bad


@dataclass
class TrainLoader:
    loader: DataLoader
    sampler: object | None              # MixSampler or DistributedSampler; None: shuffled by generator
    generator: torch.Generator | None   # the shuffle's generator (also the workers' base seed)
    seed: int
    iters_per_epoch: int                # steps each epoch (--max-iters cuts it short)

    def set_epoch(self, epoch: int) -> None:
        """Each epoch's order from the seed and the epoch alone: the same after a resume."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        else:
            self.generator.manual_seed(self.seed * 1000 + epoch)  # same shuffle after a resume


def make_loader(args, data: TrainData, ddp, log) -> TrainLoader:
    """
    Return batches of --batch-size for this process.

    Each source gets its share of every epoch (MixSampler); under torchrun, this rank's
    part (DistributedSampler); else shuffled.
    """
    if ddp.world > 1:
        sampler = DistributedSampler(data.train, ddp.world, ddp.rank, shuffle=True, seed=args.seed, drop_last=True)
        loader_gen = None
    else:
        sampler, loader_gen = None, torch.Generator()
    if data.shares is not None:  # several sources: each supplies its share of every epoch
        sampler = MixSampler(data.sizes, data.shares, args.epoch_size or sum(data.sizes), args.seed,
                             ddp.rank, ddp.world)
        log("train: samples per epoch by source: " + ", ".join(
            f"{spec[0]} {n}" for spec, n in zip(args.data, sampler.counts())))
    n_epoch = len(sampler) if sampler is not None else len(data.train) // ddp.world
    loader = DataLoader(data.train, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=n_epoch > args.batch_size, num_workers=args.workers, collate_fn=collate,
                        generator=loader_gen, pin_memory=ddp.device.type == "cuda")
    if len(loader) == 0:
        raise DataError(f"--data {args.data}: {len(data.train)} training images give no batch of {args.batch_size}")
    iters_per_epoch = min(len(loader), args.max_iters) if args.max_iters else len(loader)
    return TrainLoader(loader, sampler, loader_gen, args.seed, iters_per_epoch)
