"""
The engine's CPU backend: ONNX Runtime running the graph `export` writes.

The graph takes uint8 frames in and gives logits and class maps out; it is traced in
memory once per frame size.

Why: on this project's 2-core CPU ONNX Runtime ran the shipped model at 375x1242 in
45 ms against 57-61 ms for PyTorch (BatchNorm folded, channels_last), both with two
threads.  The graph's pooling windows are fixed by the frame size when it is traced, so
each new size costs one trace (about 0.4 s for the shipped model) the first time it
is seen.  No ROS here.
"""

from __future__ import annotations

from collections import OrderedDict
import io
import time

import numpy as np
from torch import nn

from .checkpoint import ModelMeta
from .deploy import Deployable, trace_onnx


class OnnxRunner:
    MAX_SESSIONS = 8        # frame sizes kept traced; the least recently used goes first

    def __init__(self, model: nn.Module, meta: ModelMeta, threads: int, int8_frames: list | None = None):
        """int8_frames: calibration frames; each traced graph is then quantised (int8.py) before use."""
        self._net = Deployable(model.float(), meta, channels_last_logits=True)
        self._threads = max(1, int(threads))
        self._int8_frames = int8_frames
        self._sessions: OrderedDict[tuple[int, int], object] = OrderedDict()
        self.traced: list[tuple[int, int, float]] = []   # (h, w, seconds), for the caller to report

    def session(self, h: int, w: int):
        """Return the session for H x W frames, traced and built on first use."""
        sess = self._sessions.get((h, w))
        if sess is not None:
            self._sessions.move_to_end((h, w))
        else:
            import onnxruntime as ort

            start = time.perf_counter()
            buf = io.BytesIO()
            trace_onnx(self._net, h, w, buf)
            graph = buf.getvalue()
            if self._int8_frames is not None:
                from .int8 import quantize

                graph = quantize(graph, self._int8_frames, (h, w))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self._threads
            opts.inter_op_num_threads = 1
            # No busy-waiting between ops: in the node, spinning pool threads take the
            # cores from the DDS threads.  Costs ~1 ms a frame bare (45.2 vs 46.2 ms);
            # under 2x overload the node kept 0.94 of the engine's fps against 0.84.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.log_severity_level = 3                 # warnings about unused initialisers
            sess = self._sessions[(h, w)] = ort.InferenceSession(
                graph, opts, providers=["CPUExecutionProvider"])
            self.traced.append((h, w, time.perf_counter() - start))
            if len(self._sessions) > self.MAX_SESSIONS:     # a stream of ever-new sizes
                self._sessions.popitem(last=False)          # must not grow memory without end
        return sess

    def run(self, images: np.ndarray, logits: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """
        images: N x H x W x 3 uint8 RGB, C-contiguous.

        (class maps N x H x W uint8, logits N x H x W x C float32 or None).
        """
        sess = self.session(images.shape[1], images.shape[2])
        if logits:
            out_logits, classes = sess.run(["logits", "classes"], {"image": images})
            return classes, out_logits
        return sess.run(["classes"], {"image": images})[0], None
