"""Eq. 1 of the paper: a hand-computed value, the normalisation, gradients, and the one home for both uses."""

import math

import pytest
import torch
import torch.nn.functional as F

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


def _cross_of_lines(size=15, width=3):
    """A binary (size, size) image: a horizontal and a vertical bar ``width`` px thick through the centre."""
    img = torch.zeros(size, size)
    lo = size // 2 - width // 2
    img[lo:lo + width, :] = 1
    img[:, lo:lo + width] = 1
    return img


def test_soft_erode_and_dilate_equal_the_pooling_definitions_in_value_and_gradient():
    from unetkit.losses import _soft_dilate, _soft_erode

    x = torch.rand(2, 1, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(8), requires_grad=True)
    # references: min over the cross = min of a (3, 1) and a (1, 3) pool; max over 3 x 3; padding does not count
    erode_ref = torch.minimum(-F.max_pool2d(-x, (3, 1), 1, (1, 0)), -F.max_pool2d(-x, (1, 3), 1, (0, 1)))
    dilate_ref = F.max_pool2d(x, 3, 1, 1)
    for ours, ref in ((_soft_erode(x), erode_ref), (_soft_dilate(x), dilate_ref)):
        assert torch.equal(ours, ref)
        g = torch.randn(ours.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
        (a,) = torch.autograd.grad(ours, x, g, retain_graph=True)
        (b,) = torch.autograd.grad(ref, x, g, retain_graph=True)
        assert torch.allclose(a, b)
    assert torch.autograd.gradcheck(lambda z: _soft_dilate(_soft_erode(z)), (x,))


def test_soft_skeleton_of_a_binary_mask_is_its_centre_line():
    from unetkit.losses import soft_skeleton

    mask = _cross_of_lines(15, 3)
    skel = soft_skeleton(mask[None, None], iterations=5)[0, 0]
    assert set(skel.unique().tolist()) <= {0.0, 1.0}  # binary in, binary out
    assert bool((skel <= mask).all())  # inside the structure
    # the centre row and column are on it away from the crossing (whose corners open differently), and the centre
    assert bool(skel[7, [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]].eq(1).all()) and bool(skel[7, 7] == 1)
    assert bool(skel[[0, 1, 2, 3, 4, 10, 11, 12, 13, 14], 7].eq(1).all())
    assert skel.sum() < mask.sum() / 2  # thin: about a third of the 3-px bars


def test_cldice_is_zero_for_a_perfect_prediction_and_sees_a_gap_that_thinning_by_as_many_pixels_does_not_cost():
    from unetkit.losses import cldice_loss

    mask = _cross_of_lines(21, 3)
    target = (1 - mask).long()[None]  # class 0 = the bars (membranes), class 1 = the rest
    perfect = torch.stack([mask, 1 - mask])[None] * 40 - 20  # logits: +-20, softmax ~ 0 / 1
    assert cldice_loss(perfect, target, class_index=0, iterations=5).item() == pytest.approx(0.0, abs=1e-6)
    def loss_of(pred_mask):
        logits = torch.stack([pred_mask, 1 - pred_mask])[None] * 40 - 20
        return cldice_loss(logits, target, class_index=0, iterations=5).item()

    gapped, thinned = mask.clone(), mask.clone()
    gapped[9:12, 2:5] = 0  # a 3 x 3 break through the horizontal bar (rows 9-11)
    thinned[9, 0:9] = 0  # as many pixels off the bar's edge: thinner, still connected
    assert (mask - gapped).sum() == (mask - thinned).sum() == 9
    assert loss_of(thinned) == pytest.approx(0.0, abs=1e-6)  # the centre line is still covered, nothing spurious
    assert loss_of(gapped) > 0.03  # 3 of the ~41 centre-line pixels uncovered


def test_cldice_hand_computed_value_and_ignored_pixels():
    from unetkit.losses import cldice_loss

    # a single 1-px-wide line of class 0 along the middle row of a 5 x 5 image: its own skeleton
    target = torch.ones(1, 5, 5, dtype=torch.long)
    target[0, 2] = 0
    # prediction: p(class 0) = 0.5 everywhere except 1 on the middle row
    p0 = torch.full((5, 5), 0.5)
    p0[2] = 1.0
    logits = torch.stack([torch.log(p0), torch.log(1 - p0 + 1e-30)])[None].double()
    # S(y) = the middle row (5 px), covered by p = 1: Tsens = (5 + 1) / (5 + 1) = 1.
    # S(p): a flat 0.5 field erodes to itself and opens to itself, so only the ridge counts: the row's
    # 1 - 0.5 = 0.5 in the first opening; the next erosion leaves 0.5 everywhere, then nothing changes.
    # sum S(p) = 5 * 0.5 = 2.5, all of it inside y: Tprec = (2.5 + 1) / (2.5 + 1) = 1 -> loss 0
    assert cldice_loss(logits, target, class_index=0, iterations=3).item() == pytest.approx(0.0, abs=1e-9)
    # class 1 (the rest, 20 px) has a 1-px gap along the whole middle row: its prediction p1 = 0.5 off the row,
    # 0 on it. S(y1): the two 2-row slabs; S(p1) lies off the row, inside y1: Tprec = 1.
    # Tsens = (sum S(y1) p1 + 1) / (sum S(y1) + 1) = (0.5 sum S(y1) + 1) / (sum S(y1) + 1).
    from unetkit.losses import soft_skeleton

    s_true = soft_skeleton((target == 1).double()[:, None], 3).sum().item()
    tsens = (0.5 * s_true + 1) / (s_true + 1)
    expected = 1 - 2 * tsens / (1 + tsens)
    assert cldice_loss(logits, target, class_index=1, iterations=3).item() == pytest.approx(expected, rel=1e-9)
    # weight-0 pixels leave both the prediction and the mask: a spurious wall there costs nothing
    walled = logits.clone()
    walled[0, 0, 0], walled[0, 1, 0] = 0.0, -60.0  # p(class 0) = 1 along row 0, which is class 1
    weights = torch.ones(1, 5, 5, dtype=torch.double)
    assert cldice_loss(walled, target, weights, class_index=0, iterations=3).item() > 0.05
    weights[0, 0] = 0
    assert cldice_loss(walled, target, weights, class_index=0, iterations=3).item() == pytest.approx(
        cldice_loss(logits, target, weights, class_index=0, iterations=3).item(), abs=1e-9)
    with pytest.raises(ValueError, match="class_index"):
        cldice_loss(logits, target, class_index=2)


def test_cldice_in_the_training_loss_and_the_config():
    from unetkit.losses import cldice_loss, segmentation_loss, weighted_cross_entropy
    from unetkit.model import ModelConfig
    from unetkit.train.config import RunConfig, TrainConfig

    logits = torch.randn(2, 2, 12, 12, generator=torch.Generator().manual_seed(10))
    target = torch.randint(0, 2, (2, 12, 12), generator=torch.Generator().manual_seed(11))
    total = segmentation_loss(logits, target, cldice_weight=0.5, cldice_class=1)
    expected = weighted_cross_entropy(logits, target) + 0.5 * cldice_loss(logits, target, class_index=1)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="cldice_weight"):
        TrainConfig(cldice_weight=-1)
    with pytest.raises(ValueError, match="cldice_class"):
        RunConfig(model=ModelConfig(num_classes=2), train=TrainConfig(cldice_weight=1, cldice_class=2))
    RunConfig(model=ModelConfig(num_classes=2), train=TrainConfig(cldice_weight=1, cldice_class=1))  # valid
