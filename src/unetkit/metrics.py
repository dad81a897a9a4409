"""Segmentation metrics of the ISBI 2012 challenge and the Cell Tracking Challenge.

Everything here is pure NumPy/SciPy on arrays. Images are ``(H, W)`` planes or
``(Z, H, W)`` stacks of independent planes (no connectivity across planes);
the region and instance metrics and the ``evaluate_*`` functions also take a
list of planes, which may differ in shape.
The definitions follow ``docs/METRICS.md`` exactly; each function cites its
source. Thresholding (:func:`threshold`), connected components
(:func:`connected_components`) and boundary thinning (:func:`thin_boundaries`)
are separate helpers: a metric never binarises or labels its input itself,
except :func:`warping_error`, whose definition needs the probabilities (the
flip order is ``|p - t|``).

Conventions (ISBI 2012)
-----------------------
* A prediction is ``P(cell)`` in [0, 1]; it is binarised with the strict
  rule ``p > t``.
* Ground truth: cell = ``label > 0``.
* Regions are 4-connected components of cell pixels; boundary (membrane)
  pixels have label 0 and belong to no region.

:func:`evaluate_probabilities` runs the official threshold sweep and
:func:`evaluate_instances` the instance metrics (CTC SEG, AP at IoU 0.5).
Note the argument order: the ``evaluate_*`` functions take the prediction
first (like the ``unetkit evaluate PRED GT`` command), the metric functions
take the ground truth first (like ``skimage.metrics``).
"""

from __future__ import annotations

import heapq
import math
from typing import NamedTuple, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage as ndi
from scipy import sparse

__all__ = [
    "THRESHOLDS",
    "WARPING_THRESHOLDS",
    "METRIC_NAMES",
    "SplitMerge",
    "WarpingResult",
    "SegResult",
    "threshold",
    "connected_components",
    "contingency_table",
    "thin_boundaries",
    "pixel_error",
    "rand_error",
    "v_rand",
    "v_info",
    "simple_point_warp",
    "warping_error",
    "iou",
    "dice",
    "accuracy",
    "seg",
    "average_precision",
    "evaluate_probabilities",
    "evaluate_instances",
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
_HIGHER_IS_BETTER = frozenset({"v_rand", "v_info", "iou", "dice"})
#: Half width of the window used to decide two-valued warping mismatches
#: (41 x 41 pixels, as in the ISBI 2012 evaluation).
WARPING_RADIUS = 20

_CROSS = ndi.generate_binary_structure(2, 1)
_SQUARE = ndi.generate_binary_structure(2, 2)
# Label every plane of a stack separately in one call: no links along axis 0.
_CROSS_PLANES = np.zeros((3, 3, 3), dtype=bool)
_CROSS_PLANES[1] = _CROSS


class SplitMerge(NamedTuple):
    """A score in [0, 1] (1 = perfect) with its split and merge parts."""

    score: float
    split: float
    merge: float


class WarpingResult(NamedTuple):
    """Warping error with the counts it is made of."""

    error: float  #: (splits + merges) / n_pixels
    splits: int
    merges: int
    n_pixels: int


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


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


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


def connected_components(binary: ArrayLike, connectivity: int = 1) -> np.ndarray:
    """Label connected regions of a binary plane or of each plane of a stack.

    Parameters
    ----------
    binary : array_like of bool, shape (H, W) or (Z, H, W)
        Foreground mask. A stack is labelled plane by plane (no connectivity
        along axis 0); labels restart at 1 in every plane.
    connectivity : {1, 2}
        1 = 4-connectivity (the ISBI 2012 convention, default), 2 = 8.

    Returns
    -------
    ndarray of int32, same shape
        0 for background, 1..n for the regions.
    """
    b = np.asarray(binary).astype(bool, copy=False)
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 (4-connected) or 2 (8-connected), got {connectivity!r}")
    structure = _CROSS if connectivity == 1 else _SQUARE
    if b.ndim == 2:
        return ndi.label(b, structure=structure)[0]
    if b.ndim == 3:
        out = np.empty(b.shape, dtype=np.int32)
        for z in range(b.shape[0]):
            ndi.label(b[z], structure=structure, output=out[z])
        return out
    raise ValueError(f"expected a (H, W) plane or a (Z, H, W) stack, got shape {b.shape}")


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


def thin_boundaries(binary_cell: ArrayLike) -> np.ndarray:
    """Thin the boundaries of a binary segmentation to 1-pixel dams.

    The 4-connected cell regions are grown through the boundary (membrane)
    pixels, all at the same speed, as in a watershed of the flat membrane
    mask seeded with the regions; where two regions meet, a dam of label 0
    stays. Used before V_rand and V_info (ISBI 2012 leaderboard after 2015).

    Parameters
    ----------
    binary_cell : array_like of bool, shape (H, W) or (Z, H, W)
        Cell mask; a stack is processed plane by plane.

    Returns
    -------
    ndarray of int32, same shape
        Region labels (those of :func:`connected_components`), 0 on dams and
        on boundary pixels no region reaches.

    Notes
    -----
    Breadth-first growth in 4-connectivity: at each step an unassigned
    boundary pixel whose labelled 4-neighbours all carry one label takes it;
    one that touches two labels becomes a dam; and of two 4-adjacent pixels
    that would take different labels in the same step, the one with the
    larger label becomes a dam. No two different labels are ever
    4-adjacent. It agrees with ``skimage.segmentation.watershed(~cell,
    markers, connectivity=1, watershed_line=True)``, the approximation
    METRICS.md names, except where a dam falls on a boundary of even width
    (V_rand on the ISBI labels differs by ~1e-5), and is about twice as fast
    on a stack.

    References
    ----------
    .. [1] Arganda-Carreras I. et al. (2015) Crowdsourcing the creation of
       image segmentation algorithms for connectomics. Front. Neuroanat. 9:142.
    """
    cell = np.asarray(binary_cell).astype(bool, copy=False)
    plane = cell.ndim == 2
    if plane:
        cell = cell[None]
    if cell.ndim != 3:
        raise ValueError(f"expected a (H, W) plane or a (Z, H, W) stack, got shape {cell.shape}")
    z, h, w = cell.shape
    w2 = w + 2
    lab = np.zeros((z, h + 2, w2), dtype=np.int32)
    lab[:, 1:-1, 1:-1] = connected_components(cell)
    free = np.zeros(lab.shape, dtype=bool)
    free[:, 1:-1, 1:-1] = ~cell
    labf = lab.reshape(-1)
    freef = free.reshape(-1)
    offs = np.array([-w2, -1, 1, w2], dtype=np.int64)
    big = np.iinfo(np.int32).max

    # First front: boundary pixels 4-adjacent to a cell (array shifts, no gathers).
    near = np.zeros(free.shape, dtype=bool)
    near[:, 1:, :] |= lab[:, :-1, :] > 0
    near[:, :-1, :] |= lab[:, 1:, :] > 0
    near[:, :, 1:] |= lab[:, :, :-1] > 0
    near[:, :, :-1] |= lab[:, :, 1:] > 0
    front = np.flatnonzero(near & free)
    del near
    pending_label = np.zeros(labf.shape, dtype=np.int32)  # labels proposed this step
    stamp = np.empty(labf.shape, dtype=np.int32)
    while front.size:
        nb = labf[front[:, None] + offs]
        hi = nb.max(axis=1)
        lo = np.where(nb > 0, nb, big).min(axis=1)
        single = lo == hi
        cand, c = front[single], hi[single]
        pending_label[cand] = c
        other = pending_label[cand[:, None] + offs]
        clash = ((other > 0) & (other < c[:, None])).any(axis=1)
        pending_label[cand] = 0
        win, c = cand[~clash], c[~clash]
        labf[win] = c
        freef[front[~single]] = False  # touches two regions: dam
        freef[cand[clash]] = False  # would touch a smaller label: dam
        freef[win] = False
        nxt = (win[:, None] + offs).ravel()
        front = _unique_flat(nxt[freef[nxt]], stamp)
    out = lab[:, 1:-1, 1:-1]
    return np.ascontiguousarray(out[0] if plane else out)


def _unique_flat(idx: np.ndarray, stamp: np.ndarray) -> np.ndarray:
    """Distinct values of ``idx`` (indices into ``stamp``, a scratch array) in O(n)."""
    first = np.arange(idx.size, dtype=np.int32)
    stamp[idx] = first
    return idx[stamp[idx] == first]


def _as_stack(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        return a
    raise ValueError(f"{name}: expected a (H, W) plane or a (Z, H, W) stack, got shape {a.shape}")


def _same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} differ in shape: {a.shape} vs {b.shape}")


# ---------------------------------------------------------------------------
# Pixel metrics
# ---------------------------------------------------------------------------


def _confusion_per_plane(true_cell: np.ndarray, pred_cell: np.ndarray) -> np.ndarray:
    """(Z, 4) counts TP, FP, FN, TN of the cell class per plane."""
    axes = (1, 2)
    tp = np.count_nonzero(true_cell & pred_cell, axis=axes)
    fp = np.count_nonzero(pred_cell, axis=axes) - tp
    fn = np.count_nonzero(true_cell, axis=axes) - tp
    tn = true_cell.shape[1] * true_cell.shape[2] - tp - fp - fn
    return np.stack([tp, fp, fn, tn], axis=1).astype(np.int64)


def _f1(tp: float, fp: float, fn: float) -> float:
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


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
    tp, fp, fn, _ = _confusion_per_plane(_as_stack(t, "true_cell"), _as_stack(p, "pred_cell")).sum(axis=0)
    return 1.0 - _f1(tp, fp, fn)


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
    tp = np.diag(cm).astype(float)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def dice(true_classes: ArrayLike, pred_classes: ArrayLike, *, num_classes: int | None = None) -> np.ndarray:
    """Dice coefficient (F1) per class; see :func:`iou` for the arguments.

    Returns ``2 TP / (2 TP + FP + FN)`` per class, NaN for an absent class.
    For the cell class this is ``1 - pixel_error``.
    """
    cm = _class_confusion(true_classes, pred_classes, num_classes)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def accuracy(true_classes: ArrayLike, pred_classes: ArrayLike) -> float:
    """Fraction of pixels whose class is right (pooled over all planes)."""
    t = np.asarray(true_classes)
    p = np.asarray(pred_classes)
    _same_shape(t, p, "true and pred class maps")
    return float(np.mean(t == p)) if t.size else 1.0


# ---------------------------------------------------------------------------
# Region metrics: foreground-restricted Rand and information scores
# ---------------------------------------------------------------------------


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


def _rand_abc(ov: _Overlap) -> tuple[float, float, float]:
    """A = sum t_i^2, B = sum s_j^2 + n_0, C = sum n_ij^2 + n_0 (pairs with self-pairs)."""
    n0 = ov.n_i0.sum()
    a = float(np.dot(ov.sizes, ov.sizes))
    b = float(np.dot(ov.s_j, ov.s_j) + n0)
    c = float(np.dot(ov.n_ij, ov.n_ij) + n0)
    return a, b, c


def _info_terms(ov: _Overlap) -> tuple[float, float, float]:
    """Mutual information I and entropies H(S), H(T) (natural log), singletons for label 0."""
    n = ov.sizes.sum()
    if n == 0:
        return 0.0, 0.0, 0.0

    def plogp(x: np.ndarray) -> float:
        x = x[x > 0] / n
        return float(-np.sum(x * np.log(x)))

    singles = ov.n_i0.sum() / n * math.log(n)
    h_t = plogp(ov.sizes)
    h_s = plogp(ov.s_j) + singles
    h_st = plogp(ov.n_ij) + singles
    mi = max(h_s + h_t - h_st, 0.0)
    return mi, h_s, h_t


def _ratio(num: float, den: float) -> float:
    """num / den with 0/0 = 1 (nothing to split or merge is perfect)."""
    return 1.0 if den == 0 else num / den


def _harmonic(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def _plane_pairs(true_labels, pred_labels):
    """Pairs of 2D planes from planes, stacks or lists of planes."""
    ts = _planes(true_labels, "true_labels")
    ps = _planes(pred_labels, "pred_labels")
    if len(ts) != len(ps):
        raise ValueError(f"true_labels has {len(ts)} planes but pred_labels has {len(ps)}")
    for i, (t, p) in enumerate(zip(ts, ps)):
        _same_shape(t, p, f"plane {i} of true_labels and pred_labels")
    return zip(ts, ps)


def rand_error(true_labels: ArrayLike, pred_labels: ArrayLike) -> float:
    """ISBI 2012 Rand error: 1 - foreground-restricted Rand F-score.

    Parameters
    ----------
    true_labels : array_like of int, shape (H, W) or (Z, H, W)
        Ground-truth regions (4-connected components of GT cell pixels),
        0 = boundary. Only GT-foreground pixels are scored.
    pred_labels : array_like of int, same shape
        Predicted regions (:func:`connected_components` of the binarised
        prediction); label 0 (predicted boundary) counts as singletons.

    Returns
    -------
    float
        ``1 - 2 C / (A + B)`` with A, B, C summed over planes (pooled); NaN
        when the ground truth has no foreground.

    Notes
    -----
    On GT foreground (n pixels) with overlaps ``n_ij`` (j >= 1), ``n_i0``
    GT pixels called boundary, ``t_i = sum_j n_ij`` (j = 0 included) and
    ``s_j = sum_i n_ij``: ``A = sum t_i^2``, ``B = sum s_j^2 + sum n_i0``,
    ``C = sum n_ij^2 + sum n_i0``. Pairs include self-pairs (N^2
    normalisation); TP = C, FP = B - C, FN = A - C.

    ``skimage.metrics.adapted_rand_error`` excludes self-pairs, treats
    predicted label 0 as one segment and swaps precision and recall; it
    agrees with this definition only after those conversions.

    References
    ----------
    .. [1] Rand W. M. (1971) Objective criteria for the evaluation of
       clustering methods. J. Am. Stat. Assoc. 66:846-850.
    .. [2] Arganda-Carreras I. et al. (2015) Front. Neuroanat. 9:142.
    """
    a = b = c = 0.0
    for tz, pz in _plane_pairs(true_labels, pred_labels):
        da, db, dc = _rand_abc(_overlap(contingency_table(tz, pz)))
        a, b, c = a + da, b + db, c + dc
    return math.nan if a + b == 0 else 1.0 - 2 * c / (a + b)


def _mean_split_merge(scores: list[SplitMerge]) -> SplitMerge:
    if not scores:
        return SplitMerge(math.nan, math.nan, math.nan)
    arr = np.asarray(scores, dtype=float).mean(axis=0)
    return SplitMerge(float(arr[0]), float(arr[1]), float(arr[2]))


def _plane_average(true_labels: ArrayLike, pred_labels: ArrayLike, plane_score) -> SplitMerge:
    """``plane_score`` of each plane's overlap, averaged over planes with GT foreground."""
    scores = []
    for tz, pz in _plane_pairs(true_labels, pred_labels):
        ov = _overlap(contingency_table(tz, pz))
        if ov.sizes.sum() > 0:
            scores.append(plane_score(ov))
    return _mean_split_merge(scores)


def _v_rand_plane(ov: _Overlap) -> SplitMerge:
    a, b, c = _rand_abc(ov)
    return SplitMerge(_ratio(2 * c, a + b), _ratio(c, a), _ratio(c, b))


def _v_info_plane(ov: _Overlap) -> SplitMerge:
    mi, h_s, h_t = _info_terms(ov)
    split, merge = _ratio(mi, h_s), _ratio(mi, h_t)
    return SplitMerge(_harmonic(split, merge), split, merge)


def v_rand(true_labels: ArrayLike, pred_labels: ArrayLike) -> SplitMerge:
    """Foreground-restricted Rand score V_rand with its split and merge parts.

    Parameters
    ----------
    true_labels : array_like of int, shape (H, W) or (Z, H, W)
        Ground-truth regions, 0 = boundary (not scored).
    pred_labels : array_like of int, same shape
        Predicted regions **after thinning** (:func:`thin_boundaries` of the
        binarised prediction, as the ISBI leaderboard does); label 0 pixels
        are singletons.

    Returns
    -------
    SplitMerge
        ``score = 2C / (A + B)``, ``split = C / A``, ``merge = C / B`` (A, B,
        C as in :func:`rand_error`), each computed per plane and averaged
        over the planes that have GT foreground. 1 is perfect. A merge lowers
        only ``merge``, a split only ``split``.

    References
    ----------
    .. [1] Arganda-Carreras I. et al. (2015) Crowdsourcing the creation of
       image segmentation algorithms for connectomics. Front. Neuroanat. 9:142.
    """
    return _plane_average(true_labels, pred_labels, _v_rand_plane)


def v_info(true_labels: ArrayLike, pred_labels: ArrayLike) -> SplitMerge:
    """Foreground-restricted information-theoretic score V_info.

    Arguments as in :func:`v_rand` (thinned prediction; label 0 pixels are
    singletons).

    Returns
    -------
    SplitMerge
        ``split = I / H(S)``, ``merge = I / H(T)`` and their harmonic mean,
        per plane, averaged over planes with GT foreground. 1 is perfect.

    Notes
    -----
    On GT foreground with ``p_ij = n_ij / n`` (natural log):
    ``H(T) = -sum t log t``, ``H(S) = -sum_{j>=1} s log s + (n_0/n) ln n``,
    ``H(S,T) = -sum p log p + (n_0/n) ln n`` and
    ``I = H(S) + H(T) - H(S,T)``, where the ``n_0`` predicted-boundary
    pixels are singletons. A zero entropy gives a part of 1 (nothing can be
    split or merged).

    References
    ----------
    .. [1] Arganda-Carreras I. et al. (2015) Front. Neuroanat. 9:142.
    .. [2] Meila M. (2007) Comparing clusterings - an information based
       distance. J. Multivar. Anal. 98:873-895.
    """
    return _plane_average(true_labels, pred_labels, _v_info_plane)


# ---------------------------------------------------------------------------
# Warping error (Jain et al. 2010)
# ---------------------------------------------------------------------------


def _simple_point_lut() -> np.ndarray:
    """512-entry table: is the centre of a 3x3 patch a simple point?

    Bit ``k`` of the index is patch pixel ``(k // 3, k % 3)`` (1 = cell). The
    centre is simple for (4, 8) adjacency (4 for cells, 8 for boundary) iff
    exactly one 4-component of the cell pixels of its 8-neighbourhood is
    4-adjacent to it and the boundary pixels of the 8-neighbourhood form
    exactly one 8-component (topological numbers T4 = T8 = 1, Bertrand &
    Malandain 1994). The centre's own value does not matter.
    """
    lut = np.zeros(512, dtype=bool)
    four = [(0, 1), (1, 0), (1, 2), (2, 1)]
    ring = np.ones((3, 3), dtype=bool)
    ring[1, 1] = False
    for code in range(512):
        patch = ((code >> np.arange(9)) & 1).reshape(3, 3).astype(bool)
        cell = patch & ring
        lab4 = ndi.label(cell, structure=_CROSS)[0]
        t4 = len({lab4[r, c] for r, c in four} - {0})
        t8 = ndi.label(~patch & ring, structure=_SQUARE)[1]
        lut[code] = t4 == 1 and t8 == 1
    return lut


_SIMPLE = _simple_point_lut()


def _padded(a: np.ndarray, dtype) -> np.ndarray:
    out = np.zeros((a.shape[0], a.shape[1] + 2, a.shape[2] + 2), dtype=dtype)
    out[:, 1:-1, 1:-1] = a
    return out


def _flip_order(prob: np.ndarray, lab: np.ndarray, tgt: np.ndarray, t: float) -> np.ndarray:
    """Flat indices of the mismatches of padded ``lab`` vs ``tgt`` in flip order.

    ``|p - t|`` descending (computed in double, compared in single precision
    like the Fiji reference); ties in column-major scan order (column, then
    row), the order in which the reference scans the image.
    """
    _, h2, w2 = lab.shape
    mism = np.flatnonzero(lab.reshape(-1) != tgt.reshape(-1))
    z, rem = np.divmod(mism, h2 * w2)
    row, col = np.divmod(rem, w2)
    p = prob[z, row - 1, col - 1].astype(np.float64)
    key = np.abs(p - t).astype(np.float32)
    if max(h2, w2) > 0xFFFF:
        return mism[np.lexsort((row, col, -key))]
    # One 64-bit key, same order: a non-negative float32 sorts like its bits.
    u64 = np.uint64
    desc = u64(0xFFFFFFFF) - key.view(np.uint32).astype(u64)
    packed = (desc << u64(32)) | (col.astype(u64) << u64(16)) | row.astype(u64)
    return mism[np.argsort(packed, kind="stable")]


#: Below this many pixels to re-examine, a pass runs as an event loop.
_EVENT_LIMIT = 20000


def _offsets(w2: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat offsets of the 8-neighbourhood and of the 3x3 patch (row-major)."""
    nine = np.array([dr * w2 + dc for dr in (-1, 0, 1) for dc in (-1, 0, 1)], dtype=np.int64)
    return np.delete(nine, 4), nine


def _layered_pass(labf: np.ndarray, seq: np.ndarray, w2: int) -> tuple[np.ndarray, np.ndarray]:
    """One full pass over the mismatches ``seq`` (in order), vectorised.

    A flip changes only the simple-point test of its 8 neighbours, so a pass
    equals processing the mismatches in layers (Kahn's topological order of
    the relation "8-adjacent and earlier"): a mismatch joins a layer once
    all its earlier neighbours are done, and no two pixels of a layer are
    8-adjacent, so a layer is tested and flipped at once. Returns the layer
    of every mismatch and whether it flipped.
    """
    offs8, offs9 = _offsets(w2)
    weights = (1 << np.arange(9)).astype(np.int32)
    m = seq.size
    order = np.arange(m, dtype=np.int32)
    rank = np.full(labf.size, -1, dtype=np.int32)
    rank[seq] = order
    nb_rank = rank[seq[:, None] + offs8]  # (m, 8)
    del rank
    pending = ((nb_rank >= 0) & (nb_rank < order[:, None])).sum(axis=1).astype(np.int32)
    succ = np.where(nb_rank > order[:, None], nb_rank, -1)
    del nb_rank
    layer_of = np.zeros(m, dtype=np.int32)
    flipped = np.zeros(m, dtype=bool)
    layer = np.flatnonzero(pending == 0)
    depth = 0
    while layer.size:
        px = seq[layer]
        code = labf[px[:, None] + offs9].astype(np.int32) @ weights
        simple = _SIMPLE[code]
        labf[px[simple]] ^= 1
        flipped[layer[simple]] = True
        layer_of[layer] = depth
        depth += 1
        nxt = succ[layer].ravel()
        nxt = nxt[nxt >= 0]
        if not nxt.size:
            break
        nxt.sort()
        first = np.empty(nxt.size, dtype=bool)
        first[0] = True
        np.not_equal(nxt[1:], nxt[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        nxt, counts = nxt[starts], np.diff(starts, append=first.size)
        pending[nxt] -= counts.astype(np.int32)
        layer = nxt[pending[nxt] == 0]
    return layer_of, flipped


def _event_passes(labf: np.ndarray, tgtf: np.ndarray, seq: np.ndarray, dirty: np.ndarray, w2: int) -> None:
    """Finish the relaxation when few mismatches can still change (in place).

    Exactly the remaining passes, visiting only the mismatches whose
    neighbourhood changed since they were last tested (any other one would
    fail the test again): a flip marks its later mismatch neighbours for the
    current pass and its earlier ones for the next pass.
    """
    offs8, offs9 = (o.tolist() for o in _offsets(w2))
    lut = _SIMPLE.tolist()
    lab = bytearray(labf.tobytes())
    tgt = tgtf.tobytes()
    seq_l = seq.tolist()
    pos = dict(zip(seq_l, range(len(seq_l))))
    bits = list(enumerate(offs9))
    heap = sorted(dirty.tolist())
    while heap:
        queued = set(heap)
        later: set[int] = set()
        flips = 0
        while heap:
            r = heapq.heappop(heap)
            p = seq_l[r]
            code = 0
            for k, o in bits:
                code |= lab[p + o] << k
            if not lut[code]:
                continue
            lab[p] ^= 1
            flips += 1
            for o in offs8:
                q = p + o
                rq = pos.get(q)
                if rq is None or lab[q] == tgt[q]:
                    continue
                if rq > r:
                    if rq not in queued:
                        queued.add(rq)
                        heapq.heappush(heap, rq)
                else:
                    later.add(rq)
        if not flips:
            break
        heap = sorted(later)
    labf[:] = np.frombuffer(bytes(lab), dtype=np.uint8)


def _relax(labf: np.ndarray, tgtf: np.ndarray, seq: np.ndarray, w2: int) -> np.ndarray:
    """Flip simple mismatches of ``labf`` (in place) in the order ``seq``.

    One pass visits every mismatch in order and flips it if it is a simple
    point of the current labels; passes repeat until one changes nothing.
    Returns the flat indices of the mismatches left, in order.
    """
    offs8, _ = _offsets(w2)
    flip_layer = np.full(labf.size, -1, dtype=np.int32)
    while seq.size:
        layer_of, flipped = _layered_pass(labf, seq, w2)
        if not flipped.any():
            return seq
        # A mismatch must be tested again only if a neighbour flipped after it.
        flip_layer[seq[flipped]] = layer_of[flipped]
        keep = labf[seq] != tgtf[seq]
        later = flip_layer[seq[keep][:, None] + offs8].max(axis=1)
        flip_layer[seq[flipped]] = -1
        seq = seq[keep]
        dirty = np.flatnonzero(later > layer_of[keep])
        if dirty.size <= _EVENT_LIMIT:
            if dirty.size:
                _event_passes(labf, tgtf, seq, dirty, w2)
            return seq[labf[seq] != tgtf[seq]]
    return seq


def _window_splits(warped: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray, radius: int) -> np.ndarray:
    """Does removing cell pixel (z, y, x) leave more than 2 labels around it?

    Relabels (4-connectivity) a (2r+1)^2 window of the warped cell mask
    (outside the image = boundary) with the pixel set to boundary and counts
    the distinct labels (0 included) of its 8 neighbours.
    """
    out = np.zeros(z.size, dtype=bool)
    if not z.size:
        return out
    size = 2 * radius + 1
    padded = np.pad(warped, ((0, 0), (radius, radius), (radius, radius)))
    span = np.arange(size)
    ring = np.ones(9, dtype=bool)
    ring[4] = False
    chunk = 2048
    for start in range(0, z.size, chunk):
        sl = slice(start, start + chunk)
        zz = z[sl, None, None]
        yy = y[sl, None, None] + span[None, :, None]
        xx = x[sl, None, None] + span[None, None, :]
        win = padded[zz, yy, xx]
        win[:, radius, radius] = 0
        lab = ndi.label(win, structure=_CROSS_PLANES)[0]
        nb = lab[:, radius - 1 : radius + 2, radius - 1 : radius + 2].reshape(-1, 9)[:, ring]
        nb.sort(axis=1)
        out[sl] = 1 + (np.diff(nb, axis=1) != 0).sum(axis=1) > 2
    return out


def _classify(lab: np.ndarray, remaining: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-plane split and merge counts of the mismatches left after warping.

    By the 4-connected labels of the warped cell mask in the 8-neighbourhood
    (clipped at the image border): 3 or more distinct values (0 included)
    make a boundary pixel a merge and a cell pixel a split; exactly 2 make a
    cell pixel a split only if :func:`_window_splits` says so; everything
    else (hole or object additions and deletions) does not count.
    """
    nz, h2, w2 = lab.shape
    splits = np.zeros(nz, dtype=np.int64)
    merges = np.zeros(nz, dtype=np.int64)
    if not remaining.size:
        return splits, merges
    comp = ndi.label(lab, structure=_CROSS_PLANES)[0].reshape(-1)
    z, rem = np.divmod(remaining, h2 * w2)
    row, col = np.divmod(rem, w2)
    dr = np.array([-1, -1, -1, 0, 0, 1, 1, 1])
    dc = np.array([-1, 0, 1, -1, 1, -1, 0, 1])
    nr, nc = row[:, None] + dr, col[:, None] + dc
    inside = (nr >= 1) & (nr <= h2 - 2) & (nc >= 1) & (nc <= w2 - 2)
    nb = comp[remaining[:, None] + dr * w2 + dc]
    fill = np.where(inside, nb, -1).max(axis=1)
    nb = np.where(inside, nb, fill[:, None])
    nb.sort(axis=1)
    distinct = 1 + (np.diff(nb, axis=1) != 0).sum(axis=1)
    is_cell = lab.reshape(-1)[remaining] == 1
    merge = (distinct >= 3) & ~is_cell
    split = (distinct >= 3) & is_cell
    two = np.flatnonzero((distinct == 2) & is_cell)
    split[two] = _window_splits(lab[:, 1:-1, 1:-1], z[two], row[two] - 1, col[two] - 1, radius)
    return np.bincount(z[split], minlength=nz), np.bincount(z[merge], minlength=nz)


def _warp_setup(true_cell: np.ndarray, prob: np.ndarray, t: float):
    """Padded labels and target (1-pixel boundary ring) and the flip order."""
    lab = _padded(true_cell, np.uint8)
    tgt = _padded(prob > t, np.uint8)
    return lab, tgt, _flip_order(prob, lab, tgt, t)


def _warp_padded(true_cell: np.ndarray, prob: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Warp the (Z, H, W) ground truth towards ``prob > t``.

    Returns the padded warped labels and the flat indices of the mismatches
    left.
    """
    lab, tgt, seq = _warp_setup(true_cell, prob, t)
    return lab, _relax(lab.reshape(-1), tgt.reshape(-1), seq, lab.shape[2])


def _check_prob(prob: np.ndarray, name: str = "prob") -> None:
    if prob.size == 0:
        return
    if np.issubdtype(prob.dtype, np.floating) and np.isnan(prob).any():
        raise ValueError(f"{name} contains NaN")
    lo, hi = prob.min(), prob.max()
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} must hold P(cell) in [0, 1], got values in [{lo}, {hi}]")


def simple_point_warp(true_cell: ArrayLike, prob: ArrayLike, t: float = 0.5) -> np.ndarray:
    """Warp a binary ground truth towards ``prob > t`` by flipping simple points.

    Topology-preserving warping of Jain et al. (2010): mismatching pixels
    are flipped, in order of decreasing ``|p - t|``, whenever they are
    simple points of the current labels (4-connectivity for cells, 8 for
    boundary), pass after pass until a pass changes nothing. The image is
    padded with a 1-pixel boundary ring first.

    Parameters
    ----------
    true_cell : array_like of bool, shape (H, W) or (Z, H, W)
    prob : array_like of float, same shape
        ``P(cell)`` in [0, 1] (a binary mask works too).
    t : float
        Binarisation threshold (strict ``p > t``).

    Returns
    -------
    ndarray of bool, same shape
        The warped ground truth: same topology as ``true_cell``, as close to
        ``prob > t`` as simple-point flips allow.

    References
    ----------
    .. [1] Jain V. et al. (2010) Boundary learning by optimization with
       topological constraints. CVPR, 2488-2495.
    """
    g = np.asarray(true_cell).astype(bool, copy=False)
    p = np.asarray(prob)
    _same_shape(g, p, "true_cell and prob")
    _check_prob(p)
    plane = g.ndim == 2
    lab, _ = _warp_padded(_as_stack(g, "true_cell"), _as_stack(p, "prob"), t)
    out = lab[:, 1:-1, 1:-1].astype(bool)
    return out[0] if plane else out


def _warping_counts(true_cell: np.ndarray, prob: np.ndarray, t: float, radius: int, cache: list | None = None):
    """Per-plane (splits, merges) at threshold t.

    The warp depends only on the binarised target and on the flip order, so
    with a ``cache`` list a threshold that repeats both (a binary map) is
    not recomputed.
    """
    lab, tgt, seq = _warp_setup(true_cell, prob, t)
    if cache is not None:
        for c_tgt, c_seq, counts in cache:
            if np.array_equal(c_seq, seq) and np.array_equal(c_tgt, tgt):
                return counts
    remaining = _relax(lab.reshape(-1), tgt.reshape(-1), seq, lab.shape[2])
    counts = _classify(lab, remaining, radius)
    if cache is not None:
        cache.append((tgt, seq, counts))
    return counts


def warping_error(
    true_cell: ArrayLike, prob: ArrayLike, t: float = 0.5, *, radius: int = WARPING_RADIUS
) -> WarpingResult:
    """ISBI 2012 warping error ("minimum splits and mergers") at one threshold.

    Parameters
    ----------
    true_cell : array_like of bool, shape (H, W) or (Z, H, W)
        Ground-truth cell mask.
    prob : array_like of float, same shape
        ``P(cell)`` in [0, 1]; the flip order needs ``|p - t|``, so pass the
        probabilities, not a thresholded mask (a binary mask is fine too).
    t : float
        Binarisation threshold (strict ``p > t``).
    radius : int
        Half width of the window of the two-valued test (20: 41 x 41).

    Returns
    -------
    WarpingResult
        ``error = (splits + merges) / n_pixels`` over all planes.

    Notes
    -----
    1. The ground truth is warped towards ``prob > t`` by
       :func:`simple_point_warp`.
    2. Each remaining mismatch is classified by the 4-connected labels of
       the warped mask in its 8-neighbourhood: 3 or more distinct values (0
       included): a boundary pixel is a merge, a cell pixel a split; exactly
       2: a cell pixel is a split only if removing it leaves more than 2
       values after relabelling a (2 radius + 1)^2 window; other cases are
       hole or object additions/deletions and do not count.

    References
    ----------
    .. [1] Jain V. et al. (2010) Boundary learning by optimization with
       topological constraints. CVPR, 2488-2495.
    .. [2] Arganda-Carreras I. et al. (2015) Front. Neuroanat. 9:142.
    """
    g = np.asarray(true_cell).astype(bool, copy=False)
    p = np.asarray(prob)
    _same_shape(g, p, "true_cell and prob")
    _check_prob(p)
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    splits, merges = _warping_counts(_as_stack(g, "true_cell"), _as_stack(p, "prob"), t, radius)
    s, m = int(splits.sum()), int(merges.sum())
    return WarpingResult((s + m) / g.size if g.size else 0.0, s, m, int(g.size))


# ---------------------------------------------------------------------------
# Instance metrics
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# The official threshold sweep
# ---------------------------------------------------------------------------


def _planes(x, name: str) -> list[np.ndarray]:
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


def _as_probability(p: np.ndarray, name: str) -> np.ndarray:
    """P(cell) in [0, 1]; a 0/255 mask is scaled, a 0/1 or bool mask kept."""
    if p.dtype == bool:
        return p.astype(np.float32)
    if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)):
        raise ValueError(f"{name}: expected numbers, got dtype {p.dtype}")
    if np.issubdtype(p.dtype, np.floating) and np.isnan(p).any():
        raise ValueError(f"{name} contains NaN")
    lo, hi = (p.min(), p.max()) if p.size else (0, 0)
    if lo >= 0 and hi <= 1:
        return p if np.issubdtype(p.dtype, np.floating) else p.astype(np.float32)
    if lo >= 0 and hi == 255 and np.all((p == 0) | (p == 255)):
        return (p == 255).astype(np.float32)
    raise ValueError(
        f"{name} must hold P(cell) in [0, 1] or be a binary 0/1 or 0/255 mask; got values in [{lo}, {hi}]"
    )


def _check_thresholds(ts, name: str) -> list[float]:
    ts = [float(t) for t in ts]
    if not ts:
        raise ValueError(f"{name} must not be empty")
    bad = [t for t in ts if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"{name} must lie in [0, 1], got {bad}")
    return sorted(set(ts))


def _select(metrics, warping: bool) -> list[str]:
    if metrics is None:
        chosen = list(METRIC_NAMES)
    else:
        chosen = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = sorted(set(chosen) - set(METRIC_NAMES))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)}")
    if not warping:
        chosen = [m for m in chosen if m != "warping_error"]
    return [m for m in METRIC_NAMES if m in chosen]


def _plane_terms(pred: np.ndarray, gt: np.ndarray, gt_labels: np.ndarray, want_rand: bool, want_thin: bool) -> dict:
    """Per-plane counts of every non-warping metric for one binarisation."""
    nz = pred.shape[0]
    terms = {"confusion": _confusion_per_plane(gt, pred)}
    if want_rand:
        pl = connected_components(pred)
        terms["rand"] = np.array([_rand_abc(_overlap(contingency_table(gt_labels[z], pl[z]))) for z in range(nz)])
    if want_thin:
        th = thin_boundaries(pred)
        vr, vi, valid = np.zeros((nz, 3)), np.zeros((nz, 3)), np.zeros(nz, dtype=bool)
        for z in range(nz):
            ov = _overlap(contingency_table(gt_labels[z], th[z]))
            valid[z] = ov.sizes.sum() > 0
            vr[z], vi[z] = _v_rand_plane(ov), _v_info_plane(ov)
        terms["v_rand"], terms["v_info"], terms["valid"] = vr, vi, valid
    return terms


def _concat_terms(parts: list[tuple[np.ndarray, dict]], n_planes: int) -> dict:
    """Put per-group plane terms back into the input plane order."""
    out = {}
    for idx, terms in parts:
        for key, val in terms.items():
            if key not in out:
                out[key] = np.zeros((n_planes,) + val.shape[1:], dtype=val.dtype)
            out[key][idx] = val
    return out


def _pool(terms: dict, chosen: list[str]) -> dict:
    """Metric values of one threshold from per-plane terms."""
    vals = {}
    tp, fp, fn, tn = (float(v) for v in terms["confusion"].sum(axis=0))
    f1 = _f1(tp, fp, fn)
    if "pixel_error" in chosen:
        vals["pixel_error"] = 1.0 - f1
    if "iou" in chosen:
        vals["iou"] = 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)
    if "dice" in chosen:
        vals["dice"] = f1
    vals["accuracy"] = (tp + tn) / (tp + fp + fn + tn)
    if "rand_error" in chosen:
        a, b, c = (float(v) for v in terms["rand"].sum(axis=0))
        vals["rand_error"] = math.nan if a + b == 0 else 1.0 - 2 * c / (a + b)
    for name in ("v_rand", "v_info"):
        if name in chosen:
            sel = terms[name][terms["valid"]]
            mean = sel.mean(axis=0) if sel.size else np.full(3, np.nan)
            vals[name], vals[name + "_split"], vals[name + "_merge"] = (float(v) for v in mean)
    return vals


def _best(values: list[float], ts: list[float], higher: bool) -> tuple[float | None, float | None]:
    arr = np.asarray(values, dtype=float)
    if np.all(np.isnan(arr)):
        return None, None
    i = int(np.nanargmax(arr) if higher else np.nanargmin(arr))  # first best: lowest t
    return float(arr[i]), ts[i]


def evaluate_probabilities(
    prob_stack,
    gt_stack,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    warping_thresholds: Sequence[float] = WARPING_THRESHOLDS,
    metrics: Sequence[str] | None = None,
    warping: bool = True,
    radius: int = WARPING_RADIUS,
) -> dict:
    """Run the ISBI 2012 threshold sweep of a probability map against labels.

    Parameters
    ----------
    prob_stack : array_like, shape (H, W) or (Z, H, W), or list of (H, W)
        ``P(cell)`` in [0, 1] (0 = surely boundary). A binary mask (values
        0/1, bool, or 0/255) is treated as a probability map, so every
        threshold in [0, 1) gives the same binarisation. Planes may differ in
        shape when given as a list.
    gt_stack : same layout
        Ground-truth label images; cell = ``label > 0``.
    thresholds : sequence of float
        Sweep of pixel error, Rand error, V_rand, V_info, IoU and Dice
        (default 0.0, 0.1, ..., 1.0).
    warping_thresholds : sequence of float
        Sweep of the warping error (default 0.0, ..., 0.9).
    metrics : sequence of str, optional
        Subset of :data:`METRIC_NAMES` (default all).
    warping : bool
        False skips the warping error (the slowest metric).
    radius : int
        Window half width of the warping classification (41 x 41).

    Returns
    -------
    dict
        ``pixel_error``, ``rand_error``, ``warping_error``, ``v_rand``,
        ``v_info``, ``iou``, ``dice``: the best value over the sweep (min for
        the errors, max for the scores; IoU and Dice of the cell class), None
        for a metric not computed. ``at_0.5``: the same keys at t = 0.5 (the
        sweep picks t on the evaluated labels and is optimistic).
        ``best_threshold``: the t of each best value (the lowest on ties).
        ``curves``: ``thresholds``, ``warping_thresholds`` and the value of
        every metric at every threshold, with ``v_rand_split``,
        ``v_rand_merge``, ``v_info_split``, ``v_info_merge``, ``accuracy``,
        ``warping_splits`` and ``warping_merges``.

    Notes
    -----
    Pooling follows the challenge: pixel error, IoU, Dice and Rand error
    pool their counts over planes; V_rand and V_info are averaged over the
    planes with ground-truth foreground; the warping error divides all
    splits and merges by all pixels. Binarisations (and warping flip orders)
    repeated across thresholds are computed once.

    References
    ----------
    .. [1] Arganda-Carreras I. et al. (2015) Crowdsourcing the creation of
       image segmentation algorithms for connectomics. Front. Neuroanat. 9:142.
    .. [2] Ronneberger O., Fischer P., Brox T. (2015) U-Net: convolutional
       networks for biomedical image segmentation. MICCAI, Table 1.
    """
    probs = _planes(prob_stack, "prob_stack")
    gts = _planes(gt_stack, "gt_stack")
    if len(probs) != len(gts):
        raise ValueError(f"prob_stack has {len(probs)} planes but gt_stack has {len(gts)}")
    for i, (p, g) in enumerate(zip(probs, gts)):
        if p.shape != g.shape:
            raise ValueError(f"plane {i}: prediction shape {p.shape} differs from ground truth {g.shape}")
    probs = [_as_probability(p, f"prob_stack[{i}]") for i, p in enumerate(probs)]
    chosen = _select(metrics, warping)
    ts = _check_thresholds(thresholds, "thresholds")
    wts = _check_thresholds(warping_thresholds, "warping_thresholds")
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    want_sweep = any(m != "warping_error" for m in chosen)
    want_rand = "rand_error" in chosen
    want_thin = "v_rand" in chosen or "v_info" in chosen
    want_warp = "warping_error" in chosen
    sweep = sorted(set(ts) | {0.5}) if want_sweep else []
    wsweep = sorted(set(wts) | {0.5}) if want_warp else []

    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(probs):
        groups.setdefault(p.shape, []).append(i)
    n = len(probs)
    per_t: dict[float, list] = {t: [] for t in sweep}
    per_wt: dict[float, list] = {t: [] for t in wsweep}
    for idx in groups.values():
        prob = np.stack([probs[i] for i in idx])
        gt = np.stack([gts[i] for i in idx]) > 0
        gt_labels = connected_components(gt) if (want_rand or want_thin) else None
        seen: list[tuple[np.ndarray, dict]] = []
        for t in sweep:
            pred = prob > t
            terms = next((tr for b, tr in seen if np.array_equal(b, pred)), None)
            if terms is None:
                terms = _plane_terms(pred, gt, gt_labels, want_rand, want_thin)
                seen.append((pred, terms))
            per_t[t].append((idx, terms))
        del seen
        cache: list = []
        for t in wsweep:
            splits, merges = _warping_counts(gt, prob, t, radius, cache)
            npix = np.full(len(idx), gt.shape[1] * gt.shape[2], dtype=np.int64)
            per_wt[t].append((idx, {"splits": splits, "merges": merges, "npix": npix}))

    values = {t: _pool(_concat_terms(per_t[t], n), chosen) for t in sweep}
    wvalues = {}
    for t in wsweep:
        terms = _concat_terms(per_wt[t], n)
        s, m, npix = int(terms["splits"].sum()), int(terms["merges"].sum()), int(terms["npix"].sum())
        wvalues[t] = {"warping_error": (s + m) / npix, "warping_splits": s, "warping_merges": m}

    curves: dict = {"thresholds": ts, "warping_thresholds": wts if want_warp else []}
    extra = {
        "v_rand": ["v_rand_split", "v_rand_merge"],
        "v_info": ["v_info_split", "v_info_merge"],
        "warping_error": ["warping_splits", "warping_merges"],
    }
    result: dict = {}
    best_t: dict = {}
    at_half: dict = {}
    for name in METRIC_NAMES:
        result[name] = best_t[name] = at_half[name] = None
        if name not in chosen:
            continue
        src, grid = (wvalues, wts) if name == "warping_error" else (values, ts)
        curves[name] = [src[t][name] for t in grid]
        for key in extra.get(name, []):
            curves[key] = [src[t][key] for t in grid]
        result[name], best_t[name] = _best(curves[name], grid, name in _HIGHER_IS_BETTER)
        at_half[name] = src[0.5][name]
    if want_sweep:
        curves["accuracy"] = [values[t]["accuracy"] for t in ts]
    result["at_0.5"] = at_half
    result["best_threshold"] = best_t
    result["curves"] = curves
    return result
