"""
The engine's CPU backend: ONNX Runtime running the graph `export` writes.

The graph takes uint8 frames in and gives logits, class maps and (``drivable_prob``) the
drivable probability out; it is traced in memory once per frame size.

Why: on this project's 2-core CPU ONNX Runtime ran the shipped model at 375x1242 in
45 ms against 57-61 ms for PyTorch (BatchNorm folded, channels_last), both with two
threads.  The graph's pooling windows are fixed by the frame size when it is traced, so
each new size costs one trace (about 0.4 s for the shipped model) the first time it
is seen.  No ROS here.

Two graphs per size: ONNX Runtime runs every node of a graph whatever outputs are asked
for, so the drivable probability (a few percent of the network) has a graph of its own,
made on the first call that asks for it; the arg-max graph is the one before it, node
for node.  fp32 traces each; INT8 quantises the graph with the probability once (its
probability nodes kept in float) and drops them for the arg-max one (int8.py).
"""

from __future__ import annotations

from collections import OrderedDict
import io
import time

import numpy as np
from torch import nn

from .checkpoint import ModelMeta
from .deploy import Deployable, trace_onnx
from .upsample import drivable_probability

PROB = "drivable_prob"


class OnnxRunner:
    MAX_SESSIONS = 8        # (frame size, graph) kept; the least recently used goes first

    def __init__(self, model: nn.Module, meta: ModelMeta, threads: int, int8_frames: list | None = None):
        """int8_frames: calibration frames; each traced graph is then quantised (int8.py) before use."""
        self._net = Deployable(model.float(), meta)
        self._drivable_ids = sorted(meta.classes.drivable_ids)
        self._threads = max(1, int(threads))
        self._int8_frames = int8_frames
        self._sessions: OrderedDict[tuple[int, int, bool], object] = OrderedDict()
        self._int8_graphs: dict[tuple[int, int], bytes] = {}     # INT8: quantised graph with PROB
        self.traced: list[tuple[int, int, float]] = []   # (h, w, seconds), for the caller to report

    def session(self, h: int, w: int, probability: bool = False):
        """Return the session for H x W frames, with the drivable probability or without; made on first use."""
        key = (h, w, bool(probability))
        sess = self._sessions.get(key)
        if sess is not None:
            self._sessions.move_to_end(key)
            return sess
        start = time.perf_counter()
        sess = self._sessions[key] = self._open(self._graph(h, w, probability))
        self.traced.append((h, w, time.perf_counter() - start))
        if len(self._sessions) > self.MAX_SESSIONS:     # a stream of ever-new sizes
            old = self._sessions.popitem(last=False)[0]  # must not grow memory without end
            if not any(k[:2] == old[:2] for k in self._sessions):
                self._int8_graphs.pop(old[:2], None)
        return sess

    def _graph(self, h: int, w: int, probability: bool) -> bytes:
        if self._int8_frames is None:
            return _trace(self._net, h, w, probability)
        from .int8 import quantize, without_output

        graph = self._int8_graphs.get((h, w))
        if graph is None:               # quantised once per size: calibration is the slow part
            graph = self._int8_graphs[(h, w)] = quantize(_trace(self._net, h, w, True), self._int8_frames, (h, w))
        return graph if probability else without_output(graph, PROB)

    def _open(self, graph: bytes):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._threads
        opts.inter_op_num_threads = 1
        # No busy-waiting between ops: in the node, spinning pool threads take the
        # cores from the DDS threads.  Costs ~1 ms a frame bare (45.2 vs 46.2 ms);
        # under 2x overload the node kept 0.94 of the engine's fps against 0.84.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3                 # warnings about unused initialisers
        return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])

    def run(self, images: np.ndarray, logits: bool = False, probability: bool = False):
        """
        images: N x H x W x 3 uint8 RGB, C-contiguous.

        Returns (class maps N x H x W uint8, logits N x C x H x W float32 or None,
        drivable probability N x H x W float32 or None).
        """
        sess = self.session(images.shape[1], images.shape[2], probability)
        return run_graph(sess, images, logits, probability, self._drivable_ids)


def _trace(net: Deployable, h: int, w: int, probability: bool) -> bytes:
    buf = io.BytesIO()
    trace_onnx(net, h, w, buf, probability=probability)
    return buf.getvalue()


def run_graph(sess, images: np.ndarray, logits: bool, probability: bool, drivable_ids):
    """
    Run a graph of ``export``'s: (classes, logits or None, drivable probability or None).

    A graph without ``drivable_prob`` (one exported before it had that output) still
    runs: its probability comes from its logits (``upsample.drivable_probability``, the
    reference definition).
    """
    has_prob = PROB in {o.name for o in sess.get_outputs()}
    names = ["classes"] + (["logits"] if logits or (probability and not has_prob) else []) \
        + ([PROB] if probability and has_prob else [])
    out = dict(zip(names, sess.run(names, {"image": images})))
    prob = out.get(PROB)
    if probability and prob is None:
        hwc = out["logits"].transpose(0, 2, 3, 1)             # N x C x H x W, as export writes it
        prob = np.stack([drivable_probability(np.array(x, np.float32), drivable_ids, x.shape[:2]) for x in hwc])
    return out["classes"], out.get("logits") if logits else None, prob
