"""The border weight map of the U-Net paper (Ronneberger et al. 2015, Eq. 2).

.. math::

    w(x) = w_c(x) + w_0 \\exp\\left(-\\frac{(d_1(x) + d_2(x))^2}{2\\sigma^2}\\right)

with :math:`w_0 = 10` and :math:`\\sigma = 5` px by default. The pieces are
separate functions so that they can be shown (the paper's Fig. 3) and reused:

* :func:`separation_borders` -- the pixels carved out between touching
  instances, found morphologically (a 3x3 grey dilation compared with the
  labels);
* :func:`instances_to_classes` -- the two-class training target: 1 for cells,
  0 for background *including* the separation borders;
* :func:`class_balance_weights` -- :math:`w_c`, frequency balancing;
* :func:`border_weight_map` -- the whole map, exact and fast;
* :func:`brute_force_border_weight_map` -- the reference (one Euclidean
  distance transform per instance), for tests and benchmarks.

Conventions (the paper is silent on them; this is the common reading of its
Fig. 3):

* Separation borders are carved on **one side** only: a pixel of instance
  ``a`` is carved when a pixel of a *larger* label ``b > a`` lies in its 3x3
  neighbourhood. Two touching instances thus end up separated by a line one
  pixel wide (the pixels of the smaller label along the contact), as in
  Fig. 3c, and no two remaining pixels of different instances are
  8-neighbours.
* "Cells" are the instances *after* carving (the foreground of the class
  map); :math:`d_1`, :math:`d_2` are Euclidean distances, in pixels between
  pixel centres, from a pixel to the nearest pixel of the nearest and of the
  second-nearest such instance.
* The border term is added on background pixels only (class 0, carved borders
  included), where it is large; cell pixels get :math:`w_c` alone. With fewer
  than two instances there is no border term.

All functions are pure: arrays in, new arrays out.

References
----------
.. [1] Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for
   Biomedical Image Segmentation", MICCAI 2015, arXiv:1505.04597, Sec. 3.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .labels import _check_instances, _check_width, instances_to_classes, separation_borders

__all__ = [
    "WeightMapConfig",
    "separation_borders",
    "instances_to_classes",
    "class_balance_weights",
    "border_weight_map",
    "brute_force_border_weight_map",
]


@dataclass(frozen=True)
class WeightMapConfig:
    """Options of :func:`border_weight_map`; the field names are its keywords.

    ``border_weight_map(instances, **dataclasses.asdict(config))`` applies a
    config.

    Parameters
    ----------
    w0 : float
        Height of the border term (paper: 10). 0 leaves :math:`w_c` alone.
    sigma : float
        Width of the border term, pixels (paper: "about 5").
    class_balance : bool
        Add the class-frequency weights :math:`w_c`
        (:func:`class_balance_weights`); False: :math:`w_c = 1`.
    border_width : int
        Width of the separation borders in pixels (see
        :func:`separation_borders`); 0 carves nothing.
    tol : float
        Border terms smaller than ``tol`` are left out: the map is within
        ``tol`` of the exact one (plus float32 rounding). 0 computes every
        term (slow).
    """

    w0: float = 10.0
    sigma: float = 5.0
    class_balance: bool = True
    border_width: int = 1
    tol: float = 1e-7

    def __post_init__(self) -> None:
        _check_params(self.w0, self.sigma, self.border_width, self.tol, prefix="WeightMapConfig.")


def _check_params(w0, sigma, border_width, tol, prefix: str = "") -> None:
    if not (isinstance(w0, numbers.Real) and math.isfinite(w0) and w0 >= 0):
        raise ValueError(f"{prefix}w0 must be a finite number >= 0, got {w0!r}")
    if not (isinstance(sigma, numbers.Real) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"{prefix}sigma must be a finite number > 0 (pixels), got {sigma!r}")
    if not (isinstance(tol, numbers.Real) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"{prefix}tol must be a finite number >= 0, got {tol!r}")
    _check_width(border_width, f"{prefix}border_width")


def class_balance_weights(classes, num_classes: int = 2) -> np.ndarray:
    """The class-balancing weights :math:`w_c(x)`: inverse class frequency, mean 1.

    Parameters
    ----------
    classes : ndarray of any shape, integer or bool
        Class index per pixel, in ``0 .. num_classes - 1``.
    num_classes : int
        Number of classes (2: background, cell).

    Returns
    -------
    w_c : ndarray, same shape as ``classes``, float32
        ``N / (K n_c)`` on the pixels of class ``c``, where ``N`` is the
        number of pixels, ``n_c`` that of class ``c`` and ``K`` the number of
        classes present.

    Raises
    ------
    ValueError
        For non-integer classes, values outside ``0 .. num_classes - 1`` or
        ``num_classes < 1``.

    Notes
    -----
    Every class present gets the same total weight ``N / K``, so each
    contributes equally to the loss, and the weights average to exactly 1
    over the image (the loss keeps its scale). Classes absent from the image
    play no part; a one-class image gets weight 1 everywhere. The paper does
    not give its formula for :math:`w_c`; this is the usual frequency
    balancing.
    """
    classes = np.asarray(classes)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if classes.dtype == bool:
        classes = classes.astype(np.uint8)
    if not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"classes must hold integer class indices, got dtype {classes.dtype}")
    if classes.size == 0:
        return np.zeros(classes.shape, np.float32)
    lo, hi = classes.min(), classes.max()
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"classes must lie in 0..{num_classes - 1}, got values {lo}..{hi}")
    counts = np.bincount(classes.ravel(), minlength=num_classes)
    present = counts > 0
    per_class = np.zeros(num_classes, np.float64)
    per_class[present] = classes.size / (np.count_nonzero(present) * counts[present])
    return per_class.astype(np.float32)[classes]


# ----------------------------------------------------------------------------- the border term
def _cutoff_radius(w0: float, sigma: float, tol: float) -> float:
    """Sum of distances d1 + d2 beyond which ``w0 exp(-(d1 + d2)^2 / (2 sigma^2)) < tol`` (px).

    0 when ``w0 <= tol`` (no term reaches ``tol``), infinite when ``tol = 0``.
    """
    if w0 <= tol:
        return 0.0
    if tol == 0:
        return math.inf
    return sigma * math.sqrt(2.0 * math.log(w0 / tol))


def _border_term(d1: np.ndarray, d2: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """``w0 exp(-(d1 + d2)^2 / (2 sigma^2))`` in float64; shared by the fast and the reference map."""
    s = d1 + d2
    return w0 * np.exp(-(s * s) / (2.0 * sigma * sigma))


def _prepare(instances, border_width: int, class_balance: bool):
    """Carved labels, class map and w_c (float64) shared by both maps."""
    labels = _check_instances(instances)
    carved = labels.copy()
    carved[separation_borders(labels, width=border_width)] = 0
    classes = (carved > 0).astype(np.uint8)
    if class_balance:
        wc = class_balance_weights(classes, 2).astype(np.float64)
    else:
        wc = np.ones(labels.shape, np.float64)
    return carved, classes, wc


def _find_instances(labels: np.ndarray) -> tuple[list[tuple[int, tuple[slice, slice]]], np.ndarray]:
    """``(label, bounding box)`` of every instance present, with labels ``find_objects`` can take."""
    top = int(labels.max())
    if top == 0:
        return [], labels
    if top > labels.size:
        # sparse, huge label values: number the instances 1..n first (find_objects lists 1..max)
        values, inverse = np.unique(labels, return_inverse=True)
        labels = inverse.reshape(labels.shape).astype(np.intp)
        if values[0] != 0:  # no background pixel: values[0] is an instance too
            labels += 1
    found = ndi.find_objects(labels)
    return [(lab, box) for lab, box in enumerate(found, start=1) if box is not None], labels


def _squared_distances_in_box(mask: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance from each pixel of ``mask`` to its nearest False pixel.

    ``index`` is ``arange(n)`` (n >= both sides of ``mask``) in the integer
    dtype of the result.
    """
    ft = ndi.distance_transform_edt(mask, return_distances=False, return_indices=True)
    if ft.dtype != index.dtype:
        ft = ft.astype(index.dtype)
    dr, dc = ft[0], ft[1]
    dr -= index[: mask.shape[0], None]
    dc -= index[None, : mask.shape[1]]
    np.multiply(dr, dr, out=dr)
    np.multiply(dc, dc, out=dc)
    dr += dc
    return dr


def _two_nearest_squared(labels: np.ndarray, radius: float, needed: np.ndarray, *, first_margin: int | None = None):
    """Squared distances to the nearest and second-nearest instance, exact where it matters.

    Returns ``(d1sq, d2sq, far)``: integer arrays of shape (H, W) and the
    value that stands for "farther than ``radius``". At every ``needed``
    pixel where the true ``d1 + d2 <= radius`` both values are exact; every
    other value is >= the true one (or ``far``), so ``d1 + d2 > radius``
    stays true there.

    Each instance's distance transform is computed on its bounding box grown
    by a margin (a pixel outside it is farther than the margin) and merged
    into running minima. With ``margin = ceil(radius)`` this is the whole
    story. With a smaller first margin ``m`` (dense labels), a pixel whose
    second-smallest value is <= m is already exact (both nearest instances
    lie within m); the few needed pixels left over are finished by a second
    round over the instances within ``radius`` of them, on boxes just large
    enough to hold the instance and those pixels.
    """
    h, w = labels.shape
    dtype = np.int32 if (h - 1) ** 2 + (w - 1) ** 2 < 2**31 - 1 else np.int64
    far = np.iinfo(dtype).max
    d1 = np.full((h, w), far, dtype)
    d2 = np.full((h, w), far, dtype)
    instances, labels = _find_instances(labels)
    if not instances:
        return d1, d2, far
    full = max(h, w) if not math.isfinite(radius) else min(math.ceil(radius), max(h, w))
    if first_margin is None:
        first_margin = _auto_first_margin(instances, needed, radius, full)
    m = min(first_margin, full)

    index = np.arange(max(h, w), dtype=dtype)
    for lab, (rows, cols) in instances:
        r0, r1 = max(rows.start - m, 0), min(rows.stop + m, h)
        c0, c1 = max(cols.start - m, 0), min(cols.stop + m, w)
        sq = _squared_distances_in_box(labels[r0:r1, c0:c1] != lab, index)
        v1, v2 = d1[r0:r1, c0:c1], d2[r0:r1, c0:c1]
        np.minimum(v2, np.maximum(v1, sq), out=v2)
        np.minimum(v1, sq, out=v1)
    if m >= full:
        return d1, d2, far

    # Needed pixels not yet certified: second distance > m, and d1 + d2 may still be <= radius
    # (d2 > m, and d1 >= min(value, m) because every distance <= m is exact).
    m_sq = m * m
    ui, uj = np.nonzero(needed & (d2 > m_sq))
    lower = np.sqrt(np.minimum(d1[ui, uj], m_sq).astype(np.float64))  # <= d1
    keep = lower + m <= radius
    ui, uj = ui[keep], uj[keep]  # row-major order: ui is sorted
    if ui.size == 0:
        return d1, d2, far
    # An instance farther than radius - d1 from a pixel is neither its first nor its second
    # instance wherever d1 + d2 <= radius; such pixel-instance pairs are skipped (chessboard
    # distance to the bounding box <= Euclidean distance to the instance).
    reach = np.floor(radius - lower[keep]).astype(np.int64)
    u1 = np.full(ui.size, far, dtype)
    u2 = np.full(ui.size, far, dtype)
    for lab, (rows, cols) in instances:
        lo, hi = np.searchsorted(ui, [rows.start - full, rows.stop + full])
        if lo == hi:
            continue
        pi, pj = ui[lo:hi], uj[lo:hi]
        gap = np.maximum(np.maximum(rows.start - pi, pi - (rows.stop - 1)), np.maximum(cols.start - pj, pj - (cols.stop - 1)))
        sel = np.flatnonzero(gap <= reach[lo:hi]) + lo
        if sel.size == 0:
            continue
        pi, pj = ui[sel], uj[sel]
        r0, r1 = min(rows.start, int(pi[0])), max(rows.stop, int(pi[-1]) + 1)
        c0, c1 = min(cols.start, int(pj.min())), max(cols.stop, int(pj.max()) + 1)
        ft = ndi.distance_transform_edt(labels[r0:r1, c0:c1] != lab, return_distances=False, return_indices=True)
        pi = (pi - r0).astype(dtype)
        pj = (pj - c0).astype(dtype)
        dr = ft[0][pi, pj].astype(dtype) - pi
        dc = ft[1][pi, pj].astype(dtype) - pj
        sq = dr * dr + dc * dc
        a1, a2 = u1[sel], u2[sel]
        u2[sel] = np.minimum(a2, np.maximum(a1, sq))
        u1[sel] = np.minimum(a1, sq)
    d1[ui, uj] = u1
    d2[ui, uj] = u2
    return d1, d2, far


def _auto_first_margin(instances, needed: np.ndarray, radius: float, full: int) -> int:
    """First-round margin: 0.6 of the cut-off radius for densely packed instances, else all of it.

    A speed choice only: every margin gives the same map. Two rounds pay off
    when almost every background pixel has two instances close by, i.e. when
    the background is thin compared with the instances' outlines. The mean
    background thickness is estimated as background pixels per outline pixel
    (bounding-box perimeters stand in for the outlines). 0.6 R minimised the
    distance-transform area on ISBI 2012 labels (``benchmarks/bench_weights.py``).
    """
    if not math.isfinite(radius) or full < 8:
        return full
    outline = sum(2 * (r.stop - r.start + c.stop - c.start) for _, (r, c) in instances)
    thickness = np.count_nonzero(needed) / max(outline, 1)
    if thickness < 0.25 * radius:
        return max(1, round(0.6 * radius))
    return full


def border_weight_map(
    instances,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: bool = True,
    border_width: int = 1,
    tol: float = 1e-7,
) -> np.ndarray:
    """The U-Net loss weight map ``w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2))``.

    Parameters
    ----------
    instances : ndarray of shape (H, W), integer or bool
        Instance labels: 0 = background, each positive value one instance
        (for a binary mask, label its connected components first).
    w0 : float, keyword-only
        Height of the border term (paper: 10); 0 gives ``w_c`` alone.
    sigma : float, keyword-only
        Width of the border term in pixels (paper: about 5).
    class_balance : bool, keyword-only
        ``w_c`` from :func:`class_balance_weights` of the class map
        (:func:`instances_to_classes`); False: ``w_c = 1``.
    border_width : int, keyword-only
        Width of the separation borders carved between touching instances
        (:func:`separation_borders`), pixels.
    tol : float, keyword-only
        Border terms below ``tol`` are left out (see Notes); 0 evaluates every
        pixel, at the cost of full-image distance transforms.

    Returns
    -------
    weights : ndarray of shape (H, W), float32
        Loss weight per pixel; > 0 everywhere.

    Raises
    ------
    ValueError
        For labels that are not a 2-D array of non-negative integers, or
        invalid options.

    Notes
    -----
    The border term goes to background pixels (class 0 of
    :func:`instances_to_classes`, separation borders included); ``d1``,
    ``d2`` are the Euclidean distances (px) from the pixel to the nearest
    pixel of the nearest and of the second-nearest instance, instances taken
    after carving. With fewer than two instances there is no border term.

    Exactness: the term is below ``tol`` once ``d1 + d2 > R = sigma
    sqrt(2 ln(w0 / tol))`` (30.4 px for the defaults), so distances are only
    needed up to ``R``. Each instance's Euclidean distance transform
    (``scipy.ndimage``) is computed on its bounding box grown by ``R``; a
    pixel outside the box is farther than ``R`` from the instance. Where the
    true ``d1 + d2 <= R`` both nearest instances lie within ``R``, so their
    box values are exact and no other instance comes closer: the two
    smallest values are the true ``d1``, ``d2``. Elsewhere every value is at
    least the true distance, so the term left out is below ``tol``. The map
    therefore matches :func:`brute_force_border_weight_map` to within
    ``tol`` plus float32 rounding (bit for bit where the term is kept).
    For densely packed instances (EM cells) a first round uses margins of
    ``0.6 R`` and a second round finishes the few pixels whose second
    instance is farther away; the result is the same.

    References
    ----------
    .. [1] Ronneberger et al., MICCAI 2015, arXiv:1505.04597, Eq. 2.
    """
    _check_params(w0, sigma, border_width, tol)
    carved, classes, wc = _prepare(instances, border_width, class_balance)
    radius = _cutoff_radius(float(w0), float(sigma), float(tol))
    if radius > 0:
        background = classes == 0
        d1sq, d2sq, far = _two_nearest_squared(carved, radius, background)
        at = np.flatnonzero(background & (d2sq < far))
        if at.size:
            d1 = np.sqrt(d1sq.ravel()[at].astype(np.float64))
            d2 = np.sqrt(d2sq.ravel()[at].astype(np.float64))
            flat = wc.ravel()
            flat[at] += _border_term(d1, d2, float(w0), float(sigma))
    return wc.astype(np.float32)


def brute_force_border_weight_map(
    instances,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: bool = True,
    border_width: int = 1,
) -> np.ndarray:
    """Reference for :func:`border_weight_map`: one full distance transform per instance.

    Same parameters, conventions and output as :func:`border_weight_map`
    (without a tolerance: every term is evaluated). For each instance the
    Euclidean distance transform of the whole image to that instance is
    computed (``scipy.ndimage.distance_transform_edt``); per pixel the
    distances are sorted and the two smallest kept.
    Slow (``benchmarks/README.md`` has the times); meant for
    tests and benchmarks.
    """
    _check_params(w0, sigma, border_width, 0.0)
    carved, classes, wc = _prepare(instances, border_width, class_balance)
    ids = np.unique(carved)
    ids = ids[ids > 0]
    nearest = np.full((2,) + carved.shape, np.inf)
    chunk = 32  # distance maps sorted together: bounded memory, fewer sorts
    for start in range(0, ids.size, chunk):
        maps = [ndi.distance_transform_edt(carved != lab) for lab in ids[start : start + chunk]]
        nearest = np.sort(np.concatenate([nearest, np.stack(maps)]), axis=0)[:2]
    at = np.flatnonzero((classes == 0) & np.isfinite(nearest[1]))
    if at.size and w0 > 0:
        flat = wc.ravel()
        flat[at] += _border_term(nearest[0].ravel()[at], nearest[1].ravel()[at], float(w0), float(sigma))
    return wc.astype(np.float32)
