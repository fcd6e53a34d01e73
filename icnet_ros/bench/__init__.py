"""
`bench`: speed, latency and memory of ICNet and of the node, next to other models.

`bench`: speed, latency and memory of ICNet and of the node, next to the models a user
would pick instead, in one run on one machine.

1. Models: every model goes through the same full path the node uses (``Engine.infer``:
   uint8 frames in, normalise, network, argmax, class maps back on the host), so
   torchvision's models pay the same pre/post-processing as ICNet.  Each model runs in a
   subprocess of its own so that its peak RSS (VmHWM, reset per configuration) is its
   own; on CUDA the peak is ``torch.cuda.max_memory_allocated``.
2. Node: ``segment`` as a separate process (as deployed), fed over real DDS by a
   publisher in this process, a subscriber to ``~/mask`` measuring receive time - header
   stamp.  Node windows alternate with bare-engine windows on the same frames in a
   process of its own, so that drifts in machine speed fall on both.  The publisher
   runs at 1.2x the engine's fps just measured (--rate: another factor, or Hz): at
   exactly 1x, jitter in the frame times alone would leave the node now waiting for a
   frame, now replacing one, and the ratio would measure that queue, not the node.
   Then twice the engine's fps, with drops read from the node's /diagnostics.
3. ``--soak S``: the node at twice the rate for S seconds: RSS, latency trend, crashes.

Everything runs on a private ROS_DOMAIN_ID; nothing is downloaded (random weights for
every model but the shipped one).

Modules: ``config`` (BenchConfig, model names, schedules), ``models`` (the model zoo,
the shipped checkpoint, the plan, its equal-terms rows), ``timing`` (frames, /proc
memory, timing one model), ``flops`` (FLOPs per frame, the matmul ceiling), ``graphs``
(the CUDA graph path), ``workers`` (the ``--worker`` / ``--engine-worker`` /
``--matmul-worker`` subprocesses), ``node_phases`` (node and engine windows, overload,
soak), ``report`` (tables, targets and their ratios, JSON), ``runner`` (one whole run),
``cli`` (the command line).  No module here imports ROS: the DDS side is
``icnet_ros.ros.bench_harness``, imported only when the node phases run.
"""

from .cli import main
from .config import ALL_MODELS, BenchConfig, BenchError, CITYSCAPES, KITTI
from .flops import count_flops, matmul_rate
from .graphs import GraphedPath
from .models import build
from .node_phases import nominal_windows
from .report import markdown, public, ratios, targets
from .runner import run
from .timing import measure_model

__all__ = ["ALL_MODELS", "CITYSCAPES", "KITTI", "BenchConfig", "BenchError", "GraphedPath", "build", "count_flops",
           "main", "markdown", "matmul_rate", "measure_model", "nominal_windows", "public", "ratios", "run", "targets"]
