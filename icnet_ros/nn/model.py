"""
ICNet (Zhao et al., ECCV 2018) as the paper and the official Caffe model define it.

Three branches see the image at three resolutions:

* sub4 (low):    I/2 -> stem -> conv2 -> conv3_1 (1/16 of I), shrunk x2 -> conv3_2..conv5
                 with dilations 2 and 4 -> pyramid pooling -> 1x1 conv (1/32 of I).
* sub2 (medium): the conv3_1 map at 1/16 of I, *shared* with sub4 (the paper's weight
                 sharing: the low branch continues from the medium one).
* sub1 (high):   full-resolution I -> three 3x3 stride-2 convs -> 1/8 of I.

Two cascade feature fusion (CFF) units merge low into medium, then medium into high;
a final x2 upsample and 1x1 classifier give logits at 1/4 of I.  The model returns a
dict in both modes, as torchvision's segmentation models do: ``out`` (eval: logits
upsampled to I; training: the 1/4 logits the loss compares with shrunk labels) and, in
training only, the cascade's auxiliary logits ``aux16`` and ``aux8`` (1/16, 1/8 of I)
for the cascade label guidance loss.

Sizes are never assumed to be multiples of 32: every upsample goes to the exact size of
the map it is fused with, and pyramid pooling computes its windows from the feature
size, so 375x1242 (KITTI) and 360x480 (CamVid) work and the graph stays ONNX-exportable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _half(x: torch.Tensor) -> torch.Tensor:
    # Bilinear shrink x2 (the official model's Interp shrink_factor 2); ceil keeps a
    # 1-pixel map alive on tiny inputs.
    h, w = x.shape[-2:]
    return _resize(x, ((h + 1) // 2, (w + 1) // 2))


def _make_stage(block, inplanes: int, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Build a ResNet stage from torchvision's blocks, optionally dilated (no stride then)."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
            nn.BatchNorm2d(planes * block.expansion),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    if dilation > 1:
        # torchvision's BasicBlock refuses dilation > 1, so dilate the 3x3 convs after
        # construction; the first block keeps dilation/2 as in DeepLab/PSPNet backbones.
        for i, layer in enumerate(layers):
            d = max(dilation // 2, 1) if i == 0 else dilation
            for conv in layer.modules():
                if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
                    conv.dilation, conv.padding = (d, d), (d, d)
    return nn.Sequential(*layers)


class PyramidPooling(nn.Module):
    """
    ICNet's pyramid pooling: pools summed with the input, then a 1x1 conv.

    Average pools at several bins are upsampled and *summed* with the input (not
    concatenated as in PSPNet).

    Pool windows are computed from the feature size so that each bin count is met
    exactly for any input: stride s = floor(n / b), kernel k = n - (b - 1) * s gives
    b windows that cover the whole map.  Adaptive pooling would do the same on
    PyTorch but exports to ONNX only when b divides n.
    """

    def __init__(self, channels: int, out_channels: int, bins=(1, 2, 3, 6)):
        super().__init__()
        self.bins = tuple(bins)
        self.project = conv_bn_relu(channels, out_channels, kernel=1)

    @staticmethod
    def window(n: int, b: int) -> tuple[int, int]:
        if n < b:  # fewer pixels than bins: one pixel a bin
            return 1, 1
        stride = n // b
        return n - (b - 1) * stride, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        out = x
        for b in self.bins:
            kh, sh = self.window(h, b)
            kw, sw = self.window(w, b)
            pooled = F.avg_pool2d(x, (kh, kw), (sh, sw))
            out = out + _resize(pooled, (h, w))
        return self.project(out)


class CascadeFeatureFusion(nn.Module):
    """
    CFF unit (paper Fig. 3): fuse a low-resolution and a high-resolution feature map.

    F1 (low res) is upsampled x2 to F2's size and refined by a 3x3 dilation-2 conv + BN;
    F2 (high res) gets a 1x1 conv + BN; sum then ReLU.  The upsampled F1 also feeds an
    auxiliary classifier for cascade label guidance.
    """

    def __init__(self, low_channels: int, high_channels: int, out_channels: int, num_classes: int):
        super().__init__()
        self.low = nn.Sequential(
            nn.Conv2d(low_channels, out_channels, 3, padding=2, dilation=2, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.high = nn.Sequential(
            nn.Conv2d(high_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.classifier = nn.Conv2d(low_channels, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = _resize(low, high.shape[-2:])
        fused = F.relu(self.low(low) + self.high(high), inplace=True)
        aux = self.classifier(low) if self.training else None
        return fused, aux


@dataclass(frozen=True)
class Variant:
    block: type
    layers: tuple[int, int, int, int]


VARIANTS = {
    # The released ICNet: ResNet-50 layout at half width (official prototxt).
    "r50": Variant(Bottleneck, (3, 4, 6, 3)),
    # BasicBlock ResNet-18 stages: the CPU-friendly variant.
    "r18": Variant(BasicBlock, (2, 2, 2, 2)),
    # EfficientNet-Lite0/1/2 (efficientnet_lite.py) as the shared medium/low branch; the
    # width multiplier applies to the high branch, pyramid pooling and CFF units only, so
    # the ImageNet weights fit.
    "effl0": None,
    "effl1": None,
    "effl2": None,
}
# The names users see (README, bench) are accepted too.
ALIASES = {"icnet_r50": "r50", "icnet_r18": "r18", "icnet_effl0": "effl0", "icnet_effl1": "effl1",
           "icnet_effl2": "effl2"}


def canonical_variant(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in VARIANTS:
        raise ValueError(f"unknown ICNet variant {name!r}; choose one of "
                         f"{', '.join(sorted(VARIANTS) + sorted(ALIASES))}")
    return name


class ICNet(nn.Module):
    def __init__(self, num_classes: int, variant: str = "r50", width: float = 0.5,
                 ppm_bins=(1, 2, 3, 6), cff_channels: int | None = None):
        super().__init__()
        variant = canonical_variant(variant)
        if not 0 < width <= 4:
            raise ValueError(f"width multiplier must be in (0, 4], got {width}")
        self.num_classes = num_classes
        self.variant, self.width = variant, width

        def c(n: int) -> int:  # channel count under the width multiplier, >= 8
            return max(8, int(round(n * width)))

        if variant.startswith("effl"):
            from .efficientnet_lite import EfficientLiteBranch

            self.backbone = EfficientLiteBranch(variant)
            medium_channels, low_channels = self.backbone.lite.medium_channels, self.backbone.lite.low_channels
        else:
            medium_channels, low_channels = self._resnet_branch(VARIANTS[variant], c)
        self.ppm = PyramidPooling(low_channels, c(512), ppm_bins)
        cff_channels = cff_channels or c(256)  # 128 in the released (half-width) model

        self.sub1 = nn.Sequential(
            conv_bn_relu(3, c(64), stride=2), conv_bn_relu(c(64), c(64), stride=2),
            conv_bn_relu(c(64), c(128), stride=2),
        )
        self.cff_24 = CascadeFeatureFusion(c(512), medium_channels, cff_channels, num_classes)
        self.cff_12 = CascadeFeatureFusion(cff_channels, c(128), cff_channels, num_classes)
        self.classifier = nn.Conv2d(cff_channels, num_classes, 1)
        self._init_weights()

    def _resnet_branch(self, spec: Variant, c) -> tuple[int, int]:
        """Build the paper's shared branch: ResNet stem..conv3_1 (medium), conv3_2..conv5 (low)."""
        block = spec.block

        # Full width ResNet stem would be 64/64/128; the official half-width is 32/32/64.
        stem = c(64)
        self.stem = nn.Sequential(
            conv_bn_relu(3, stem // 2, stride=2), conv_bn_relu(stem // 2, stem // 2),
            conv_bn_relu(stem // 2, stem), nn.MaxPool2d(3, 2, 1),
        )
        planes = [c(64), c(128), c(256), c(512)]
        exp = block.expansion
        n2, n3, n4, n5 = spec.layers
        self.conv2 = _make_stage(block, stem, planes[0], n2)
        # conv3_1 alone (stride 2, ends the shared medium branch at 1/16 of I) ...
        self.conv3_1 = _make_stage(block, planes[0] * exp, planes[1], 1, stride=2)
        # ... conv3_2.. continue on the x2 shrunk map (1/32 of I).
        self.conv3_rest = _make_stage(block, planes[1] * exp, planes[1], n3 - 1) if n3 > 1 else nn.Identity()
        self.conv4 = _make_stage(block, planes[1] * exp, planes[2], n4, dilation=2)
        self.conv5 = _make_stage(block, planes[2] * exp, planes[3], n5, dilation=4)
        return planes[1] * exp, planes[3] * exp

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.groups > 1:
                # Depthwise (effl*): torch's fan_out counts all C x k x k weights without
                # dividing by groups, far too small a scale for a filter that sees k x k inputs.
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Classifiers start near zero: He init there gives logits in the tens and a first
        # loss of ~7 instead of log(num_classes); it also keeps fine-tuning (--init) calm.
        for head in (self.classifier, self.cff_24.classifier, self.cff_12.classifier):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)

    def forward(self, image: torch.Tensor):
        size = image.shape[-2:]
        # Medium (1/2 input) and low branches share stem..conv3_1.
        half = _resize(image, ((size[0] + 1) // 2, (size[1] + 1) // 2))
        if self.variant.startswith("effl"):
            sub2 = self.backbone.medium(half)                # 1/16 of I
            sub4 = self.ppm(self.backbone.low(_half(sub2)))  # 1/32 of I
        else:
            sub2 = self.conv3_1(self.conv2(self.stem(half)))  # 1/16 of I
            x = self.conv3_rest(_half(sub2))                  # 1/32 of I
            sub4 = self.ppm(self.conv5(self.conv4(x)))
        sub1 = self.sub1(image)                              # 1/8 of I

        f24, aux16 = self.cff_24(sub4, sub2)                 # -> 1/16
        f12, aux8 = self.cff_12(f24, sub1)                   # -> 1/8
        h, w = f12.shape[-2:]
        # The paper upsamples x2, then applies the 1x1 classifier.  Both are linear and
        # bilinear weights sum to 1, so classifying first is the same function at
        # num_classes instead of 128 channels: ~10x less upsampling work.
        logits4 = _resize(self.classifier(f12), (2 * h, 2 * w))  # 1/4 of I
        if self.training:
            return {"out": logits4, "aux16": aux16, "aux8": aux8}
        return {"out": _resize(logits4, size)}


def icnet(num_classes: int, variant: str = "r50", width: float = 0.5, **kwargs) -> ICNet:
    """Build an ICNet; 19 classes and the defaults give the released ICNet (half-width ResNet-50)."""
    return ICNet(num_classes, variant, width, **kwargs)


def icnet_r50(num_classes: int, width: float = 0.5, **kwargs) -> ICNet:
    return ICNet(num_classes, "r50", width, **kwargs)


def icnet_r18(num_classes: int, width: float = 0.5, **kwargs) -> ICNet:
    return ICNet(num_classes, "r18", width, **kwargs)


def icnet_effl0(num_classes: int, width: float = 0.5, **kwargs) -> ICNet:
    """Build ICNet with an EfficientNet-Lite0 medium/low branch (ImageNet weights: train --pretrained)."""
    return ICNet(num_classes, "effl0", width, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_backbone(model: ICNet, path: str) -> list[str]:
    """
    Copy a torchvision ResNet checkpoint into a full-width ICNet's stages.

    The checkpoint is a file the user supplies, never downloaded; full width means
    width=1.0.  Returns the keys that were loaded.

    torchvision's ResNet has a single 7x7 stem, so the stem stays randomly initialised;
    layer1..layer4 map onto conv2, conv3, conv4, conv5.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    mapping = {"layer1.": "conv2.", "layer2.0.": "conv3_1.0.", "layer3.": "conv4.", "layer4.": "conv5."}
    own = model.state_dict()
    loaded = []
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue  # scalar counters fit any model; they say nothing about a match
        target = None
        for src, dst in mapping.items():
            if key.startswith(src):
                target = dst + key[len(src):]
        if key.startswith("layer2.") and not key.startswith("layer2.0."):
            idx = int(key.split(".")[1]) - 1
            target = f"conv3_rest.{idx}." + key.split(".", 2)[2]
        if target in own and own[target].shape == value.shape:
            own[target] = value
            loaded.append(target)
    if not loaded:
        raise ValueError(f"{path}: no ResNet weights match this ICNet (use width=1.0 and the same depth)")
    model.load_state_dict(own)
    return loaded


__all__ = ["ICNet", "icnet", "icnet_r50", "icnet_r18", "icnet_effl0", "canonical_variant", "CascadeFeatureFusion",
           "PyramidPooling", "count_parameters", "load_backbone", "VARIANTS"]
