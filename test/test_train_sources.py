"""A tiny end-to-end run on two sources with different label sets, mapped into one."""

import json
from pathlib import Path

import pytest
import torch

from icnet_ros.classes import ClassSet
from icnet_ros.inference.checkpoint import load_checkpoint
from icnet_ros.tools.evaluate import main as evaluate_main
from icnet_ros.tools.train import main as train_main

from synthetic import make_camvid, make_folder

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parent.parent / "config"
ROAD = ClassSet.from_yaml(CONFIG / "road_classes.yaml")
SMALL = ["--model", "r18", "--width", "0.25", "--workers", "0", "--threads", "1", "--crop", "48x64",
         "--batch-size", "2", "--preview", "0"]


@pytest.fixture
def two_sources(tmp_path):
    images, masks = make_folder(tmp_path / "folder", n=8)          # ids 0 (sky) / 1 (road)
    folder_map = tmp_path / "folder_map.yaml"
    folder_map.write_text("map:\n  0: sky\n  1: road\n")
    cam = make_camvid(tmp_path / "cv", "train", n=3, seed=3)
    make_camvid(cam, "val", n=2, seed=9)
    return f"folder:{images}:{masks}", folder_map, f"camvid:{cam}:train", f"camvid:{cam}:val"


def test_two_sources_train_validate_and_evaluate(tmp_path, two_sources, capsys):
    folder, folder_map, cam_train, cam_val = two_sources
    camvid_map = CONFIG / "label_maps" / "camvid.yaml"
    out = tmp_path / "run"
    rc = train_main(["--data", folder, "weight=1", f"labels={folder_map}", "val=0.25",
                     "--data", cam_train, "weight=3", f"labels={camvid_map}",
                     "--val", cam_val, f"labels={camvid_map}",
                     "--classes", str(CONFIG / "road_classes.yaml"), "--epochs", "2", "--epoch-size", "8",
                     "--out", str(out), *SMALL])
    assert rc == 0
    log = capsys.readouterr().out
    assert f"{folder} 2, {cam_train} 6" in log                 # shares 1:3 of 8 samples
    _, meta, extra = load_checkpoint(out / "last.pt")
    assert meta.classes == ROAD and extra["iteration"] == 8   # 2 epochs x 4 batches
    epochs = [json.loads(line) for line in (out / "val_scores.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]
    names = list(epochs[-1]["sources"])
    assert names == [f"{folder} (last 0.25)", cam_val]
    for s in epochs[-1]["sources"].values():
        assert 0 <= s["drivable_iou"] <= 1 and set(s["class_iou"]) == set(ROAD.names)

    # evaluate scores both sources in the model's classes, the folder on its held-out tail
    rc = evaluate_main(["--checkpoint", str(out / "last.pt"), "--backend", "torch", "--json", str(tmp_path / "s.json"),
                        "--data", folder, f"labels={folder_map}", "val=0.25",
                        "--data", cam_val, f"labels={camvid_map}"])
    assert rc == 0
    scores = json.loads((tmp_path / "s.json").read_text())
    assert [s["images"] for s in scores] == [2, 2] and all(s["compared"] == "classes" for s in scores)
    assert "drivable IoU" in capsys.readouterr().out


def test_sources_with_other_classes_need_a_label_map(tmp_path, two_sources, capsys):
    folder, folder_map, cam_train, _ = two_sources
    rc = train_main(["--data", folder, f"labels={folder_map}", "--data", cam_train,
                     "--classes", str(CONFIG / "road_classes.yaml"), "--epochs", "1", "--out", str(tmp_path / "r"),
                     *SMALL])
    err = capsys.readouterr().err
    assert rc == 2 and "labels=YAML" in err and cam_train in err and err.count("\n") == 1


def test_an_id_missing_from_the_map_is_one_line(tmp_path, two_sources, capsys):
    folder, _, _, _ = two_sources
    partial = tmp_path / "partial.yaml"
    partial.write_text("map:\n  0: sky\n")
    rc = train_main(["--data", folder, f"labels={partial}", "--classes", str(CONFIG / "road_classes.yaml"),
                     "--epochs", "1", "--out", str(tmp_path / "r"), *SMALL])
    err = capsys.readouterr().err
    assert rc == 2 and "id 1" in err and "partial.yaml" in err and err.count("\n") == 1


def test_classes_file_that_a_fixed_layout_does_not_have_is_refused(tmp_path, two_sources, capsys):
    _, _, cam_train, _ = two_sources
    rc = train_main(["--data", cam_train, "--classes", str(CONFIG / "road_classes.yaml"), "--epochs", "1",
                     "--out", str(tmp_path / "r"), *SMALL])
    err = capsys.readouterr().err
    assert rc == 2 and "--classes" in err and "labels=YAML" in err and err.count("\n") == 1
