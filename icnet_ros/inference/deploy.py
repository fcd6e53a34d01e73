"""
Deployable inference: the one path from uint8 camera frames to logits at the frame's size.

No ROS.

    uint8 N x H x W x 3 RGB -> normalise -> resize to the model's network size
    (checkpoint input_size / input_width) -> network -> logits -> resize back to H x W

The engine's PyTorch backend runs it (``frame_logits``), ``Deployable`` wraps it as one
module that ``export`` writes and the ONNX Runtime backend traces (``trace_onnx``), and
``train`` validates through it, so a score printed during training, by ``evaluate`` and
by the node come from the same function.
"""

from __future__ import annotations

import inspect
import warnings

import torch
from torch import nn
import torch.nn.functional as F

from .checkpoint import IMAGENET_MEAN, IMAGENET_STD, ModelMeta


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


class Deployable(nn.Module):
    """
    ``frame_logits`` as one module: uint8 RGB N x H x W x 3 in; logits and uint8 class maps at H x W out.

    What ``export`` writes and the ONNX Runtime backend traces.
    """

    def __init__(self, model: nn.Module, meta: ModelMeta, channels_last_logits: bool = False):
        """channels_last_logits: logits N x H x W x C (the CPU engine's layout for upsample.py)."""
        super().__init__()
        self.model = model.eval()
        self.meta = meta
        self.channels_last_logits = channels_last_logits
        self.register_buffer("mean", torch.tensor(meta.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(meta.std, dtype=torch.float32))

    def forward(self, image: torch.Tensor):
        logits = frame_logits(self.model, image, self.meta, self.mean, self.std)
        classes = logits.argmax(1).to(torch.uint8)
        return (logits.permute(0, 2, 3, 1) if self.channels_last_logits else logits), classes


def trace_onnx(net: Deployable, h: int, w: int, target, opset: int = 17) -> None:
    """
    Trace net for H x W frames (batch dynamic) into target, a path or a binary file.

    Pooling windows and resizes are fixed by H x W when traced.
    """
    dummy = torch.zeros(1, h, w, 3, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter chatter
        # dynamo=False: TorchScript's exporter; torch < 2.5 has only that one and no such keyword
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        torch.onnx.export(net, (dummy,), target, **legacy, opset_version=opset,
                          input_names=["image"], output_names=["logits", "classes"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "classes": {0: "batch"}})
