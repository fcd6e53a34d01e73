from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from icnet_ros.classes import CAMVID, ClassSet, KITTI_ROAD
from icnet_ros.data.datasets import DataError, open_dataset
from icnet_ros.data.image_io import decode_kitti_gt
from icnet_ros.data.transforms import MEAN_RGB, TrainAugment
from icnet_ros.tools.train import main as train_main
from synthetic import make_camvid, make_folder, make_kitti, write_ids, write_rgb

torch.set_num_threads(1)


def test_kitti_layout_decodes_colours_and_ignores_black(tmp_path):
    make_kitti(tmp_path / "k", n=3, h=40, w=60)
    ds = open_dataset(f"kitti:{tmp_path / 'k'}")
    assert ds.classes == KITTI_ROAD and len(ds) == 3
    assert [s.image.name for s in ds.samples] == ["um_000000.png", "umm_000001.png", "uu_000002.png"]
    assert ds.samples[1].label.name == "umm_road_000001.png"
    image, label = ds.load(0)
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1, 255}
    assert (label[:5] == 255).all() and (label[-1] == 1).all()
    # the training/ level may be given or not
    assert len(open_dataset(f"kitti:{tmp_path / 'k' / 'training'}")) == 3


def test_decode_kitti_gt_matches_the_devkit_channels():
    rgb = np.array([[[255, 0, 255], [255, 0, 0], [0, 0, 0], [0, 0, 255]]], np.uint8)
    # road where blue > 0, evaluated where red > 0: blue without red is outside the valid area
    np.testing.assert_array_equal(decode_kitti_gt(rgb), [[1, 0, 255, 255]])


def test_camvid_and_folder_layouts(tmp_path):
    make_camvid(tmp_path / "cv", "val", n=2)
    ds = open_dataset(f"camvid:{tmp_path / 'cv'}:val")
    assert ds.classes == CAMVID and len(ds) == 2
    assert set(np.unique(ds.load(0)[1])) == {0, 3, 11}
    images, masks = make_folder(tmp_path / "f", n=3)
    ds = open_dataset(f"folder:{images}:{masks}")
    assert len(ds) == 3 and ds.classes.names == ("not_road", "road")
    yaml_file = tmp_path / "classes.yaml"
    yaml_file.write_text("names: [ground, road, car]\ndrivable_ids: [1]\nignore_index: 255\n")
    ds = open_dataset(f"folder:{images}:{masks}", ClassSet.from_yaml(yaml_file))
    assert ds.classes.num_classes == 3
    with pytest.raises(DataError, match="own classes"):
        open_dataset(f"camvid:{tmp_path / 'cv'}:val", ClassSet.from_yaml(yaml_file))


def test_augment_keeps_label_ids_and_pads_with_ignore():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    label = rng.choice(np.array([0, 1, 255], np.uint8), (30, 40))
    aug = TrainAugment(crop=(64, 96), scale=(0.5, 0.6), ignore_index=255)
    img, lab = aug(image, label, np.random.default_rng(1))
    assert img.shape == (64, 96, 3) and lab.shape == (64, 96)
    assert set(np.unique(lab)) <= {0, 1, 255}  # nearest neighbour: no blended ids
    assert (lab[-10:] == 255).all()  # padding below the scaled image is ignored
    again = aug(image, label, np.random.default_rng(1))
    np.testing.assert_array_equal(again[1], lab)


@pytest.mark.parametrize("name", ["shift", "exposure", "blur", "jpeg"])
def test_camera_augments_change_the_image_keep_the_labels_and_repeat(name):
    rng = np.random.default_rng(0)
    label = np.repeat(np.repeat(rng.choice(np.array([0, 1, 2], np.uint8), (12, 16)), 4, 0), 4, 1)
    image = np.stack([label * 80 + 40, label * 40 + 60, 200 - label * 50], -1).astype(np.uint8)  # colour = class
    plain = TrainAugment(crop=(48, 64), scale=(1.0, 1.0), flip=False, jitter=0.0)
    camera = TrainAugment(crop=(48, 64), scale=(1.0, 1.0), flip=False, jitter=0.0, camera=(name,))
    changed = 0
    for seed in range(12):
        img, lab = camera(image, label, np.random.default_rng(seed))
        ref_img, ref_lab = plain(image, label, np.random.default_rng(seed))
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8
        if name == "shift":            # the frame moves up or down: labels move with it, new rows are ignore
            known = lab != 255
            assert (img[known][:, 0] == lab[known] * 80 + 40).all()
            assert (img[~known] == MEAN_RGB).all()
            changed += not known.all()
        else:                          # photometric: labels untouched
            np.testing.assert_array_equal(lab, ref_lab)
            changed += not np.array_equal(img, ref_img)
        again = camera(image, label, np.random.default_rng(seed))
        np.testing.assert_array_equal(again[0], img)
    assert changed >= 3, f"{name} never changed the sample"


def test_unknown_augment_is_one_line(tmp_path, capfd):
    images, masks = make_folder(tmp_path, n=2)
    with pytest.raises(SystemExit):
        train_main(["--data", f"folder:{images}:{masks}", "--out", str(tmp_path / "r"), "--augment", "shift,fog"])
    err = capfd.readouterr().err.strip().splitlines()[-1]
    assert "--augment 'shift,fog': unknown fog (choose from shift, exposure, blur, jpeg)" in err


def test_dataset_items_repeat_for_a_seed_and_epoch(tmp_path):
    images, masks = make_folder(tmp_path, n=2)
    ds = open_dataset(f"folder:{images}:{masks}", augment=TrainAugment((32, 48)), seed=3)
    a = ds[1]
    b = ds[1]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[1].dtype == torch.int64
    ds.epoch = 1
    assert not torch.equal(ds[1][0], a[0])


# --- bad inputs: one clear error through the CLI -------------------------------------

def train_cli(capfd, tmp_path, data, *extra):
    rc = train_main(["--data", data, "--out", str(tmp_path / "run"), "--model", "r18", "--width", "0.25",
                     "--crop", "32x48", "--batch-size", "1", "--epochs", "1", "--max-iters", "1",
                     "--workers", "0", "--preview", "0", *extra])
    err = capfd.readouterr().err.strip()
    return rc, err


def test_missing_directory(tmp_path, capfd):
    rc, err = train_cli(capfd, tmp_path, f"kitti:{tmp_path / 'nope'}")
    assert rc == 2 and err == f"train: error: KITTI road directory {tmp_path / 'nope'} does not exist"
    images, _ = make_folder(tmp_path / "f", n=1)
    rc, err = train_cli(capfd, tmp_path, f"folder:{images}:{tmp_path / 'masks_gone'}")
    assert rc == 2 and err == f"train: error: mask directory {tmp_path / 'masks_gone'} does not exist"
    rc, err = train_cli(capfd, tmp_path, f"camvid:{tmp_path}:train")
    assert rc == 2 and str(tmp_path / "train") in err and "does not exist" in err


def test_image_without_mask(tmp_path, capfd):
    root = make_kitti(tmp_path / "k", n=2)
    (root / "training" / "gt_image_2" / "umm_road_000001.png").unlink()
    rc, err = train_cli(capfd, tmp_path, f"kitti:{root}")
    assert rc == 2
    assert err == (f"train: error: image {root / 'training' / 'image_2' / 'umm_000001.png'} has no mask named "
                   f"umm_road_000001.* in {root / 'training' / 'gt_image_2'}")


def test_size_mismatch(tmp_path, capfd):
    images, masks = make_folder(tmp_path, n=2)
    write_ids(masks / "f001.png", np.zeros((20, 30), np.uint8))
    rc, err = train_cli(capfd, tmp_path, f"folder:{images}:{masks}", "--batch-size", "2")
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"mask {masks / 'f001.png'} is 30x20 but image {images / 'f001.png'} is 96x64" in err


def test_corrupt_png(tmp_path, capfd):
    images, masks = make_folder(tmp_path, n=2)
    (images / "f000.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    rc, err = train_cli(capfd, tmp_path, f"folder:{images}:{masks}", "--batch-size", "2")
    assert rc == 2
    assert err == (f"train: error: image {images / 'f000.png'} cannot be decoded (corrupt or not an image); 1 of 2 "
                   f"samples are damaged (50.0 %), more than --max-bad 0.01 allows")


def test_class_id_beyond_the_classes(tmp_path, capfd):
    images, masks = make_folder(tmp_path, n=2)
    bad = np.zeros((64, 96), np.uint8)
    bad[5, 5] = 7
    write_ids(masks / "f001.png", bad)
    rc, err = train_cli(capfd, tmp_path, f"folder:{images}:{masks}", "--batch-size", "2")
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"mask {masks / 'f001.png'} holds class id 7 but there are only 2 classes" in err


def test_errors_from_dataloader_workers_stay_one_line(tmp_path):
    """Through the installed console script, with a worker process: exit code, one line on stderr, no traceback."""
    images, masks = make_folder(tmp_path, n=2)
    bad = np.zeros((64, 96), np.uint8)
    bad[0, 0] = 9
    write_ids(masks / "f000.png", bad)
    train = Path(sys.executable).parent / "train"
    p = subprocess.run([str(train), "--data", f"folder:{images}:{masks}", "--out", str(tmp_path / "run"),
                        "--model", "r18", "--width", "0.25", "--crop", "32x48", "--batch-size", "2",
                        "--epochs", "1", "--workers", "1", "--device", "cpu", "--threads", "1"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.strip() == (f"train: error: mask {masks / 'f000.png'} holds class id 9 but there are only 2 "
                                f"classes (ids 0..1, ignore 255); pass a --classes file that lists them")


def test_classes_file_errors_are_clean(tmp_path, capfd):
    images, masks = make_folder(tmp_path, n=1)
    rc, err = train_cli(capfd, tmp_path, f"folder:{images}:{masks}", "--classes", str(tmp_path / "none.yaml"))
    assert rc == 2 and err == f"train: error: classes file {tmp_path / 'none.yaml'} does not exist"
    rc, err = train_cli(capfd, tmp_path, "nonsense:thing")
    assert rc == 2 and "is not kitti:PATH" in err


def test_unreadable_kitti_ground_truth(tmp_path, capfd):
    root = make_kitti(tmp_path / "k", n=1)
    gt = root / "training" / "gt_image_2" / "um_road_000000.png"
    gt.write_bytes(b"garbage")
    rc, err = train_cli(capfd, tmp_path, f"kitti:{root}")
    assert rc == 2 and err == (f"train: error: ground truth {gt} cannot be decoded (missing, corrupt or not an image); "
                               f"1 of 1 samples are damaged (100.0 %), more than --max-bad 0.01 allows")
    write_rgb(gt, np.zeros((64, 96, 3), np.uint8))
    assert cv2.imread(str(gt)) is not None
