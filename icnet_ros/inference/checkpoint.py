"""
Self-describing checkpoints: weights plus everything needed to use them.

That is: the variant, classes, colours, drivable ids, normalisation and input size.

Loading never runs code: ``.pt`` files go through ``torch.load(weights_only=True)``
and ``.safetensors`` files hold tensors plus a JSON header.  Writes are atomic (temp
file, then rename) so a crash mid-save never leaves a half-written model behind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
import json
import os
from pathlib import Path
import pickle
import tempfile
import zipfile

import torch

from ..classes import ClassSet
from ..nn.model import ICNet

FORMAT = "icnet_ros/1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CheckpointError(ValueError):
    """A checkpoint that is missing, unsafe, damaged or does not fit the model."""


class FrameSizeError(ValueError):
    """A frame of a shape the network cannot serve (too small, or too long and thin)."""


# The bounds on the work one frame costs, whatever arrives (ModelMeta.network_size):
MIN_SIDE = 8                      # pixels, either side of a frame
MAX_ASPECT = 8.0                  # longer side / shorter side; beyond it a frame is refused
MAX_NETWORK_PIXELS = 1024 * 2048  # models without a network size: the paper's Cityscapes input


def check_frame_size(h: int, w: int) -> None:
    """Raise FrameSizeError, naming the size and the limit, for a frame the network cannot serve."""
    if h < MIN_SIDE or w < MIN_SIDE:
        raise FrameSizeError(f"frame of {w}x{h} is too small (at least {MIN_SIDE}x{MIN_SIDE} pixels)")
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise FrameSizeError(f"frame of {w}x{h} is {max(h, w) / min(h, w):.0f}:1, longer and thinner than "
                             f"the {MAX_ASPECT:g}:1 the network serves")


@dataclass
class ModelMeta:
    classes: ClassSet
    variant: str = "r50"
    width: float = 0.5
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    # (H, W) the network runs at; frames are resized to it and results back.  None: as is.
    input_size: tuple | None = None
    arch: str = "icnet"
    info: dict = field(default_factory=dict)  # free text: recipe, scores, date
    # Width frames are resized to, aspect kept (when input_size is None): one scale for
    # cameras of any resolution.  None: as is.
    input_width: int | None = None

    def network_size(self, h: int, w: int) -> tuple[int, int]:
        """
        Return the H x W the network runs at for an h x w frame: bounded, whatever the frame.

        input_size: that size.  input_width: the frame scaled so that its longer side is
        input_width (a landscape frame's width; a portrait frame's height), so no frame
        costs more than input_width squared.  Neither: the frame as it is, scaled down to
        at most MAX_NETWORK_PIXELS.  Frames check_frame_size refuses raise FrameSizeError.
        """
        check_frame_size(h, w)
        if self.input_size:
            return tuple(int(v) for v in self.input_size)
        if self.input_width:
            scale = self.input_width / max(h, w)
        else:
            scale = min(1.0, (MAX_NETWORK_PIXELS / (h * w)) ** 0.5)
        if scale == 1.0:
            return int(h), int(w)
        return max(MIN_SIDE, round(h * scale)), max(MIN_SIDE, round(w * scale))

    def at_network_size(self) -> "ModelMeta":
        """Return a copy that runs frames as they come: for frames already at the network size."""
        return replace(self, input_size=None, input_width=None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = self.classes.to_dict()
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelMeta":
        size = d.get("input_size")
        return cls(classes=ClassSet.from_dict(d["classes"]),
                   variant=d.get("variant", "r50"), width=float(d.get("width", 0.5)),
                   mean=tuple(d.get("mean", IMAGENET_MEAN)), std=tuple(d.get("std", IMAGENET_STD)),
                   input_size=tuple(int(v) for v in size) if size else None,
                   arch=d.get("arch", "icnet"), info=dict(d.get("info", {})),
                   input_width=int(d["input_width"]) if d.get("input_width") else None)

    def build(self) -> ICNet:
        if self.arch != "icnet":
            raise CheckpointError(f"unknown architecture {self.arch!r}")
        return ICNet(self.classes.num_classes, self.variant, self.width)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(path, model: torch.nn.Module, meta: ModelMeta, extra: dict | None = None,
                    half: bool = False) -> Path:
    """``extra`` (training state for resuming) is only kept in ``.pt`` files."""
    path = Path(path)
    model = getattr(model, "module", model)  # unwrap DDP
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        header = {"format": FORMAT, "meta": json.dumps(meta.to_dict())}
        state = {k: v.contiguous() for k, v in state.items()}
        _atomic_write(path, lambda tmp: save_file(state, tmp, metadata=header))
    else:
        payload = {"format": FORMAT, "meta": meta.to_dict(), "state_dict": state}
        if extra:
            payload["extra"] = extra
        _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def read_checkpoint(path) -> tuple[ModelMeta, dict, dict]:
    """Return (meta, state_dict, extra) without building a model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                header = f.metadata() or {}
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file ({e})") from None
        if header.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint {path} is not an icnet_ros model (no '{FORMAT}' metadata)")
        return ModelMeta.from_dict(json.loads(header["meta"])), state, {}
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {path} holds objects that would run code on load; refusing it "
                              f"({str(e).splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch file ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an icnet_ros model (no '{FORMAT}' format tag)")
    try:
        meta = ModelMeta.from_dict(payload["meta"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} has unreadable metadata: {e}") from None
    return meta, payload["state_dict"], payload.get("extra", {})


def load_checkpoint(path, map_location="cpu") -> tuple[ICNet, ModelMeta, dict]:
    """Build the model the checkpoint describes and load its weights (fp32, eval mode)."""
    meta, state, extra = read_checkpoint(path)
    model = meta.build()
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    resized = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or resized:
        first = (missing or unexpected or resized)[0]
        raise CheckpointError(
            f"checkpoint {path} does not match an ICNet {meta.variant} width {meta.width} with "
            f"{meta.classes.num_classes} classes ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(resized)} mis-shaped tensors, e.g. {first!r})")
    model.load_state_dict(state)
    return model.to(map_location).eval(), meta, extra
