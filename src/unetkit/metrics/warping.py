"""The ISBI 2012 warping error (Jain et al. 2010): topology-preserving warping, splits and mergers.

Definitions: ``docs/METRICS.md``. The simple-point test is a 512-entry
lookup table over 3x3 patches; a pass over the mismatches is vectorised in
layers of non-adjacent pixels, and the last few changes run as an event loop.
"""

from __future__ import annotations

import heapq

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage as ndi

from typing import NamedTuple

from .table import _as_stack, _same_shape, as_probability

__all__ = ["WarpingResult", "WARPING_RADIUS", "simple_point_warp", "warping_error"]

#: Half width of the window used to decide two-valued warping mismatches
#: (41 x 41 pixels, as in the ISBI 2012 evaluation).
WARPING_RADIUS = 20

_CROSS = ndi.generate_binary_structure(2, 1)
_SQUARE = ndi.generate_binary_structure(2, 2)
# Label every plane of a stack separately in one call: no links along axis 0.
_CROSS_PLANES = np.zeros((3, 3, 3), dtype=bool)
_CROSS_PLANES[1] = _CROSS


class WarpingResult(NamedTuple):
    """Warping error with the counts it is made of."""

    error: float  #: (splits + merges) / n_pixels
    splits: int
    merges: int
    n_pixels: int


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
    p = as_probability(p, "prob")
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
    p = as_probability(p, "prob")
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    splits, merges = _warping_counts(_as_stack(g, "true_cell"), _as_stack(p, "prob"), t, radius)
    s, m = int(splits.sum()), int(merges.sum())
    return WarpingResult((s + m) / g.size if g.size else 0.0, s, m, int(g.size))
