"""
The train command under torchrun: DistributedDataParallel over 2 CPU processes (gloo).

Every all-reduce checked to be on the process's device (NCCL, on GPUs, takes nothing else).
"""

import csv
import os
import subprocess
import sys

import pytest
import torch

from icnet_ros.inference.checkpoint import load_checkpoint

from synthetic import make_folder

# train's main with torch.distributed.all_reduce wrapped: a tensor that is not on the
# device the process trains on (Dist.device) fails the run.
CHECKED_TRAIN = """
import sys
import torch.distributed as dist
from icnet_ros.tools import train

process = {}
init, real_all_reduce = train.Dist.__init__, dist.all_reduce


def remember(self, *args, **kwargs):
    init(self, *args, **kwargs)
    process["device"] = self.device


def all_reduce(tensor, *args, **kwargs):
    if tensor.device != process["device"]:
        raise AssertionError(f"all_reduce of a tensor on {tensor.device} in a process training on {process['device']}")
    process["checked"] = process.get("checked", 0) + 1
    return real_all_reduce(tensor, *args, **kwargs)


train.Dist.__init__, dist.all_reduce = remember, all_reduce
code = train.main(sys.argv[1:])
print(f"all-reduces checked: {process.get('checked', 0)}")
sys.exit(code)
"""


@pytest.mark.slow
def test_two_cpu_processes_train_and_rank0_saves(tmp_path):
    images, masks = make_folder(tmp_path / "f", n=4)
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    script = tmp_path / "checked_train.py"
    script.write_text(CHECKED_TRAIN)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), "--data", f"folder:{images}:{masks}", "--val", f"folder:{images}:{masks}",
           "--out", str(out), "--model", "r18", "--width", "0.25", "--crop", "48x64", "--batch-size", "1",
           "--epochs", "2", "--workers", "0", "--threads", "1", "--device", "cpu", "--preview", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    # each process, each epoch: its training losses and its validation counts
    assert p.stdout.count("all-reduces checked: 4") == 2, p.stdout
    # rank 0 alone logs: one start line naming the world size, one line per epoch
    assert p.stdout.count("2 processes") == 1, p.stdout
    assert p.stdout.count("epoch 1/2") == 1 and p.stdout.count("epoch 2/2") == 1
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    # 4 images, 2 processes, batch 1: each process takes 2 steps an epoch
    assert [(r["epoch"], r["iteration"]) for r in rows] == [("1", "2"), ("2", "4")]
    assert 0 <= float(rows[-1]["val_miou"]) <= 1
    model, meta, extra = load_checkpoint(out / "last.pt")
    assert extra["epoch"] == 1 and meta.classes.num_classes == 2
    assert not any(k.startswith("module.") for k in model.state_dict())
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert (out / "best.pt").is_file() and (out / "previews" / "epoch_002.png").is_file()
