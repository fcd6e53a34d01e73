"""
Where a frame runs: the device, precision and backend the engine resolves its arguments to.

No ROS.  Shared by the engine, the node's parameter checks (node_config.py), train's
process placement (training/distributed.py) and the bench.  See docs/gpu.md.
"""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
BACKENDS = ("auto", "torch", "onnxruntime")


class EngineError(ValueError):
    """A bad device, precision or frame given to the engine."""


def cpu_only(precision: str = "auto", backend: str = "auto") -> str:
    """Return what in precision / backend runs on the CPU only ("precision 'int8'"), or ''."""
    if precision == "int8":
        return "precision 'int8'"
    if backend == "onnxruntime":
        return "backend 'onnxruntime'"
    return ""


def resolve_device(device: str, precision: str = "auto", backend: str = "auto") -> torch.device:
    """
    Return the torch.device for auto, cpu, cuda or cuda:N; a CUDA one always with its index.

    'auto' is cuda:0 where CUDA is available, unless precision or backend runs on the CPU
    only (int8, onnxruntime): a params file that works on a CPU machine works on a GPU one.
    'cuda' is cuda:0: torch.cuda.set_device refuses a device without an index.
    """
    device = str(device).strip().lower()
    if device == "auto":
        gpu = torch.cuda.is_available() and not cpu_only(precision, backend)
        return torch.device("cuda", 0) if gpu else torch.device("cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise EngineError(f"device {device!r} was asked for but CUDA is not available on this machine "
                              f"(use device 'cpu' or 'auto')")
        index = int(device.split(":")[1]) if ":" in device and device.split(":")[1].isdigit() else 0
        if device.count(":") and not device.split(":")[1].isdigit():
            raise EngineError(f"device {device!r} is not auto, cpu, cuda or cuda:N")
        if index >= torch.cuda.device_count():
            raise EngineError(f"device {device!r} does not exist: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    raise EngineError(f"device {device!r} is not auto, cpu, cuda or cuda:N")


def auto_device_note(device: str, precision: str = "auto", backend: str = "auto") -> str:
    """Return the line that says 'auto' chose the CPU on a CUDA machine (and why), or ''."""
    why = cpu_only(precision, backend)
    if str(device).strip().lower() != "auto" or not why or not torch.cuda.is_available():
        return ""
    return f"device 'auto' chose the CPU although CUDA is available: {why} runs on the CPU only"


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise EngineError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise EngineError("precision 'fp16' needs a CUDA device; use 'fp32' or 'bf16' on the CPU")
    if precision == "int8" and device.type != "cpu":
        raise EngineError(f"precision 'int8' runs on the CPU (ONNX Runtime), not on {device}; use 'fp16' there")
    if precision == "bf16" and device.type == "cuda":
        # Not torch.cuda.is_bf16_supported(): it also says yes where bf16 is only emulated
        # (pre-Ampere), slower than fp32.  Asked of this device, not of the current one.
        major, minor = torch.cuda.get_device_capability(device)
        if major < 8:
            raise EngineError(f"precision 'bf16' needs a GPU of compute capability 8.0 or newer; {device} is "
                              f"{major}.{minor}, where bf16 is only emulated (use 'fp16')")
    return precision


def _have_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(backend: str, device: torch.device, precision: str) -> str:
    """'torch' or 'onnxruntime'; precision is the resolved one."""
    if backend not in BACKENDS:
        raise EngineError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if precision == "int8" and (backend == "torch" or not _have_onnxruntime()):
        raise EngineError("precision 'int8' runs on ONNX Runtime only: use backend 'auto' or 'onnxruntime' "
                          "with the onnxruntime package installed")
    if backend == "auto":
        cpu_ort = device.type == "cpu" and precision in ("fp32", "int8")
        return "onnxruntime" if cpu_ort and _have_onnxruntime() else "torch"
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise EngineError(f"backend 'onnxruntime' runs on the CPU only, not on {device}; "
                              f"use device 'cpu' or backend 'torch'")
        if precision not in ("fp32", "int8"):
            raise EngineError(f"backend 'onnxruntime' runs fp32 or int8, not {precision}; "
                              f"use precision 'fp32' or backend 'torch'")
        if not _have_onnxruntime():
            raise EngineError("backend 'onnxruntime' needs the onnxruntime package "
                              "(pip install onnxruntime), or use backend 'torch'")
    return backend
