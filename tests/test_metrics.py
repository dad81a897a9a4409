"""Tests of unetkit.metrics: hand-worked toy examples, cross-checks, invariants.

The warping error is checked against a slow, literal reading of METRICS.md
written here (pixel by pixel, pass after pass), independent of the fast
vectorised code; simple points in that reference are decided by counting
components of the whole image before and after the flip, not by the LUT.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from unetkit import metrics as M

CROSS = ndi.generate_binary_structure(2, 1)
SQUARE = ndi.generate_binary_structure(2, 2)


def isbi_labels() -> np.ndarray:
    root = os.environ.get("UNETKIT_DATA")
    if not root:
        pytest.skip("UNETKIT_DATA is not set: the ISBI 2012 labels are not available")
    files = sorted((Path(root) / "isbi2012" / "train" / "labels").glob("*.png"))
    if not files:
        pytest.skip(f"no ISBI 2012 labels under {root}/isbi2012/train/labels")
    import imageio.v3 as iio

    return np.stack([iio.imread(f) for f in files])


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def test_threshold_is_strict():
    p = np.array([0.0, 0.5, 0.50001, 1.0])
    np.testing.assert_array_equal(M.threshold(p, 0.5), [False, False, True, True])
    assert not M.threshold(p, 1.0).any()
    np.testing.assert_array_equal(M.threshold(p, 0.0), [False, True, True, True])


def test_connected_components_defaults_to_4_connectivity():
    diag = np.array([[1, 0], [0, 1]], bool)
    assert M.connected_components(diag).max() == 2
    assert M.connected_components(diag, connectivity=2).max() == 1
    stack = np.stack([diag, diag])
    lab = M.connected_components(stack)
    assert lab.shape == (2, 2, 2) and lab[1].max() == 2  # planes labelled separately
    with pytest.raises(ValueError, match="connectivity"):
        M.connected_components(diag, connectivity=3)
    with pytest.raises(ValueError, match="shape"):
        M.connected_components(np.zeros(4, bool))


def test_contingency_table_matches_skimage():
    from skimage.metrics import contingency_table as sk_table

    rng = np.random.default_rng(0)
    t = rng.integers(0, 5, (20, 30))
    p = rng.integers(0, 7, (20, 30))
    ours = M.contingency_table(t, p).toarray()
    theirs = sk_table(t, p, ignore_labels=[]).toarray()
    np.testing.assert_array_equal(ours, theirs)
    assert ours.sum() == t.size
    with pytest.raises(ValueError, match="shape"):
        M.contingency_table(t, p[:, :5])
    with pytest.raises(ValueError, match="non-negative"):
        M.contingency_table(t - 1, p)


def test_contingency_table_sparse_path_for_large_labels():
    t = np.array([[0, 5_000_000], [5_000_000, 1]])
    p = np.array([[3, 2_000_000], [2_000_000, 3]])
    table = M.contingency_table(t, p)
    assert table[5_000_000, 2_000_000] == 2 and table[0, 3] == 1 and table[1, 3] == 1


def _four_adjacent_labels_differ(lab):
    a, b = lab[:, 1:], lab[:, :-1]
    c, d = lab[1:, :], lab[:-1, :]
    return bool((((a > 0) & (b > 0) & (a != b)).any()) or (((c > 0) & (d > 0) & (c != d)).any()))


def test_thin_boundaries_leaves_one_pixel_dams():
    # Two cells separated by a 4-pixel-wide membrane band: the dam is 1 px.
    cell = np.zeros((5, 12), bool)
    cell[:, :4] = True
    cell[:, 8:] = True
    th = M.thin_boundaries(cell)
    assert not _four_adjacent_labels_differ(th)
    np.testing.assert_array_equal(th[cell], M.connected_components(cell)[cell])  # cells keep their labels
    dam_columns = np.flatnonzero((th == 0).all(axis=0))
    assert dam_columns.size == 1 and 4 <= dam_columns[0] <= 7
    # 5-pixel band: a single dam column exactly in the middle
    cell = np.zeros((5, 13), bool)
    cell[:, :4] = True
    cell[:, 9:] = True
    th = M.thin_boundaries(cell)
    np.testing.assert_array_equal(np.flatnonzero((th == 0).all(axis=0)), [6])
    assert (th[:, :6] == th[0, 0]).all() and (th[:, 7:] == th[0, -1]).all()


def test_thin_boundaries_random_invariants_and_close_to_skimage():
    from skimage.segmentation import watershed

    rng = np.random.default_rng(3)
    for _ in range(5):
        cell = ndi.gaussian_filter(rng.random((60, 70)), 2) > 0.5
        th = M.thin_boundaries(cell)
        assert not _four_adjacent_labels_differ(th)
        np.testing.assert_array_equal(th[cell], M.connected_components(cell)[cell])
        ws = watershed((~cell).astype(np.uint8), markers=M.connected_components(cell), connectivity=1,
                       watershed_line=True)
        gt = M.connected_components(ndi.gaussian_filter(rng.random((60, 70)), 2) > 0.45)
        assert M.v_rand(gt, th).score == pytest.approx(M.v_rand(gt, ws).score, abs=0.02)
    assert (M.thin_boundaries(np.zeros((4, 4), bool)) == 0).all()  # no cells: nothing to grow


# ---------------------------------------------------------------------------
# Pixel metrics
# ---------------------------------------------------------------------------

# A 4x4 toy example used by several tests. GT: two cells separated by a
# membrane column; the prediction calls the third row membrane instead.
GT4 = np.array(
    [[1, 1, 0, 2],
     [1, 1, 0, 2],
     [1, 1, 0, 2],
     [1, 1, 0, 2]]
)
PRED4 = np.array(
    [[1, 1, 1, 1],
     [1, 1, 1, 1],
     [0, 0, 0, 0],
     [1, 1, 1, 1]], bool
)


def test_pixel_error_hand_worked():
    # TP = rows 0, 1, 3 x columns 0, 1, 3 = 9; FP = column 2 of rows 0, 1, 3 = 3;
    # FN = row 2 of columns 0, 1, 3 = 3. F1 = 18 / 24 = 0.75.
    assert M.pixel_error(GT4 > 0, PRED4) == pytest.approx(0.25)
    assert M.pixel_error(GT4 > 0, GT4 > 0) == 0.0
    assert M.pixel_error(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 0.0


def test_pixel_error_pools_counts_over_planes():
    # Plane 0 perfect (4 TP); plane 1: 1 TP, 1 FN. Pooled F1 = 10 / 11 (mean of
    # per-plane errors would be (0 + 1/3) / 2 instead).
    t = np.stack([np.ones((2, 2), bool), np.array([[1, 1], [0, 0]], bool)])
    p = np.stack([np.ones((2, 2), bool), np.array([[1, 0], [0, 0]], bool)])
    assert M.pixel_error(t, p) == pytest.approx(1 - 10 / 11)


def test_iou_dice_accuracy_per_class():
    t = GT4 > 0
    # cell: TP 9, FP 3, FN 3 -> IoU 9/15, Dice 18/24; membrane: TP 1, FP 3, FN 3 -> IoU 1/7, Dice 2/8
    np.testing.assert_allclose(M.iou(t, PRED4), [1 / 7, 9 / 15])
    np.testing.assert_allclose(M.dice(t, PRED4), [2 / 8, 18 / 24])
    assert M.dice(t, PRED4)[1] == pytest.approx(1 - M.pixel_error(t, PRED4))
    assert M.accuracy(t, PRED4) == pytest.approx(10 / 16)
    # a class absent from both is NaN, not 0 or 1
    assert np.isnan(M.iou(np.zeros(4, int), np.zeros(4, int), num_classes=3)[2])
    with pytest.raises(ValueError, match="out of range"):
        M.iou([0, 3], [0, 1], num_classes=2)


# ---------------------------------------------------------------------------
# Region metrics
# ---------------------------------------------------------------------------


def test_rand_error_hand_worked_4x4():
    # On GT foreground (n = 12): GT region 1 (8 px) meets predicted region A
    # (top rows) in 4 px, predicted membrane in 2 px, region B (row 3) in 2 px;
    # GT region 2 (4 px): A 2, membrane 1, B 1.
    # A = 8^2 + 4^2 = 80; s_A = 6, s_B = 3, n_0 = 3: B = 36 + 9 + 3 = 48;
    # C = 4^2 + 2^2 + 2^2 + 1^2 + 3 = 28; F = 2C / (A + B) = 56 / 128.
    pred_labels = M.connected_components(PRED4)
    assert M.rand_error(GT4, pred_labels) == pytest.approx(1 - 56 / 128)
    vr = M.v_rand(GT4, pred_labels)
    assert vr.score == pytest.approx(56 / 128)
    assert vr.split == pytest.approx(28 / 80)
    assert vr.merge == pytest.approx(28 / 48)


def test_rand_error_pools_and_v_rand_averages_planes():
    # Plane 0 = the 4x4 example (A, B, C) = (80, 48, 28); plane 1 perfect:
    # two GT regions of 4 px, A = B = C = 32.
    perfect = np.array([[1, 1, 0, 2, 2]] * 2)
    t = [GT4, perfect]
    p = [M.connected_components(PRED4), perfect]
    assert M.rand_error(t, p) == pytest.approx(1 - 2 * 60 / (112 + 80))
    assert M.v_rand(t, p).score == pytest.approx((56 / 128 + 1) / 2)


def test_rand_split_merge_separates_cut_and_thick_from_merged():
    # One GT region of 4 px; the prediction calls 1 px membrane and cuts 1 px off: t = 4, A = 16; s = 2, 1 and
    # n_0 = 1: B = 4 + 1 + 1 = 6; C = 2^2 + 1^2 + 1 = 6. Split part C/A = 6/16, merge part C/B = 1.
    cut = M.rand_split_merge(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 0, 2]]))
    assert cut == pytest.approx((12 / 22, 6 / 16, 1.0))
    # Two GT regions of 2 px merged into one predicted region: A = 8, B = 16, C = 8.
    merged = M.rand_split_merge(np.array([[1, 1, 0, 2, 2]]), np.array([[1, 1, 1, 1, 1]]))
    assert merged == pytest.approx((16 / 24, 1.0, 0.5))
    # pooled over planes, like rand_error: (A, B, C) = (16 + 8, 6 + 16, 6 + 8)
    pooled = M.rand_split_merge([np.array([[1, 1, 1, 1]]), np.array([[1, 1, 0, 2, 2]])],
                                [np.array([[1, 1, 0, 2]]), np.array([[1, 1, 1, 1, 1]])])
    assert pooled == pytest.approx((28 / 46, 14 / 24, 14 / 22))
    assert M.rand_error(GT4, M.connected_components(PRED4)) == pytest.approx(
        1 - M.rand_split_merge(GT4, M.connected_components(PRED4)).score)


def test_rand_cross_check_with_skimage():
    # skimage.metrics.adapted_rand_error drops self-pairs and names precision
    # and recall the other way round; with no predicted label 0 on GT
    # foreground: precision = (C - n) / (A - n), recall = (C - n) / (B - n).
    from skimage.metrics import adapted_rand_error

    rng = np.random.default_rng(1)
    for _ in range(5):
        gt = M.connected_components(ndi.gaussian_filter(rng.random((40, 50)), 2) > 0.45)
        pred = M.connected_components(ndi.gaussian_filter(rng.random((40, 50)), 2) > 0.4, connectivity=2)
        pred = np.where(pred == 0, pred.max() + 1, pred)  # no predicted label 0
        n = np.count_nonzero(gt)
        a = float(np.sum(np.bincount(gt[gt > 0]) ** 2))
        vr = M.v_rand(gt, pred)
        c = vr.split * a
        b = c / vr.merge
        err, prec, rec = adapted_rand_error(gt, pred)
        assert prec == pytest.approx((c - n) / (a - n))
        assert rec == pytest.approx((c - n) / (b - n))
        assert err == pytest.approx(1 - 2 * (c - n) / (a + b - 2 * n))
        assert M.rand_error(gt, pred) == pytest.approx(1 - 2 * c / (a + b))


def test_predicted_membrane_pixels_are_singletons():
    # One GT region of 4 px; prediction calls 2 of them membrane.
    # Singletons: B = 2^2 + 2 = 6, C = 2^2 + 2 = 6, A = 16 -> F = 12 / 22.
    gt = np.array([[1, 1, 1, 1]])
    pred = np.array([[1, 1, 0, 0]])
    assert M.rand_error(gt, pred) == pytest.approx(1 - 12 / 22)
    # skimage would treat label 0 as one segment: B = 4 + 4 = 8, C = 8, F = 16 / 24
    assert M.rand_error(gt, pred) != pytest.approx(1 - 16 / 24)


def test_perfect_prediction_scores():
    gt = M.connected_components(GT4 > 0)
    assert M.rand_error(gt, gt) == 0.0
    assert M.v_rand(gt, gt) == (1.0, 1.0, 1.0)
    assert M.v_info(gt, gt) == pytest.approx((1.0, 1.0, 1.0))
    # relabelling the prediction changes nothing
    assert M.v_info(gt, np.where(gt > 0, 7 - gt, 0)) == pytest.approx((1.0, 1.0, 1.0))


def test_merge_changes_only_merge_scores():
    gt = np.array([[1, 1, 0, 2, 2]] * 3)
    merged = np.array([[1, 1, 1, 1, 1]] * 3)
    vr = M.v_rand(gt, merged)
    assert vr.split == 1.0 and vr.merge < 1.0
    # A = 2 * 6^2 = 72, B = 12^2 = 144, C = 72: merge = 0.5
    assert vr.merge == pytest.approx(0.5)
    vi = M.v_info(gt, merged)
    assert vi.split == 1.0 and vi.merge < 1.0  # H(S) = 0 -> nothing was split


def test_split_changes_only_split_scores():
    gt = np.array([[1, 1, 1, 1]] * 2)
    split = np.array([[1, 1, 2, 2]] * 2)
    vr = M.v_rand(gt, split)
    assert vr.merge == 1.0 and vr.split == pytest.approx(0.5)  # C = 2 * 4^2, A = 8^2
    vi = M.v_info(gt, split)
    assert vi.merge == 1.0 and vi.split < 1.0
    assert vi.split == 0.0  # I = 0 when GT is one region


def test_v_info_hand_worked():
    # GT regions a = {0, 1}, b = {2, 3}; prediction X = {0, 1, 2}, Y = {3}.
    gt = np.array([[1, 1, 2, 2]])
    pred = np.array([[1, 1, 1, 2]])
    h_t = math.log(2)
    h_s = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    h_st = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    mi = h_s + h_t - h_st
    split, merge = mi / h_s, mi / h_t
    vi = M.v_info(gt, pred)
    assert vi.split == pytest.approx(split)
    assert vi.merge == pytest.approx(merge)
    assert vi.score == pytest.approx(2 * split * merge / (split + merge))


def test_v_info_membrane_singletons():
    # 4 GT pixels, one region; prediction: 2 px region + 2 membrane singletons.
    # H(T) = 0; H(S) = -(1/2) ln(1/2) + (2/4) ln 4; H(S,T) = H(S) -> I = 0.
    gt = np.array([[1, 1, 1, 1]])
    pred = np.array([[1, 1, 0, 0]])
    vi = M.v_info(gt, pred)
    assert vi.merge == 1.0 and vi.split == 0.0
    # With two GT regions matching the kept region and the singletons, I = H(T) = ln 2
    gt2 = np.array([[1, 1, 2, 2]])
    vi2 = M.v_info(gt2, pred)
    h_s = 0.5 * math.log(2) + 0.5 * math.log(4)
    assert vi2.merge == pytest.approx(1.0)
    assert vi2.split == pytest.approx(math.log(2) / h_s)


# ---------------------------------------------------------------------------
# Warping error
# ---------------------------------------------------------------------------


def _framed(inner: np.ndarray) -> np.ndarray:
    """Put a 1-pixel membrane frame around a cell mask."""
    return np.pad(inner.astype(bool), 1)


def test_simple_point_lut_matches_component_counting():
    # Flipping a simple point keeps the number of 4-connected cell components
    # and of 8-connected boundary components of the whole image.
    rng = np.random.default_rng(0)

    def topology(x):
        xp = np.pad(x, 1)
        return ndi.label(xp, CROSS)[1], ndi.label(~xp, SQUARE)[1]

    for _ in range(40):
        x = rng.random((6, 6)) < rng.uniform(0.3, 0.8)
        before = topology(x)
        xp = np.pad(x, 1)
        for r in range(6):
            for c in range(6):
                y = x.copy()
                y[r, c] = ~y[r, c]
                code = int((xp[r:r + 3, c:c + 3].ravel() << np.arange(9)).sum())
                assert M._SIMPLE[code] == (topology(y) == before)


def test_warping_perfect_prediction_is_zero():
    gt = _framed(np.array([[1, 1, 0, 1], [1, 1, 0, 1], [1, 1, 0, 1]]))
    res = M.warping_error(gt, gt.astype(float), 0.5)
    assert res == (0.0, 0, 0, gt.size)


def test_warping_one_pixel_gap_is_one_split():
    # One 5x7 cell; the prediction cuts it with a 1-pixel membrane column. The
    # warp removes the column pixel by pixel from the top; the last one cannot
    # go (it would split the cell): a split, found by the 41x41 relabelling.
    gt = _framed(np.ones((5, 7)))
    pred = gt.copy()
    pred[1:6, 4] = False
    res = M.warping_error(gt, pred.astype(float), 0.5)
    assert (res.splits, res.merges) == (1, 0)
    assert res.error == pytest.approx(1 / gt.size)
    warped = M.simple_point_warp(gt, pred.astype(float), 0.5)
    assert (warped != pred).sum() == 1 and warped[5, 4]


def test_warping_filled_membrane_line_is_merges():
    # Two cells split by a membrane column; the prediction fills it: none of
    # its 5 pixels can flip (each would merge the cells), each is a merge.
    gt = _framed(np.array([[1, 1, 1, 0, 1, 1, 1]] * 5))
    pred = _framed(np.ones((5, 7)))
    res = M.warping_error(gt, pred.astype(float), 0.5)
    assert (res.splits, res.merges) == (0, 5)


def test_warping_hole_is_not_an_error():
    # A small isolated membrane blob inside a cell: a hole addition, not a split.
    gt = _framed(np.ones((7, 7)))
    for blob in ([(4, 4)], [(3, 3), (3, 4), (4, 3), (4, 4)]):
        pred = gt.copy()
        for r, c in blob:
            pred[r, c] = False
        res = M.warping_error(gt, pred.astype(float), 0.5)
        assert (res.splits, res.merges) == (0, 0)
        np.testing.assert_array_equal(M.simple_point_warp(gt, pred.astype(float), 0.5), gt)  # no hole opened


def test_warping_object_addition_and_deletion_are_not_errors():
    gt = _framed(np.array([[1, 1, 0, 0, 0, 0]] * 4))
    pred = gt.copy()
    pred[2, 5] = True  # a new 1-pixel object
    assert M.warping_error(gt, pred.astype(float)).error == 0.0
    gt2 = gt.copy()
    gt2[2, 5] = True  # a GT object the prediction misses
    assert M.warping_error(gt2, gt.astype(float)).error == 0.0


def test_warping_two_valued_case_uses_the_window():
    # A ring-shaped cell (1 px thick); the prediction opens it at one pixel.
    # Removing that pixel does not disconnect the ring inside a 41x41 window
    # (hole deletion: not counted), but does inside a 3x3 window (radius 1).
    ring = np.ones((5, 5), bool)
    ring[1:4, 1:4] = False
    gt = np.pad(ring, 2)
    pred = gt.copy()
    pred[2, 4] = False
    assert M.warping_error(gt, pred.astype(float), 0.5).splits == 0
    assert M.warping_error(gt, pred.astype(float), 0.5, radius=1).splits == 1


def test_warping_flip_order_follows_probability():
    # A 2-pixel cell predicted all membrane: only one pixel may flip (the
    # second flip would delete the object); the larger |p - t| goes first.
    gt = _framed(np.ones((1, 2)))
    for p_left, left_flipped in ((0.1, True), (0.4, False)):
        prob = gt.astype(float)
        prob[1, 1], prob[1, 2] = p_left, 0.2
        warped = M.simple_point_warp(gt, prob, 0.5)
        assert warped[1, 1] != left_flipped and warped[1, 2] == left_flipped


def _reference_warp(gt, prob, t):
    """Literal METRICS.md step 2: pass after pass, pixel by pixel."""

    def topology(x):
        return ndi.label(x, CROSS)[1], ndi.label(~x.astype(bool), SQUARE)[1]

    lab = np.pad(gt.astype(bool), 1)
    tgt = np.pad(prob > t, 1)
    p = np.pad(prob.astype(np.float64), 1)
    h, w = gt.shape
    while True:
        mism = [(x, y) for x in range(1, w + 1) for y in range(1, h + 1) if lab[y, x] != tgt[y, x]]
        mism.sort(key=lambda q: -np.float32(abs(p[q[1], q[0]] - t)))
        flips = 0
        for x, y in mism:
            before = topology(lab)
            lab[y, x] = ~lab[y, x]
            if topology(lab) == before:
                flips += 1
            else:
                lab[y, x] = ~lab[y, x]
        if not flips:
            break
    return lab[1:-1, 1:-1]


def _reference_classify(warped, target, radius):
    """Literal METRICS.md step 3."""
    h, w = warped.shape
    comp = ndi.label(warped, CROSS)[0]
    splits = merges = 0
    for y, x in zip(*np.nonzero(warped != target)):
        vals = {comp[j, i] for j in range(y - 1, y + 2) for i in range(x - 1, x + 2)
                if (j, i) != (y, x) and 0 <= j < h and 0 <= i < w}
        if len(vals) >= 3:
            splits += int(warped[y, x])
            merges += int(not warped[y, x])
        elif len(vals) == 2 and warped[y, x]:
            win = np.pad(warped, radius)[y:y + 2 * radius + 1, x:x + 2 * radius + 1].copy()
            win[radius, radius] = False
            c2 = ndi.label(win, CROSS)[0]
            around = c2[radius - 1:radius + 2, radius - 1:radius + 2].ravel()
            splits += int(len(set(np.delete(around, 4))) > 2)
    return splits, merges


@pytest.mark.parametrize("seed", range(6))
def test_warping_matches_literal_reference(seed):
    # Random cells and soft predictions, with many ties (quantised p) in half
    # of the cases; the global-topology reference is independent of the LUT.
    rng = np.random.default_rng(seed)
    z = 2
    h, w = rng.integers(10, 18, 2)
    gt = np.stack([ndi.gaussian_filter(rng.random((h, w)), 1.2) > 0.5 for _ in range(z)])
    prob = np.clip(np.stack([ndi.gaussian_filter(rng.random((h, w)), 1.0) for _ in range(z)]) * 1.8 - 0.4
                   + 0.3 * gt, 0, 1).astype(np.float32)
    if seed % 2:
        prob = np.round(prob * 4) / 4
    for t in (0.3, 0.5):
        ref = np.stack([_reference_warp(gt[i], prob[i], t) for i in range(z)])
        np.testing.assert_array_equal(M.simple_point_warp(gt, prob, t), ref)
        counts = [_reference_classify(ref[i], prob[i] > t, 4) for i in range(z)]
        res = M.warping_error(gt, prob, t, radius=4)
        assert (res.splits, res.merges) == tuple(map(sum, zip(*counts)))


def test_warping_all_layered_passes_match_event_passes(monkeypatch):
    rng = np.random.default_rng(7)
    gt = ndi.gaussian_filter(rng.random((40, 40)), 1.5) > 0.5
    prob = np.clip(ndi.gaussian_filter(rng.random((40, 40)), 1.5) * 2 - 0.5, 0, 1)
    fast = M.simple_point_warp(gt, prob, 0.5)
    from unetkit.metrics import warping

    monkeypatch.setattr(warping, "_EVENT_LIMIT", -1)  # every pass vectorised
    np.testing.assert_array_equal(M.simple_point_warp(gt, prob, 0.5), fast)


def test_warping_input_validation():
    with pytest.raises(ValueError, match="shape"):
        M.warping_error(np.ones((3, 3), bool), np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.warping_error(np.ones((3, 3), bool), np.full((3, 3), 2.0))


# ---------------------------------------------------------------------------
# Instance metrics
# ---------------------------------------------------------------------------


def _disk(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2


@pytest.mark.parametrize("shift", [0, 1, 3, 6])
def test_seg_of_shifted_disk(shift):
    disk = _disk((64, 64), (32, 24), 10)
    moved = np.roll(disk, shift, axis=1)
    area = disk.sum()
    inter = (disk & moved).sum()
    expected = inter / (2 * area - inter) if inter > 0.5 * area else 0.0
    res = M.seg(disk.astype(int), moved.astype(int) * 5)
    assert res.seg == pytest.approx(expected)
    assert res.n_true == res.n_pred == 1


def test_seg_shifted_beyond_match_is_zero():
    disk = _disk((64, 64), (32, 20), 8)
    moved = np.roll(disk, 12, axis=1)  # overlap well below half the disk
    assert (disk & moved).sum() <= 0.5 * disk.sum()
    res = M.seg(disk.astype(int), moved.astype(int))
    assert res.seg == 0.0
    assert (res.true_positives, res.false_positives, res.false_negatives) == (0, 1, 1)
    assert math.isnan(res.mean_matched_iou)


def test_seg_ignores_false_positives_but_reports_them():
    gt = np.zeros((20, 20), int)
    gt[2:8, 2:8] = 1
    pred = gt.copy()
    pred[12:18, 12:18] = 2  # extra object
    res = M.seg(gt, pred)
    assert res.seg == 1.0
    assert res.false_positives == 1 and res.precision == 0.5 and res.recall == 1.0
    assert res.mean_matched_iou == 1.0


def test_seg_match_needs_more_than_half_of_the_reference():
    gt = np.zeros((1, 10), int)
    gt[0, :4] = 1
    exactly_half = np.zeros((1, 10), int)
    exactly_half[0, 2:6] = 1  # |R & S| = 2 = 0.5 |R|: no match
    assert M.seg(gt, exactly_half).seg == 0.0
    more = np.zeros((1, 10), int)
    more[0, 1:5] = 1  # |R & S| = 3, |R | S| = 5
    assert M.seg(gt, more).seg == pytest.approx(3 / 5)


def test_average_precision_toy():
    # GT: A, B, C. Prediction: A exactly; B covered with IoU 0.4 (no match);
    # an extra object D. TP = 1, FP = 2 (B', D), FN = 2 (B, C) -> 1/5.
    gt = np.zeros((10, 30), int)
    gt[1:5, 1:5] = 1  # A
    gt[1:5, 10:15] = 2  # B, 20 px
    gt[6:9, 20:25] = 3  # C
    pred = np.zeros_like(gt)
    pred[1:5, 1:5] = 7
    pred[1:5, 12:20] = 8  # 12 px inside B, 20 outside: IoU = 12 / 40 < 0.5
    pred[6:9, 1:4] = 9
    assert M.average_precision(gt, pred) == pytest.approx(1 / 5)
    res = M.evaluate_instances(pred, gt)
    assert res["ap50"] == pytest.approx(1 / 5)
    assert (res["true_positives"], res["false_positives"], res["false_negatives"]) == (1, 2, 2)
    assert res["seg"] == pytest.approx((1.0 + 12 / 40 + 0.0) / 3)  # B: 12 > 0.5 * 20
    assert M.average_precision(np.zeros((3, 3), int), np.zeros((3, 3), int)) == 1.0
    with pytest.raises(ValueError, match="iou_threshold"):
        M.average_precision(gt, pred, iou_threshold=0.3)


def test_instance_metrics_pool_planes_of_different_shapes():
    a = np.zeros((5, 5), int)
    a[1:3, 1:3] = 1
    b = np.zeros((4, 6), int)
    b[0:2, 0:2] = 4
    res = M.evaluate_instances([a, b], [a, np.zeros_like(b)])
    assert res["n_true"] == 1 and res["n_pred"] == 2 and res["seg"] == 1.0
    assert res["ap50"] == pytest.approx(1 / 2)


# ---------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------


def _toy_stack():
    rng = np.random.default_rng(5)
    gt = np.stack([(ndi.gaussian_filter(rng.random((48, 48)), 2.5) > 0.5) for _ in range(2)]).astype(np.uint8) * 255
    prob = np.clip(ndi.gaussian_filter((gt > 0).astype(float), (0, 1.5, 1.5)) + rng.normal(0, 0.1, gt.shape), 0, 1)
    return prob, gt


def test_evaluate_probabilities_keys_and_shapes():
    prob, gt = _toy_stack()
    res = M.evaluate_probabilities(prob, gt)
    assert set(res) == set(M.METRIC_NAMES) | {"at_0.5", "curves", "best_threshold"}
    assert set(res["at_0.5"]) == set(M.METRIC_NAMES) == set(res["best_threshold"])
    curves = res["curves"]
    assert curves["thresholds"] == list(M.THRESHOLDS) and len(M.THRESHOLDS) == 11
    assert curves["warping_thresholds"] == list(M.WARPING_THRESHOLDS) and len(M.WARPING_THRESHOLDS) == 10
    assert all(len(curves[k]) == 11 for k in ("pixel_error", "rand_error", "v_rand", "v_info", "iou", "dice"))
    assert len(curves["warping_error"]) == 10
    # best = min for errors, max for scores, and the reported threshold is where it is
    for name in M.METRIC_NAMES:
        grid = curves["warping_thresholds"] if name == "warping_error" else curves["thresholds"]
        best = (max if name in ("v_rand", "v_info", "iou", "dice") else min)(curves[name])
        assert res[name] == best
        assert curves[name][grid.index(res["best_threshold"][name])] == best
        assert res["at_0.5"][name] == curves[name][grid.index(0.5)]


def test_evaluate_probabilities_agrees_with_the_metric_functions():
    prob, gt = _toy_stack()
    res = M.evaluate_probabilities(prob, gt)
    cell = gt > 0
    gl = M.connected_components(cell)
    pred = M.threshold(prob, 0.5)
    half = res["at_0.5"]
    assert half["pixel_error"] == pytest.approx(M.pixel_error(cell, pred))
    assert half["rand_error"] == pytest.approx(M.rand_error(gl, M.connected_components(pred)))
    assert half["v_rand"] == pytest.approx(M.v_rand(gl, M.thin_boundaries(pred)).score)
    assert half["v_info"] == pytest.approx(M.v_info(gl, M.thin_boundaries(pred)).score)
    assert half["iou"] == pytest.approx(M.iou(cell, pred)[1])
    assert half["dice"] == pytest.approx(M.dice(cell, pred)[1])
    w = M.warping_error(cell, prob, 0.3)
    i = res["curves"]["warping_thresholds"].index(0.3)
    assert res["curves"]["warping_error"][i] == pytest.approx(w.error)
    assert (res["curves"]["warping_splits"][i], res["curves"]["warping_merges"][i]) == (w.splits, w.merges)


def test_evaluate_probabilities_perfect_and_binary_inputs():
    _, gt = _toy_stack()
    for pred in (gt, gt > 0, (gt > 0).astype(np.uint8), (gt > 0).astype(np.float32)):
        res = M.evaluate_probabilities(pred, gt)
        for name in ("pixel_error", "rand_error", "warping_error"):
            assert res[name] == 0.0 and res["at_0.5"][name] == 0.0
        for name in ("v_rand", "v_info", "iou", "dice"):
            assert res[name] == pytest.approx(1.0)
        # a binary map binarises the same at every t < 1
        assert len(set(res["curves"]["pixel_error"][:-1])) == 1


def test_evaluate_probabilities_options_and_errors():
    prob, gt = _toy_stack()
    res = M.evaluate_probabilities(prob, gt, metrics=["pixel_error", "warping_error"], warping=False)
    assert res["pixel_error"] is not None and res["warping_error"] is None and res["v_rand"] is None
    assert "warping_error" not in res["curves"]
    res = M.evaluate_probabilities(prob[0], gt[0], thresholds=[0.2, 0.8], metrics=["dice"])
    assert res["curves"]["thresholds"] == [0.2, 0.8]
    assert res["at_0.5"]["dice"] is not None  # t = 0.5 is always reported
    with pytest.raises(ValueError, match="unknown metric"):
        M.evaluate_probabilities(prob, gt, metrics=["accuracy_typo"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.evaluate_probabilities(prob * 3, gt)
    with pytest.raises(ValueError, match="planes"):
        M.evaluate_probabilities(prob, gt[:1])
    with pytest.raises(ValueError, match="shape"):
        M.evaluate_probabilities(prob[:, :10], gt)
    with pytest.raises(ValueError, match="thresholds"):
        M.evaluate_probabilities(prob, gt, thresholds=[1.5])


def test_evaluate_probabilities_planes_of_different_shapes():
    prob, gt = _toy_stack()
    parts = M.evaluate_probabilities([prob[0], prob[1][:40, :44]], [gt[0], gt[1][:40, :44]])
    assert 0 <= parts["pixel_error"] < 0.5
    assert len(parts["curves"]["warping_error"]) == 10


def test_all_cell_prediction_on_isbi_labels():
    labels = isbi_labels()
    res = M.evaluate_probabilities(np.ones(labels.shape, np.float32), labels, metrics=["pixel_error"])
    assert 0.10 <= res["pixel_error"] <= 0.14
    assert res["pixel_error"] == pytest.approx(M.pixel_error(labels > 0, np.ones(labels.shape, bool)))


def test_iou_and_dice_of_an_empty_class_agree_everywhere():
    """A class absent from both images: NaN from iou()/dice() and from the sweep; the pixel error is 0."""
    empty = np.zeros((6, 6), bool)
    assert np.isnan(M.iou(empty, empty)[1]) and np.isnan(M.dice(empty, empty)[1])
    res = M.evaluate_probabilities(np.zeros((6, 6), np.float32), empty.astype(np.uint8), warping=False)
    assert math.isnan(res["at_0.5"]["iou"]) and math.isnan(res["at_0.5"]["dice"])
    assert res["iou"] is None and res["dice"] is None  # no threshold has a defined value
    assert res["pixel_error"] == 0.0 == M.pixel_error(empty, empty)
    # with one empty plane among others the pooled counts decide, in both places
    gt = np.stack([empty, np.pad(GT4 > 0, 1)])
    pred = np.stack([empty, np.pad(PRED4, 1)])
    res = M.evaluate_probabilities(pred.astype(np.float32), gt.astype(np.uint8), thresholds=[0.5], warping=False)
    assert res["at_0.5"]["iou"] == pytest.approx(M.iou(gt, pred)[1])
