import pytest
import torch
import torch.nn.functional as F

from icnet_ros.nn.loss import CascadeLoss, shrink_labels


def outputs(n=2, c=3, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, c, h // s, w // s, generator=g) for s in (16, 8, 4))


def test_matches_hand_computed_weighted_sum():
    outs = outputs()
    labels = torch.randint(0, 3, (2, 64, 64), generator=torch.Generator().manual_seed(1))
    loss = CascadeLoss((0.4, 0.4, 1.0))(outs, labels)
    expect = 0
    for o, wgt in zip(outs, (0.4, 0.4, 1.0)):
        t = labels[:, ::64 // o.shape[-2], ::64 // o.shape[-1]]  # nearest neighbour on exact factors
        expect += wgt * F.cross_entropy(o, t)
    assert torch.allclose(loss, expect, atol=1e-5)


def test_weights_are_honoured():
    outs = outputs()
    labels = torch.randint(0, 3, (2, 64, 64))
    only_last = CascadeLoss((0.0, 0.0, 1.0))(outs, labels)
    assert torch.allclose(only_last, F.cross_entropy(outs[2], shrink_labels(labels, outs[2].shape[-2:])))
    doubled = CascadeLoss((0.8, 0.8, 2.0))(outs, labels)
    assert torch.allclose(doubled, 2 * CascadeLoss((0.4, 0.4, 1.0))(outs, labels), atol=1e-5)


def test_ignore_index_is_honoured():
    outs = outputs()
    labels = torch.randint(0, 3, (2, 64, 64))
    loss = CascadeLoss(ignore_index=255)(outs, labels)
    # changing the ignored pixels' predictions does not change the loss
    masked = labels.clone()
    masked[:, :32] = 255
    a = CascadeLoss(ignore_index=255)(outs, masked)
    perturbed = tuple(o.clone() for o in outs)
    for o in perturbed:
        o[:, :, : o.shape[2] // 2] += 10 * torch.randn_like(o[:, :, : o.shape[2] // 2])
    b = CascadeLoss(ignore_index=255)(perturbed, masked)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, loss)
    all_ignored = torch.full_like(labels, 255)
    assert CascadeLoss(ignore_index=255)(outs, all_ignored).item() == 0.0


def test_labels_shrink_by_nearest_neighbour_only():
    labels = torch.tensor([[[0, 7], [3, 255]]]).repeat_interleave(8, 1).repeat_interleave(8, 2)
    small = shrink_labels(labels, (4, 4))
    assert set(small.unique().tolist()) <= {0, 7, 3, 255}


def test_class_weights_change_the_loss():
    outs = outputs()
    labels = torch.randint(0, 3, (2, 64, 64))
    plain = CascadeLoss()(outs, labels)
    weighted = CascadeLoss(class_weights=[1.0, 5.0, 0.1])(outs, labels)
    assert not torch.allclose(plain, weighted)


def test_output_count_must_match_weights():
    with pytest.raises(ValueError, match="3 model outputs but 2 loss weights"):
        CascadeLoss((0.4, 1.0))(outputs(), torch.zeros(2, 64, 64, dtype=torch.long))


def test_a_fully_ignored_term_still_gives_its_head_a_gradient():
    """
    Labels ignored on every 8th row and column: the 1/16 and 1/8 outputs sample only those, the 1/4 output also others.

    Every head must take part in backward (a head with no gradient on one rank hangs
    DDP), with a zero gradient and a finite loss.
    """
    outs = tuple(o.requires_grad_() for o in outputs())
    labels = torch.randint(0, 3, (2, 64, 64), generator=torch.Generator().manual_seed(2))
    labels[:, ::8] = 255
    labels[:, :, ::8] = 255
    targets = [shrink_labels(labels, o.shape[-2:]) for o in outs]
    assert [bool((t != 255).any()) for t in targets] == [False, False, True]
    loss = CascadeLoss(ignore_index=255)(outs, labels)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    for o in outs:
        assert o.grad is not None and torch.isfinite(o.grad).all()
    assert outs[0].grad.abs().sum() == 0 and outs[1].grad.abs().sum() == 0 and outs[2].grad.abs().sum() > 0


@pytest.mark.parametrize("class_weights", [None, [1.0, 2.0, 0.5]])
def test_backward_works_when_every_pixel_is_ignored(class_weights):
    outs = tuple(o.requires_grad_() for o in outputs())
    loss = CascadeLoss(ignore_index=255, class_weights=class_weights)(outs, torch.full((2, 64, 64), 255))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert all(o.grad is not None and (o.grad == 0).all() for o in outs)


def test_every_model_head_gets_a_gradient_when_a_term_is_ignored():
    from icnet_ros.nn.model import ICNet

    torch.manual_seed(0)
    model = ICNet(3, "r18", 0.25).train()
    labels = torch.randint(0, 3, (1, 64, 64))
    labels[:, ::8] = 255
    labels[:, :, ::8] = 255
    CascadeLoss(ignore_index=255)(model(torch.randn(1, 3, 64, 64)), labels).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
