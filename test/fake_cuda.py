"""
CUDA code paths run on the CPU, as far as torch allows (the ``fake_cuda`` fixture).

What is faked: ``torch.cuda.is_available`` / ``device_count`` / ``current_device``
(per thread, as CUDA's current device is), ``set_device`` and the ``device`` context
(their argument checked by torch's own ``torch.cuda._utils._get_device_index``, then
against the device count, as the driver does), capability and bf16 support, the RNG
state per device, memory statistics, and streams, events, ``CUDAGraph`` /
``graph``, ``synchronize`` as no-ops.  Tensors asked for on ``cuda:N`` are made on the
CPU: a torch function mode rewrites every device argument (a ``cuda:N`` beyond the
device count raises as CUDA does), ``.to(cuda)`` copies as a real upload would, and
``pin_memory`` copies too (inference-mode flags kept).  The mode is entered on every
thread started while the fixture is active (the engine's own thread, the node's worker).

What is not faked and so still checked: every torch argument check, autograd, inference
mode, autocast's and GradScaler's CUDA set-up (they read ``torch.cuda.is_available``),
torch.device objects (``engine.device`` really is ``cuda:0``).  What a CPU cannot show:
CUDA kernels, asynchrony (a missing synchronise), memory, graph replay (a replay
recomputes nothing: the outputs stay those of the capture), and a device tensor read on
the host without ``.cpu()`` (every tensor here is a CPU one).  ``host_copies`` counts
``.cpu()``, ``.item()`` and ``.tolist()`` calls: each is a device -> host copy and a sync
on a GPU.
"""

from __future__ import annotations

import contextlib
import threading

import pytest
import torch
from torch.cuda._utils import _get_device_index
from torch.overrides import TorchFunctionMode


class FakeCuda:
    """The state of the fake: device count, capability, current device per thread, counters."""

    def __init__(self, count: int = 1, capability: tuple[int, int] = (8, 0)):
        self.count = count
        self.capability = capability
        self._local = threading.local()
        self.rng = {}
        self.syncs = 0
        self.host_copies = 0                     # .cpu(), .item(), .tolist(): device -> host copies, each a sync
        self.set_device_calls: list = []

    # --- the current device ------------------------------------------------------------

    @property
    def current(self) -> int:
        return getattr(self._local, "index", 0)

    def check(self, index: int) -> int:
        if not 0 <= index < self.count:
            raise RuntimeError("CUDA error: invalid device ordinal")
        return index

    def index(self, device=None) -> int:
        """Torch's own argument check, then the driver's (``device=None``: the current one)."""
        idx = _get_device_index(device, optional=True)
        return self.check(idx if idx >= 0 else self.current)

    def set_device(self, device) -> None:
        self.set_device_calls.append(device)
        idx = _get_device_index(device)          # as torch.cuda.set_device
        if idx >= 0:
            self._local.index = self.check(idx)

    def device_class(self):
        """torch.cuda.device (a type, which torch's checks test against) switching the fake's device."""
        fake = self

        class device(torch.cuda.device):        # __init__: torch's own, _get_device_index(optional=True)
            def __enter__(self):
                self.prev_idx = fake.current
                if self.idx >= 0:
                    fake._local.index = fake.check(self.idx)

            def __exit__(self, *exc):
                fake._local.index = self.prev_idx
                return False

        return device

    # --- queries -------------------------------------------------------------------------

    def get_device_capability(self, device=None):
        self.index(device)
        return self.capability

    def get_device_name(self, device=None):
        return f"fake CUDA device {self.index(device)} (the CPU)"

    def is_bf16_supported(self, including_emulation: bool = True):
        return self.capability >= (8, 0) or including_emulation

    def synchronize(self, device=None):
        self.index(device)
        self.syncs += 1

    def _generator(self, device) -> torch.Generator:
        idx = self.index(torch.device("cuda", device) if isinstance(device, int) else device)
        return self.rng.setdefault(idx, torch.Generator().manual_seed(idx))

    def get_rng_state(self, device="cuda"):
        return self._generator(device).get_state()

    def set_rng_state(self, state, device="cuda"):
        self._generator(device).set_state(state)


class _Stream:
    def __init__(self, *args, **kwargs):
        pass

    def wait_stream(self, other):
        pass

    def wait_event(self, event):
        pass

    def record_event(self, event=None):
        return event or _Event()

    def synchronize(self):
        pass

    def query(self):
        return True


class _Event:
    def __init__(self, *args, **kwargs):
        pass

    def record(self, stream=None):
        pass

    def synchronize(self):
        pass

    def query(self):
        return True

    def elapsed_time(self, other):
        return 0.0


class _Graph:
    """A CUDA graph that records nothing: ``replay`` leaves the capture's outputs as they were."""

    def __init__(self, *args, **kwargs):
        self.replays = 0

    def replay(self):
        self.replays += 1


@contextlib.contextmanager
def _graph(cuda_graph, *args, **kwargs):
    if not isinstance(cuda_graph, _Graph):
        raise TypeError(f"torch.cuda.graph needs a torch.cuda.CUDAGraph, got {type(cuda_graph).__name__}")
    yield


def _cuda_device(value, fake: FakeCuda):
    """Return the CPU for a cuda device (torch.device or string), after the driver's index check; else None."""
    if isinstance(value, str) and value.split(":")[0] == "cuda":
        value = torch.device(value)
    if isinstance(value, torch.device) and value.type == "cuda":
        fake.check(value.index if value.index is not None else fake.current)
        return torch.device("cpu")
    return None


_TO_HOST = (torch.Tensor.cpu, torch.Tensor.item, torch.Tensor.tolist)


class OnCpu(TorchFunctionMode):
    """Every tensor asked for on a CUDA device is made on the CPU."""

    def __init__(self, fake: FakeCuda):
        super().__init__()
        self.fake = fake

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _TO_HOST:
            self.fake.host_copies += 1
        if func is torch.Tensor.pin_memory:
            return args[0].clone()               # a pinned copy, in the same (inference) mode
        if func is torch.Tensor.cuda:
            device = args[1] if len(args) > 1 else kwargs.get("device")
            _cuda_device(torch.device("cuda", device) if isinstance(device, int) else device or "cuda", self.fake)
            return args[0].to("cpu", copy=True)
        moved = False
        if "device" in kwargs and (cpu := _cuda_device(kwargs["device"], self.fake)) is not None:
            kwargs["device"], moved = cpu, True
        if func is torch.Tensor.to:
            new = []
            for a in args:
                cpu = _cuda_device(a, self.fake)
                moved = moved or cpu is not None
                new.append(a if cpu is None else cpu)
            args = tuple(new)
            if moved:
                kwargs["copy"] = True            # an upload makes a new tensor
        return func(*args, **kwargs)


@contextlib.contextmanager
def cuda_on_cpu(monkeypatch, count: int = 1, capability: tuple[int, int] = (8, 0)):
    """Fake CUDA (see the module docstring) while the block runs."""
    fake = FakeCuda(count, capability)
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "device_count", lambda: fake.count)
    monkeypatch.setattr(cuda, "current_device", lambda: fake.current)
    monkeypatch.setattr(cuda, "set_device", fake.set_device)
    monkeypatch.setattr(cuda, "device", fake.device_class())
    monkeypatch.setattr(cuda, "get_device_capability", fake.get_device_capability)
    monkeypatch.setattr(cuda, "get_device_name", fake.get_device_name)
    monkeypatch.setattr(cuda, "is_bf16_supported", fake.is_bf16_supported)
    monkeypatch.setattr(cuda, "synchronize", fake.synchronize)
    monkeypatch.setattr(cuda, "get_rng_state", fake.get_rng_state)
    monkeypatch.setattr(cuda, "set_rng_state", fake.set_rng_state)
    for name in ("empty_cache", "reset_peak_memory_stats"):
        monkeypatch.setattr(cuda, name, lambda device=None: fake.index(device) and None)
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: fake.index(device) * 0)
    monkeypatch.setattr(cuda, "Stream", _Stream)
    monkeypatch.setattr(cuda, "Event", _Event)
    monkeypatch.setattr(cuda, "current_stream", lambda device=None: fake.index(device) and None or _Stream())
    monkeypatch.setattr(cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(cuda, "CUDAGraph", _Graph)
    monkeypatch.setattr(cuda, "graph", _graph)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)  # restored after

    run = threading.Thread.run

    def run_on_cpu(thread):
        with OnCpu(fake):
            run(thread)

    monkeypatch.setattr(threading.Thread, "run", run_on_cpu)
    with OnCpu(fake):
        yield fake


@pytest.fixture
def fake_cuda(monkeypatch):
    """One fake GPU of compute capability 8.0 (Ampere): yields its FakeCuda state."""
    with cuda_on_cpu(monkeypatch) as fake:
        yield fake
