"""
``make gpu-check``: prove the CUDA paths on a machine with a GPU, in minutes, one command.

No ROS imports: the node runs as the demo runs it, in a subprocess.

Steps, each timed and judged (docs/gpu.md says how to read the table):
  nvidia-smi       the driver sees the GPUs
  torch            torch sees CUDA: version, devices, compute capability
  tests            the test suite's CUDA-marked tests (pytest -m cuda)
  node             the demo: the node over DDS on the sample frames with device auto;
                   a mask and a grid come back for every frame, on cuda:0
  train            50 iterations with AMP on synthetic road scenes, then --resume for 50 more;
                   the gradient scaler's state saved and taken up again
  evaluate         the trained model: evaluate fp16 against fp32 (mIoU within 1 point),
                   and the shipped model's class maps on the sample frames (99.5 % agree)
  bench            bench --quick --device cuda --no-node: fp32, fp16, fp16+graph rows
                   without errors, bf16 too where the GPU has it (8.0 or newer)
  torchrun         with two GPUs or more: train under torchrun --nproc_per_node 2

One summary table; exit 0 when every step passed or was skipped, 1 on any failure, and
77 (the test-suite convention for 'skipped') on a machine without CUDA, after one line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
import os
from pathlib import Path
import subprocess
import sys
import time

NO_CUDA = 77
STEPS = ("nvidia-smi", "torch", "tests", "node", "train", "evaluate", "bench", "torchrun")


@dataclass
class Outcome:
    step: str
    status: str           # ok, FAILED or skipped
    seconds: float
    detail: str


class StepFailed(Exception):
    """A step's check did not hold; the message is the table's detail."""


class Skipped(Exception):
    """A step that does not apply here (one GPU for torchrun, no test/ folder)."""


def table(outcomes: list[Outcome]) -> str:
    """Return the summary table: one row per step."""
    rows = [("step", "result", "seconds", "detail")]
    rows += [(o.step, o.status, f"{o.seconds:.0f}", o.detail) for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def exit_code(outcomes: list[Outcome]) -> int:
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


def run(cmd: list[str], timeout: float, log: Path, env: dict | None = None) -> str:
    """Run cmd, its output kept in log; return the output, StepFailed on a non-zero exit or a timeout."""
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        log.write_text(out.decode(errors="replace") if isinstance(out, bytes) else out)   # bytes despite text=True
        raise StepFailed(f"timed out after {timeout:.0f} s (log {log})") from None
    log.write_text(proc.stdout)
    if proc.returncode != 0:
        tail = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()][-1:] or [""]
        raise StepFailed(f"exit {proc.returncode}: {tail[0][:160]} (log {log})")
    return proc.stdout


def py(*args: str) -> list[str]:
    return [sys.executable, *args]


# --- the steps ---------------------------------------------------------------------------

def step_nvidia_smi(work: Path) -> str:
    try:
        out = run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"], 60,
                  work / "nvidia-smi.log")
    except FileNotFoundError:
        raise StepFailed("nvidia-smi is not on PATH") from None
    return "; ".join(line.strip() for line in out.strip().splitlines())


def step_torch(work: Path) -> str:
    import torch

    names = [f"cuda:{i} {torch.cuda.get_device_name(i)} ({'.'.join(map(str, torch.cuda.get_device_capability(i)))})"
             for i in range(torch.cuda.device_count())]
    return f"torch {torch.__version__}, CUDA {torch.version.cuda}: " + ", ".join(names)


def step_tests(work: Path) -> str:
    if not Path("test").is_dir():
        raise Skipped("no test/ folder here: run from a copy of the repository")
    out = run(py("-m", "pytest", "-q", "-m", "cuda", "test"), 480, work / "tests.log")
    return out.strip().splitlines()[-1]


def step_node(work: Path) -> str:
    out_dir = work / "demo"
    out = run(py("-m", "icnet_ros.tools.demo", "--out", str(out_dir), "--device", "auto", "--timeout", "150"), 200,
              work / "node.log")
    masks, grids = len(list(out_dir.glob("*_mask.png"))), len(list(out_dir.glob("*_grid.png")))
    line = next((ln for ln in out.splitlines() if ln.startswith("node (median")), "")
    if not masks or masks != grids or " on cuda:0 " not in line:
        raise StepFailed(f"{masks} masks, {grids} grids; {line or 'no node line'} (log {work / 'node.log'})")
    return f"{masks} masks and grids; " + line.split(": ", 1)[-1][:110]


def synthetic_folder(root: Path, n: int = 16, h: int = 256, w: int = 512) -> str:
    """Write road scenes (grey road under a blue sky, the horizon moving) as a folder: source."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(n):
        horizon = h // 2 + int(rng.integers(-h // 8, h // 8 + 1))
        ids = np.zeros((h, w), np.uint8)
        ids[horizon:] = 1
        image = np.where(ids[..., None] == 1, (110, 110, 110), (220, 140, 90)).astype(np.float32)  # BGR
        image += rng.normal(0, 12, image.shape)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / f"s{i:03d}.png"), image.clip(0, 255).astype(np.uint8))
        cv2.imwrite(str(root / "masks" / f"s{i:03d}.png"), ids)
    return f"folder:{root / 'images'}:{root / 'masks'}"


def train_command(data: str, out: Path, epochs: int, *extra: str) -> list[str]:
    return ["-m", "icnet_ros.tools.train", "--data", data, "--val", data, "--out", str(out), "--model", "r18",
            "--crop", "192x256", "--batch-size", "8", "--epoch-size", "400", "--max-iters", "50",
            "--epochs", str(epochs), "--preview", "1", "--device", "auto", *extra]


def step_train(work: Path) -> str:
    from ..inference.checkpoint import read_checkpoint

    data = synthetic_folder(work / "scenes")
    run_dir = work / "run"
    run(py(*train_command(data, run_dir, 1)), 240, work / "train.log")
    first = read_checkpoint(run_dir / "last.pt")[2]["scaler"]
    run(py(*train_command(data, run_dir, 2, "--resume")), 240, work / "resume.log")
    extra = read_checkpoint(run_dir / "last.pt")[2]
    if not first or not extra.get("scaler"):
        raise StepFailed("no gradient scaler state saved: AMP was off")
    if "saved without AMP" in (work / "resume.log").read_text():
        raise StepFailed("--resume did not take up the gradient scaler's state")
    return (f"{extra['iteration']} iterations with AMP, resumed at 50; loss scale {first['scale']:.0f} -> "
            f"{extra['scaler']['scale']:.0f}")


def agreement(a, b) -> float:
    """Return the share of pixels two lists of class maps agree on."""
    import numpy as np

    same = sum(int(np.count_nonzero(x == y)) for x, y in zip(a, b))
    return same / max(sum(x.size for x in a), 1)


def step_evaluate(work: Path) -> str:
    if not (work / "run" / "best.pt").is_file():
        raise StepFailed("no trained model: the train step failed")
    data = f"folder:{work / 'scenes' / 'images'}:{work / 'scenes' / 'masks'}"
    miou = {}
    for precision in ("fp32", "fp16"):
        out = work / f"evaluate_{precision}.json"
        run(py("-m", "icnet_ros.tools.evaluate", "--checkpoint", str(work / "run" / "best.pt"), "--data", data,
               "--device", "auto", "--precision", precision, "--json", str(out)), 180,
            work / f"evaluate_{precision}.log")
        miou[precision] = json.loads(out.read_text())["miou"]
    share = shipped_agreement()
    detail = f"mIoU fp32 {100 * miou['fp32']:.2f}, fp16 {100 * miou['fp16']:.2f}; shipped model fp16 = fp32 " \
             f"on {100 * share:.2f} % of the sample frames' pixels"
    if abs(miou["fp32"] - miou["fp16"]) > 0.01 or share < 0.995:
        raise StepFailed(detail)
    return detail


def shipped_agreement() -> float:
    """Return the share of pixels where the shipped model's fp16 and fp32 class maps agree (sample frames)."""
    from ..data.image_io import list_images, read_image
    from ..inference.engine import Engine
    from ..paths import default_model_path, sample_frames_dir

    frames = [read_image(p) for p in list_images(sample_frames_dir() / "image_2")]
    maps = {}
    for precision in ("fp32", "fp16"):
        engine = Engine.from_checkpoint(default_model_path(), device="cuda", precision=precision)
        maps[precision] = [r.classes for r in engine.infer(frames)]
    return agreement(maps["fp32"], maps["fp16"])


def bench_verdict(rows: list[dict], capability: tuple[int, int]) -> str:
    """Judge bench rows: every fp32 / fp16 / fp16+graph row (bf16 from 8.0) without error; else StepFailed."""
    wanted = {"fp32", "fp16", "fp16+graph"} | ({"bf16"} if capability >= (8, 0) else set())
    bad = [r for r in rows if r["precision"] in wanted and r.get("error")]
    if bad:
        r = bad[0]
        raise StepFailed(f"{len(bad)} rows failed, e.g. {r['name']} {r['height']}x{r['width']} b{r['batch']} "
                         f"{r['precision']}: {r['error']}")
    shipped = [r for r in rows if r.get("shipped") and r["precision"] == "fp16+graph"] or \
        [r for r in rows if r["precision"] in wanted]
    if not shipped:
        raise StepFailed("no rows")
    best = max(shipped, key=lambda r: r["fps"])
    return (f"{sum(r['precision'] in wanted for r in rows)} rows without errors; {best['name']} "
            f"{best['height']}x{best['width']} b{best['batch']} {best['precision']}: {best['fps']:.0f} fps")


def step_bench(work: Path) -> str:
    import torch

    out = work / "bench.json"
    run(py("-m", "icnet_ros.bench", "--quick", "--device", "cuda", "--no-node", "--json", str(out)), 300,
        work / "bench.log")
    return bench_verdict(json.loads(out.read_text())["models"], torch.cuda.get_device_capability(0))


def step_torchrun(work: Path) -> str:
    import torch

    if torch.cuda.device_count() < 2:
        raise Skipped("one GPU")
    data = f"folder:{work / 'scenes' / 'images'}:{work / 'scenes' / 'masks'}"
    if not (work / "scenes" / "images").is_dir():
        data = synthetic_folder(work / "scenes")
    cmd = py("-m", "torch.distributed.run", "--nproc_per_node", "2", *train_command(data, work / "ddp", 1))
    cmd[cmd.index("--max-iters") + 1] = "10"
    run(cmd, 240, work / "torchrun.log")
    return "2 processes (NCCL), 10 iterations each"


def run_steps(names, work: Path) -> list[Outcome]:
    outcomes = []
    for name in names:
        start = time.monotonic()
        print(f"gpu-check: {name} ...", flush=True)
        try:
            status, detail = "ok", globals()[f"step_{name.replace('-', '_')}"](work)
        except Skipped as e:
            status, detail = "skipped", str(e)
        except StepFailed as e:
            status, detail = "FAILED", str(e)
        except Exception as e:  # a step's own bug or an unexpected CUDA error: a row, not a stop
            status, detail = "FAILED", f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}"
        outcomes.append(Outcome(name, status, time.monotonic() - start, detail))
    return outcomes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="gpu_check", description=__doc__.strip().splitlines()[0])
    ap.add_argument("--out", default="output/gpu-check", help="folder for the logs and the runs' files")
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="run only these steps")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing checked",
              file=sys.stderr)
        return NO_CUDA
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    outcomes = run_steps(args.steps, work)
    print(table(outcomes))
    code = exit_code(outcomes)
    print(f"gpu-check: {'all steps passed' if code == 0 else 'FAILED'} (logs in {work}/)")
    return code


if __name__ == "__main__":
    sys.exit(main())
