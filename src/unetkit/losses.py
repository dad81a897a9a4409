"""Pixel-wise weighted softmax cross-entropy (Ronneberger et al. 2015, Eq. 1), written once, soft Dice and clDice.

Training calls :func:`segmentation_loss` (Eq. 1, optionally plus soft Dice and
the topology-aware clDice of one class, Shit et al., CVPR 2021) on
logits; validation calls :func:`weighted_nll` on the log of the probabilities
that overlap-tile prediction returns. Both share one normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["weighted_nll", "weighted_cross_entropy", "soft_dice_loss", "soft_skeleton", "cldice_loss",
           "segmentation_loss", "LOSSES"]

#: Training losses: the paper's weighted cross-entropy, or that plus soft Dice.
LOSSES = ("ce", "ce_dice")


def _check(values: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None, name: str) -> None:
    if values.ndim != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got {tuple(values.shape)}")
    if target.shape != (values.shape[0], *values.shape[2:]):
        raise ValueError(f"target must be (B, H, W) = {(values.shape[0], *values.shape[2:])}, got {tuple(target.shape)}")
    if weights is not None and weights.shape != target.shape:
        raise ValueError(f"weights must match target {tuple(target.shape)}, got {tuple(weights.shape)}")


def weighted_nll(log_prob: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 1 per sample, averaged over the batch: E_n = sum_x w(x) * -log p_{l(x)}(x) / (pixels with w(x) > 0).

    Parameters
    ----------
    log_prob : (B, C, H, W) float
        Log class probabilities (log-softmax of the network output).
    target : (B, H, W) int64
        Class index per pixel.
    weights : (B, H, W) float, optional
        Per-pixel weight map w(x) (border weights times class balance); pixels
        with weight 0 (ignored) do not count. Default: all ones.

    Returns
    -------
    Scalar tensor. Normalising by the number of counted pixels (not by the sum
    of weights) keeps the paper's relative emphasis of border pixels and makes
    the loss independent of the tile size. Normalising per sample (then the
    mean over the batch) makes the loss of a batch the mean of its samples'
    losses even when samples ignore different numbers of pixels, so K DDP
    processes at batch b follow one process at batch K b exactly. A sample with
    no counted pixel contributes 0.
    """
    _check(log_prob, target, weights, "log_prob")
    nll = F.nll_loss(log_prob, target, reduction="none")
    if weights is None:
        return nll.mean()
    counted = (weights > 0).sum((1, 2)).clamp_min(1)
    return ((nll * weights).sum((1, 2)) / counted).mean()


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`weighted_nll` of the softmax of ``logits`` (B, C, H, W): the paper's training loss."""
    _check(logits, target, weights, "logits")
    return weighted_nll(F.log_softmax(logits, dim=1), target, weights)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, *,
                   eps: float = 1.0) -> torch.Tensor:
    """1 - the soft Dice of the softmax, averaged over samples and classes, on pixels with weight > 0.

    ``Dice_nc = (2 sum p_c y_c + eps) / (sum p_c + sum y_c + eps)`` over the
    pixels of sample ``n``, with ``y_c`` the one-hot target; ignored pixels
    (weight 0) are left out. The border weights do not enter (Dice has no
    per-pixel weights). Per sample, so that the loss of a batch is the mean of
    its samples' losses: K DDP processes at batch b then follow one process at
    batch K b exactly, as the cross-entropy term does.
    """
    _check(logits, target, weights, "logits")
    prob = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
    if weights is not None:
        mask = (weights > 0).to(prob.dtype)[:, None]
        prob, onehot = prob * mask, onehot * mask
    dims = (2, 3)
    inter = (prob * onehot).sum(dims)
    dice = (2 * inter + eps) / (prob.sum(dims) + onehot.sum(dims) + eps)
    return 1 - dice.mean()


class _MinOfThree(torch.autograd.Function):
    """Min over a pixel and its two neighbours along one axis (-2 or -1) of (B, C, H, W); outside the image
    does not count. The gradient goes to the neighbour that gave the min. Written out because autograd through
    padded, shifted copies (or ``max_pool2d``) costs ~20x more per clDice step on the CPU than this."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, axis: int) -> torch.Tensor:
        n = x.shape[axis]
        p = F.pad(x, (1, 1, 0, 0) if axis == -1 else (0, 0, 1, 1), value=float("inf"))
        prev, nxt = p.narrow(axis, 0, n), p.narrow(axis, 2, n)
        if ctx.needs_input_grad[0]:  # the target's skeleton needs no gradient, nor its bookkeeping
            took_prev = prev < torch.minimum(x, nxt)  # ties go to the pixel itself, then to the previous one
            took_next = (nxt < x) & ~took_prev
            ctx.save_for_backward(took_prev, took_next)
            ctx.axis = axis
        return torch.minimum(torch.minimum(prev, x), nxt)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        took_prev, took_next = ctx.saved_tensors
        axis, n = ctx.axis, grad.shape[ctx.axis]
        out = grad.masked_fill(took_prev | took_next, 0)
        out.narrow(axis, 1, n - 1).add_((grad * took_next).narrow(axis, 0, n - 1))  # output i took x[i + 1]
        out.narrow(axis, 0, n - 1).add_((grad * took_prev).narrow(axis, 1, n - 1))  # output i took x[i - 1]
        return out, None


def _soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Min over the 4-neighbourhood (cross) of (B, C, H, W); outside the image does not count."""
    return torch.minimum(_MinOfThree.apply(x, -2), _MinOfThree.apply(x, -1))


def _soft_dilate(x: torch.Tensor) -> torch.Tensor:
    """Max over the 3 x 3 neighbourhood (rows, then columns); outside the image does not count."""
    return -_MinOfThree.apply(_MinOfThree.apply(-x, -2), -1)


def soft_skeleton(x: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """A differentiable skeleton of soft masks (Shit et al. 2021, Alg. 1): what each erosion's opening removes.

    ``x``: (B, C, H, W) values in [0, 1]; returns the same shape, in [0, 1].
    ``iterations`` erosions reach the centre line of structures up to about
    ``2 * iterations + 1`` pixels thick (thicker ones keep no centre line).
    On a binary mask it is the morphological skeleton by iterated openings.
    """
    skeleton = F.relu(x - _soft_dilate(_soft_erode(x)))
    for _ in range(iterations):
        x = _soft_erode(x)
        delta = F.relu(x - _soft_dilate(_soft_erode(x)))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton


def cldice_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, *,
                class_index: int = 0, iterations: int = 10, eps: float = 1.0) -> torch.Tensor:
    """1 - clDice of class ``class_index`` (Shit et al. 2021), per sample, averaged over the batch.

    With ``p`` that class's softmax probability and ``y`` its mask (pixels of
    weight 0 left out of both), ``S`` :func:`soft_skeleton`:
    ``Tprec = (sum S(p) y + eps) / (sum S(p) + eps)`` (the predicted centre
    lines lie inside the true class: no spurious walls, no false splits) and
    ``Tsens = (sum S(y) p + eps) / (sum S(y) + eps)`` (the true centre lines
    are covered: no gaps, no false merges); clDice is their harmonic mean.
    Made for thin, connected structures (cell membranes, vessels), which
    pixel-wise losses let break at a cost of a few pixels.
    """
    _check(logits, target, weights, "logits")
    if not 0 <= class_index < logits.shape[1]:
        raise ValueError(f"class_index must lie in 0..{logits.shape[1] - 1}, got {class_index}")
    prob = torch.softmax(logits, dim=1)[:, class_index:class_index + 1]
    mask = (target == class_index).to(prob.dtype)[:, None]
    if weights is not None:
        counted = (weights > 0).to(prob.dtype)[:, None]
        prob, mask = prob * counted, mask * counted
    skel_pred, skel_true = soft_skeleton(prob, iterations), soft_skeleton(mask, iterations)
    dims = (1, 2, 3)
    precision = ((skel_pred * mask).sum(dims) + eps) / (skel_pred.sum(dims) + eps)
    sensitivity = ((skel_true * prob).sum(dims) + eps) / (skel_true.sum(dims) + eps)
    return (1 - 2 * precision * sensitivity / (precision + sensitivity)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, *,
                      kind: str = "ce", dice_weight: float = 1.0, cldice_weight: float = 0.0,
                      cldice_class: int = 0) -> torch.Tensor:
    """The training loss: ``"ce"`` (Eq. 1) or ``"ce_dice"`` (Eq. 1 + ``dice_weight`` x :func:`soft_dice_loss`),
    plus ``cldice_weight`` x :func:`cldice_loss` of class ``cldice_class`` when ``cldice_weight`` > 0."""
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    loss = weighted_cross_entropy(logits, target, weights)
    if kind == "ce_dice":
        loss = loss + dice_weight * soft_dice_loss(logits, target, weights)
    if cldice_weight > 0:
        loss = loss + cldice_weight * cldice_loss(logits, target, weights, class_index=cldice_class)
    return loss
