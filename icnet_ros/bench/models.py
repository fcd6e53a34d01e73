"""
The model zoo: ICNet variants and torchvision's segmentation models, built by name.

Also the shipped checkpoint, and which configurations each model runs.
"""

from __future__ import annotations

import importlib.util

from .config import ALL_MODELS, BenchConfig, BenchError, KITTI, PEER, TORCHVISION


def _torchvision_model(name: str, num_classes: int):
    """Build a torchvision model; it returns {'out': logits}, as ICNet does: the engine runs either."""
    from torchvision.models import segmentation

    builder = getattr(segmentation, name)
    return builder(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)


def build(name: str, checkpoint: str | None = None):
    """
    (model, meta) for a bench model name; ICNet from checkpoint when one is given.

    A checkpoint keeps its meta, so it runs exactly as the engine runs it (at its
    input_size or input_width: the table's "net size"); the model-zoo entries have no
    input size and run at the size they are given.
    """
    from ..inference.checkpoint import ModelMeta, load_checkpoint
    from ..classes import CAMVID

    if checkpoint:
        model, meta, _ = load_checkpoint(checkpoint)
        return model, meta
    if name.startswith("icnet_"):
        _, variant, width = name.split("_")
        meta = ModelMeta(CAMVID, variant=variant, width=float(width[1:]))
        return meta.build(), meta
    if name in TORCHVISION:
        meta = ModelMeta(CAMVID, arch=name)
        return _torchvision_model(name, CAMVID.num_classes), meta
    raise BenchError(f"unknown model {name!r}; choose from {', '.join(ALL_MODELS)}")


def shipped_checkpoint() -> str | None:
    """Return the installed model (paths.SHIPPED_MODEL), None where there is none."""
    from ..paths import default_model_path

    try:
        return str(default_model_path())
    except FileNotFoundError:
        return None


def zoo_name(checkpoint: str) -> str:
    """Return the model-zoo name of an ICNet checkpoint, e.g. 'icnet_r18_w0.5'."""
    from ..inference.checkpoint import read_checkpoint

    meta = read_checkpoint(checkpoint)[0]
    return f"icnet_{meta.variant}_w{meta.width:g}"


def equal_terms_shape(checkpoint: str | None) -> tuple[int, int] | None:
    """
    Return the size the shipped network runs KITTI frames at (193x640 at input_width 640).

    None without a shipped checkpoint.  The peers also run frames of this size, and the
    shipped model frames already at it: speed on equal terms.
    """
    if not checkpoint:
        return None
    from ..inference.checkpoint import read_checkpoint

    return tuple(int(v) for v in read_checkpoint(checkpoint)[0].network_size(*KITTI))


def have_onnxruntime() -> bool:
    """As the engine decides whether its ONNX Runtime backend can run."""
    return importlib.util.find_spec("onnxruntime") is not None


def model_plan(cfg: BenchConfig, models, shipped: str | None = None) -> dict[str, list]:
    """
    {model name: [(h, w, batch, precision), ...]}, smallest work first.

    On the CPU, 'fp32' is PyTorch and 'fp32+ort' ONNX Runtime (the node's default
    there), batch 1.  cfg: a resolved BenchConfig.  shipped: the shipped checkpoint,
    planned under its zoo name (first, when models lack it).  Equal terms: when KITTI
    frames are benched and the shipped network runs them at another size (193x640),
    every model also runs frames of that size, at the smallest batch and the same
    precisions: the peers on the input the shipped network gets, and the shipped model
    without its resize.  The camera shapes (1920x1080, 1280x720 by default) run for the
    shipped model and LR-ASPP only, at the smallest batch.
    """
    precisions = ["fp32", "fp16", "bf16", "fp16+graph"] if cfg.cuda else ["fp32"]
    if not cfg.cuda and have_onnxruntime():
        precisions.append("fp32+ort")
    shapes = [(tuple(s), cfg.batches) for s in cfg.shapes]
    net = equal_terms_shape(shipped)
    if net and KITTI in cfg.shapes and net != KITTI and net not in cfg.shapes:
        shapes.append((net, [min(cfg.batches)]))
    if shipped:
        name = zoo_name(shipped)
        models = list(models) if name in models else [name] + list(models)
    cameras = [(tuple(s), [min(cfg.batches)]) for s in (cfg.camera_shapes or []) if tuple(s) not in cfg.shapes]
    plan = {}
    for name in models:
        configs = []
        mine = cameras if name == PEER or (shipped and name == zoo_name(shipped)) else []
        for (h, w), batches in shapes + mine:
            for b in batches:
                # deeplabv3_resnet50 at 1024x2048 costs minutes per call on a small CPU.
                if (not cfg.cuda and cfg.quick and name == "deeplabv3_resnet50"
                        and (h * w > KITTI[0] * KITTI[1] or b > 1)):
                    continue
                configs += [(h, w, b, p) for p in precisions if b == 1 or not p.endswith("+ort")]
        if shipped and name == zoo_name(shipped) and "fp32+ort" in precisions:
            # INT8 (ONNX Runtime, calibrated): the shipped model only, wherever it runs ONNX Runtime
            configs += [(h, w, b, "int8+ort") for h, w, b, p in configs if p == "fp32+ort"]
        order = precisions + ["int8+ort"]
        plan[name] = sorted(configs, key=lambda c: (c[0] * c[1] * c[2], order.index(c[3])))
    return plan
