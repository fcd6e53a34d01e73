"""Training through the CLI on synthetic KITTI, CamVid and folder data (bags: test_bags.py)."""

import csv

import numpy as np
import pytest
import torch

from icnet_ros.classes import CAMVID, KITTI_ROAD
from icnet_ros.inference.checkpoint import load_checkpoint, read_checkpoint
from icnet_ros.inference.engine import Engine
from icnet_ros.tools.train import main as train_main

from synthetic import make_camvid, make_folder, make_kitti

torch.set_num_threads(1)
SMALL = ["--model", "r18", "--width", "0.25", "--workers", "0", "--threads", "1"]


def train(out, data, *extra):
    return train_main(["--data", data, "--out", str(out), *SMALL, *extra])


def rows(out):
    with (out / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_kitti_layout_trains_and_writes_every_output(tmp_path):
    root = make_kitti(tmp_path / "kitti", n=4)
    out = tmp_path / "run"
    rc = train(out, f"kitti:{root}", "--val-split", "0.25", "--crop", "48x64", "--batch-size", "2",
               "--epochs", "2", "--max-iters", "1")
    assert rc == 0
    model, meta, extra = load_checkpoint(out / "last.pt")
    assert meta.classes == KITTI_ROAD and meta.variant == "r18" and meta.width == 0.25
    assert extra["epoch"] == 1 and extra["iteration"] == 2
    assert read_checkpoint(out / "best.pt")[2] == {}  # best.pt: weights only, no optimiser
    r = rows(out)
    assert [x["epoch"] for x in r] == ["1", "2"] and 0 <= float(r[-1]["val_miou"]) <= 1
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert (out / "curves.png").stat().st_size > 1000
    import cv2

    preview = cv2.imread(str(out / "previews" / "epoch_002.png"))
    assert preview.shape[1] == 3 * 96  # image | ground truth | prediction
    # the checkpoint is what the node's engine loads
    eng = Engine.from_checkpoint(out / "best.pt", device="cpu", warmup=False)
    assert eng.infer(np.zeros((64, 96, 3), np.uint8))[0].classes.shape == (64, 96)


def test_camvid_layout_trains(tmp_path):
    root = make_camvid(tmp_path / "cv", "train", n=2)
    make_camvid(root, "val", n=1, seed=5)
    out = tmp_path / "run"
    rc = train(out, f"camvid:{root}:train", "--val", f"camvid:{root}:val", "--crop", "48x64",
               "--batch-size", "2", "--epochs", "1", "--class-weights", "auto", "--optimizer", "adamw")
    assert rc == 0
    _, meta, _ = load_checkpoint(out / "best.pt")
    assert meta.classes == CAMVID


def test_tiny_overfit_loss_falls_and_miou_passes(tmp_path):
    images, masks = make_folder(tmp_path / "f", n=4)
    out = tmp_path / "run"
    rc = train(out, f"folder:{images}:{masks}", "--val", f"folder:{images}:{masks}", "--crop", "64x96",
               "--scale", "0.9", "1.1", "--batch-size", "4", "--epochs", "12", "--optimizer", "adamw",
               "--lr", "0.005", "--preview", "0")
    assert rc == 0
    r = rows(out)
    losses = [float(x["train_loss"]) for x in r]
    assert losses[-1] < losses[0] / 3
    assert max(float(x["val_miou"]) for x in r) >= 0.8
    # best.pt really is the best epoch's model: scoring it again gives the best mIoU
    from icnet_ros.data.datasets import open_dataset
    from icnet_ros.training.validation import evaluate_model

    model, meta, _ = load_checkpoint(out / "best.pt")
    cm = evaluate_model(model, open_dataset(f"folder:{images}:{masks}"), torch.device("cpu"))
    assert cm.miou() == pytest.approx(max(float(x["val_miou"]) for x in r), abs=1e-5)
    assert meta.info["val_miou"] == pytest.approx(cm.miou(), abs=1e-4)


def test_init_reinitialises_the_classifier_when_classes_differ(tmp_path, capsys):
    camvid = make_camvid(tmp_path / "cv", "train", n=2)
    assert train(tmp_path / "a", f"camvid:{camvid}:train", "--crop", "32x48", "--batch-size", "2",
                 "--epochs", "1", "--preview", "0") == 0
    images, masks = make_folder(tmp_path / "f", n=2)
    rc = train(tmp_path / "b", f"folder:{images}:{masks}", "--init", str(tmp_path / "a" / "last.pt"),
               "--crop", "32x48", "--batch-size", "2", "--epochs", "1", "--lr", "0", "--preview", "0")
    assert rc == 0
    assert "re-initialised" in capsys.readouterr().out
    a, _, _ = load_checkpoint(tmp_path / "a" / "last.pt")
    b, meta, _ = load_checkpoint(tmp_path / "b" / "last.pt")
    assert meta.classes.num_classes == 2 and b.classifier.weight.shape[0] == 2
    # lr 0: the backbone is exactly the CamVid one (BN statistics still move in train mode)
    assert torch.equal(a.sub1[0][0].weight, b.sub1[0][0].weight)


def test_divergence_stops_with_a_clear_message_and_keeps_a_good_checkpoint(tmp_path, capfd):
    images, masks = make_folder(tmp_path / "f", n=4)
    out = tmp_path / "run"
    rc = train(out, f"folder:{images}:{masks}", "--crop", "64x96", "--batch-size", "2", "--epochs", "4",
               "--max-iters", "2", "--optimizer", "sgd", "--lr", "1e4", "--preview", "0")
    err = capfd.readouterr().err.strip()
    assert rc == 3
    assert "train: error: " in err and "keeping the last good checkpoint" in err and "--lr" in err
    assert len(err.splitlines()) == 1
    if (out / "last.pt").exists():
        model, _, extra = load_checkpoint(out / "last.pt")
        assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
        assert extra["epoch"] < 3


def test_resume_without_a_run_is_a_clear_error(tmp_path, capfd):
    images, masks = make_folder(tmp_path / "f", n=1)
    rc = train(tmp_path / "run", f"folder:{images}:{masks}", "--resume")
    assert rc == 2
    assert capfd.readouterr().err.strip() == (f"train: error: --resume: {tmp_path / 'run' / 'last.pt'} does not "
                                              f"exist (nothing to resume in {tmp_path / 'run'})")
