"""
Training's GPU paths, checked on the CPU.

The validation all-reduce on the process's device, resuming an AMP run from a
checkpoint saved without the scaler, a train step under autocast, and the
normalisation statistics made once per device.
"""

import numpy as np
import pytest
import torch

from icnet_ros.inference.checkpoint import IMAGENET_MEAN, IMAGENET_STD
from icnet_ros.metrics import ConfusionMatrix
from icnet_ros.nn.loss import CascadeLoss
from icnet_ros.nn.model import ICNet
from icnet_ros.training.epoch import train_step
from icnet_ros.training.normalise import norm_stats, normalise
from icnet_ros.training.optim import load_scaler
from icnet_ros.training.validation import reduce_confusion

torch.set_num_threads(1)


class FakeDist:
    """
    A two-process job whose device is not the CPU: 'meta' stands in for a GPU (NCCL takes device tensors only).

    The reduction sums what every rank would send.
    """

    world, rank = 2, 0
    device = torch.device("meta")

    def __init__(self):
        self.reduced = []

    def sum_(self, t):
        self.reduced.append(t.device)
        if t.device != self.device:
            raise AssertionError(f"all_reduce of a tensor on {t.device} in a process on {self.device}")
        return torch.full(t.shape, 2, dtype=t.dtype)   # both ranks' counts: 1 + 1, back as a real tensor


def test_validation_counts_are_reduced_on_the_process_device():
    cm = ConfusionMatrix(3, 255)
    cm.matrix[:] = 1
    ddp = FakeDist()
    out = reduce_confusion(cm, ddp)
    assert ddp.reduced == [torch.device("meta")]
    assert isinstance(out.matrix, np.ndarray) and (out.matrix == 2).all()


def test_resuming_with_amp_from_a_checkpoint_saved_without_the_scaler():
    off = torch.amp.GradScaler("cpu", enabled=False)
    assert off.state_dict() == {}                      # what a CPU or --no-amp run saves
    on = torch.amp.GradScaler("cpu", enabled=True)      # the resumed run, with AMP
    with pytest.raises(RuntimeError, match="empty"):
        on.load_state_dict({})                           # what resuming did
    assert load_scaler(on, {}) is False and load_scaler(on, None) is False
    assert on.get_scale() == 2.0 ** 16                   # starts afresh
    saved = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0).state_dict()
    assert load_scaler(on, saved) is True and on.get_scale() == 1024.0


def test_a_train_step_under_cpu_bf16_autocast():
    """
    Train as AMP runs on the GPU: low-precision network, fp32 loss, finite gradients.

    The gradients reach every parameter; nothing is read back on the host.
    """
    torch.manual_seed(0)
    model = ICNet(3, "r18", 0.25).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    images = torch.randint(0, 256, (2, 48, 64, 3), dtype=torch.uint8)
    labels = torch.randint(0, 3, (2, 48, 64))
    labels[:, :8] = 255
    before = [p.detach().clone() for p in model.parameters()]
    loss = train_step(model, CascadeLoss(), opt, scaler, images, labels, torch.device("cpu"), torch.bfloat16)
    assert loss.dtype == torch.float32 and loss.dim() == 0 and not loss.requires_grad
    assert torch.isfinite(loss) and loss > 0
    for (name, p), old in zip(model.named_parameters(), before):
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p.grad).all(), name
    assert any(not torch.equal(p, old) for p, old in zip(model.parameters(), before))   # the step was taken


def test_normalisation_statistics_are_made_once_per_device():
    from icnet_ros.inference.deploy import normalise as engine_normalise

    cpu = torch.device("cpu")
    assert norm_stats(cpu) is norm_stats(cpu)
    images = torch.randint(0, 256, (1, 16, 24, 3), dtype=torch.uint8)
    expect = engine_normalise(images, IMAGENET_MEAN, IMAGENET_STD)
    assert torch.equal(normalise(images, "cpu"), expect)
