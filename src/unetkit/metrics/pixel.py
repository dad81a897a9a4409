"""Pixel metrics: the ISBI 2012 pixel error, IoU, Dice and accuracy.

Definitions: ``docs/METRICS.md``. Empty cases follow one rule everywhere
(these functions and the threshold sweep): a class absent from both images
has IoU and Dice NaN (undefined); the pixel error of two empty masks is 0.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from .table import _as_stack, _same_shape

__all__ = ["pixel_error", "iou", "dice", "accuracy", "confusion_per_plane", "f1_score", "iou_score", "dice_score"]


def confusion_per_plane(true_cell: np.ndarray, pred_cell: np.ndarray) -> np.ndarray:
    """(Z, 4) counts TP, FP, FN, TN of the cell class per plane."""
    axes = (1, 2)
    tp = np.count_nonzero(true_cell & pred_cell, axis=axes)
    fp = np.count_nonzero(pred_cell, axis=axes) - tp
    fn = np.count_nonzero(true_cell, axis=axes) - tp
    tn = true_cell.shape[1] * true_cell.shape[2] - tp - fp - fn
    return np.stack([tp, fp, fn, tn], axis=1).astype(np.int64)


def f1_score(tp: float, fp: float, fn: float) -> float:
    """``2 TP / (2 TP + FP + FN)``; 1.0 when there is nothing to find and nothing found."""
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


def iou_score(tp: float, fp: float, fn: float) -> float:
    """``TP / (TP + FP + FN)``; NaN for a class absent from both images."""
    denom = tp + fp + fn
    return math.nan if denom == 0 else tp / denom


def dice_score(tp: float, fp: float, fn: float) -> float:
    """``2 TP / (2 TP + FP + FN)``; NaN for a class absent from both images."""
    denom = 2 * tp + fp + fn
    return math.nan if denom == 0 else 2 * tp / denom


def pixel_error(true_cell: ArrayLike, pred_cell: ArrayLike) -> float:
    """ISBI 2012 pixel error: 1 - F1 of the cell class, pooled over planes.

    Parameters
    ----------
    true_cell, pred_cell : array_like of bool, shape (H, W) or (Z, H, W)
        Ground-truth and predicted cell masks (binarise a probability map
        with :func:`threshold` first).

    Returns
    -------
    float
        ``1 - 2 TP / (2 TP + FP + FN)``, TP/FP/FN summed over all planes;
        0 when neither mask has a cell pixel. Not the misclassification rate.

    References
    ----------
    .. [1] Ronneberger O., Fischer P., Brox T. (2015) U-Net, Table 1.
    .. [2] Arganda-Carreras I. et al. (2015) Front. Neuroanat. 9:142.
    """
    t = np.asarray(true_cell).astype(bool, copy=False)
    p = np.asarray(pred_cell).astype(bool, copy=False)
    _same_shape(t, p, "true_cell and pred_cell")
    tp, fp, fn, _ = confusion_per_plane(_as_stack(t, "true_cell"), _as_stack(p, "pred_cell")).sum(axis=0)
    return 1.0 - f1_score(tp, fp, fn)


def _class_confusion(true_classes: ArrayLike, pred_classes: ArrayLike, num_classes: int | None) -> np.ndarray:
    t = np.asarray(true_classes)
    p = np.asarray(pred_classes)
    _same_shape(t, p, "true and pred class maps")
    t = t.ravel().astype(np.int64)
    p = p.ravel().astype(np.int64)
    if t.size and min(t.min(), p.min()) < 0:
        raise ValueError("class maps must be non-negative integers")
    k = num_classes if num_classes is not None else max(2, int(max(t.max(initial=0), p.max(initial=0))) + 1)
    if t.size and max(t.max(), p.max()) >= k:
        raise ValueError(f"class index {max(t.max(), p.max())} out of range for num_classes={k}")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _per_class_counts(cm: np.ndarray):
    """TP, FP, FN per class of a (true, pred) confusion matrix."""
    tp = np.diag(cm).astype(float)
    return tp, cm.sum(axis=0) - tp, cm.sum(axis=1) - tp


def iou(true_classes: ArrayLike, pred_classes: ArrayLike, *, num_classes: int | None = None) -> np.ndarray:
    """Intersection over union (Jaccard index) per class.

    Parameters
    ----------
    true_classes, pred_classes : array_like of int or bool
        Class maps of the same shape (for a binary segmentation: 0 =
        boundary, 1 = cell). All pixels of all planes are pooled.
    num_classes : int, optional
        Defaults to ``max(2, largest class + 1)``.

    Returns
    -------
    ndarray of float, shape (num_classes,)
        ``TP / (TP + FP + FN)`` per class; NaN for a class absent from both.
    """
    cm = _class_confusion(true_classes, pred_classes, num_classes)
    tp, fp, fn = _per_class_counts(cm)
    return np.array([iou_score(*c) for c in zip(tp, fp, fn)])


def dice(true_classes: ArrayLike, pred_classes: ArrayLike, *, num_classes: int | None = None) -> np.ndarray:
    """Dice coefficient (F1) per class; see :func:`iou` for the arguments.

    Returns ``2 TP / (2 TP + FP + FN)`` per class, NaN for an absent class.
    For the cell class this is ``1 - pixel_error``.
    """
    cm = _class_confusion(true_classes, pred_classes, num_classes)
    tp, fp, fn = _per_class_counts(cm)
    return np.array([dice_score(*c) for c in zip(tp, fp, fn)])


def accuracy(true_classes: ArrayLike, pred_classes: ArrayLike) -> float:
    """Fraction of pixels whose class is right (pooled over all planes)."""
    t = np.asarray(true_classes)
    p = np.asarray(pred_classes)
    _same_shape(t, p, "true and pred class maps")
    return float(np.mean(t == p)) if t.size else 1.0
