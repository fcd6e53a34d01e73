"""
uint8 frames -> the network's normalised input on the training device.

Exactly as the engine does (one normalisation for training, validation and
inference).
"""

from __future__ import annotations

import functools

import torch

from ..inference.checkpoint import IMAGENET_MEAN, IMAGENET_STD
from ..inference.deploy import normalise as engine_normalise


@functools.lru_cache(maxsize=None)
def norm_stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Return ImageNet mean and std on device, made once.

    Built from the Python tuples each step, they were two blocking host -> device copies
    that undid the image's non-blocking one.
    """
    return (torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device),
            torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device))


def normalise(images: torch.Tensor, device) -> torch.Tensor:
    """uint8 N x H x W x 3 -> normalised float N x 3 x H x W on device, exactly as the engine does."""
    return engine_normalise(images.to(device, non_blocking=True), *norm_stats(torch.device(device)))
