import json
from pathlib import Path
import sys

import numpy as np
import pytest
import torch

from icnet_ros.classes import CAMVID
from icnet_ros.data.datasets import open_dataset
from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint
from icnet_ros.inference.engine import Engine
from icnet_ros.metrics import ConfusionMatrix, RoadEval
from icnet_ros.nn.model import icnet
import icnet_ros.paths as paths
from icnet_ros.tools.evaluate import main as evaluate_main
from icnet_ros.tools.train import main as train_main
from synthetic import make_kitti

torch.set_num_threads(1)
H, W = 60, 200  # KITTI's aspect ratio, calibration scaled by 0.161


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return make_kitti(tmp_path_factory.mktemp("kitti"), n=4, h=H, w=W, calib_scale=0.161)


@pytest.fixture(scope="module")
def road_model(kitti, tmp_path_factory):
    """Return a model that has learnt the synthetic road (trained through the CLI)."""
    out = tmp_path_factory.mktemp("run")
    assert train_main(["--data", f"kitti:{kitti}", "--out", str(out), "--model", "r18", "--width", "0.25",
                       "--crop", f"{H}x{W}", "--scale", "0.9", "1.1", "--batch-size", "4", "--epochs", "12",
                       "--optimizer", "adamw", "--lr", "0.005", "--workers", "0", "--threads", "1",
                       "--preview", "0"]) == 0
    return out / "last.pt"


def run_eval(tmp_path, capfd, *argv):
    js = tmp_path / "scores.json"
    rc = evaluate_main([*argv, "--json", str(js), "--device", "cpu"])
    out, err = capfd.readouterr()
    return rc, (json.loads(js.read_text()) if rc == 0 else None), out, err.strip()


def direct(checkpoint, spec):
    """Compute the same scores here from the engine's outputs, for comparison."""
    eng = Engine.from_checkpoint(checkpoint, device="cpu", warmup=False)
    ds = open_dataset(spec)
    cm, road = ConfusionMatrix(2), RoadEval()
    for i in range(len(ds)):
        image, label = ds.load(i)
        (r,) = eng.infer(image, probabilities=True)
        cm.update(r.drivable.astype(np.uint8), label)       # KITTI ids: 1 road, 255 ignored
        road.update(r.drivable_prob, label == 1, label != 255)
    return cm, road.scores()


def test_kitti_scores_json_shape_and_values(kitti, road_model, tmp_path, capfd):
    rc, s, out, err = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}")
    assert rc == 0, err
    assert set(s) >= {"miou", "pixel_accuracy", "class_iou", "kitti", "fps", "images"}
    assert set(s["kitti"]) == {"maxf", "ap", "precision", "recall", "fpr", "fnr", "threshold"}
    assert s["images"] == 4 and s["fps"] > 0 and s["compared"] == "classes" and s["view"] == "image"
    assert list(s["class_iou"]) == ["not_road", "road"]
    for v in [s["miou"], s["pixel_accuracy"], *s["class_iou"].values(), *s["kitti"].values()]:
        assert 0.0 <= v <= 1.0
    assert s["kitti"]["maxf"] > 0.9 and s["miou"] > 0.8  # the model learnt the road
    cm, k = direct(road_model, f"kitti:{kitti}")
    assert s["miou"] == pytest.approx(cm.miou()) and s["kitti"] == pytest.approx(k)
    assert "MaxF" in out and "mIoU" in out


def test_bev_scores_in_kittis_birds_eye_view(kitti, road_model, tmp_path, capfd):
    rc, s, out, err = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}", "--bev")
    assert rc == 0, err
    assert s["view"] == "bev" and "KITTI road (bev)" in out
    assert s["kitti"]["maxf"] > 0.85
    # the same model scored in the image is not the same number: the view changes the weighting
    rc, img, _, _ = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}")
    assert s["kitti"] != img["kitti"]
    calib = kitti / "training" / "calib" / "uu_000002.txt"
    calib.unlink()
    rc, _, _, err = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}", "--bev")
    image = kitti / "training" / "image_2" / "uu_000002.png"
    assert rc == 2 and err == f"evaluate: error: image {image} has no calib file {calib} (needed by --bev)"


def test_camvid_model_on_kitti_compares_drivable_with_drivable(kitti, tmp_path, capfd):
    torch.manual_seed(0)
    ck = tmp_path / "camvid.pt"
    save_checkpoint(ck, icnet(CAMVID.num_classes, "r18", 0.25), ModelMeta(CAMVID, "r18", 0.25))
    rc, s, out, err = run_eval(tmp_path, capfd, "--checkpoint", str(ck), "--data", f"kitti:{kitti}")
    assert rc == 0, err
    assert s["compared"] == "drivable" and list(s["class_iou"]) == ["not_drivable", "drivable"]
    cm, k = direct(ck, f"kitti:{kitti}")
    assert s["class_iou"]["drivable"] == pytest.approx(cm.iou()[1])
    assert s["miou"] == pytest.approx(cm.miou()) and s["kitti"] == pytest.approx(k)


def test_without_checkpoint_uses_the_shipped_model(kitti, tmp_path, capfd):
    rc, s, _, err = run_eval(tmp_path, capfd, "--data", f"kitti:{kitti}", "--limit", "1")
    name = paths.SHIPPED_MODEL
    shipped = [d / "models" / name for d in (Path(sys.prefix) / "share" / "icnet_ros",
                                             Path(paths.__file__).resolve().parent.parent)]
    if not any(p.is_file() for p in shipped):
        assert rc == 2 and err.startswith(f"evaluate: error: shipped model {name} not found")
        assert len(err.splitlines()) == 1
    else:
        assert rc == 0 and s["images"] == 1


def test_the_road_metrics_are_named_for_the_data_they_were_computed_on():
    from icnet_ros.tools.evaluate import table

    k = {"maxf": 0.9, "ap": 0.8, "precision": 0.9, "recall": 0.9, "fpr": 0.1, "fnr": 0.1, "threshold": 0.5}
    scores = {"class_iou": {}, "miou": 0.5, "pixel_accuracy": 0.9, "kitti": k, "fps": None, "images": 3,
              "view": "image"}
    lines = {d: table({**scores, "data": d}).splitlines() for d in ("camvid:/d/camvid:val", "kitti:/d/road")}
    assert any(ln.startswith("drivable by KITTI road's metric, on CamVid (image): MaxF  90.00") for ln in lines[
        "camvid:/d/camvid:val"])
    assert not any("KITTI road (" in ln for ln in lines["camvid:/d/camvid:val"])
    assert any(ln.startswith("KITTI road (image): MaxF") for ln in lines["kitti:/d/road"])


def test_bad_inputs_are_one_line_errors(tmp_path, capfd):
    rc, _, _, err = run_eval(tmp_path, capfd, "--checkpoint", str(tmp_path / "none.pt"), "--data",
                             f"kitti:{tmp_path}")
    assert rc == 2 and err.startswith("evaluate: error:") and len(err.splitlines()) == 1
    rc, _, _, err = run_eval(tmp_path, capfd, "--data", f"kitti:{tmp_path / 'missing'}")
    assert rc == 2 and err == f"evaluate: error: KITTI road directory {tmp_path / 'missing'} does not exist"


def test_backends_agree_and_a_bad_backend_is_one_line(kitti, road_model, tmp_path, capfd):
    scores = {}
    for backend in ("torch", "onnxruntime"):
        rc, s, _, err = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}",
                                 "--backend", backend)
        assert rc == 0, err
        scores[backend] = s
    assert scores["torch"]["miou"] == pytest.approx(scores["onnxruntime"]["miou"], abs=1e-3)
    rc, _, _, err = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}",
                             "--backend", "tensorrt")
    assert rc == 2 and err == ("evaluate: error: backend 'tensorrt' is not one of auto, torch, onnxruntime")


def test_input_width_overrides_the_network_size(kitti, road_model, tmp_path, capfd):
    rc, full, _, _ = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}",
                              "--input-width", "0")
    rc2, small, _, _ = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}",
                                "--input-width", "64")
    assert rc == rc2 == 0 and full["images"] == small["images"] == 4
    assert full["kitti"] != small["kitti"]          # the network really ran at another size
    rc, _, _, err = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}",
                             "--input-width", "3")
    assert rc == 2 and "--input-width 3" in err and "\n" not in err


def test_drivable_threshold_and_connected_score_the_mask_the_node_would_publish(kitti, road_model, tmp_path, capfd):
    rc, plain, _, err = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}")
    assert rc == 0, err
    # with classes compared, the drivable IoU of the arg-max mask is the road class's IoU
    assert plain["drivable_iou"] == pytest.approx(plain["class_iou"]["road"]) and plain["drivable_threshold"] == 0
    strict = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}",
                      "--drivable-threshold", "0.999")[1]
    assert strict["drivable_threshold"] == 0.999 and strict["drivable_iou"] != plain["drivable_iou"]
    assert strict["class_iou"] == plain["class_iou"]                  # the classes do not change
    joined = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}", "--connected")[1]
    assert joined["connected"] is True and 0.0 <= joined["drivable_iou"] <= 1.0
    for name, share in plain["called_drivable"].items():   # a stricter mask, or a cut one, holds no more
        assert strict["called_drivable"][name] <= share and joined["called_drivable"][name] <= share
    rc, _, _, err = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}",
                             "--drivable-threshold", "1.5")
    assert rc == 2 and err == "evaluate: error: --drivable-threshold 1.5 must be between 0 and 1"


def test_perturb_scores_the_frames_as_another_camera_sees_them(kitti, road_model, tmp_path, capfd):
    args = ("--checkpoint", str(road_model), "--data", f"kitti:{kitti}")
    rc, plain, _, err = run_eval(tmp_path, capfd, *args)
    assert rc == 0, err
    assert plain["perturb"] is None
    same = run_eval(tmp_path, capfd, *args, "--perturb", "gamma=1")[1]     # the identity curve
    assert same["perturb"] == "gamma=1" and same["kitti"] == plain["kitti"] and same["miou"] == plain["miou"]
    moved = run_eval(tmp_path, capfd, *args, "--perturb", "shift=0.3")[1]
    assert moved["perturb"] == "shift=0.3" and moved["kitti"] != plain["kitti"]
    rc, _, _, err = run_eval(tmp_path, capfd, *args, "--perturb", "warp=1")
    assert rc == 2 and err.startswith("evaluate: error: --perturb 'warp=1'") and "\n" not in err
    rc, _, _, err = run_eval(tmp_path, capfd, *args, "--perturb", "zoom=1.2", "--bev")
    assert rc == 2 and err.startswith("evaluate: error: --bev") and "zoom=1.2" in err and "\n" not in err


def test_tradeoff_plots_accuracy_against_speed(kitti, road_model, tmp_path, capfd):
    from icnet_ros.tools.tradeoff import main as tradeoff_main

    out, js = tmp_path / "t.png", tmp_path / "t.json"
    assert tradeoff_main(["--checkpoint", str(road_model), "--data", f"kitti:{kitti}", "--widths", "64", "96",
                          "--calls", "2", "--threads", "1", "--out", str(out), "--json", str(js)]) == 0
    points = json.loads(js.read_text())
    ship = [p for p in points if p["model"] == "shipped"]
    assert [p["width"] for p in ship] == [64, 96] and all(p["fps"] > 0 for p in points)
    assert [p["net_size"] for p in ship] == [[19, 64], [29, 96]]
    assert all(0 <= p["mean_drivable_iou"] <= 1 for p in ship)
    assert {p["variant"] for p in ship} == {"r18 w0.25"}           # what the plot's legend names
    assert [p["width"] for p in points if p["model"] == "lraspp_mobilenet_v3_large"] == [64, 96]
    assert out.stat().st_size > 10000
    assert tradeoff_main(["--data", f"kitti:{kitti}", "--widths", "4", "--out", str(out)]) == 2
    assert "--widths [4]: each must be at least 8" in capfd.readouterr().err


def test_called_drivable_is_each_ground_truth_class_share_of_the_drivable_mask(kitti, road_model, tmp_path, capfd):
    rc, plain, out, err = run_eval(tmp_path, capfd, "--checkpoint", str(road_model), "--data", f"kitti:{kitti}")
    assert rc == 0, err
    cm, _ = direct(road_model, f"kitti:{kitti}")             # rows: ground truth, columns: drivable mask
    m = cm.matrix
    assert plain["called_drivable"] == pytest.approx({"not_road": m[0, 1] / m[0].sum(), "road": m[1, 1] / m[1].sum()})
    assert "called drivable, % of each ground-truth class: not_road" in out


def test_called_drivable_counts_only_labelled_pixels_of_classes_present():
    from icnet_ros.metrics import CalledDrivable

    c = CalledDrivable(3)
    c.update(np.array([[True, False, True], [True, True, False]]), np.array([[0, 0, 1], [255, 1, 1]]))
    assert c.shares(["a", "b", "c"]) == {"a": 0.5, "b": pytest.approx(2 / 3), "c": None}
    with pytest.raises(ValueError, match="drivable mask has 2 pixels but the label has 6"):
        c.update(np.array([True, False]), np.zeros((2, 3)))
