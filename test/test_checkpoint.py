import os
import pickle

import numpy as np
import pytest
import torch

from icnet_ros.classes import CAMVID, KITTI_ROAD
from icnet_ros.inference.checkpoint import CheckpointError, load_checkpoint, ModelMeta, read_checkpoint, save_checkpoint
from icnet_ros.nn.model import icnet


@pytest.fixture
def model_and_meta():
    torch.manual_seed(0)
    model = icnet(len(KITTI_ROAD.names), "r18", 0.25).eval()
    return model, ModelMeta(KITTI_ROAD, "r18", 0.25, input_size=(96, 160), info={"note": "test"})


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_gives_identical_outputs(tmp_path, model_and_meta, suffix):
    model, meta = model_and_meta
    path = save_checkpoint(tmp_path / f"m{suffix}", model, meta)
    loaded, meta2, _ = load_checkpoint(path)
    x = torch.randn(1, 3, 75, 124)
    with torch.no_grad():
        assert torch.equal(model(x)["out"], loaded(x)["out"])
    assert meta2.classes == KITTI_ROAD and meta2.classes.name == "kitti_road"
    assert meta2.input_size == (96, 160) and meta2.variant == "r18" and meta2.width == 0.25
    assert meta2.info == {"note": "test"}
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_half_precision_file_is_smaller_and_close(tmp_path, model_and_meta):
    model, meta = model_and_meta
    full = save_checkpoint(tmp_path / "full.pt", model, meta)
    half = save_checkpoint(tmp_path / "half.pt", model, meta, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _, _ = load_checkpoint(half)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(x)["out"].argmax(1) == loaded(x)["out"].argmax(1)).float().mean() > 0.99


def test_training_state_survives_in_pt(tmp_path, model_and_meta):
    model, meta = model_and_meta
    save_checkpoint(tmp_path / "last.pt", model, meta, extra={"epoch": 3, "rng": torch.get_rng_state()})
    _, _, extra = read_checkpoint(tmp_path / "last.pt")
    assert extra["epoch"] == 3


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/icnet_ros_pwned",))


def test_code_carrying_pickle_is_refused(tmp_path, model_and_meta):
    model, meta = model_and_meta
    path = tmp_path / "evil.pt"
    torch.save({"format": "icnet_ros/1", "meta": meta.to_dict(), "state_dict": model.state_dict(),
                "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="would run code on load; refusing"):
        load_checkpoint(path)
    assert not os.path.exists("/tmp/icnet_ros_pwned")
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match=str(plain)):
        load_checkpoint(plain)


def test_missing_truncated_and_foreign_files(tmp_path, model_and_meta):
    model, meta = model_and_meta
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    good = save_checkpoint(tmp_path / "good.pt", model, meta)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)
    st = save_checkpoint(tmp_path / "good.safetensors", model, meta)
    cut_st = tmp_path / "cut.safetensors"
    cut_st.write_bytes(st.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut_st)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an icnet_ros model"):
        load_checkpoint(foreign)


def test_mismatched_weights_are_refused(tmp_path, model_and_meta):
    model, _ = model_and_meta
    wrong = ModelMeta(CAMVID, "r18", 0.25)  # says 11 classes, weights have 2
    path = save_checkpoint(tmp_path / "wrong.pt", model, wrong)
    with pytest.raises(CheckpointError, match="does not match an ICNet r18 width 0.25 with 11 classes"):
        load_checkpoint(path)


def test_atomic_save_leaves_no_temp_files(tmp_path, model_and_meta):
    model, meta = model_and_meta
    save_checkpoint(tmp_path / "a.pt", model, meta)
    save_checkpoint(tmp_path / "a.pt", model, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]
    assert np.isfinite(1.0)


def test_input_width_round_trips_and_keeps_the_aspect(tmp_path):
    from icnet_ros.inference.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
    from icnet_ros.classes import CAMVID
    from icnet_ros.nn.model import icnet

    path = save_checkpoint(tmp_path / "w.pt", icnet(CAMVID.num_classes, "effl0", 0.25),
                           ModelMeta(CAMVID, "effl0", 0.25, input_width=640))
    _, meta, _ = load_checkpoint(path)
    assert meta.input_width == 640 and meta.variant == "effl0"
    assert meta.network_size(375, 1242) == (193, 640)     # KITTI, aspect kept
    assert meta.network_size(256, 512) == (320, 640)      # Cityscapes copy, upscaled
    assert meta.network_size(360, 640) == (360, 640)      # already that wide: as is
    assert ModelMeta(CAMVID, input_size=(48, 64), input_width=640).network_size(375, 1242) == (48, 64)
