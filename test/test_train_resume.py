"""An interrupted run, resumed with --resume, ends exactly where an uninterrupted run does."""

import csv

import torch

from icnet_ros.inference.checkpoint import read_checkpoint
from icnet_ros.nn.loss import CascadeLoss
from icnet_ros.tools import train as train_mod
from icnet_ros.training import optim

from synthetic import make_folder

torch.set_num_threads(1)


def args(data, out, *extra):
    return ["--data", data, "--val", data, "--out", str(out), "--model", "r18", "--width", "0.25",
            "--crop", "48x64", "--batch-size", "2", "--epochs", "3", "--optimizer", "sgd", "--lr", "0.01",
            "--workers", "0", "--threads", "1", "--preview", "0", *extra]


class InterruptAt(CascadeLoss):
    """The loss, until call number ``at``, where the user presses Ctrl-C."""

    calls = 0
    at = 4

    def forward(self, outputs, labels):
        type(self).calls += 1
        if type(self).calls == self.at:
            raise KeyboardInterrupt
        return super().forward(outputs, labels)


def table(out):
    with (out / "metrics.csv").open() as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, monkeypatch, capfd):
    images, masks = make_folder(tmp_path / "f", n=4)
    data = f"folder:{images}:{masks}"
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert train_mod.main(args(data, whole)) == 0

    # 2 steps an epoch: call 4 is the second step of epoch 2, after epoch 1 was saved
    monkeypatch.setattr(optim, "CascadeLoss", InterruptAt)
    assert train_mod.main(args(data, broken)) == 130
    assert "--resume" in capfd.readouterr().err
    assert read_checkpoint(broken / "last.pt")[2]["epoch"] == 0
    monkeypatch.setattr(optim, "CascadeLoss", CascadeLoss)
    assert train_mod.main(args(data, broken, "--resume")) == 0

    _, a, ea = read_checkpoint(whole / "last.pt")
    _, b, eb = read_checkpoint(broken / "last.pt")
    assert ea["epoch"] == eb["epoch"] == 2 and ea["iteration"] == eb["iteration"] == 6
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for sa, sb in zip(ea["optimizer"]["state"].values(), eb["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert ea["best_score"] == eb["best_score"]
    assert table(whole) == table(broken)
    best_a, best_b = read_checkpoint(whole / "best.pt")[1], read_checkpoint(broken / "best.pt")[1]
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)

    # resuming a finished run does nothing
    assert train_mod.main(args(data, broken, "--resume")) == 0
    assert "nothing to do" in capfd.readouterr().out
