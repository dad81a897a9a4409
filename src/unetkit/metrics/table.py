"""The shared ground of every metric: thresholds, conventions, plane handling, the contingency table.

Images are ``(H, W)`` planes or ``(Z, H, W)`` stacks of independent planes
(no connectivity across planes); region and instance metrics also take a
list of planes, which may differ in shape. Every region and instance metric
is computed from :func:`contingency_table` (through :func:`overlap` for the
foreground-restricted ISBI scores). Definitions: ``docs/METRICS.md``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

from ..labels import is_binary_values

__all__ = [
    "THRESHOLDS",
    "WARPING_THRESHOLDS",
    "METRIC_NAMES",
    "HIGHER_IS_BETTER",
    "SplitMerge",
    "threshold",
    "contingency_table",
    "as_probability",
]

#: Thresholds of the official sweep for pixel, Rand, V_rand and V_info.
THRESHOLDS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
#: Thresholds of the official sweep for the warping error (1.0 excluded).
WARPING_THRESHOLDS: tuple[float, ...] = THRESHOLDS[:-1]
#: Metrics reported by :func:`evaluate_probabilities`, in report order.
METRIC_NAMES: tuple[str, ...] = (
    "pixel_error",
    "rand_error",
    "warping_error",
    "v_rand",
    "v_info",
    "iou",
    "dice",
)
#: Scores where larger is better (the others are errors).
HIGHER_IS_BETTER = frozenset({"v_rand", "v_info", "iou", "dice"})


class SplitMerge(NamedTuple):
    """A score in [0, 1] (1 = perfect) with its split and merge parts."""

    score: float
    split: float
    merge: float


def threshold(prob: ArrayLike, t: float) -> np.ndarray:
    """Binarise a probability map with the strict ISBI 2012 rule ``p > t``.

    Parameters
    ----------
    prob : array_like
        ``P(cell)`` in [0, 1], any shape.
    t : float
        Threshold; a pixel is cell iff ``p > t`` (so ``t = 1`` gives no cell).

    Returns
    -------
    ndarray of bool

    References
    ----------
    .. [1] Arganda-Carreras I. et al. (2015) Crowdsourcing the creation of
       image segmentation algorithms for connectomics. Front. Neuroanat. 9:142.
    """
    return np.asarray(prob) > t


def contingency_table(true_labels: ArrayLike, pred_labels: ArrayLike) -> sparse.csr_matrix:
    """Overlap counts of two label images.

    Entry ``(i, j)`` is the number of pixels with true label ``i`` and
    predicted label ``j``; row 0 and column 0 hold the background / boundary
    pixels. Every region metric in this module is computed from this table.

    Parameters
    ----------
    true_labels, pred_labels : array_like of non-negative int, same shape

    Returns
    -------
    scipy.sparse.csr_matrix of int64, shape (max(true) + 1, max(pred) + 1)

    Notes
    -----
    Same layout as ``skimage.metrics.contingency_table``; built with a dense
    ``bincount`` when the label ranges are small, sparse otherwise.
    """
    t = np.asarray(true_labels)
    p = np.asarray(pred_labels)
    if t.shape != p.shape:
        raise ValueError(f"label images differ in shape: true {t.shape} vs pred {p.shape}")
    for name, a in (("true_labels", t), ("pred_labels", p)):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise ValueError(f"{name} must be an integer label image, got dtype {a.dtype}")
        if a.size and a.min() < 0:
            raise ValueError(f"{name} must be non-negative, got minimum {a.min()}")
    t = t.ravel().astype(np.int64, copy=False)
    p = p.ravel().astype(np.int64, copy=False)
    n_true = int(t.max()) + 1 if t.size else 1
    n_pred = int(p.max()) + 1 if p.size else 1
    if n_true * n_pred <= max(1 << 20, 4 * t.size):
        dense = np.bincount(t * n_pred + p, minlength=n_true * n_pred)
        flat = np.flatnonzero(dense)
        rows, cols = np.divmod(flat, n_pred)
        data = dense[flat]
    else:
        rows, cols, data = t, p, np.ones(t.size, dtype=np.int64)
    return sparse.coo_matrix((data, (rows, cols)), shape=(n_true, n_pred)).tocsr()


def _as_stack(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        return a
    raise ValueError(f"{name}: expected a (H, W) plane or a (Z, H, W) stack, got shape {a.shape}")


def _same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} differ in shape: {a.shape} vs {b.shape}")


class _Overlap(NamedTuple):
    """Foreground-restricted parts of a contingency table (one plane)."""

    sizes: np.ndarray  # t_i: pixels of each GT region (predicted label 0 included)
    n_i0: np.ndarray  # GT pixels of each region that the prediction calls boundary
    s_j: np.ndarray  # GT-foreground pixels of each predicted region j >= 1
    n_ij: np.ndarray  # nonzero overlaps, i >= 1, j >= 1


def _overlap(table: sparse.spmatrix) -> _Overlap:
    coo = table.tocoo()
    keep = (coo.row > 0) & (coo.data > 0)
    rows, cols, data = coo.row[keep], coo.col[keep], coo.data[keep].astype(np.float64)
    inner = cols > 0
    return _Overlap(
        sizes=np.bincount(rows, weights=data)[1:],
        n_i0=data[~inner],
        s_j=np.bincount(cols[inner], weights=data[inner])[1:],
        n_ij=data[inner],
    )


def _plane_pairs(true_labels, pred_labels):
    """Pairs of 2D planes from planes, stacks or lists of planes."""
    ts = planes_of(true_labels, "true_labels")
    ps = planes_of(pred_labels, "pred_labels")
    if len(ts) != len(ps):
        raise ValueError(f"true_labels has {len(ts)} planes but pred_labels has {len(ps)}")
    for i, (t, p) in enumerate(zip(ts, ps)):
        _same_shape(t, p, f"plane {i} of true_labels and pred_labels")
    return zip(ts, ps)


def planes_of(x, name: str) -> list[np.ndarray]:
    if isinstance(x, np.ndarray) or not isinstance(x, (list, tuple)):
        a = np.asarray(x)
        if a.ndim == 2:
            return [a]
        if a.ndim == 3:
            return list(a)
        raise ValueError(f"{name}: expected (H, W), (Z, H, W) or a list of (H, W) planes, got shape {a.shape}")
    planes = [np.asarray(p) for p in x]
    if not planes:
        raise ValueError(f"{name}: no planes given")
    for i, p in enumerate(planes):
        if p.ndim != 2:
            raise ValueError(f"{name}[{i}]: expected a (H, W) plane, got shape {p.shape}")
    return planes


def as_probability(p: np.ndarray, name: str = "prob") -> np.ndarray:
    """THE rule for what a prediction plane means as ``P(cell)``.

    A floating-point map with values in [0, 1] is a probability map, used as
    it is (NaN is refused). Anything else must be a binary mask: bool, an
    integer mask with values in ``{0, v}`` (0/1, 0/255), or a 0/255 mask
    stored as floats; it becomes 0/1 float32, so every threshold in [0, 1)
    gives the same binarisation.
    Raises ``ValueError`` naming ``name`` otherwise.
    """
    p = np.asarray(p)
    if p.dtype == bool:
        return p.astype(np.float32)
    if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)):
        raise ValueError(f"{name}: expected numbers, got dtype {p.dtype}")
    if np.issubdtype(p.dtype, np.floating) and np.isnan(p).any():
        raise ValueError(f"{name} contains NaN")
    lo, hi = (p.min(), p.max()) if p.size else (0, 0)
    if np.issubdtype(p.dtype, np.floating) and lo >= 0 and hi <= 1:
        return p
    values = np.unique(p) if p.size else np.zeros(0)
    floating_mask = np.all(np.isin(values, (0.0, 255.0)))  # a 0/255 mask saved as floats
    if is_binary_values(values) and (np.issubdtype(p.dtype, np.integer) or floating_mask):
        return (p > 0).astype(np.float32)
    raise ValueError(
        f"{name} must hold P(cell) in [0, 1] or be a binary mask (0/1, 0/255); got values in [{lo}, {hi}]"
    )
