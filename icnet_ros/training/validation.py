"""
Validation: each frame through the deployed path into a confusion matrix.

The deployed path is deploy.frame_logits.  Each process takes a part of the frames; the
counts are summed over the processes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .normalise import norm_stats
from ..classes import ClassSet
from ..data.damaged import Damaged
from ..inference.checkpoint import ModelMeta
from ..inference.deploy import frame_logits
from ..metrics import ConfusionMatrix
from ..nn.model import ICNet


@torch.no_grad()
def evaluate_model(model: ICNet, dataset, device, meta: ModelMeta | None = None, part=(0, 1),
                   damaged=None) -> ConfusionMatrix:
    """
    Return the confusion matrix at label resolution over a dataset of (uint8 image, label) pairs.

    ``part`` = (rank, world) evaluates every world-th frame from rank.  Damaged samples
    (a Damaged marker in place of the pair) are skipped and handed to ``damaged``.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(dataset.classes.num_classes, dataset.classes.ignore_index)
    for i in range(part[0], len(dataset), part[1]):
        item = dataset[i]
        if isinstance(item, Damaged):
            if damaged is not None:
                damaged.add([item])
            continue
        image, label = item
        cm.update(predict(model, image, device, meta), label.numpy())
    model.train(was_training)
    return cm


def predict(model: ICNet, image: torch.Tensor, device, meta: ModelMeta | None = None) -> np.ndarray:
    """Class map of one uint8 frame through the deployed path (deploy.frame_logits)."""
    mean, std = norm_stats(torch.device(device))
    logits = frame_logits(model, image[None].to(device), meta, mean, std)
    return logits.argmax(1)[0].cpu().numpy()


def drivable_iou(cm: ConfusionMatrix, classes: ClassSet) -> float:
    """Return the IoU of the drivable classes taken together, from a class confusion matrix."""
    return cm.group_iou(classes.drivable_ids)


def reduce_confusion(cm: ConfusionMatrix, ddp) -> ConfusionMatrix:
    """Every rank's validation counts summed, on the training device: NCCL has no CPU tensors."""
    cm.matrix = ddp.sum_(torch.from_numpy(cm.matrix).to(ddp.device)).cpu().numpy()
    return cm


def validate(model: ICNet, val_sets: list, meta: ModelMeta, ddp, damaged=None) -> dict[str, ConfusionMatrix]:
    """Each (name, dataset) validation set's confusion matrix over every process's frames."""
    per_source = {}
    for name, val_set in val_sets:
        cm = evaluate_model(model, val_set, ddp.device, meta, (ddp.rank, ddp.world), damaged)
        per_source[name] = reduce_confusion(cm, ddp)
    return per_source


def mean_scores(per_source: dict[str, ConfusionMatrix]) -> tuple[float, float]:
    """(mIoU, pixel accuracy); NaN without validation data."""
    if not per_source:
        return math.nan, math.nan
    # One score over several sources: the mean of their mIoUs, so a small set counts as
    # much as a large one.
    return (float(np.mean([c.miou() for c in per_source.values()])),
            float(np.mean([c.pixel_accuracy() for c in per_source.values()])))
