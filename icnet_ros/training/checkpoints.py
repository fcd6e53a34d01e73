"""
last.pt after every epoch with all an exact --resume needs, best.pt with the weights alone.

What --resume needs: optimiser, scaler, every random generator; the ``extra`` keys
epoch, iteration, best_score, optimizer, scaler, torch_rng, cuda_rng, numpy_rng,
python_rng, args.
"""

from __future__ import annotations

import math
from pathlib import Path
import random

import numpy as np
import torch

from .optim import load_scaler, Optimisation
from ..inference.checkpoint import CheckpointError, ModelMeta, read_checkpoint, save_checkpoint


def rng_state(device) -> dict:
    """
    Return every random generator's state in types that ``torch.load(weights_only=True)`` accepts.

    Those types are tensors, lists and numbers; no numpy arrays.
    """
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


def resume(last: Path, model: torch.nn.Module, optim: Optimisation, device, log) -> tuple[int, int, float]:
    """
    Restore model, optimiser, scaler and random generators as ``last`` left them.

    Returns (first epoch to run, iteration, best score).
    """
    if not last.is_file():
        raise CheckpointError(f"--resume: {last} does not exist (nothing to resume in {last.parent})")
    _, state, extra = read_checkpoint(last)
    if not extra or "optimizer" not in extra:
        raise CheckpointError(f"checkpoint {last} has no training state to resume from")
    try:
        model.load_state_dict(state)
        optim.opt.load_state_dict(extra["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {last} does not fit this command's model or optimiser "
                              f"({str(e).splitlines()[0]}); resume with the arguments it was started with") from None
    if not load_scaler(optim.scaler, extra.get("scaler")) and optim.scaler.is_enabled():
        log(f"train: {last} was saved without AMP; the gradient scaler starts afresh")
    start_epoch, it = extra["epoch"] + 1, extra["iteration"]
    best = extra.get("best_score", extra.get("best_miou", -math.inf))
    set_rng_state(extra, device)
    log(f"train: resumed from {last} after epoch {start_epoch}")
    return start_epoch, it, best


def save_epoch(out: Path, model: torch.nn.Module, meta: ModelMeta, optim: Optimisation, args, device,
               epoch: int, it: int, best: float, miou: float, is_best: bool) -> None:
    """last.pt after epoch ``epoch`` (from 0); best.pt too where it scored best."""
    meta.info.update({"epochs": epoch + 1, "val_miou": None if math.isnan(miou) else round(miou, 4)})
    extra = {"epoch": epoch, "iteration": it, "best_score": best, "optimizer": optim.opt.state_dict(),
             "scaler": optim.scaler.state_dict(), **rng_state(device),
             "args": {k: str(v) for k, v in vars(args).items()}}
    save_checkpoint(out / "last.pt", model, meta, extra)
    if is_best:
        save_checkpoint(out / "best.pt", model, meta)


def score_epoch(best: float, miou: float, train_loss: float, validated: bool) -> tuple[bool, float]:
    """
    Best by validation mIoU; without validation data, by training loss.

    Returns (whether this epoch is the best yet, the best score).
    """
    score = miou if validated else -train_loss
    is_best = not math.isnan(score) and score > best
    return is_best, (max(best, score) if not math.isnan(score) else best)
