"""
One training step, and one epoch of them.

The epoch reads the loss on the host a window of steps at a time (progress bar,
TensorBoard, the NaN check).
"""

from __future__ import annotations

import math

import torch

from .normalise import normalise
from .optim import Optimisation

LOSS_WINDOW = 20        # training steps between reads of the loss on the host (progress bar, NaN check)


class Diverged(Exception):
    """Training blew up (a non-finite loss or weights); the message says what and when."""


def train_step(model, criterion, opt, scaler, images: torch.Tensor, labels: torch.Tensor, device,
               amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """
    Run one optimiser step on a batch of uint8 images and labels.

    The loss comes back detached and on the device, so the step never waits for the GPU
    (the caller reads losses a window of steps at a time).
    """
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


def train_epoch(model, optim: Optimisation, loader, epoch: int, epochs: int, it: int, lr: float, ddp,
                report=None, damaged=None) -> tuple[float, int, float]:
    """
    Run epoch ``epoch`` (from 0) of ``epochs`` over the loader (data.TrainLoader).

    Returns (mean training loss, iteration after it, last learning rate).  Every rank sees
    the same window losses (all-reduced), so all stop together on a NaN: raises Diverged.
    Damaged samples the loader left out of a batch go to ``damaged`` (DamagedSamples).
    """
    from tqdm import tqdm

    device = ddp.device
    model.train()
    loss_sum, steps = 0.0, 0
    window, window_steps = torch.zeros((), device=device), 0   # losses not yet read on the host
    bar = tqdm(loader.loader, total=loader.iters_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
               disable=None if ddp.main else True)
    for step, (images, labels, bad) in enumerate(bar):
        if step >= loader.iters_per_epoch:
            break
        if bad and damaged is not None:
            damaged.add(bad)
        if images is not None:      # None: every sample of the batch was damaged
            lr = optim.set_lr(it)
            window += train_step(model, optim.criterion, optim.opt, optim.scaler, images, labels, device,
                                 optim.amp)
            window_steps, it = window_steps + 1, it + 1
        # every LOSS_WINDOW loader steps on every rank alike (one all-reduce), not per trained step
        if ((step + 1) % LOSS_WINDOW and step + 1 < loader.iters_per_epoch) or not window_steps:
            continue
        # One host sync (and one all-reduce, after backward) per window, not several per step.
        mean_loss = float(ddp.sum_(window).item()) / (ddp.world * window_steps)  # every rank sees NaN
        if not math.isfinite(mean_loss):
            raise Diverged(f"the loss became {mean_loss} in epoch {epoch + 1} (by iteration {it})")
        loss_sum, steps = loss_sum + mean_loss * window_steps, steps + window_steps
        window, window_steps = torch.zeros((), device=device), 0
        bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}")
        if report is not None:
            report.step(mean_loss, lr, it)
    return loss_sum / max(steps, 1), it, lr


def check_weights(model: torch.nn.Module, epoch: int) -> None:
    """Raise Diverged on overflowed weights, which a finite loss can still leave behind."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise Diverged(f"weights became infinite or NaN ({bad[0]}) in epoch {epoch + 1}")
