"""Instance metrics: Cell Tracking Challenge SEG and average precision at IoU 0.5 (DSB 2018).

Both come from one matching of the contingency table per plane. Definitions:
``docs/METRICS.md``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .table import _plane_pairs, contingency_table

__all__ = ["SegResult", "seg", "average_precision", "evaluate_instances"]


class SegResult(NamedTuple):
    """CTC SEG with detection numbers (false positives are not in SEG)."""

    seg: float
    n_true: int
    n_pred: int
    true_positives: int  #: pairs with IoU > 0.5
    false_positives: int  #: predicted objects without an IoU > 0.5 partner
    false_negatives: int
    precision: float
    recall: float
    mean_matched_iou: float  #: mean J over SEG-matched references


class _Matches(NamedTuple):
    n_true: int
    n_pred: int
    seg_j: np.ndarray  # J of every reference object (0 when unmatched)
    seg_matched: np.ndarray  # bool per reference object
    tp: int  # pairs with IoU > iou_threshold


def _matches(true_labels: np.ndarray, pred_labels: np.ndarray, iou_threshold: float) -> _Matches:
    coo = contingency_table(true_labels, pred_labels).tocoo()
    rows, cols, n_ij = coo.row, coo.col, coo.data.astype(np.float64)
    true_sizes = np.bincount(rows, weights=n_ij, minlength=coo.shape[0])
    pred_sizes = np.bincount(cols, weights=n_ij, minlength=coo.shape[1])
    present_true = np.flatnonzero(true_sizes[1:] > 0) + 1
    n_true = present_true.size
    n_pred = int(np.count_nonzero(pred_sizes[1:]))
    inner = (rows > 0) & (cols > 0) & (n_ij > 0)
    rows, cols, n_ij = rows[inner], cols[inner], n_ij[inner]
    jac = n_ij / (true_sizes[rows] + pred_sizes[cols] - n_ij)
    # SEG: R matches S iff |R & S| > 0.5 |R| (at most one S per R).
    seg_pair = n_ij > 0.5 * true_sizes[rows]
    j_of = np.zeros(coo.shape[0])
    j_of[rows[seg_pair]] = jac[seg_pair]
    matched = np.zeros(coo.shape[0], dtype=bool)
    matched[rows[seg_pair]] = True
    tp = int(np.count_nonzero(jac > iou_threshold))
    return _Matches(n_true, n_pred, j_of[present_true], matched[present_true], tp)


def _pooled_matches(true_labels: ArrayLike, pred_labels: ArrayLike, iou_threshold: float) -> _Matches:
    parts = [_matches(tz, pz, iou_threshold) for tz, pz in _plane_pairs(true_labels, pred_labels)]
    return _Matches(
        sum(p.n_true for p in parts),
        sum(p.n_pred for p in parts),
        np.concatenate([p.seg_j for p in parts]),
        np.concatenate([p.seg_matched for p in parts]),
        sum(p.tp for p in parts),
    )


def seg(true_labels: ArrayLike, pred_labels: ArrayLike) -> SegResult:
    """Cell Tracking Challenge SEG with detection numbers.

    Parameters
    ----------
    true_labels, pred_labels : array_like of int, shape (H, W) or (Z, H, W)
        Instance label images (0 = background); a stack is a set of
        independent planes whose objects are pooled.

    Returns
    -------
    SegResult
        ``seg``: mean over reference objects R of ``J = |R & S| / |R | S|``
        where S is the predicted object with ``|R & S| > 0.5 |R|`` (J = 0
        if none). False positives do not lower SEG; they are reported as
        ``false_positives``, with precision and recall of the one-to-one
        matching at IoU > 0.5 and the mean J of the SEG-matched references.
        NaN where a quantity has no objects to average over.

    References
    ----------
    .. [1] Maska M. et al. (2014) A benchmark for comparison of cell tracking
       algorithms. Bioinformatics 30:1609-1617.
    .. [2] Ulman V. et al. (2017) An objective comparison of cell-tracking
       algorithms. Nat. Methods 14:1141-1152.
    """
    m = _pooled_matches(true_labels, pred_labels, 0.5)
    nan = math.nan
    return SegResult(
        seg=float(m.seg_j.mean()) if m.n_true else nan,
        n_true=m.n_true,
        n_pred=m.n_pred,
        true_positives=m.tp,
        false_positives=m.n_pred - m.tp,
        false_negatives=m.n_true - m.tp,
        precision=m.tp / m.n_pred if m.n_pred else nan,
        recall=m.tp / m.n_true if m.n_true else nan,
        mean_matched_iou=float(m.seg_j[m.seg_matched].mean()) if m.seg_matched.any() else nan,
    )


def average_precision(true_labels: ArrayLike, pred_labels: ArrayLike, *, iou_threshold: float = 0.5) -> float:
    """Instance "average precision" of the DSB 2018 / StarDist convention.

    ``TP / (TP + FP + FN)`` with predicted and reference objects matched one
    to one at ``IoU > iou_threshold``; counts are pooled over the planes of
    a stack (StarDist's ``matching_dataset(..., by_image=False)``).

    Parameters
    ----------
    true_labels, pred_labels : array_like of int, shape (H, W) or (Z, H, W)
    iou_threshold : float
        At least 0.5, where a match is unique without an assignment step.

    Returns
    -------
    float
        1.0 when both images are empty.

    References
    ----------
    .. [1] Caicedo J. C. et al. (2019) Nucleus segmentation across imaging
       experiments: the 2018 Data Science Bowl. Nat. Methods 16:1247-1253.
    .. [2] Schmidt U. et al. (2018) Cell detection with star-convex
       polygons. MICCAI, 265-273.
    """
    if not 0.5 <= iou_threshold < 1:
        raise ValueError(f"iou_threshold must be in [0.5, 1) for one-to-one matching, got {iou_threshold}")
    m = _pooled_matches(true_labels, pred_labels, iou_threshold)
    denom = m.n_true + m.n_pred - m.tp
    return 1.0 if denom == 0 else m.tp / denom


def evaluate_instances(pred_labels: ArrayLike, gt_labels: ArrayLike) -> dict:
    """SEG, AP at IoU 0.5 and detection numbers of an instance segmentation.

    Parameters
    ----------
    pred_labels, gt_labels : array_like of int, shape (H, W) or (Z, H, W)
        Instance label images, prediction first (0 = background).

    Returns
    -------
    dict
        ``seg``, ``ap50``, ``n_true``, ``n_pred``, ``true_positives``,
        ``false_positives``, ``false_negatives``, ``precision``, ``recall``,
        ``mean_matched_iou`` (plain Python numbers).
    """
    res = seg(gt_labels, pred_labels)
    out = {"seg": res.seg, "ap50": average_precision(gt_labels, pred_labels)}
    out.update({k: v for k, v in res._asdict().items() if k != "seg"})
    return {k: (float(v) if isinstance(v, float) else int(v)) for k, v in out.items()}
