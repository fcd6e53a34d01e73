"""``ros2 run icnet_ros train``: train ICNet on KITTI road, CamVid, image/mask folders or
bags, with the cascade label guidance loss, and write self-describing checkpoints.

    train --data camvid:../shared/data/camvid:train --val camvid:../shared/data/camvid:val \
          --model r18 --epochs 80 --out runs/camvid
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from .checkpoint import IMAGENET_MEAN, IMAGENET_STD, CheckpointError, ModelMeta, read_checkpoint, save_checkpoint
from .classes import ClassSet
from .datasets import DataError, open_dataset
from .engine import EngineError, resolve_device
from .loss import CascadeLoss
from .metrics import ConfusionMatrix
from .model import ICNet
from .transforms import TrainAugment


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h < 8 or w < 8:
            raise ValueError
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must be HxW with both at least 8, e.g. 360x480") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="kitti:PATH | camvid:PATH:SPLIT | folder:IMAGES:MASKS | bag:PATH")
    p.add_argument("--val", help="validation spec (same forms as --data)")
    p.add_argument("--val-split", type=float, default=0.0, help="fraction of --data held out when --val is not given")
    p.add_argument("--classes", help="YAML class file for folder:/bag: data (names, colors, drivable_ids, ignore_index)")
    p.add_argument("--model", default="r18", choices=["r18", "r50"], help="ICNet variant")
    p.add_argument("--width", type=float, default=0.5, help="channel width multiplier (0.5 = official ICNet)")
    p.add_argument("--input-size", type=parse_size, help="HxW the deployed model resizes frames to (stored in the checkpoint)")
    p.add_argument("--crop", type=parse_size, default=(360, 480), help="training crop HxW")
    p.add_argument("--base-size", type=parse_size, help="resize every training image to HxW before random scaling")
    p.add_argument("--scale", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    p.add_argument("--lr", type=float, help="base learning rate (default 0.01 SGD, 0.002 AdamW)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--power", type=float, default=0.9, help="poly schedule power")
    p.add_argument("--warmup-iters", type=int, default=0)
    p.add_argument("--loss-weights", type=float, nargs=3, default=(0.4, 0.4, 1.0), metavar=("W16", "W8", "W4"))
    p.add_argument("--class-weights", default="none", help="none | auto (inverse sqrt frequency) | comma list")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--out", required=True, help="directory for last.pt, best.pt, metrics.csv, logs")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    p.add_argument("--init", help="checkpoint to fine-tune from (classifiers re-initialised if the classes differ)")
    p.add_argument("--max-iters", type=int, default=0, help="stop each epoch after this many iterations (smoke tests)")
    return p


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def normalise(images: torch.Tensor, device) -> torch.Tensor:
    """uint8 N x H x W x 3 -> normalised float N x 3 x H x W on device (as the engine does)."""
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def poly_lr(base: float, it: int, total: int, power: float, warmup: int) -> float:
    if warmup and it < warmup:
        return base * (it + 1) / warmup
    return base * (1 - min(it, total - 1) / total) ** power


def class_weights_from(arg: str, dataset, classes: ClassSet) -> list[float] | None:
    if arg == "none":
        return None
    if arg == "auto":
        counts = np.zeros(classes.num_classes, np.float64)
        for i in range(len(dataset)):
            label = dataset.decode(dataset.samples[i].label)
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


@torch.no_grad()
def evaluate_model(model: ICNet, dataset, device, input_size=None) -> ConfusionMatrix:
    """mIoU at label resolution over a dataset of (uint8 image, label) pairs."""
    model.eval()
    cm = ConfusionMatrix(dataset.classes.num_classes, dataset.classes.ignore_index)
    for i in range(len(dataset)):
        image, label = dataset[i]
        x = normalise(image[None], device)
        h, w = label.shape
        if input_size:
            x = F.interpolate(x, size=tuple(input_size), mode="bilinear", align_corners=False)
        logits = model(x)
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        cm.update(logits.argmax(1)[0].cpu().numpy(), label.numpy())
    return cm


def init_from(model: ICNet, path: str) -> list[str]:
    """Load matching weights from a checkpoint; returns the names that were skipped."""
    _, state, _ = read_checkpoint(path)
    own = model.state_dict()
    skipped = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    own.update({k: v.float() if v.is_floating_point() else v for k, v in state.items() if k not in skipped})
    model.load_state_dict(own)
    return skipped


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (DataError, CheckpointError, EngineError, FileNotFoundError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    seed_all(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    user_classes = ClassSet.from_yaml(args.classes) if args.classes else None
    probe = open_dataset(args.data, user_classes)
    classes = probe.classes
    augment = TrainAugment(args.crop, tuple(args.scale), ignore_index=classes.ignore_index, base_size=args.base_size)
    train_set = open_dataset(args.data, user_classes, augment, args.seed)
    if args.val:
        val_set = open_dataset(args.val, user_classes)
    elif args.val_split > 0:
        order = np.random.default_rng(args.seed).permutation(len(train_set))
        n_val = max(1, int(round(len(order) * args.val_split)))
        val_set = Subset(open_dataset(args.data, user_classes), sorted(order[:n_val].tolist()))
        val_set.classes = classes
        train_set = Subset(train_set, sorted(order[n_val:].tolist()))
    else:
        val_set = None

    model = ICNet(classes.num_classes, args.model, args.width).to(device)
    meta = ModelMeta(classes, args.model, args.width, input_size=args.input_size,
                     info={"command": "train " + " ".join(sys.argv[1:] if argv_is_cli() else [])})
    if args.init and not args.resume:
        skipped = init_from(model, args.init)
        if skipped:
            print(f"train: --init {args.init}: re-initialised {len(skipped)} tensors that do not fit "
                  f"(classes differ): {', '.join(sorted({k.rsplit('.', 1)[0] for k in skipped}))}")

    base_lr = args.lr or (0.01 if args.optimizer == "sgd" else 0.002)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=0.9, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=base_lr, weight_decay=args.weight_decay)
    base_set = train_set.dataset if isinstance(train_set, Subset) else train_set
    cw = class_weights_from(args.class_weights, base_set, classes)
    criterion = CascadeLoss(tuple(args.loss_weights), classes.ignore_index, cw).to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")

    start_epoch, it, best = 0, 0, -1.0
    if args.resume:
        last = out / "last.pt"
        meta_r, state, extra = read_checkpoint(last)
        if not extra:
            raise CheckpointError(f"checkpoint {last} has no training state to resume from")
        model.load_state_dict(state)
        opt.load_state_dict(extra["optimizer"])
        scaler.load_state_dict(extra["scaler"])
        start_epoch, it, best = extra["epoch"] + 1, extra["iteration"], extra["best_miou"]
        torch.set_rng_state(extra["torch_rng"])
        np.random.set_state(tuple(extra["numpy_rng"]))
        print(f"train: resumed from {last} at epoch {start_epoch}")

    loader_gen = torch.Generator()
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=len(train_set) > args.batch_size,
                        num_workers=args.workers, generator=loader_gen, persistent_workers=False)
    iters_per_epoch = min(len(loader), args.max_iters) if args.max_iters else len(loader)
    total_iters = max(1, iters_per_epoch * args.epochs)

    csv_path = out / "metrics.csv"
    if not args.resume or not csv_path.exists():
        csv_path.write_text("epoch,iteration,lr,train_loss,val_miou,val_pixel_acc,seconds\n")
    from tqdm import tqdm

    for epoch in range(start_epoch, args.epochs):
        base_set.epoch = epoch
        loader_gen.manual_seed(args.seed * 1000 + epoch)  # same shuffle after a resume
        model.train()
        t0, losses = time.time(), []
        bar = tqdm(loader, total=iters_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False,
                   disable=not sys.stderr.isatty())
        for step, (images, labels) in enumerate(bar):
            if step >= iters_per_epoch:
                break
            lr = poly_lr(base_lr, it, total_iters, args.power, args.warmup_iters)
            for g in opt.param_groups:
                g["lr"] = lr
            x = normalise(images, device)
            y = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                outputs = model(x)
            loss = criterion(outputs, y)
            if not torch.isfinite(loss):
                print(f"train: error: the loss became {loss.item()} at epoch {epoch + 1}, iteration {it}; "
                      f"stopping (last good checkpoint kept in {out / 'last.pt'}); try a lower --lr",
                      file=sys.stderr)
                return 3
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item())
            it += 1
            bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{lr:.2e}")
        train_loss = float(np.mean(losses)) if losses else math.nan
        miou = acc = math.nan
        if val_set is not None:
            cm = evaluate_model(model, val_set, device, args.input_size)
            miou, acc = cm.miou(), cm.pixel_accuracy()
        seconds = time.time() - t0
        print(f"epoch {epoch + 1}/{args.epochs}  loss {train_loss:.4f}  val mIoU {miou:.4f}  "
              f"acc {acc:.4f}  lr {lr:.2e}  {seconds:.0f}s", flush=True)
        with csv_path.open("a") as f:
            csv.writer(f).writerow([epoch + 1, it, f"{lr:.6g}", f"{train_loss:.6f}", f"{miou:.6f}", f"{acc:.6f}",
                                    f"{seconds:.1f}"])
        score = miou if val_set is not None else -train_loss
        is_best = score > best
        best = max(best, score)
        meta.info.update({"epochs": epoch + 1, "val_miou": None if math.isnan(miou) else round(miou, 4)})
        extra = {"epoch": epoch, "iteration": it, "best_miou": best, "optimizer": opt.state_dict(),
                 "scaler": scaler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "numpy_rng": list(np.random.get_state()), "args": {k: str(v) for k, v in vars(args).items()}}
        save_checkpoint(out / "last.pt", model, meta, extra)
        if is_best:
            save_checkpoint(out / "best.pt", model, meta)
    return 0


def argv_is_cli() -> bool:
    return Path(sys.argv[0]).name in ("train", "train.py") or sys.argv[0].endswith("icnet_ros.train")


if __name__ == "__main__":
    sys.exit(main())
