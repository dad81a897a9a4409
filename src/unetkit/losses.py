"""Pixel-wise weighted softmax cross-entropy (Ronneberger et al. 2015, Eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["weighted_cross_entropy"]


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """E = sum_x w(x) * -log p_{l(x)}(x) / (number of pixels with w(x) > 0).

    Parameters
    ----------
    logits : (B, C, H, W) float
        Network output before the softmax.
    target : (B, H, W) int64
        Class index per pixel.
    weights : (B, H, W) float, optional
        Per-pixel weight map w(x) (border weights times class balance); pixels
        with weight 0 (ignored) do not count. Default: all ones.

    Returns
    -------
    Scalar tensor. Normalising by the number of counted pixels (not by the sum
    of weights) keeps the paper's relative emphasis of border pixels and makes
    the loss independent of the tile size.
    """
    if logits.ndim != 4:
        raise ValueError(f"logits must be (B, C, H, W), got {tuple(logits.shape)}")
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"target must be (B, H, W) = {(logits.shape[0], *logits.shape[2:])}, got {tuple(target.shape)}")
    ce = F.cross_entropy(logits, target, reduction="none")
    if weights is None:
        return ce.mean()
    if weights.shape != target.shape:
        raise ValueError(f"weights must match target {tuple(target.shape)}, got {tuple(weights.shape)}")
    counted = (weights > 0).sum().clamp_min(1)
    return (ce * weights).sum() / counted
