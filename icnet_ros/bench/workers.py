"""
The bench's subprocesses.

Each is started as ``python -m icnet_ros.bench`` with a hidden first argument and a JSON
spec:

- ``--worker SPEC``: one model's configurations (``timing.measure_model``); prints the
  rows as one JSON line.  Each model runs in a process of its own so that its peak RSS
  is its own.
- ``--engine-worker SPEC``: the bare engine on the node's frames (or on frames at the
  network size); answers each line of stdin (seconds, and 'node' or 'net') with the
  engine's fps over that long, and stays loaded in between.
- ``--matmul-worker SPEC``: the machine's torch.mm rate (``flops.matmul_rate``) in a
  process started as the model workers are, so with their thread count; one JSON line.
- ``--turns-worker SPEC``: the CPU targets' engines timed in turns (``turns.py``); one
  JSON line.
- ``--sizes-worker SPEC``: the shipped model per frame size timed in turns (``sizes.py``);
  one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .config import BenchConfig, KITTI, log, PEER
from .flops import matmul_rate
from .models import equal_terms_shape, model_plan, zoo_name
from .sizes import sizes_in_turns
from .threads import in_thread
from .timing import measure_model, sample_frames
from .turns import compare_in_turns

WORKER, ENGINE_WORKER, MATMUL_WORKER, TURNS_WORKER = "--worker", "--engine-worker", "--matmul-worker", "--turns-worker"
SIZES_WORKER = "--sizes-worker"


def _bench_command(flag: str, spec: dict) -> list[str]:
    return [sys.executable, "-m", "icnet_ros.bench", flag, json.dumps(spec)]


def worker_main(argv: list[str]) -> int | None:
    """
    Run the worker argv asks for and return its exit code.

    None when argv is not a worker's (the command line is the user's).
    """
    if argv[:1] == [WORKER]:                           # one model in a subprocess
        print(json.dumps(measure_model(json.loads(argv[1]))))
        return 0
    if argv[:1] == [ENGINE_WORKER]:                    # the bare engine in a subprocess
        spec = json.loads(argv[1])
        frames = {"node": sample_frames(tuple(spec["shape"])), "net": sample_frames(tuple(spec["net"]))}
        engine_worker(spec["checkpoint"], spec["device"], frames)
        return 0
    if argv[:1] == [MATMUL_WORKER]:                    # the matmul ceiling in a subprocess
        print(json.dumps(matmul_rate(**json.loads(argv[1]))))
        return 0
    if argv[:1] == [TURNS_WORKER]:                     # the targets' engines in turns
        print(json.dumps(compare_in_turns(json.loads(argv[1]))))
        return 0
    if argv[:1] == [SIZES_WORKER]:                     # the shipped model per frame size, in turns
        print(json.dumps(sizes_in_turns(json.loads(argv[1]))))
        return 0
    return None


def bench_matmul(cfg: BenchConfig) -> dict:
    """
    Return the machine's matmul rate (``flops.matmul_rate``); cfg: a resolved BenchConfig.

    On the CPU 1024 x 1024 with --quick, else 2048 x 2048; 8192 x 8192 fp16 on CUDA.
    In a subprocess of its own unless cfg.isolate is False.  A failure is logged and
    leaves gflops NaN: the ceiling is context for the rows, not a reason to stop.
    """
    spec = {"device": cfg.device, "n": 0 if cfg.cuda else (1024 if cfg.quick else 2048)}
    try:
        if not cfg.isolate:
            return matmul_rate(**spec)
        proc = subprocess.run(_bench_command(MATMUL_WORKER, spec), stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"exit code {proc.returncode}")
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except Exception as e:  # any failure only loses the ceiling
        log(f"bench: matmul rate not measured: {type(e).__name__}: {e}")
        return {"gflops": float("nan")}


def calibration_dir(cfg: BenchConfig) -> str:
    """Return the images int8+ort rows calibrate on: --calibration, else the sample KITTI frames."""
    if cfg.calibration:
        return str(cfg.calibration)
    from ..paths import sample_frames_dir

    try:
        return str(sample_frames_dir() / "image_2")
    except FileNotFoundError:
        return ""           # the int8 rows then fail with the engine's one-line reason


def bench_models(cfg: BenchConfig, shipped: str | None) -> list[dict]:
    """
    Return the model rows of the report; cfg: a resolved BenchConfig.

    The shipped checkpoint is benched under its zoo name (added to the models
    if missing); ``models.model_plan`` adds the equal-terms rows.
    """
    shipped_name = zoo_name(shipped) if shipped else None
    rows = []
    for name, configs in model_plan(cfg, cfg.models, shipped).items():
        if not configs:
            continue
        spec = {"name": name, "device": cfg.device, "quick": cfg.quick, "configs": configs,
                "checkpoint": shipped if name == shipped_name else None, "schedule": cfg.schedule,
                "calibration": calibration_dir(cfg)}
        if not cfg.isolate:
            rows += measure_model(spec)
            continue
        proc = subprocess.run(_bench_command(WORKER, spec), stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench worker for {name} failed with exit code {proc.returncode}")
        rows += json.loads(proc.stdout.strip().splitlines()[-1])
    return rows


def bench_turns(cfg: BenchConfig, shipped: str | None, rows: list[dict]) -> dict | None:
    """
    Return the CPU targets' fps timed in turns (``turns.compare_in_turns``); cfg: a resolved BenchConfig.

    The precisions are those the shipped model's 375x1242 rows ran (and did not fail).
    None where there is nothing to compare: on CUDA, without a shipped model, LR-ASPP
    or 375x1242 frames, or when the shipped network runs those frames as they are.
    """
    net = equal_terms_shape(shipped)
    if cfg.cuda or not net or net == KITTI or PEER not in cfg.models or KITTI not in cfg.shapes:
        return None
    precisions = [r["precision"] for r in rows if r["shipped"] and not r.get("error") and r["batch"] == 1
                  and (r["height"], r["width"]) == KITTI]
    if not precisions:
        return None
    spec = {"checkpoint": shipped, "net": list(net), "precisions": precisions, "quick": cfg.quick,
            "calibration": calibration_dir(cfg), "schedule": cfg.schedule,
            "cameras": [list(s) for s in cfg.camera_shapes or []]}
    return compare_in_turns(spec) if not cfg.isolate else _worker_result(TURNS_WORKER, "turns", spec)


def bench_sizes(cfg: BenchConfig, shipped: str | None, rows: list[dict]) -> dict | None:
    """
    Return the shipped model's fps per frame size in turns (``sizes.sizes_in_turns``); cfg: a resolved BenchConfig.

    The precisions are those the shipped model's rows ran (and did not fail); the sizes
    the run's frame sizes and camera shapes.  None on CUDA or without a shipped model.
    """
    if cfg.cuda or not shipped:
        return None
    precisions = list(dict.fromkeys(r["precision"] for r in rows if r["shipped"] and not r.get("error")
                                    and r["batch"] == 1))
    sizes = list(dict.fromkeys(tuple(s) for s in list(cfg.shapes) + list(cfg.camera_shapes or [])))
    if not precisions:
        return None
    spec = {"checkpoint": shipped, "sizes": [list(s) for s in sizes], "precisions": precisions, "quick": cfg.quick,
            "calibration": calibration_dir(cfg), "schedule": cfg.schedule}
    return sizes_in_turns(spec) if not cfg.isolate else _worker_result(SIZES_WORKER, "sizes", spec)


def _worker_result(worker: str, name: str, spec: dict) -> dict:
    """Run a bench worker in a process of its own and return the JSON of its last line."""
    proc = subprocess.run(_bench_command(worker, spec), stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench {name} worker failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class EngineWorker:
    """
    The bare engine on the node's frames, one frame a call as the node gets them, in a process of its own like the node.

    It stays loaded between windows (blocked on its stdin, idle) so that engine and
    node windows can be taken in turn.
    """

    def __init__(self, checkpoint: str, device: str, shape, net=None):
        """shape: the node's frames; net: the frames of fps(..., 'net') (the network size), default shape."""
        spec = {"checkpoint": checkpoint, "device": device, "shape": list(shape), "net": list(net or shape)}
        self.proc = subprocess.Popen(_bench_command(ENGINE_WORKER, spec),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def fps(self, seconds: float, which: str = "node") -> float:
        self.proc.stdin.write(f"{seconds} {which}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench engine worker failed with exit code {self.proc.wait()}")
        return float(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def engine_worker(checkpoint: str, device: str, frame_sets: dict) -> None:
    """Answer each line of stdin (seconds, and 'node' or 'net': which frames) with the engine's fps over that long."""
    from ..inference.engine import Engine

    # As in the node: loaded and warmed up on the main thread, run on a worker thread.
    engine = Engine.from_checkpoint(checkpoint, device, "auto", warmup=True)

    def loop(seconds: float, frames: list) -> float:
        for f in frames[:2]:
            engine.infer(f)
        n, start = 0, time.perf_counter()
        while n < 5 or time.perf_counter() - start < seconds:
            engine.infer(frames[n % len(frames)])
            n += 1
        return n / (time.perf_counter() - start)

    for line in sys.stdin:
        seconds, *which = line.split()
        print(in_thread(loop, float(seconds), frame_sets[which[0] if which else "node"]), flush=True)
