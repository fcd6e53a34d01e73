"""
``ros2 run icnet_ros export``: a checkpoint as a self-contained ONNX or TorchScript file.

    export --checkpoint runs/kitti/best.pt --format onnx --out icnet.onnx --height 375 --width 1242

The exported graph takes what a camera gives: ``image``, uint8 N x H x W x 3 RGB (N is
dynamic, H x W fixed at export), normalises it inside (and, for a model trained with an
input_size, resizes to it and back, as the engine does), and returns ``logits`` (float32
N x C x H x W), ``classes`` (uint8 N x H x W) and ``drivable_prob`` (float32 N x H x W: the
softmax at the network size summed over the drivable classes, then resized; what the
engine's ``drivable_prob`` is).  The model's metadata (classes, colours, drivable ids)
travels with it: ONNX metadata_props["icnet_ros"], or the TorchScript extra file
"icnet_ros.json".  After writing, the file is run (onnxruntime, or torch.jit.load) on a
batch of two frames and its class maps and drivable probabilities compared with
PyTorch's; less than 99.9 % of the class maps equal, or a probability more than 1e-3
away, is an error.  A file written before ``drivable_prob`` existed (two outputs) still
runs through ``run_exported``, its probability taken from its logits.

``--int8 --calibration DIR`` (ONNX only) writes the graph quantised for ONNX Runtime's
CPU kernels (int8.py: QDQ, per-channel weights, activation ranges from the folder's
images at the export's frame size); its check needs 90 % agreement.  Its weights are 7-bit
(``reduce_range``) whatever the exporting CPU: the file may run on an x86 CPU without VNNI,
where full 8-bit weights saturate (int8.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time
import warnings

import numpy as np
import torch

from ..inference.checkpoint import CheckpointError, load_checkpoint, ModelMeta
from ..inference.deploy import Deployable, trace_onnx
from ..optional import missing, require

MIN_AGREEMENT = 0.999
DEFAULT_SIZE = (375, 1242)    # a KITTI frame: the exported input size when neither options nor model give one
MIN_AGREEMENT_INT8 = 0.9      # quantisation moves class borders (the shipped model: ~99 % on KITTI frames)
MAX_PROB_DIFF = 1e-3          # fp32: the drivable probability against PyTorch's (INT8: reported only)


class ExportError(ValueError):
    """An export that cannot be written or does not reproduce PyTorch's output."""


def sample_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """
    Make smooth, road-scene-like check frames.

    Each is a coarse random image upsampled (plain noise would make every pixel a near
    tie).
    """
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (max(2, h // 24), max(2, w // 24), 3), dtype=np.uint8)
        out.append(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC))
    return np.stack(out)


def export_onnx(net: Deployable, meta: ModelMeta, out: Path, h: int, w: int, opset: int) -> None:
    import onnx

    trace_onnx(net, h, w, str(out), opset)
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph)
    entry = graph.metadata_props.add()
    entry.key, entry.value = "icnet_ros", json.dumps(meta.to_dict())
    onnx.save(graph, str(out))


def export_torchscript(net: Deployable, meta: ModelMeta, out: Path, h: int, w: int) -> None:
    dummy = torch.zeros(1, h, w, 3, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, (dummy,))
        torch.jit.save(traced, str(out), _extra_files={"icnet_ros.json": json.dumps(meta.to_dict())})


def run_exported(path: Path, fmt: str, frames: np.ndarray, drivable_ids) -> tuple[np.ndarray, np.ndarray, float]:
    """
    (class maps, drivable probabilities, seconds per batch) from the exported file, without this package.

    A file written before ``drivable_prob`` (logits and classes only) still runs: its
    probability comes from its logits, by the reference definition.
    """
    from ..inference.onnx_runner import run_graph
    from ..inference.upsample import drivable_probability

    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda: run_graph(sess, frames, False, True, drivable_ids)[::2]  # noqa: E731
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            module = torch.jit.load(str(path), map_location="cpu")

        def run():
            out = [t.numpy() for t in module(torch.from_numpy(frames))]
            if len(out) > 2:
                return out[1], out[2]
            chw = out[0].transpose(0, 2, 3, 1)
            return out[1], np.stack([drivable_probability(x.copy(), drivable_ids, x.shape[:2]) for x in chw])
    with torch.no_grad():
        run()  # warm-up
        t0 = time.perf_counter()
        classes, prob = run()
    return classes, prob, time.perf_counter() - t0


def check(net: Deployable, path: Path, fmt: str, h: int, w: int) -> dict:
    frames = sample_frames(2, h, w)
    with torch.no_grad():
        net(torch.from_numpy(frames[:1]))  # warm-up
        t0 = time.perf_counter()
        _, ref, ref_prob = (t.numpy() for t in net(torch.from_numpy(frames)))
        torch_s = time.perf_counter() - t0
    got, prob, exported_s = run_exported(path, fmt, frames, net.drivable_ids)
    if got.shape != ref.shape:
        raise ExportError(f"{path} returned class maps of shape {got.shape}, PyTorch {ref.shape}")
    return {"agreement": float((got == ref).mean()), "prob_diff": float(np.abs(prob - ref_prob).max()),
            "torch_s": torch_s, "exported_s": exported_s}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="export", description=__doc__.strip().split("\n\n")[0],
                                epilog="Docs: the icnet_ros sources' docs/training.md (export).")
    p.add_argument("--checkpoint", help="model to export (default: the shipped model)")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--out", required=True, help="file to write (.onnx, .pt/.ts)")
    p.add_argument("--height", type=int, help="input height: your camera's frames' (default: the model's input "
                                              "size, else 375; export says which it took)")
    p.add_argument("--width", type=int, help="input width: your camera's frames' (default: the model's input size, "
                                             "else 1242)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset")
    p.add_argument("--no-check", action="store_true", help="skip running the exported file against PyTorch")
    p.add_argument("--int8", action="store_true", help="onnx: quantise to INT8 for ONNX Runtime on the CPU")
    p.add_argument("--calibration", metavar="DIR", help="--int8: a folder of images to calibrate on "
                                                        "(frames from the training sets or the camera)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.format == "onnx":  # onnx writes the graph, onnxruntime runs the check
            require("onnx", *([] if args.no_check else ["onnxruntime"]), needed_for="export --format onnx")
        return run(args)
    except (CheckpointError, ExportError, FileNotFoundError, ValueError) as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # a missing package: one line naming it (optional.py)
        print(f"export: error: {missing(e, 'export')}", file=sys.stderr)
        return 2


def run(args) -> int:
    with torch.no_grad():  # scoped: main() may run inside another program (tests, notebooks)
        return _run(args)


def _run(args) -> int:
    if args.checkpoint is None:
        from ..paths import default_model_path

        args.checkpoint = default_model_path()
    if args.int8 and args.format != "onnx":
        raise ExportError("--int8 writes ONNX only: use --format onnx")
    frames = None
    if args.int8:
        from ..inference.int8 import calibration_frames

        frames = calibration_frames(args.calibration)      # before the slow part: a bad folder fails at once
    model, meta, _ = load_checkpoint(args.checkpoint)
    h, w, why = input_size(args, meta)
    print(f"export: input frames {w}x{h} (width x height): {why}")
    if h < 32 or w < 32:
        raise ExportError(f"--height/--width {h}x{w} is too small; ICNet needs at least 32x32")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    net = Deployable(model, meta).eval()
    if args.format == "onnx":
        export_onnx(net, meta, out, h, w, args.opset)
        if frames is not None:
            _quantize_file(out, frames, h, w)
    else:
        export_torchscript(net, meta, out, h, w)
    kind = args.format + (" int8" if args.int8 else "")
    print(f"export: wrote {out} ({kind}, input uint8 Nx{h}x{w}x3 RGB, {meta.classes.num_classes} classes)")
    if not args.no_check:
        r = check(net, out, args.format, h, w)
        print(f"export: class maps {100 * r['agreement']:.3f} % equal to PyTorch's on 2 frames, drivable "
              f"probability at most {r['prob_diff']:.2g} away; CPU {r['exported_s'] * 500:.1f} ms/frame exported "
              f"vs {r['torch_s'] * 500:.1f} ms/frame PyTorch")
        least = MIN_AGREEMENT_INT8 if args.int8 else MIN_AGREEMENT
        if r["agreement"] < least:
            raise ExportError(f"{out}: class maps only {100 * r['agreement']:.3f} % equal to PyTorch's "
                              f"(at least {100 * least:.1f} % needed)")
        if not args.int8 and r["prob_diff"] > MAX_PROB_DIFF:
            raise ExportError(f"{out}: drivable probability up to {r['prob_diff']:.2g} away from PyTorch's "
                              f"(at most {MAX_PROB_DIFF:g} allowed)")
    return 0


def input_size(args, meta: ModelMeta) -> tuple[int, int, str]:
    """Return the exported graph's frame size (h, w) and why that one, in words."""
    if args.height and args.width:
        return args.height, args.width, "--height/--width"
    if meta.input_size:
        default, source = tuple(meta.input_size), "the model's input_size"
    else:
        default, source = DEFAULT_SIZE, "the default, a KITTI frame, as the model fixes no frame size"
    h, w = args.height or default[0], args.width or default[1]
    why = source if not (args.height or args.width) else f"--{'height' if args.height else 'width'} and {source}"
    if meta.input_width and not meta.input_size:
        nh, nw = meta.network_size(h, w)
        why += f" (trained {meta.input_width} wide, it runs its network at {nw}x{nh} inside)"
    if not (args.height or args.width):
        why += "; give --height and --width of your camera's frames"
    return h, w, why


def _quantize_file(out: Path, frames: list, h: int, w: int) -> None:
    """Replace the fp32 ONNX file by its INT8 version, metadata kept."""
    import onnx

    from ..inference.int8 import quantize

    graph = onnx.load_from_string(quantize(out.read_bytes(), frames, (h, w), reduce_range=True))
    meta = onnx.load(str(out)).metadata_props
    del graph.metadata_props[:]
    graph.metadata_props.extend(meta)
    onnx.save(graph, str(out))


if __name__ == "__main__":
    sys.exit(main())
