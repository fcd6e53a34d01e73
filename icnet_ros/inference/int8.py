"""
INT8 on the CPU: ONNX Runtime static quantization of the network's graph.

No ROS.

QDQ format, per-channel int8 weights, uint8 activations whose ranges come from
calibration frames (MinMax), every operator ONNX Runtime can quantise.  Why all of
them: on this project's CPU (AVX-512 VNNI) quantising only the convolutions left a
quantise/dequantise pair around each one and ran slower than fp32 (8.9 vs 7.9 ms at
193x640) and further from it (91 % of pixels the same class on KITTI frames, against
98 % with everything quantised).  Calibration frames should look like what the model will see: frames from the training
sets, or from the robot's own camera; they are resized to each traced network size.

x86 CPUs without VNNI (AVX2 only) multiply uint8 by int8 with an instruction that adds
pairs of products into int16 and saturates: with full 8-bit weights the shipped model's
sky IoU fell from 94 to 43 % on 60 Cityscapes frames on such a CPU (AMD EPYC,
2026-12-03; drivable IoU held).  There the weights are quantised to 7 bits
(``reduce_range``), which cannot saturate: sky 94 %, mIoU within 0.7 point of fp32.  With
VNNI (products summed in int32) and on other architectures the full 8 bits are kept.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
import io
import logging
from pathlib import Path
import platform
import tempfile

import cv2
import numpy as np

from ..data.image_io import DataError, list_images, read_image

CALIBRATION_FRAMES = 32      # evenly spaced over the folder's sorted images


class QuantizeError(ValueError):
    """Missing calibration data, or a graph ONNX Runtime could not quantise; one line."""


def calibration_frames(folder, count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """Return up to ``count`` RGB frames evenly spaced over a folder's images, or raise QuantizeError."""
    if not folder:
        raise QuantizeError("precision 'int8' needs calibration frames: give a folder of images "
                            "(calibration / --calibration), e.g. frames from the training sets")
    path = Path(folder)
    if not path.is_dir():
        raise QuantizeError(f"calibration folder {path} does not exist")
    files = list_images(path)
    if not files:
        raise QuantizeError(f"calibration folder {path} has no images ({', '.join(_exts())})")
    picks = [files[int(i)] for i in np.linspace(0, len(files) - 1, min(count, len(files)))]
    try:
        return [read_image(p) for p in dict.fromkeys(picks)]
    except DataError as e:
        raise QuantizeError(f"calibration: {e}") from None


def _exts() -> list[str]:
    from ..data.image_io import IMAGE_EXTS

    return list(IMAGE_EXTS)


@lru_cache(maxsize=1)
def _cpuinfo() -> str | None:
    """Return /proc/cpuinfo's text once per process (None where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None


def needs_reduce_range(machine: str | None = None, cpuinfo: str | None = None) -> bool:
    """
    Return True where uint8 x int8 products can saturate: x86 without VNNI.

    machine: ``platform.machine()``; cpuinfo: the text of /proc/cpuinfo (read when None).
    An x86 CPU whose flags cannot be read counts as one without VNNI: 7-bit weights cost a
    little accuracy there, saturation costs whole classes.
    """
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    if cpuinfo is None:
        cpuinfo = _cpuinfo()
        if cpuinfo is None:
            return True
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return not flags & {"avx512_vnni", "avx_vnni"}


class _Reader:
    """ONNX Runtime's calibration data reader: one frame a batch, at the graph's size."""

    def __init__(self, frames: list[np.ndarray], size: tuple[int, int], input_name: str):
        h, w = size
        self._items = iter([{input_name: cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)[None]}
                            for f in frames])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):   # pragma: no cover - ONNX Runtime calls it for some calibrators only
        pass


@contextlib.contextmanager
def _quiet_logging():
    """ONNX Runtime's quantiser warns through the root logger ("consider pre-processing"); silence it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def only_for(graph, output: str) -> list[int]:
    """
    Return the indices of the nodes of an onnx.ModelProto that compute ``output`` and no other graph output.

    For the drivable probability: the softmax head after the network, which stays in
    float (``quantize``'s ``float_output``) and which ``without_output`` removes.
    """
    nodes = list(graph.graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}

    def ancestors(name: str) -> set[int]:
        seen, todo = set(), [name]
        while todo:
            i = producer.get(todo.pop())
            if i is not None and i not in seen:
                seen.add(i)
                todo += list(nodes[i].input)
        return seen

    others = set().union(*[ancestors(o.name) for o in graph.graph.output if o.name != output])
    return sorted(ancestors(output) - others)


def without_output(graph: bytes, output: str) -> bytes:
    """Return an ONNX graph without one of its outputs and the nodes and weights only it used."""
    import onnx

    model = onnx.load_from_string(graph)
    drop = set(only_for(model, output))
    keep = [n for i, n in enumerate(model.graph.node) if i not in drop]
    outputs = [o for o in model.graph.output if o.name != output]
    used = {name for n in keep for name in n.input}
    weights = [t for t in model.graph.initializer if t.name in used]
    for field, items in ((model.graph.node, keep), (model.graph.output, outputs), (model.graph.initializer, weights)):
        items = [type(x).FromString(x.SerializeToString()) for x in items]   # copies: del detaches them
        del field[:]
        field.extend(items)
    return model.SerializeToString()


def quantize(graph: bytes, frames: list[np.ndarray], size: tuple[int, int], input_name: str = "image",
             reduce_range: bool | None = None, float_output: str | None = "drivable_prob") -> bytes:
    """
    Return the INT8 (QDQ) version of an fp32 ONNX graph taking uint8 frames of ``size`` (h, w).

    reduce_range: 7-bit weights; None: where this CPU needs them (``needs_reduce_range``).
    A graph written for other machines (export) should pass True.  float_output: a graph
    output whose own nodes stay in float (the drivable probability: computed from the
    dequantised logits, as from the logits output itself); None or absent: none.
    """
    if reduce_range is None:
        reduce_range = needs_reduce_range()
    if not frames:
        raise QuantizeError("precision 'int8' needs calibration frames; none were given")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static, QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = type("Reader", (_Reader, CalibrationDataReader), {})(frames, size, input_name)
    with tempfile.TemporaryDirectory(prefix="icnet-int8-") as tmp:
        fp32, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        fp32.write_bytes(graph)
        try:
            # the quantiser prints tensor descriptions of what it leaves in float: not ours to show
            with contextlib.redirect_stdout(io.StringIO()), _quiet_logging():
                quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
                exclude = _float_nodes(pre.read_bytes(), float_output)    # named as after pre-processing
                quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                reduce_range=reduce_range, nodes_to_exclude=exclude)
        except Exception as e:   # whatever ONNX Runtime's quantiser raises, said in one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise QuantizeError(f"the network could not be quantised to INT8: {type(e).__name__}: {first}") from None
        return out.read_bytes()


def _float_nodes(graph: bytes, output: str | None) -> list[str]:
    """Return the names of the nodes only ``output`` uses (named first where the exporter left them unnamed)."""
    import onnx

    model = onnx.load_from_string(graph)
    if not output or output not in {o.name for o in model.graph.output}:
        return []
    nodes = model.graph.node
    return [nodes[i].name for i in only_for(model, output) if nodes[i].name]
