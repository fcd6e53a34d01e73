"""The CUDA graph path (precision 'fp16+graph'): the engine's device step captured once and replayed per call."""

from __future__ import annotations

import numpy as np


class GraphedPath:
    """
    The engine's CUDA path with its device part captured in one CUDA graph.

    The path: uint8 upload; the engine's own device step (normalise, resize to the
    network size, network under autocast, resize back); argmax; class maps to the host.
    A replay launches everything at once instead of one Python call per kernel.
    capture=False runs the same step eagerly (the CPU test compares it with
    Engine.infer).
    """

    def __init__(self, engine, batch: int, h: int, w: int, capture: bool = True):
        import torch

        self.engine = engine
        self.dev_in = torch.empty((batch, h, w, 3), dtype=torch.uint8, device=engine.device)
        self.graph = None
        if not capture:
            return
        with torch.cuda.device(engine.device):
            # host buffers outside inference mode: infer copies into them outside it, and an
            # inference tensor refuses in-place updates there (every fp16+graph row failed so)
            self.host_in = torch.empty((batch, h, w, 3), dtype=torch.uint8).pin_memory()
            self.host_out = torch.empty((batch, h, w), dtype=torch.uint8).pin_memory()
        with torch.cuda.device(engine.device), torch.inference_mode():   # streams on the engine's GPU
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # cuDNN autotune and allocations happen before the capture
                    self.step()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.dev_out = self.step()
        self._host_np = self.host_in.numpy()

    def step(self):
        """Device work only: dev_in (uint8 N x H x W x 3 RGB) -> uint8 class maps."""
        import torch

        return self.engine.logits(self.dev_in, graph_safe=True).argmax(1).to(torch.uint8)

    def infer(self, frames: list[np.ndarray]) -> np.ndarray:
        import torch

        if self.graph is None:
            self.dev_in.copy_(torch.from_numpy(np.stack(frames)))
            with torch.inference_mode():
                return self.step().cpu().numpy()
        for i, f in enumerate(frames):
            self._host_np[i] = f
        with torch.cuda.device(self.engine.device):
            self.dev_in.copy_(self.host_in, non_blocking=True)
            self.graph.replay()
            self.host_out.copy_(self.dev_out, non_blocking=True)
            torch.cuda.current_stream().synchronize()
        return self.host_out.numpy()
