"""
Work per frame and the machine's ceiling: FLOPs of a network, and torch.mm's rate.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2
FLOPs; convolutions and matrix products only: normalisation, activations, resizes and
the engine's pre/post-processing are not counted) over the network's forward on one
frame at the size the network actually runs (the table's net size).  The count runs on
the meta device (no arithmetic, no memory), falling back to a real forward on the CPU
for a network that will not run there.  The matmul rate is the practical ceiling those
FLOPs can be run at: square fp32 ``torch.mm`` on the CPU (torch's thread count, as the
models), fp16 on CUDA.
"""

from __future__ import annotations

import copy
import time

from .config import log
from .threads import in_thread

_COUNTED: dict[tuple, float] = {}          # (model key, net h, net w) -> GFLOP per frame


def count_flops(model, h: int, w: int) -> int:
    """
    Return the FLOPs of one forward of model on one 3 x h x w frame (multiply-add = 2).

    The model is left as it was (a copy in eval mode is counted).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    for device in ("meta", "cpu"):
        net = copy.deepcopy(model).eval().to(device)
        try:
            with FlopCounterMode(display=False) as counter, torch.inference_mode():
                net(torch.zeros(1, 3, h, w, device=device))
            return int(counter.get_total_flops())
        except Exception:  # an op without a meta kernel: count on a real forward instead
            if device == "cpu":
                raise
    raise AssertionError("unreachable")


def gflops_per_frame(key, model, h: int, w: int) -> float:
    """
    Return GFLOP per frame of model at network size h x w, counted once per (key, h, w).

    key names the model (name and checkpoint).  NaN, logged, where it cannot be counted.
    """
    cached = _COUNTED.get((key, h, w))
    if cached is None:
        try:
            cached = count_flops(model, h, w) / 1e9
        except Exception as e:  # the FLOPs are a column of the report, not a reason to fail the run
            log(f"bench: FLOPs of {key} at {h}x{w} not counted: {type(e).__name__}: {e}")
            cached = float("nan")
        _COUNTED[(key, h, w)] = cached
    return cached


def matmul_rate(device: str = "cpu", n: int = 0, reps: int = 5) -> dict:
    """
    Measure the machine's matrix-multiply rate, the practical ceiling for the models' FLOPs.

    Square n x n ``torch.mm`` (default 2048 on the CPU, 8192 on CUDA), one warm-up call,
    then the best of reps; fp32 on the CPU with torch's own thread count (as the models
    run), fp16 on a CUDA device.  Run on a fresh thread like the models' timings.
    Returns {"gflops", "dtype", "n", "reps", "threads"} (threads: torch's intra-op pool).
    """
    import torch

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    dtype = torch.float16 if cuda else torch.float32
    n = int(n) or (8192 if cuda else 2048)
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    out = torch.empty(n, n, device=dev, dtype=dtype)

    def once() -> float:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        if cuda:
            torch.cuda.synchronize(dev)
        return time.perf_counter() - start

    def best() -> float:
        with torch.inference_mode():
            once()
            return min(once() for _ in range(max(1, int(reps))))

    seconds = in_thread(best)
    return {"gflops": 2.0 * n**3 / seconds / 1e9, "dtype": "fp16" if cuda else "fp32", "n": n,
            "reps": max(1, int(reps)), "threads": torch.get_num_threads()}
