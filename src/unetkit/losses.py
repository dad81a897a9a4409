"""Pixel-wise weighted softmax cross-entropy (Ronneberger et al. 2015, Eq. 1), written once, and soft Dice.

Training calls :func:`segmentation_loss` (Eq. 1, optionally plus soft Dice) on
logits; validation calls :func:`weighted_nll` on the log of the probabilities
that overlap-tile prediction returns. Both share one normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["weighted_nll", "weighted_cross_entropy", "soft_dice_loss", "segmentation_loss", "LOSSES"]

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


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, *,
                      kind: str = "ce", dice_weight: float = 1.0) -> torch.Tensor:
    """The training loss: ``"ce"`` (Eq. 1) or ``"ce_dice"`` (Eq. 1 + ``dice_weight`` x :func:`soft_dice_loss`)."""
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    loss = weighted_cross_entropy(logits, target, weights)
    if kind == "ce_dice":
        loss = loss + dice_weight * soft_dice_loss(logits, target, weights)
    return loss
