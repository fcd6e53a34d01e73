"""
Cascade label guidance (paper Sec. 3.3): cross-entropy on each cascade output.

Each output is scored against the labels shrunk to its size by nearest neighbour (never
blending class ids).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def shrink_labels(labels: torch.Tensor, size) -> torch.Tensor:
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


OUTPUT_ORDER = ("aux16", "aux8", "out")   # the model's training dict, coarse to fine


class CascadeLoss(nn.Module):
    """
    Weights follow the model's training outputs: (aux16, aux8, out) = (1/16, 1/8, 1/4) -> (0.4, 0.4, 1.0).

    Takes the model's dict, or logits tensors in that order.
    """

    def __init__(self, weights=(0.4, 0.4, 1.0), ignore_index: int = 255, class_weights=None):
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        self.ignore_index = ignore_index
        cw = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", cw, persistent=False)

    def forward(self, outputs, labels: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, dict):
            outputs = tuple(outputs[k] for k in OUTPUT_ORDER if k in outputs)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        if len(outputs) != len(self.weights):
            raise ValueError(f"{len(outputs)} model outputs but {len(self.weights)} loss weights")
        total = labels.new_zeros((), dtype=torch.float32)
        for logits, weight in zip(outputs, self.weights):
            target = shrink_labels(labels, logits.shape[-2:])
            # Sum over valid pixels / their (clamped) weight, cross_entropy's mean written out: a fully ignored
            # term is then 0 with a (zero) gradient to its head instead of 0/0 = NaN, so every
            # head takes part in backward on every rank (DDP without find_unused_parameters)
            # and no host sync is needed to test for it.
            per_pixel = F.cross_entropy(logits.float(), target, weight=self.class_weights,
                                        ignore_index=self.ignore_index, reduction="none")
            valid = target != self.ignore_index
            if self.class_weights is None:
                norm = valid.sum()
            else:
                norm = (self.class_weights[target.clamp(0, len(self.class_weights) - 1)] * valid).sum()
            total = total + weight * per_pixel.sum() / norm.clamp(min=1e-6)
        return total
