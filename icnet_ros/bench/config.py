"""
What one bench run measures, and ``BenchConfig``, the run's options.

What it measures: the model zoo's names, the frame sizes, the timing schedules.
``BenchConfig`` is built from the command line by ``cli``, or directly by tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import sys

ICNETS = ("icnet_r50_w0.5", "icnet_r18_w0.5", "icnet_r18_w0.25", "icnet_effl0_w0.5", "icnet_effl1_w0.5",
          "icnet_effl2_w0.5")
TORCHVISION = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50")
ALL_MODELS = ICNETS + TORCHVISION
PEER = "lraspp_mobilenet_v3_large"    # the model the CPU targets compare the shipped one with
KITTI = (375, 1242)
CITYSCAPES = (1024, 2048)
FHD, HD = (1080, 1920), (720, 1280)   # the cameras robots carry (RealSense, ZED, USB): 1920x1080, 1280x720
NODE_DEFAULT = "icnet_r18_w0.5"       # the node's model when no shipped model is installed
RATE_FACTOR = 1.2                     # node windows: publisher at this x the engine's fps

# Timing schedules: warmup calls, then reps until (n >= min_reps and elapsed >= min_s),
# or n >= 2 and elapsed >= max_s, or n >= max_reps.  p99 of a handful of reps is close
# to their maximum; the Markdown table says how many there were.
SCHEDULES = {
    ("cpu", True): {"warmup": 1, "min_reps": 3, "min_s": 1.0, "max_s": 4.0, "max_reps": 100},
    ("cpu", False): {"warmup": 1, "min_reps": 10, "min_s": 3.0, "max_s": 10.0, "max_reps": 200},
    ("cuda", True): {"warmup": 5, "min_reps": 20, "min_s": 0.5, "max_s": 2.0, "max_reps": 500},
    ("cuda", False): {"warmup": 20, "min_reps": 100, "min_s": 2.0, "max_s": 5.0, "max_reps": 2000},
}


class BenchError(ValueError):
    """A bench option that cannot be used; the message names it."""


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BenchConfig:
    """
    One bench run.

    None / empty means the default, filled in by ``resolved``.

    isolate=False measures the models in this process (peak RSS then includes what came
    before); schedule overrides SCHEDULES (tests use a tiny one).
    """

    device: str = "cpu"                      # auto, cpu, cuda or cuda:N
    quick: bool = False
    soak: float = 0.0                        # seconds of the node at 2x rate after the windows
    models: tuple | list | None = None       # default ALL_MODELS
    shapes: tuple | list | None = None       # (h, w) frame sizes; default KITTI (and CITYSCAPES)
    camera_shapes: tuple | list | None = None  # the shipped model and LR-ASPP only; default FHD (and HD),
    #                                          none when shapes are given
    batches: tuple | list | None = None      # default 1 (and 4)
    node: bool = True                        # the node phases (need ROS)
    map_cost: bool = True                    # the drivable map's cost per frame (map_cost.py)
    node_map: bool = False                   # the node phases with ~/drivable_map subscribed too
    node_shape: tuple = KITTI
    node_seconds: float | None = None        # per node phase; default 6 (quick) or 20 s
    rate: float | None = None                # publisher rate in Hz; None: rate_factor x engine fps
    domain_id: int | None = None             # None: a random private ROS_DOMAIN_ID
    checkpoint: str | None = None            # benched as the shipped model; None: the installed one
    rate_factor: float | None = None         # None: RATE_FACTOR
    isolate: bool = True
    schedule: dict | None = None
    calibration: str | None = None           # int8+ort rows: calibration images; None: the sample frames

    @classmethod
    def from_args(cls, args) -> BenchConfig:
        """From ``cli``'s parsed options (--rate gives a (Hz, factor) pair)."""
        return cls(device=args.device, quick=args.quick, soak=args.soak, models=args.models,
                   shapes=args.shapes, batches=args.batches, node=not args.no_node, map_cost=not args.no_map,
                   node_map=args.node_map,
                   node_shape=args.node_shape, node_seconds=args.node_seconds, rate=args.rate[0],
                   domain_id=args.domain_id, checkpoint=args.model or None, rate_factor=args.rate[1],
                   calibration=args.calibration or None)

    def resolved(self) -> BenchConfig:
        """
        Return this config with its device resolved to 'cpu' or 'cuda:N' and the defaults filled in.

        Raises BenchError naming the option that cannot be used.
        """
        from ..inference.engine import EngineError, resolve_device

        try:
            dev = resolve_device(self.device)
        except EngineError as e:
            raise BenchError(f"--device: {e}") from None
        if self.soak < 0:
            raise BenchError(f"--soak must be 0 or more seconds, got {self.soak}")
        if self.rate is not None and self.rate <= 0:
            raise BenchError(f"--rate must be positive, got {self.rate}")
        factor = RATE_FACTOR if self.rate_factor is None else self.rate_factor
        if factor <= 0:
            raise BenchError(f"--rate must be positive, got {factor}x")
        return dataclasses.replace(
            self, device=str(dev) if dev.type == "cuda" else "cpu", rate_factor=factor,
            models=list(self.models or ALL_MODELS),
            shapes=[tuple(s) for s in (self.shapes or ([KITTI] if self.quick else [KITTI, CITYSCAPES]))],
            camera_shapes=[tuple(s) for s in (self.camera_shapes if self.camera_shapes is not None else
                                              [] if self.shapes else [FHD] if self.quick else [FHD, HD])],
            batches=list(self.batches or ([1] if self.quick else [1, 4])),
            node_shape=tuple(self.node_shape), node_seconds=self.node_seconds or (6.0 if self.quick else 20.0))

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")
