"""
Damaged samples: a corrupt PNG, a zero-byte file and a mask of the wrong size in a folder.

Training skips exactly those three (two found from the headers before the first epoch,
the corrupt one by the DataLoader worker that fails to decode it), warns once each and
lists them; ``--strict`` stops at the first; ``--max-bad 0`` fails before the first epoch.
"""

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from icnet_ros.data.damaged import header_size
from icnet_ros.data.image_io import Encoded
from icnet_ros.tools.evaluate import main as evaluate_main
from icnet_ros.tools.train import main as train_main
from synthetic import make_folder, write_ids

torch.set_num_threads(1)
SMALL = ["--model", "r18", "--width", "0.25", "--threads", "1", "--crop", "32x48", "--batch-size", "2",
         "--epochs", "1", "--preview", "0"]


def damaged_folder(tmp_path, n=8):
    """Return (images, masks, [the three damaged files]) of a folder of n pairs."""
    images, masks = make_folder(tmp_path / "data", n=n)
    corrupt = images / "f001.png"       # its header is whole: only decoding finds the damage
    corrupt.write_bytes(corrupt.read_bytes()[:80])
    empty = images / "f003.png"
    empty.write_bytes(b"")
    wrong = masks / "f005.png"
    write_ids(wrong, np.zeros((20, 30), np.uint8))
    return images, masks, [corrupt, empty, wrong]


def train(tmp_path, capfd, images, masks, *extra):
    out = tmp_path / "run"
    rc = train_main(["--data", f"folder:{images}:{masks}", "--out", str(out), *SMALL, *extra])
    return rc, capfd.readouterr(), out


def test_training_skips_exactly_the_damaged_samples_and_lists_them(tmp_path, capfd):
    images, masks, (corrupt, empty, wrong) = damaged_folder(tmp_path)
    rc, cap, out = train(tmp_path, capfd, images, masks, "--max-bad", "0.5", "--workers", "1", "--val-split", "0.34")
    assert rc == 0, cap.err
    warnings = [ln for ln in cap.err.splitlines() if ln.startswith("warning:")]
    assert warnings == [f"warning: skipped a damaged sample: image {empty} is empty (0 bytes)",
                        f"warning: skipped a damaged sample: mask {wrong} is 30x20 but image {images / 'f005.png'} "
                        f"is 96x64",
                        f"warning: skipped a damaged sample: image {corrupt} cannot be decoded (corrupt or not an "
                        f"image)"]
    assert f"train: skipped 3 damaged samples of 8: {empty}, {wrong}, {corrupt} (listed with the reasons in " \
           f"{out / 'damaged.json'})" in cap.out
    with (out / "metrics.csv").open() as f:
        assert [r["damaged"] for r in csv.DictReader(f)] == ["3"]
    listed = json.loads((out / "damaged.json").read_text())
    assert listed["total"] == 8 and [d["file"] for d in listed["damaged"]] == [str(empty), str(wrong), str(corrupt)]
    assert (out / "last.pt").is_file()


def test_strict_stops_at_the_first_damaged_sample(tmp_path, capfd):
    images, masks, (corrupt, empty, wrong) = damaged_folder(tmp_path)
    rc, cap, out = train(tmp_path, capfd, images, masks, "--strict", "--workers", "0")
    assert rc == 2 and cap.err.strip() == (f"train: error: image {empty} is empty (0 bytes) (--strict stops at the "
                                           f"first damaged sample)")
    empty.unlink()
    (masks / "f003.png").unlink()
    wrong.unlink()
    (images / "f005.png").unlink()   # left: the corrupt image, which only decoding finds
    rc, cap, out = train(tmp_path, capfd, images, masks, "--strict", "--workers", "0")
    assert rc == 2 and cap.err.strip() == (f"train: error: image {corrupt} cannot be decoded (corrupt or not an "
                                           f"image) (--strict stops at the first damaged sample)")


def test_max_bad_0_fails_before_the_first_epoch(tmp_path, capfd):
    images, masks, (corrupt, empty, wrong) = damaged_folder(tmp_path)
    rc, cap, out = train(tmp_path, capfd, images, masks, "--max-bad", "0", "--workers", "0")
    assert rc == 2 and cap.err.strip() == (f"train: error: image {empty} is empty (0 bytes); 2 of 8 samples are "
                                           f"damaged (25.0 %), more than --max-bad 0 allows")
    assert "epoch" not in cap.out and not (out / "metrics.csv").exists()
    rc, cap, out = train(tmp_path, capfd, images, masks, "--workers", "0")   # the default, 1 %
    assert rc == 2 and "2 of 8 samples are damaged (25.0 %), more than --max-bad 0.01 allows" in cap.err
    rc, cap, out = train(tmp_path, capfd, images, masks, "--max-bad", "2")
    assert rc == 2 and cap.err.strip() == "train: error: --max-bad 2.0 must be a fraction between 0 and 1"


def test_evaluate_skips_and_reports_damaged_samples(tmp_path, capfd, tiny_checkpoint):
    from conftest import tiny_checkpoint_file
    from icnet_ros.classes import KITTI_ROAD

    ckpt = tiny_checkpoint_file(tmp_path / "road.pt", KITTI_ROAD)
    images, masks, (corrupt, empty, wrong) = damaged_folder(tmp_path, n=6)
    rc = evaluate_main(["--checkpoint", str(ckpt), "--data", f"folder:{images}:{masks}", "--device", "cpu",
                        "--max-bad", "0.5", "--json", str(tmp_path / "s.json")])
    cap = capfd.readouterr()
    assert rc == 0, cap.err
    scores = json.loads((tmp_path / "s.json").read_text())
    assert [d["file"] for d in scores["damaged"]] == [str(empty), str(wrong), str(corrupt)]
    assert scores["images"] == 3 and "skipped 3 damaged" in cap.out
    assert len([ln for ln in cap.err.splitlines() if ln.startswith("warning: skipped")]) == 3


@pytest.mark.parametrize("ext,params", [(".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])])
def test_header_size_reads_png_and_jpeg_without_decoding(tmp_path, ext, params):
    path = tmp_path / f"a{ext}"
    assert cv2.imwrite(str(path), np.zeros((37, 53, 3), np.uint8), params)
    assert header_size(path) == (53, 37)
    assert header_size(Encoded(path.read_bytes(), "frame")) == (53, 37)
    path.write_bytes(path.read_bytes()[:3])
    assert header_size(path) == "bad"
    path.write_bytes(b"")
    assert header_size(path) == "empty"
    (tmp_path / "b.bmp").write_bytes(b"BM....")
    assert header_size(tmp_path / "b.bmp") is None    # not checked before loading


def test_validation_skips_a_frame_that_does_not_decode(tmp_path):
    from icnet_ros.data.damaged import DamagedSamples
    from icnet_ros.data.datasets import open_dataset
    from icnet_ros.nn.model import ICNet
    from icnet_ros.training.validation import evaluate_model

    images, masks = make_folder(tmp_path / "data", n=2)
    corrupt = images / "f001.png"
    corrupt.write_bytes(corrupt.read_bytes()[:80])
    data = open_dataset(f"folder:{images}:{masks}")
    data.skip_damaged = True
    lines = []
    damaged = DamagedSamples(max_bad=0.5, warn=lines.append)
    damaged.total = 2
    torch.manual_seed(0)
    cm = evaluate_model(ICNet(2, "r18", 0.25), data, torch.device("cpu"), damaged=damaged)
    assert list(damaged.found) == [str(corrupt)] and len(lines) == 1
    assert cm.matrix.sum() == 64 * 96      # the one whole frame's pixels
