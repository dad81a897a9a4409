"""Tests of unetkit.weights: separation borders, class balance, the border weight map.

The fast map is checked against the brute-force reference (one full distance
transform per instance) on synthetic and real labels, and both against values
worked out by hand.
"""

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from unetkit import weights as W
from unetkit.weights import (
    WeightMapConfig,
    border_weight_map,
    brute_force_border_weight_map,
    class_balance_weights,
    instances_to_classes,
    separation_borders,
)

TOL = 1e-6  # fast vs brute force, float32 maps


# ----------------------------------------------------------------------------- label generators
def touching_disks(shape=(96, 96)) -> np.ndarray:
    """Disks painted in order: later ones cut into earlier ones, so many touch."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disks = [(20, 20, 12), (20, 42, 11), (38, 30, 10), (60, 60, 14), (75, 80, 9), (70, 20, 8), (88, 45, 6)]
    labels = np.zeros(shape, np.int32)
    for k, (r, c, rad) in enumerate(disks, start=1):
        labels[(yy - r) ** 2 + (xx - c) ** 2 <= rad**2] = k
    return labels


def random_instances(rng, shape=(72, 72), n=25, max_radius=12.0, big_ids=False) -> np.ndarray:
    """Voronoi cells of random seeds, each cut to a random radius around its seed."""
    seeds = np.unique(rng.integers(0, shape, size=(n, 2)), axis=0)
    free = np.ones(shape, bool)
    free[tuple(seeds.T)] = False
    dist, (ri, ci) = ndi.distance_transform_edt(free, return_indices=True)
    ids = np.zeros(shape, np.int64)
    ids[tuple(seeds.T)] = np.arange(1, len(seeds) + 1)
    labels = ids[ri, ci]
    radius = np.concatenate([[0.0], rng.uniform(1.0, max_radius, len(seeds))])
    labels[dist > radius[labels]] = 0
    if big_ids:  # sparse, huge, shuffled label values
        values = np.concatenate([[0], rng.choice(10**12, size=len(seeds), replace=False) + 1])
        labels = values[labels].astype(np.uint64)
    return labels


def squares(gap: int, shape=(40, 60)) -> np.ndarray:
    """Two 10x10 squares in rows 10..19, ``gap`` background columns apart."""
    labels = np.zeros(shape, np.int32)
    labels[10:20, 10:20] = 1
    labels[10:20, 20 + gap : 30 + gap] = 2
    return labels


def assert_matches_brute_force(labels, **kwargs):
    fast = border_weight_map(labels, **kwargs)
    brute = brute_force_border_weight_map(labels, **{k: v for k, v in kwargs.items() if k != "tol"})
    assert fast.dtype == np.float32 and fast.shape == labels.shape
    diff = np.abs(fast.astype(np.float64) - brute)
    assert diff.max() <= TOL, f"max |fast - brute| = {diff.max():.3g}"
    return fast, brute


# ----------------------------------------------------------------------------- separation borders
def test_borders_between_touching_squares_form_a_one_pixel_line():
    labels = np.zeros((30, 50), np.int32)
    labels[5:15, 5:15] = 1
    labels[5:15, 15:25] = 2  # touches square 1 along the column boundary 14|15
    labels[20:26, 35:45] = 3  # alone
    borders = separation_borders(labels)
    expected = np.zeros_like(borders)
    expected[5:15, 14] = True  # carved on the side of the smaller label
    np.testing.assert_array_equal(borders, expected)

    classes = instances_to_classes(labels)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, ((labels > 0) & ~expected).astype(np.uint8))
    # the lone square is untouched; the two squares no longer touch, not even diagonally
    np.testing.assert_array_equal(classes[20:26, 35:45], 1)
    _, n = ndi.label(classes, structure=np.ones((3, 3)))
    assert n == 3


def test_borders_swap_side_with_label_order_and_keep_width():
    labels = np.zeros((30, 50), np.int32)
    labels[5:15, 5:15] = 2
    labels[5:15, 15:25] = 1
    borders = separation_borders(labels)
    assert borders.sum() == 10 and borders[5:15, 15].all()


def test_diagonal_contact_is_cut():
    labels = np.zeros((6, 6), np.int32)
    labels[1:3, 1:3] = 1
    labels[3:5, 3:5] = 2  # corner to corner at (2, 2)-(3, 3)
    borders = separation_borders(labels)
    assert borders.sum() == 1 and borders[2, 2]


def test_border_width_two_and_zero():
    labels = np.zeros((30, 50), np.int32)
    labels[5:15, 5:15] = 1
    labels[5:15, 15:25] = 2
    borders = separation_borders(labels, width=2)
    assert borders.sum() == 20 and borders[5:15, 13:15].all()
    assert not separation_borders(labels, width=0).any()


def test_carved_instances_never_touch(rng):
    for _ in range(5):
        labels = random_instances(rng, max_radius=20.0)
        carved = np.where(separation_borders(labels), 0, labels)
        # every remaining pixel sees only its own label or background in its 3x3 neighbourhood
        fg = carved > 0
        big = carved.max() + 1
        grown = ndi.maximum_filter(carved, size=3, mode="constant")
        shrunk = ndi.minimum_filter(np.where(fg, carved, big), size=3, mode="constant", cval=big)
        assert (grown[fg] == carved[fg]).all() and (shrunk[fg] == carved[fg]).all()
        # only instance pixels are carved, and only where another instance was adjacent
        # only instance pixels are carved: those with a larger label within `width` pixels
        for width in (1, 2, 3):
            borders = separation_borders(labels, width=width)
            assert (labels[borders] > 0).all()
            larger_near = ndi.maximum_filter(labels, size=2 * width + 1, mode="constant") > labels
            np.testing.assert_array_equal(borders, larger_near & (labels > 0))


# ----------------------------------------------------------------------------- class balance
def test_class_balance_equal_total_weight_per_class(rng):
    classes = rng.choice(3, size=(40, 50), p=[0.7, 0.25, 0.05])
    wc = class_balance_weights(classes, 3)
    assert wc.dtype == np.float32 and wc.shape == classes.shape
    assert wc.mean(dtype=np.float64) == pytest.approx(1.0, rel=1e-6)
    totals = [wc[classes == c].sum(dtype=np.float64) for c in range(3)]
    np.testing.assert_allclose(totals, classes.size / 3, rtol=1e-6)
    # each class's weight is N / (K n_c)
    for c in range(3):
        n_c = (classes == c).sum()
        np.testing.assert_allclose(wc[classes == c], classes.size / (3 * n_c), rtol=1e-6)


def test_class_balance_absent_class_and_single_class():
    classes = np.array([[0, 0, 0, 1]])
    np.testing.assert_allclose(class_balance_weights(classes, 3), [[2 / 3, 2 / 3, 2 / 3, 2.0]], rtol=1e-6)
    np.testing.assert_array_equal(class_balance_weights(np.zeros((3, 3), int), 2), 1.0)


def test_class_balance_invalid():
    with pytest.raises(ValueError, match="0..1"):
        class_balance_weights(np.array([0, 2]), 2)
    with pytest.raises(ValueError, match="integer"):
        class_balance_weights(np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="num_classes"):
        class_balance_weights(np.array([0, 1]), 0)


# ----------------------------------------------------------------------------- known values
def test_weight_in_gap_between_two_squares_by_hand():
    gap = 7  # background columns 20..26 between the squares; column 23 is the midpoint
    labels = squares(gap)
    w = border_weight_map(labels)
    n = labels.size
    wc_bg = n / (2 * (labels == 0).sum())
    # in rows 10..19 of the gap the nearest pixels of both squares lie in the same row:
    # at column c, d1 = c - 19 and d2 = 27 - c, so d1 + d2 = 8 all across the gap
    expected = wc_bg + 10.0 * math.exp(-((4.0 + 4.0) ** 2) / (2 * 5.0**2))
    assert w[15, 23] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(w[10:20, 20:27], expected, rtol=1e-6)
    # a corner pixel: d1 = |(0,0)-(10,10)|, d2 = |(0,0)-(10,27)|
    d1, d2 = math.hypot(10, 10), math.hypot(10, 27)
    corner = wc_bg + 10.0 * math.exp(-((d1 + d2) ** 2) / 50.0)
    assert w[0, 0] == pytest.approx(corner, rel=1e-6)
    # cell pixels get w_c only
    wc_fg = n / (2 * (labels > 0).sum())
    np.testing.assert_allclose(w[labels > 0], wc_fg, rtol=1e-6)


def test_weight_on_carved_border_between_touching_squares():
    labels = squares(0)  # square 2 starts right where square 1 ends
    w = border_weight_map(labels, class_balance=False, sigma=3.0, w0=7.0)
    # column 19 is carved: its pixels are 1 px from both remaining squares
    assert w[15, 19] == pytest.approx(1.0 + 7.0 * math.exp(-4.0 / 18.0), rel=1e-6)
    np.testing.assert_array_equal(w[labels == 2], 1.0)


def test_single_instance_and_empty_have_no_border_term():
    labels = np.zeros((20, 30), np.int32)
    labels[5:12, 8:20] = 4
    w = border_weight_map(labels)
    np.testing.assert_array_equal(w, class_balance_weights(instances_to_classes(labels), 2))
    np.testing.assert_array_equal(border_weight_map(np.zeros((8, 9), np.uint8)), 1.0)
    np.testing.assert_array_equal(border_weight_map(labels, class_balance=False), 1.0)


def test_w0_zero_gives_class_weights_only():
    labels = touching_disks()
    np.testing.assert_array_equal(
        border_weight_map(labels, w0=0.0), class_balance_weights(instances_to_classes(labels), 2)
    )


# ----------------------------------------------------------------------------- fast == brute force
def test_touching_disks_match_brute_force():
    labels = touching_disks()
    fast, _ = assert_matches_brute_force(labels)
    assert fast.max() > 8  # the border term is there
    assert_matches_brute_force(labels, w0=5.0, sigma=3.0, class_balance=False, border_width=2)


@pytest.mark.parametrize("seed", range(4))
def test_random_instances_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    dense = random_instances(rng, n=40, max_radius=30.0)  # Voronoi-like, thin background
    sparse = random_instances(rng, n=12, max_radius=6.0)
    huge = random_instances(rng, n=20, big_ids=True)
    for labels in (dense, sparse, huge):
        assert_matches_brute_force(labels)
    assert_matches_brute_force(dense, sigma=2.0, w0=3.0)


def test_tol_zero_is_bitwise_brute_force():
    labels = random_instances(np.random.default_rng(7), n=15)
    np.testing.assert_array_equal(border_weight_map(labels, tol=0.0), brute_force_border_weight_map(labels))


@pytest.mark.parametrize("first_margin", [1, 3, 6, 9, None, 100])
def test_two_round_distances_are_exact(first_margin):
    """Both rounds of the distance search (small first margin + completion) against brute force."""
    rng = np.random.default_rng(11)
    labels = random_instances(rng, n=30, max_radius=15.0)
    labels = np.where(separation_borders(labels), 0, labels)
    radius = W._cutoff_radius(10.0, 2.5, 1e-7)  # 15.2 px
    needed = labels == 0
    d1sq, d2sq, far = W._two_nearest_squared(labels, radius, needed, first_margin=first_margin)
    ids = np.unique(labels)[1:]
    dist = np.sort(np.stack([ndi.distance_transform_edt(labels != i) for i in ids]), axis=0)
    check = needed & (dist[0] + dist[1] <= radius)
    assert check.sum() > 100
    np.testing.assert_array_equal(np.sqrt(d1sq[check]), dist[0][check])
    np.testing.assert_array_equal(np.sqrt(d2sq[check]), dist[1][check])
    # everywhere else the values never undershoot the true distances
    d1 = np.where(d1sq == far, np.inf, np.sqrt(d1sq.astype(float)))
    d2 = np.where(d2sq == far, np.inf, np.sqrt(d2sq.astype(float)))
    assert (d1[needed] >= dist[0][needed]).all() and (d2[needed] >= dist[1][needed]).all()


def _isbi_instances(data_dir):
    import imageio.v3 as iio

    label = iio.imread(data_dir / "isbi2012" / "train" / "labels" / "00.png")
    instances, n = ndi.label(label > 0)
    return instances, n


def test_isbi_label_matches_brute_force(data_dir):
    instances, n = _isbi_instances(data_dir)
    assert n > 80
    assert_matches_brute_force(instances)


def test_dsb_label_matches_brute_force(data_dir):
    import tifffile

    labels = tifffile.imread(data_dir / "dsb2018_nuclei" / "labels.tif")
    assert labels.dtype == np.uint16 and labels.max() > 100
    fast, _ = assert_matches_brute_force(labels)
    assert separation_borders(labels).sum() > 0  # the nuclei touch


# ----------------------------------------------------------------------------- config and errors
def test_config_defaults_and_keywords():
    config = WeightMapConfig()
    assert (config.w0, config.sigma, config.class_balance) == (10.0, 5.0, True)
    labels = touching_disks()
    np.testing.assert_array_equal(border_weight_map(labels, **dataclasses.asdict(config)), border_weight_map(labels))


@pytest.mark.parametrize(
    "kwargs", [{"w0": -1.0}, {"sigma": 0.0}, {"sigma": math.inf}, {"border_width": 1.5}, {"border_width": -1}, {"tol": -1.0}]
)
def test_invalid_options(kwargs):
    with pytest.raises(ValueError):
        WeightMapConfig(**kwargs)
    with pytest.raises(ValueError):
        border_weight_map(touching_disks(), **kwargs)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.zeros((8, 8), np.float32), "integer"),
        (np.zeros((2, 8, 8), np.int32), "2-D"),
        (np.full((8, 8), -1, np.int32), ">= 0"),
        (np.zeros((0, 8), np.int32), "empty"),
    ],
)
def test_invalid_labels(labels, match):
    for fn in (border_weight_map, brute_force_border_weight_map, separation_borders, instances_to_classes):
        with pytest.raises(ValueError, match=match):
            fn(labels)


def test_labels_without_background_and_huge_ids():
    labels = np.full((5, 7), 10**15, np.uint64)
    np.testing.assert_array_equal(border_weight_map(labels), 1.0)  # one instance, nothing carved
    labels[:, 4:] = 10**14  # the smaller label loses its first column to the border
    np.testing.assert_array_equal(separation_borders(labels)[:, 4], True)
    assert separation_borders(labels).sum() == 5
    assert_matches_brute_force(labels)
