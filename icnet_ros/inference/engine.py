"""
The inference engine: uint8 frames in, class maps and drivable masks out.

No ROS.

Two backends.  On the CPU (fp32) the default is ONNX Runtime (`onnx_runner.py`) when it
is installed: the same graph, 1.3x PyTorch's speed on this project's machine.  Otherwise,
and always on CUDA, PyTorch.  On the CPU, both backends run the network on frames already
at the network size (uint8 resize) and bring the class maps back with `class_map.py`,
which gives argmax(bilinear(logits)) without resizing every logit channel.  On CUDA a
batch is uploaded once as uint8, then normalised, resized, run (channels_last,
autocast, inference_mode), argmaxed and resized back on the GPU; only the uint8 class
maps (and, on request, drivable probabilities) come back to the host, in one copy.  CUDA
work, warm-up included, runs on one thread of the engine's own bound to its GPU, whatever
thread calls `infer`.

The drivable probability has one definition on every backend, `deploy.drivable_prob`,
computed by the network's own runtime at the network size (inside the ONNX graph, or by
PyTorch) and resized as one channel.  The maps come back at the network size always and
at the frame's size on request (`full_size`, results.py): outputs that only read them at
some points need none of the full-resolution work.
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
import copy
from pathlib import Path
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .checkpoint import check_frame_size, FrameSizeError, load_checkpoint, ModelMeta
from .class_map import class_map
from .deploy import drivable_prob, frame_logits
# where a frame runs (device, precision, backend): devices.py; imported from here as before
from .devices import (auto_device_note, BACKENDS, cpu_only, EngineError, PRECISIONS,  # noqa: F401
                      resolve_backend, resolve_device, resolve_precision)
from .results import assemble, Drivable, Result  # noqa: F401  (Result: imported from here as before)
from .upsample import probability_map, resize_frames

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class CalibrationError(EngineError):
    """INT8: calibration frames missing or unusable, or a graph that did not quantise (int8.py)."""


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """
    Fold every eval-mode BatchNorm into the conv before it (inference only).

    One kernel instead of two per layer, the same outputs up to float rounding.
    """
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
        for n in "123":  # torchvision's BasicBlock / Bottleneck: convN followed by bnN
            conv, bn = getattr(module, f"conv{n}", None), getattr(module, f"bn{n}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, f"conv{n}", fuse_conv_bn_eval(conv, bn))
                setattr(module, f"bn{n}", nn.Identity())
    return model


class Engine:
    MAX_STAGING = 8         # pinned upload buffers kept, one per batch shape; as OnnxRunner.MAX_SESSIONS

    def __init__(self, model: torch.nn.Module, meta: ModelMeta, device: str = "auto",
                 precision: str = "auto", warmup: bool = True, backend: str = "auto", threads: int = 0,
                 calibration=None):
        """
        Set the CPU threads for ONNX Runtime's sessions and torch's intra-op pool.

        threads: 0 leaves torch's default (and ONNX Runtime uses as many).  calibration:
        precision 'int8' only, a folder of images (or a list of RGB frames) whose
        activation ranges the quantised graph is calibrated on (int8.py).
        """
        if int(threads) < 0:
            raise EngineError(f"threads must be 0 (torch's default) or more, got {threads}")
        self.device = resolve_device(device, precision, backend)
        self.device_note = auto_device_note(device, precision, backend)
        self.precision = resolve_precision(precision, self.device)
        self.backend = resolve_backend(backend, self.device, self.precision)
        self.meta = meta
        self._onnx = None
        self.model = None                   # the PyTorch network: torch backend only
        if self.backend == "onnxruntime":
            from .onnx_runner import OnnxRunner

            # the caller's model stays as it was; ONNX Runtime folds BatchNorm itself.  The
            # graph runs at the network size: frames arrive resized (the CPU path below).
            self._onnx = OnnxRunner(copy.deepcopy(model), meta.at_network_size(),
                                    int(threads) or torch.get_num_threads(), self._int8_frames(calibration))
        else:
            if threads:
                # torch's intra-op thread count is process-global (no per-model or per-call
                # setting), so it is set once here, for this process, not around each call.
                torch.set_num_threads(int(threads))
            # channels_last suits cuDNN tensor cores and oneDNN on the CPU alike (measured
            # ~20 % faster for ICNet-r18 at 375x1242 on this project's 2-core CPU).
            model = fuse_batchnorm(copy.deepcopy(model).eval())  # the caller's model stays as it was
            self.model = model.to(self.device, memory_format=torch.channels_last)
        self._thread = None
        if self.device.type == "cuda":
            # Fixed frame sizes: cuDNN's autotune pays once per size (timed into `traced`).
            torch.backends.cudnn.benchmark = True
            # All CUDA work runs on one thread of the engine's own, bound to its GPU: torch keeps
            # the current device and the cuBLAS/cuDNN handles per thread, so with cuda:1 pinning,
            # streams and synchronise act on GPU 1 whichever thread calls infer, and the warm-up
            # below creates the handles every later frame uses.  Bound by a first task, not an
            # initializer: a failing initializer leaves only BrokenThreadPool, this the reason.
            self._thread = ThreadPoolExecutor(1, "icnet-engine")
            self._thread.submit(torch.cuda.set_device, self.device).result()
        self._mean = torch.tensor(meta.mean, dtype=torch.float32, device=self.device)
        self._std = torch.tensor(meta.std, dtype=torch.float32, device=self.device)
        self._is_drivable = Drivable(meta.classes.drivable_ids)
        self._pinned: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._tuned: set[tuple] = set()                  # CUDA: network input shapes cuDNN has tuned
        self._traced: list[tuple[int, int, float]] = []
        self.last_ms = 0.0
        if warmup:
            h, w = meta.input_size or (375, 1242)
            for _ in range(2 if self.device.type == "cuda" else 1):
                self.infer([np.zeros((h, w, 3), np.uint8)])

    def _int8_frames(self, calibration) -> list[np.ndarray] | None:
        if self.precision != "int8":
            return None
        from .int8 import calibration_frames, QuantizeError

        try:
            return list(calibration) if isinstance(calibration, (list, tuple)) else calibration_frames(calibration)
        except QuantizeError as e:
            raise CalibrationError(str(e)) from None

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str = "auto",
                        precision: str = "auto", warmup: bool = True, backend: str = "auto",
                        threads: int = 0, calibration=None) -> "Engine":
        if path is None or str(path) == "":
            from ..paths import default_model_path

            path = default_model_path()
        model, meta, _ = load_checkpoint(path)
        return cls(model, meta, device, precision, warmup, backend, threads, calibration)

    @property
    def classes(self):
        return self.meta.classes

    @property
    def traced(self) -> list[tuple[int, int, float]]:
        """
        Return (h, w, seconds) of the first call at each new network size that made the backend prepare.

        To prepare, ONNX Runtime traces the graph (once per network size, and once more
        with the drivable probability when a call first asks for it) and cuDNN autotunes
        its convolutions (CUDA; once per network input shape).  Explains a one-off slow frame.
        """
        return self._onnx.traced if self._onnx is not None else self._traced

    @property
    def prepare_note(self) -> str:
        """Say what `traced` entries stand for, for a log line."""
        return "graph traced for onnxruntime" if self._onnx is not None else "cuDNN autotuned"

    def _check(self, frames) -> list[np.ndarray]:
        if isinstance(frames, np.ndarray):
            frames = [frames] if frames.ndim == 3 else list(frames)
        if len(frames) == 0:
            raise EngineError("no frames given")
        for i, f in enumerate(frames):
            if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
                got = f"{f.dtype} {f.shape}" if isinstance(f, np.ndarray) else type(f).__name__
                raise EngineError(f"frame {i} must be a uint8 H x W x 3 array, got {got}")
            try:
                check_frame_size(f.shape[0], f.shape[1])
            except FrameSizeError as e:
                raise EngineError(f"frame {i}: {e}") from None
        return frames

    def infer(self, frames, color: str = "rgb", probabilities: bool = False,
              drivable_threshold: float = 0.0, full_size: bool = True) -> list[Result]:
        """
        frames: one H x W x 3 uint8 array, a list of them, or an N x H x W x 3 array.

        color: the channel order of the frames, 'rgb' or 'bgr'.  probabilities: the
        drivable probability too (``drivable_prob``, ``net_prob``).  drivable_threshold: 0
        (default) makes a pixel drivable when its arg-max class is; above 0, when its
        drivable probability (summed over the drivable classes) reaches the threshold
        (probabilities are then computed and returned).  full_size: False returns the
        maps at the network size only (``net_*``), with no work at the frame's size.
        """
        if color not in ("rgb", "bgr"):
            raise EngineError(f"color must be 'rgb' or 'bgr', got {color!r}")
        if not 0.0 <= float(drivable_threshold) <= 1.0:
            raise EngineError(f"drivable_threshold must be between 0 and 1, got {drivable_threshold}")
        frames = self._check(frames)
        args = (frames, color, bool(probabilities) or drivable_threshold > 0, float(drivable_threshold),
                bool(full_size))
        if self._thread is not None:
            return self._thread.submit(self._infer, *args).result()
        return self._infer(*args)

    def _infer(self, frames: list[np.ndarray], color: str, probability: bool, threshold: float,
               full_size: bool) -> list[Result]:
        start = time.perf_counter()
        results: list[Result | None] = [None] * len(frames)
        groups: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):  # frames of one size share a batch
            groups.setdefault(f.shape, []).append(i)
        for idx in groups.values():
            batch = [frames[i] for i in idx]
            run = self._run_cpu if self.device.type == "cpu" else self._run
            for i, r in zip(idx, run(batch, color, probability, threshold, full_size)):
                results[i] = r
        self.last_ms = (time.perf_counter() - start) * 1000.0
        return results

    def _upload(self, frames: list[np.ndarray]) -> torch.Tensor:
        """
        N x H x W x 3 uint8 on the device.

        On CUDA the frames are stacked straight into a pinned staging buffer kept per
        shape (pinning is too slow to redo per frame), so the upload is one asynchronous
        copy; the previous call's host copy has synced the stream, so the buffer is free
        to reuse.
        """
        if self.device.type != "cuda":
            if len(frames) == 1:
                return torch.from_numpy(np.ascontiguousarray(frames[0])[None])
            return torch.from_numpy(np.stack(frames))
        buf = self._staging((len(frames), *frames[0].shape))
        np.stack(frames, out=buf.numpy())
        return buf.to(self.device, non_blocking=True)

    def _staging(self, shape: tuple) -> torch.Tensor:
        """
        Return the pinned buffer for one batch shape, least recently used ones dropped.

        The least recently used one goes once there are more than MAX_STAGING, so a
        stream of ever-new sizes cannot pin memory without end.
        """
        buf = self._pinned.get(shape)
        if buf is not None:
            self._pinned.move_to_end(shape)
            return buf
        buf = self._pinned[shape] = torch.empty(shape, dtype=torch.uint8).pin_memory()
        if len(self._pinned) > self.MAX_STAGING:
            self._pinned.popitem(last=False)
        return buf

    @torch.inference_mode()
    def _run_cpu(self, frames: list[np.ndarray], color: str, probability: bool, threshold: float,
                 full_size: bool) -> list[Result]:
        """Frames of one size on the CPU: resize to the network size, run, maps back up on request (class_map.py)."""
        h, w = frames[0].shape[:2]
        size = self.meta.network_size(h, w)
        up = full_size and size != (h, w)             # logits only where a class map goes up to the frame
        x = resize_frames(frames, size)
        if color == "bgr":
            x = x[..., ::-1]
        if self._onnx is not None:
            from .int8 import QuantizeError

            try:
                small, logits, prob = self._onnx.run(np.ascontiguousarray(x), up, probability)
            except QuantizeError as e:      # int8: the graph for this network size did not quantise
                raise CalibrationError(str(e)) from None
        else:
            out = frame_logits(self.model, torch.from_numpy(np.ascontiguousarray(x)), None, self._mean, self._std,
                               _DTYPES.get(self.precision), channels_last=True)
            small = out.argmax(1).to(torch.uint8).numpy()
            prob = drivable_prob(out, self._is_drivable.ids).numpy() if probability else None
            # N x C x h x w, channels_last in memory as the network gave them: read as they lie
            logits = out.float().numpy() if up else None
        if not full_size:
            return assemble(self._is_drivable, small, prob, (h, w), threshold)
        return assemble(self._is_drivable, small, prob, (h, w), threshold,
                        lambda i: class_map(small[i], logits[i] if up else None, (h, w)),
                        None if prob is None else lambda i: probability_map(prob[i], (h, w)))

    @torch.inference_mode()
    def _run(self, frames: list[np.ndarray], color: str, probability: bool, threshold: float,
             full_size: bool) -> list[Result]:
        """
        Frames of one size on CUDA: the whole deploy path on the GPU, one copy back.

        The CPU path's semantics: class maps are argmax(bilinear(logits)), the drivable
        probability is ``deploy.drivable_prob`` at the network size, then resized.
        """
        start = time.perf_counter()
        n, (h, w) = len(frames), frames[0].shape[:2]
        x = self._upload(frames)
        if color == "bgr":
            x = x.flip(3)                               # on uint8: a quarter of the bytes
        small = self.logits(x, at_frame_size=False)     # at the network size
        up = full_size and tuple(small.shape[-2:]) != (h, w)
        maps = [small.argmax(1).to(torch.uint8)]        # network size, then at the frame's
        if up:
            maps.append(_at(small.float(), h, w).argmax(1).to(torch.uint8))
        if probability:
            prob = drivable_prob(small, self._is_drivable.ids)
            maps.append(prob)
            if up:
                maps.append(_at(prob[:, None], h, w)[:, 0].clamp_(0.0, 1.0))
        host = _to_host(maps)                           # every map as bytes of one tensor: one copy, one sync
        small_np = host[0]
        prob_np = host[2 if up else 1] if probability else None
        key = (n, *self.meta.network_size(h, w))
        if self.device.type == "cuda" and key not in self._tuned:
            self._tuned.add(key)
            self._traced.append((key[1], key[2], time.perf_counter() - start))
        if not full_size:
            return assemble(self._is_drivable, small_np, prob_np, (h, w), threshold)
        return assemble(self._is_drivable, small_np, prob_np, (h, w), threshold,
                        lambda i: host[1][i] if up else small_np[i],
                        None if not probability else lambda i: host[-1][i])

    @torch.inference_mode()
    def logits(self, x: torch.Tensor, graph_safe: bool = False, at_frame_size: bool = True) -> torch.Tensor:
        """
        Run the device part of a call (torch backend): uint8 RGB frames -> logits.

        Shared with the bench's CUDA graph.  Frames: uint8 N x H x W x 3 RGB on the
        engine's device; logits: N x C x H x W (float, or the autocast dtype when no
        resize was needed).  graph_safe: no autocast weight cache, which a CUDA graph
        would otherwise keep from its capture.  at_frame_size: False leaves them at the
        network size.
        """
        # mean / std are tensors on the device: no copies per call
        return frame_logits(self.model, x, self.meta, self._mean, self._std, _DTYPES.get(self.precision),
                            channels_last=True, cache_enabled=not graph_safe, at_frame_size=at_frame_size)


def _to_host(maps: list[torch.Tensor]) -> list[np.ndarray]:
    """Device maps (uint8 or float32) back as NumPy arrays of their shapes, in one device -> host copy."""
    order = sorted(range(len(maps)), key=lambda i: -maps[i].element_size())    # float32 first: aligned
    flat = torch.cat([maps[i].reshape(-1).view(torch.uint8) for i in order]).cpu().numpy()
    out, at = [None] * len(maps), 0
    for i in order:
        size = maps[i].numel() * maps[i].element_size()
        dtype = np.uint8 if maps[i].dtype == torch.uint8 else np.float32
        out[i] = flat[at:at + size].view(dtype).reshape(tuple(maps[i].shape))
        at += size
    return out


def _at(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """N x C x h' x w' float resized to h x w as F.interpolate bilinear (half-pixel), or t itself."""
    if tuple(t.shape[-2:]) == (h, w):
        return t
    return torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
