"""Eq. 1 of the paper: a hand-computed value, the normalisation, gradients, and the one home for both uses."""

import math

import pytest
import torch

from unetkit.losses import weighted_cross_entropy, weighted_nll


def test_hand_computed_value():
    # one image, 2 classes, 1 x 2 pixels; pixel 0: logits (0, 0) -> p = 0.5 each, label 1, weight 2;
    # pixel 1: logits (ln 3, 0) -> p(0) = 3/4, label 0, weight 1
    logits = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])
    target = torch.tensor([[[1, 0]]])
    weights = torch.tensor([[[2.0, 1.0]]])
    expected = (2 * -math.log(0.5) + 1 * -math.log(0.75)) / 2  # / number of counted pixels
    assert weighted_cross_entropy(logits, target, weights).item() == pytest.approx(expected, rel=1e-6)
    assert weighted_cross_entropy(logits, target).item() == pytest.approx((-math.log(0.5) - math.log(0.75)) / 2)


def test_ignored_pixels_do_not_count():
    logits = torch.randn(1, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 3, (1, 4, 5), generator=torch.Generator().manual_seed(1))
    weights = torch.ones(1, 4, 5)
    weights[0, :2] = 0  # half the pixels ignored
    part = weighted_cross_entropy(logits[..., 2:, :], target[:, 2:], torch.ones(1, 2, 5))
    assert weighted_cross_entropy(logits, target, weights).item() == pytest.approx(part.item(), rel=1e-6)


def test_nll_of_the_softmax_is_the_training_loss():
    logits = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(2))
    target = torch.randint(0, 2, (2, 6, 6), generator=torch.Generator().manual_seed(3))
    weights = torch.rand(2, 6, 6, generator=torch.Generator().manual_seed(4))
    a = weighted_cross_entropy(logits, target, weights)
    b = weighted_nll(torch.log(torch.softmax(logits, 1)), target, weights)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_gradient_check():
    logits = torch.randn(1, 3, 3, 4, dtype=torch.float64, requires_grad=True,
                         generator=torch.Generator().manual_seed(5))
    target = torch.randint(0, 3, (1, 3, 4), generator=torch.Generator().manual_seed(6))
    weights = torch.rand(1, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    assert torch.autograd.gradcheck(lambda z: weighted_cross_entropy(z, target, weights), (logits,))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="B, C, H, W"):
        weighted_cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="target"):
        weighted_cross_entropy(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="weights"):
        weighted_cross_entropy(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long), torch.ones(1, 3, 2))


def test_soft_dice_and_the_combined_loss():
    from unetkit.losses import segmentation_loss, soft_dice_loss

    target = torch.tensor([[[0, 1], [1, 1]]])
    perfect = torch.stack([(target == 0), (target == 1)], 1).float() * 40 - 20  # saturated logits
    assert soft_dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    # uniform softmax (p = 1/2): class 0 has 1 pixel, class 1 three; eps = 1
    flat = torch.zeros(1, 2, 2, 2)
    d0 = (2 * 0.5 + 1) / (2 + 1 + 1)
    d1 = (2 * 1.5 + 1) / (2 + 3 + 1)
    assert soft_dice_loss(flat, target).item() == pytest.approx(1 - (d0 + d1) / 2, rel=1e-6)
    weights = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # an ignored pixel is left out of Dice too
    ce = weighted_cross_entropy(flat, target, weights)
    both = segmentation_loss(flat, target, weights, kind="ce_dice", dice_weight=0.5)
    assert both.item() == pytest.approx(ce.item() + 0.5 * soft_dice_loss(flat, target, weights).item(), rel=1e-6)
    with pytest.raises(ValueError, match="loss"):
        segmentation_loss(flat, target, kind="focal")


def test_the_loss_of_a_batch_is_the_mean_of_its_samples_losses():
    """What makes K DDP processes at batch 1 equal one process at batch K: both loss terms decompose by sample."""
    from unetkit.losses import segmentation_loss

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 9, 11, generator=gen)
    target = torch.randint(0, 2, (3, 9, 11), generator=gen)
    weights = torch.rand(3, 9, 11, generator=gen) * 3
    weights[0, :2] = 0  # ignored pixels in one sample only
    for kind in ("ce", "ce_dice"):
        batch = segmentation_loss(logits, target, weights, kind=kind)
        each = [segmentation_loss(logits[i:i + 1], target[i:i + 1], weights[i:i + 1], kind=kind) for i in range(3)]
        assert batch.item() == pytest.approx(torch.stack(each).mean().item(), rel=1e-6), kind
