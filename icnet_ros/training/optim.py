"""
What moves the weights: optimiser, schedule, loss, gradient scaler and initial weights.

The schedule is the poly learning rate; the loss is the cascade loss with its class
weights; the scaler is AMP's; the initial weights are the --pretrained ImageNet backbone
or an --init checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..classes import ClassSet
from ..data.datasets import DataError
from ..inference.checkpoint import read_checkpoint
from ..nn.loss import CascadeLoss
from ..nn.model import ICNet


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


@dataclass
class Optimisation:
    opt: torch.optim.Optimizer
    criterion: CascadeLoss
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None             # autocast dtype; None: fp32
    base_lr: float
    power: float
    warmup: int
    total_iters: int = 1                # the schedule's length, known once the loader is

    def lr_at(self, it: int) -> float:
        return poly_lr(self.base_lr, it, self.total_iters, self.power, self.warmup)

    def set_lr(self, it: int) -> float:
        lr = self.lr_at(it)
        for g in self.opt.param_groups:
            g["lr"] = lr
        return lr


def build_optimisation(args, model: ICNet, bases, classes: ClassSet, device: torch.device) -> Optimisation:
    """--optimizer, --lr, --class-weights, --loss-weights and AMP (CUDA unless --no-amp)."""
    base_lr = args.lr if args.lr is not None else (0.01 if args.optimizer == "sgd" else 0.002)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=0.9, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=base_lr, weight_decay=args.weight_decay)
    cw = class_weights_from(args.class_weights, bases, classes)
    criterion = CascadeLoss(tuple(args.loss_weights), classes.ignore_index, cw).to(device)
    amp = torch.float16 if device.type == "cuda" and not args.no_amp else None   # autocast dtype
    if hasattr(torch.amp, "GradScaler"):       # torch 2.3 and newer
        scaler = torch.amp.GradScaler("cuda", enabled=amp is not None)
    else:                                      # older torch: the CUDA one (same state, same API)
        scaler = torch.cuda.amp.GradScaler(enabled=amp is not None)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True   # fixed crops: the fastest kernels, tuned once per shape
    return Optimisation(opt, criterion, scaler, amp, base_lr, args.power, args.warmup_iters)


def load_scaler(scaler: torch.amp.GradScaler, state: dict | None) -> bool:
    """
    Resume the gradient scaler; False where the checkpoint has no scaler state to give.

    A run saved with the scaler off (CPU, --no-amp) holds {}, which an enabled GradScaler
    refuses: it then starts at its initial scale, which it corrects within a few steps.
    """
    if not state:
        return False
    scaler.load_state_dict(state)
    return True


def load_pretrained(model: ICNet, args, log) -> None:
    """--pretrained: the EfficientNet-Lite backbone (effl0/1/2) from ImageNet weights."""
    if args.pretrained is None:
        return
    if not model.variant.startswith("effl"):
        raise DataError(f"--pretrained loads EfficientNet-Lite weights; --model {args.model} has no such backbone "
                        f"(use --model effl0, effl1 or effl2)")
    from ..nn.efficientnet_lite import load_imagenet

    n = load_imagenet(model.backbone, args.pretrained or None)
    log(f"train: backbone initialised from ImageNet weights ({n} tensors)")


def init_from(model: ICNet, path: str) -> list[str]:
    """Load matching weights from a checkpoint; returns the names that were skipped."""
    _, state, _ = read_checkpoint(path)
    own = model.state_dict()
    skipped = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    own.update({k: v.float() if v.is_floating_point() else v for k, v in state.items() if k not in skipped})
    model.load_state_dict(own)
    return skipped


def load_init(model: ICNet, path: str, log) -> None:
    """--init: fine-tune from a checkpoint, saying which tensors did not fit."""
    skipped = init_from(model, path)
    if skipped:
        log(f"train: --init {path}: re-initialised {len(skipped)} tensors that do not fit "
            f"(classes differ): {', '.join(sorted({k.rsplit('.', 1)[0] for k in skipped}))}")
