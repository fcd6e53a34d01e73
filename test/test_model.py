import pytest
import torch

from icnet_ros.nn.model import (CascadeFeatureFusion, count_parameters, ICNet, icnet, icnet_r18, icnet_r50,
                                PyramidPooling)

SIZES = [(375, 1242), (360, 480), (1024, 2048)]


def cascade_sizes(h, w):
    """Return the expected (1/16, 1/8, 1/4) output sizes for an H x W input, following the layers."""
    def conv_s2(n):  # 3x3, stride 2, padding 1
        return (n - 1) // 2 + 1
    half = (h + 1) // 2, (w + 1) // 2
    sub2 = [conv_s2(conv_s2(conv_s2(n))) for n in half]        # stem conv, max-pool, conv3_1
    sub1 = [conv_s2(conv_s2(conv_s2(n))) for n in (h, w)]      # three stride-2 convs
    return tuple(sub2), tuple(sub1), tuple(2 * n for n in sub1)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("variant", ["r18", "r50"])
def test_shapes_train_and_eval(size, variant):
    torch.manual_seed(0)
    model = icnet(5, variant, width=0.25 if size[0] > 400 else 0.5)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        model.train()
        outs = model(x)
        model.eval()
        logits = model(x)["out"]
    assert list(outs) == ["out", "aux16", "aux8"]   # one dict type in both modes
    for out, expect in zip((outs["aux16"], outs["aux8"], outs["out"]), cascade_sizes(*size)):
        assert out.shape == (1, 5, *expect)
    assert logits.shape == (1, 5, *size)
    assert torch.isfinite(logits).all()


def test_cascade_outputs_are_at_1_16_1_8_1_4():
    model = icnet_r18(3, width=0.25).train()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 256, 512))
        o16, o8, o4 = out["aux16"], out["aux8"], out["out"]
    assert o16.shape[-2:] == (16, 32) and o8.shape[-2:] == (32, 64) and o4.shape[-2:] == (64, 128)


def test_r50_matches_released_icnet_parameter_count():
    n = count_parameters(icnet_r50(19))
    assert abs(n - 6.7e6) / 6.7e6 < 0.10, n


def test_r18_is_smaller_and_width_scales():
    assert count_parameters(icnet_r18(19)) < count_parameters(icnet_r50(19))
    assert count_parameters(icnet_r18(19, width=0.25)) < count_parameters(icnet_r18(19, width=0.5))


def test_cff_output_shapes():
    cff = CascadeFeatureFusion(low_channels=64, high_channels=32, out_channels=48, num_classes=7).train()
    low, high = torch.randn(2, 64, 12, 39), torch.randn(2, 32, 24, 78)
    fused, aux = cff(low, high)
    assert fused.shape == (2, 48, 24, 78)
    assert aux.shape == (2, 7, 24, 78)
    assert (fused >= 0).all()  # ReLU after the sum
    # odd sizes: the low map is resized to the high map's exact size, not just x2
    fused, _ = cff(torch.randn(1, 64, 12, 39), torch.randn(1, 32, 24, 79))
    assert fused.shape[-2:] == (24, 79)
    assert cff.eval()(low, high)[1] is None


@pytest.mark.parametrize("n,b", [(12, 6), (39, 6), (11, 6), (7, 3), (5, 2), (1, 1), (13, 1)])
def test_pyramid_windows_give_exact_bins(n, b):
    k, s = PyramidPooling.window(n, b)
    assert (n - k) // s + 1 == b
    assert k + (b - 1) * s == n  # windows cover the whole map


def test_pyramid_pooling_tiny_map_and_shape():
    ppm = PyramidPooling(16, 8)
    assert ppm(torch.randn(1, 16, 2, 3)).shape == (1, 8, 2, 3)
    assert ppm(torch.randn(1, 16, 12, 39)).shape == (1, 8, 12, 39)


def test_gradients_reach_every_branch():
    torch.manual_seed(0)
    model = icnet_r18(4, width=0.25).train()
    x = torch.randn(2, 3, 96, 128)
    loss = sum(o.square().mean() for o in model(x).values())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    # and each branch by name: high-res sub1, shared stem, deep low-res stages, PPM, both CFFs
    for prefix in ("sub1.", "stem.", "conv3_1.", "conv5.", "ppm.", "cff_24.", "cff_12.", "classifier."):
        assert any(n.startswith(prefix) for n, _ in model.named_parameters())


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown ICNet variant 'r34'"):
        ICNet(3, "r34")
    with pytest.raises(ValueError, match="width"):
        ICNet(3, "r18", width=0)


def test_onnx_friendly_no_adaptive_pooling():
    model = icnet_r18(3)
    assert not any("Adaptive" in type(m).__name__ for m in model.modules())


def test_full_width_variant_loads_torchvision_backbone_from_a_user_file(tmp_path):
    from torchvision.models import resnet18

    from icnet_ros.nn.model import load_backbone

    torch.manual_seed(0)
    backbone = resnet18(weights=None)  # random weights stand in for a user's ImageNet file
    path = tmp_path / "resnet18.pth"
    torch.save(backbone.state_dict(), path)
    model = icnet_r18(2, width=1.0)
    loaded = load_backbone(model, str(path))
    assert "conv5.1.conv2.weight" in loaded and "conv3_rest.0.conv1.weight" in loaded
    assert torch.equal(model.conv5[1].conv2.weight, backbone.layer4[1].conv2.weight)
    with pytest.raises(ValueError, match="no ResNet weights match"):
        load_backbone(icnet_r18(2, width=0.25), str(path))


def test_classify_then_upsample_equals_upsample_then_classify():
    torch.manual_seed(0)
    model = icnet_r18(5, width=0.25)
    f = torch.randn(1, model.classifier.in_channels, 12, 20)
    up = torch.nn.functional.interpolate
    a = model.classifier(up(f, size=(24, 40), mode="bilinear", align_corners=False))
    b = up(model.classifier(f), size=(24, 40), mode="bilinear", align_corners=False)
    assert torch.allclose(a, b, atol=1e-5)
