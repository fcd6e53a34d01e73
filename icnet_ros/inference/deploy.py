"""
Deployable inference: the one path from uint8 camera frames to logits at the frame's size.

No ROS.

    uint8 N x H x W x 3 RGB -> normalise -> resize to the model's network size
    (checkpoint input_size / input_width) -> network -> logits -> resize back to H x W

The engine's PyTorch backend runs it (``frame_logits``), ``Deployable`` wraps it as one
module that ``export`` writes and the ONNX Runtime backend traces (``trace_onnx``), and
``train`` validates through it, so a score printed during training, by ``evaluate`` and
by the node come from the same function.  The drivable probability has one definition
too, ``drivable_prob``: the softmax at the network size summed over the drivable
classes, computed by PyTorch (CPU or CUDA) or inside the ONNX graph with their threads
and vector units.
"""

from __future__ import annotations

import inspect
import warnings

import torch
from torch import nn
import torch.nn.functional as F

from .checkpoint import IMAGENET_MEAN, IMAGENET_STD, ModelMeta

OUTPUTS = ("logits", "classes", "drivable_prob")   # the exported graph's outputs, in order


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """
    Normalise uint8 N x H x W x 3 frames to float N x 3 x H x W, on the images' device.

    Computes (x / 255 - mean) / std: the one definition that training and inference
    share.  The NHWC memory makes the result channels_last already.
    """
    x = images.permute(0, 3, 1, 2).float()
    mean = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.sub_(mean * 255.0).div_(std * 255.0)  # in place: no extra frame-sized tensors


def frame_logits(model: nn.Module, images: torch.Tensor, meta: ModelMeta | None, mean=None, std=None,
                 dtype: torch.dtype | None = None, channels_last: bool = False,
                 cache_enabled: bool = True, at_frame_size: bool = True) -> torch.Tensor:
    """
    uint8 N x H x W x 3 RGB frames (on the model's device) -> logits N x C x H x W.

    mean / std: tensors already on the device (the engine keeps them; None: the meta's).
    dtype: autocast dtype (fp16 / bf16) or None.  channels_last: the engine's memory
    format for oneDNN / cuDNN.  cache_enabled: False under CUDA graph capture, which
    would otherwise keep autocast's weight casts from the capture.  at_frame_size: False
    leaves the logits at the network size (the engine resizes what it needs itself).
    """
    h, w = int(images.shape[1]), int(images.shape[2])
    if mean is None:
        mean = meta.mean if meta is not None else IMAGENET_MEAN
        std = meta.std if meta is not None else IMAGENET_STD
    x = normalise(images, mean, std)
    size = meta.network_size(h, w) if meta is not None else (h, w)
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None, cache_enabled=cache_enabled):
        logits = model(x)["out"]
    if at_frame_size and tuple(logits.shape[-2:]) != (h, w):  # ICNet without a network size already answers at h x w
        logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
    return logits


def drivable_prob(logits: torch.Tensor, drivable_ids) -> torch.Tensor:
    """
    Return the N x h x w float32 drivable probability of N x C x h x w logits: softmax over C, drivable classes summed.

    Written for the ONNX graph as much as for PyTorch: the class planes are split apart and
    summed as whole planes, and the exponentials are taken against the largest drivable
    logit, not the largest of all (one drivable class d: ``1 / (1 + sum_k exp(l_k - l_d))``),
    so the graph has no Softmax and no reduction over the short class axis, both slow in
    ONNX Runtime on the CPU (its Softmax over the class axis alone took longer than the
    network's last stage; this form took 2.9 ms at 360x640 against 3.8 ms for exp and
    ReduceSum over that axis, 2026-12-06).  A large other logit makes the sum overflow to
    inf and the probability 0, its limit; never NaN.  No drivable class: 0 everywhere.
    """
    ids = sorted(int(i) for i in drivable_ids)
    planes = torch.split(logits.float(), 1, dim=1)
    if not ids:
        return torch.zeros_like(planes[0][:, 0])
    ref = planes[ids[0]]
    for i in ids[1:]:
        ref = torch.maximum(ref, planes[i])
    others = [torch.exp(planes[k] - ref) for k in range(len(planes)) if k not in ids]
    rest = others[0] if others else torch.zeros_like(ref)
    for e in others[1:]:
        rest = rest + e
    if len(ids) == 1:                  # the drivable term is exp(0) = 1
        return (rest + 1.0).reciprocal()[:, 0]
    num = torch.exp(planes[ids[0]] - ref)
    for i in ids[1:]:
        num = num + torch.exp(planes[i] - ref)
    return (num / (num + rest))[:, 0]


class Deployable(nn.Module):
    """
    ``frame_logits`` as one module: uint8 RGB N x H x W x 3 in; logits, class maps, drivable probability out.

    All three at H x W: float32 logits, uint8 class maps, float32 probability.

    What ``export`` writes and the ONNX Runtime backend traces.  The probability is taken
    at the network size and then resized (bilinear), as every backend of the engine does.
    """

    def __init__(self, model: nn.Module, meta: ModelMeta):
        super().__init__()
        self.model = model.eval()
        self.meta = meta
        self.drivable_ids = sorted(meta.classes.drivable_ids)
        self.probability = True         # False: (logits, classes) only (trace_onnx's arg-max graph)
        self.register_buffer("mean", torch.tensor(meta.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(meta.std, dtype=torch.float32))

    def forward(self, image: torch.Tensor):
        h, w = int(image.shape[1]), int(image.shape[2])
        logits = frame_logits(self.model, image, self.meta, self.mean, self.std, at_frame_size=False).float()
        prob = drivable_prob(logits, self.drivable_ids) if self.probability else None
        if tuple(logits.shape[-2:]) != (h, w):    # a frame size other than the network's (export)
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            if prob is not None:
                prob = F.interpolate(prob[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
                prob = prob.clamp(0.0, 1.0)
        classes = logits.argmax(1).to(torch.uint8)
        return (logits, classes) if prob is None else (logits, classes, prob)


def trace_onnx(net: Deployable, h: int, w: int, target, opset: int = 17, probability: bool = True) -> None:
    """
    Trace net for H x W frames (batch dynamic) into target, a path or a binary file.

    Pooling windows and resizes are fixed by H x W when traced.  Outputs: ``logits``,
    ``classes`` and ``drivable_prob`` (``OUTPUTS``); probability=False leaves the last
    out (the engine's arg-max graph, as the graph was before it had that output).
    """
    outputs = OUTPUTS if probability else OUTPUTS[:2]
    dummy = torch.zeros(1, h, w, 3, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter chatter
        # dynamo=False: TorchScript's exporter; torch < 2.5 has only that one and no such keyword
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        net.probability = probability
        try:
            torch.onnx.export(net, (dummy,), target, **legacy, opset_version=opset,
                              input_names=["image"], output_names=list(outputs),
                              dynamic_axes={name: {0: "batch"} for name in ("image", *outputs)})
        finally:
            net.probability = True
