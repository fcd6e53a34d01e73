"""`preview`: a model's overlays, and with --grid the node's bird's-eye grid, in one PNG."""

from __future__ import annotations

from pathlib import Path
import shutil

import cv2
import numpy as np

from conftest import green_road_checkpoint_file
from icnet_ros.ground import geometry
from icnet_ros.tools import preview

SAMPLES = Path(__file__).resolve().parent / "data" / "kitti_road"


def test_grid_panel_is_the_nodes_grid_for_the_frame(tmp_path):
    calib = preview.kitti_calib(SAMPLES / "image_2" / "um_000000.png")
    drivable = np.zeros((375, 1242), bool)
    drivable[260:] = True                      # the bottom of the picture: the road just ahead
    panel = preview.grid_panel(drivable, calib, 400)
    assert panel.shape == (400, 200, 3)        # 40 m x 20 m of 0.1 m cells, forward up
    grid = geometry.occupancy_grid(drivable, geometry.kitti_ground_homography(calib), geometry.GridSpec())
    assert (panel[..., 0] == geometry.grid_to_png(grid)).all() and (panel[..., 0] == panel[..., 2]).all()
    assert tuple(panel[395, 100]) == (128, 128, 128)      # under the bonnet: unseen
    assert tuple(panel[300, 100]) == (255, 255, 255)      # 10 m ahead: drivable
    assert tuple(panel[5, 100]) == (0, 0, 0)              # 40 m ahead: seen, not drivable


def test_preview_with_grid_writes_one_block_per_frame(tmp_path):
    ckpt = green_road_checkpoint_file(tmp_path / "green.pt")
    out = tmp_path / "sheet.png"
    assert preview.main(["--checkpoint", str(ckpt), "--images", str(SAMPLES / "image_2"), "--count", "2",
                         "--grid", "--width", "900", "--colors", "64", "--device", "cpu", "--out", str(out)]) == 0
    sheet = cv2.imread(str(out))
    assert sheet.shape[1] == 900 and 150 < sheet.shape[0] < 300
    from PIL import Image

    assert Image.open(out).mode == "P" and len(Image.open(out).getcolors(256)) <= 64


def test_preview_grid_without_calib_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "image_2").mkdir()
    shutil.copy(SAMPLES / "image_2" / "um_000000.png", tmp_path / "image_2")
    ckpt = green_road_checkpoint_file(tmp_path / "green.pt")
    code = preview.main(["--checkpoint", str(ckpt), "--images", str(tmp_path / "image_2"), "--grid",
                         "--device", "cpu", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("preview: error: --grid: no KITTI calib file for ")
    assert "um_000000.png" in err and len(err.splitlines()) == 1
