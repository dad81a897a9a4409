"""Tests of unetkit.instances: probabilities -> instance labels, and back to 3-class targets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from unetkit.instances import (
    InstanceConfig,
    fill_label_holes,
    instances_to_border_classes,
    label_components,
    label_overlay,
    probabilities_to_instances,
    relabel_sequential,
    remove_small,
    smallest_dtype_for,
    watershed_split,
)


# --------------------------------------------------------------------------- helpers


def disk(shape, center, radius):
    rows, cols = np.indices(shape)
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return (a & b).sum() / (a | b).sum()


def objects(labels):
    """Masks of the objects of a label image, in label order."""
    return [labels == k for k in np.unique(labels) if k != 0]


def one_hot(classes, n_classes):
    return np.stack([classes == k for k in range(n_classes)]).astype(np.float32)


def two_class(p_fg):
    p_fg = np.asarray(p_fg, dtype=np.float32)
    return np.stack([1.0 - p_fg, p_fg])


def match_count(truth, pred, min_iou):
    """Number of true objects that one predicted object covers with IoU > min_iou."""
    _, truth = np.unique(truth, return_inverse=True)
    _, pred = np.unique(pred, return_inverse=True)
    truth, pred = truth.reshape(-1), pred.reshape(-1)
    table = np.zeros((truth.max() + 1, pred.max() + 1), dtype=np.int64)
    np.add.at(table, (truth, pred), 1)
    union = table.sum(1)[:, None] + table.sum(0)[None, :] - table
    ious = (table / union)[1:, 1:]
    return int((ious.max(axis=1) > min_iou).sum())


def same_partition(a, b):
    """Whether two label images hold the same objects, whatever their numbers."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]).astype(np.int64), axis=1)
    return (
        np.array_equal(a > 0, b > 0)
        and len(np.unique(pairs[0])) == pairs.shape[1]
        and len(np.unique(pairs[1])) == pairs.shape[1]
    )


def load_dsb_labels():
    root = os.environ.get("UNETKIT_DATA")
    if not root:
        pytest.skip("UNETKIT_DATA is not set: real-data test needs the shared data folder")
    path = Path(root) / "dsb2018_nuclei" / "labels.tif"
    if not path.exists():
        pytest.skip(f"{path} not found")
    import tifffile

    return tifffile.imread(path)


# --------------------------------------------------------------------------- two-class mode


def test_touching_disks_with_one_pixel_gap_are_two_exact_objects():
    shape = (40, 50)
    a, b = disk(shape, (20, 16), 8), disk(shape, (20, 32), 8)
    assert (a[:, 24] & b[:, 24]).any()  # the disks touch in column 24
    prob = (a | b).astype(np.float32)
    prob[:, 24] = 0.0  # predicted 1-pixel background gap
    labels = probabilities_to_instances(two_class(prob), config=InstanceConfig(min_size=0))

    assert labels.dtype == np.uint16
    assert set(np.unique(labels)) == {0, 1, 2}
    cols = np.arange(shape[1])[None, :]
    expected = [a & (cols < 24), b & (cols > 24)]
    for obj, exp in zip(objects(labels), expected):
        assert np.array_equal(obj, exp)
        assert iou(obj, exp) == 1.0
    # (H, W) foreground map gives the same answer as (C, H, W) softmax
    assert np.array_equal(probabilities_to_instances(prob, config=InstanceConfig(min_size=0)), labels)


def test_diagonal_corner_contact_is_two_objects_under_4_connectivity():
    prob = np.zeros((10, 10), np.float32)
    prob[2:5, 2:5] = 1.0
    prob[5:8, 5:8] = 1.0  # touches the first square only at a pixel corner
    four = probabilities_to_instances(prob, config=InstanceConfig(min_size=0, connectivity=1))
    eight = probabilities_to_instances(prob, config=InstanceConfig(min_size=0, connectivity=2))
    assert four.max() == 2
    assert (four[2:5, 2:5] == four[2, 2]).all() and (four[5:8, 5:8] == four[5, 5]).all()
    assert four[2, 2] != four[5, 5]
    assert eight.max() == 1
    assert np.array_equal(label_components(prob > 0.5, connectivity=1) > 0, prob > 0.5)


def test_threshold_is_strict_and_configurable():
    prob = np.array([[0.5, 0.0, 0.6, 0.0, 0.9]], np.float32)
    assert probabilities_to_instances(prob, config=InstanceConfig(min_size=0)).max() == 2
    assert probabilities_to_instances(prob, config=InstanceConfig(min_size=0, threshold=0.7)).max() == 1


def test_min_size_removes_tiny_blob_and_keeps_exact_size():
    prob = np.zeros((20, 20), np.float32)
    prob[2:7, 2:7] = 1.0  # 25 pixels
    prob[12, 12:15] = 1.0  # 3 pixels
    assert probabilities_to_instances(prob, config=InstanceConfig(min_size=10)).max() == 1
    assert probabilities_to_instances(prob, config=InstanceConfig(min_size=3)).max() == 2  # exactly min_size stays
    assert probabilities_to_instances(prob, config=InstanceConfig(min_size=4)).max() == 1
    kept = probabilities_to_instances(prob, config=InstanceConfig(min_size=4))
    assert np.array_equal(kept > 0, np.pad(np.ones((5, 5), bool), ((2, 13), (2, 13))))

    labels = np.array([[1, 1, 0, 3], [0, 0, 0, 3], [5, 0, 0, 3]])
    assert np.array_equal(remove_small(labels, 2), np.array([[1, 1, 0, 3], [0, 0, 0, 3], [0, 0, 0, 3]]))
    assert np.array_equal(remove_small(labels, 0), labels)


def test_hole_filling_fills_enclosed_hole_without_merging():
    prob = np.zeros((20, 30), np.float32)
    prob[2:11, 2:11] = 1.0
    prob[5:8, 5:8] = 0.0  # 3x3 hole in object one
    prob[2:11, 11:20] = 0.0
    prob[2:11, 15:24] = 1.0
    prob[6, 19] = 0.0  # 1-pixel hole in object two, which is 4 pixels away
    filled = probabilities_to_instances(prob, config=InstanceConfig(min_size=0))
    unfilled = probabilities_to_instances(prob, config=InstanceConfig(min_size=0, fill_holes=False))
    assert filled.max() == 2 and unfilled.max() == 2
    assert (filled[2:11, 2:11] == 1).all() and (filled[2:11, 15:24] == 2).all()
    assert (filled[:, 11:15] == 0).all()
    assert unfilled[6, 6] == 0 and unfilled[6, 19] == 0


def test_fill_label_holes_leaves_gaps_between_objects_and_open_bays():
    # a 9x9 ring made of two touching halves: the hole is bounded by both
    labels = np.zeros((11, 11), np.int32)
    labels[1:10, 1:10] = 1
    labels[1:10, 6:10] = 2
    labels[4:7, 4:7] = 0
    assert np.array_equal(fill_label_holes(labels), labels)
    # a hole of object 1 alone is filled with its label
    single = labels.copy()
    single[single == 2] = 1
    filled = fill_label_holes(single)
    assert (filled[1:10, 1:10] == 1).all() and filled.sum() == 81
    # a bay open to the image border is not a hole
    bay = np.zeros((5, 5), np.int32)
    bay[0:4, 0:4] = 7
    bay[1:3, 0:2] = 0
    assert np.array_equal(fill_label_holes(bay), bay)
    # a ring around another object: the gap touches both, nothing is merged
    nested = np.zeros((9, 9), np.int32)
    nested[0:9, 0:9] = 1
    nested[2:7, 2:7] = 0
    nested[4, 4] = 2
    out = fill_label_holes(nested)
    assert np.array_equal(out, nested)
    assert fill_label_holes(labels).dtype == labels.dtype


# --------------------------------------------------------------------------- watershed


def test_watershed_splits_blob_with_two_probability_peaks():
    shape = (64, 64)
    rows, cols = np.indices(shape)
    centers = [(32, 22), (32, 42)]
    bumps = [np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * 9.0**2)) for r, c in centers]
    prob = np.maximum(*bumps)
    config = InstanceConfig(min_size=0, seed_threshold=0.9)
    merged = probabilities_to_instances(prob, config=config)
    split = probabilities_to_instances(prob, config=InstanceConfig(min_size=0, seed_threshold=0.9, watershed=True))

    assert merged.max() == 1  # the two peaks form one connected blob
    assert split.max() == 2
    assert np.array_equal(split > 0, merged > 0)  # splitting keeps every foreground pixel
    d_a = np.hypot(rows - 32, cols - 22)
    d_b = np.hypot(rows - 32, cols - 42)
    label_a, label_b = split[32, 22], split[32, 42]
    assert label_a != label_b
    # the border lies on the probability valley between the peaks (column 32)
    assert (split[(split > 0) & (d_a < d_b - 1)] == label_a).all()
    assert (split[(split > 0) & (d_b < d_a - 1)] == label_b).all()


def test_watershed_splits_saturated_overlapping_disks_at_the_neck():
    shape = (40, 60)
    a, b = disk(shape, (20, 22), 10), disk(shape, (20, 36), 10)
    prob = (a | b).astype(np.float32)  # flat probability: only the shape tells
    assert probabilities_to_instances(prob, config=InstanceConfig(min_size=0)).max() == 1
    split = probabilities_to_instances(prob, config=InstanceConfig(min_size=0, watershed=True))
    assert split.max() == 2
    halves = [(a | b) & (np.arange(shape[1]) < 29), (a | b) & (np.arange(shape[1]) > 29)]
    for obj, half in zip(objects(split), halves):
        assert iou(obj, half) > 0.9
    # the neck is 2.05 px below the peaks of the distance transform (10.05 vs 8.0):
    # a larger seed_h asks for a deeper neck, so no split
    strict = InstanceConfig(min_size=0, watershed=True, seed_h=3.0)
    assert probabilities_to_instances(prob, config=strict).max() == 1


def test_watershed_does_not_split_single_convex_objects():
    shape = (60, 80)
    rows, cols = np.indices(shape)
    ellipse = ((rows - 30) / 8.0) ** 2 + ((cols - 25) / 20.0) ** 2 <= 1.0
    rectangle = np.zeros(shape, bool)
    rectangle[10:20, 50:78] = True  # flat ridge in the distance transform
    prob = (ellipse | rectangle).astype(np.float32)
    out = probabilities_to_instances(prob, config=InstanceConfig(min_size=0, watershed=True))
    assert out.max() == 2
    assert np.array_equal(out > 0, prob > 0)


def test_watershed_split_keeps_components_without_seed():
    prob = np.zeros((10, 20), np.float32)
    prob[2:8, 2:8] = 1.0
    prob[2:8, 12:18] = 0.7  # foreground, but never above the seed threshold
    out = watershed_split(prob, prob > 0.5, seed_threshold=0.9)
    assert np.array_equal(out > 0, prob > 0.5)
    assert len(np.unique(out[2:8, 2:8])) == 1 and len(np.unique(out[2:8, 12:18])) == 1
    assert out[2, 2] != out[2, 12]
    with pytest.raises(ValueError, match="same shape"):
        watershed_split(prob, np.ones((3, 3), bool))


# --------------------------------------------------------------------------- three-class border mode


def test_border_model_separates_touching_disks_and_assigns_border_pixels():
    shape = (40, 60)
    a, b = disk(shape, (20, 22), 10), disk(shape, (20, 38), 10)
    union = a | b
    classes = union.astype(np.uint8)  # 1 = interior
    classes[union & (np.arange(shape[1]) == 30)] = 2  # predicted border line between them
    prob = 0.8 * one_hot(classes, 3) + 0.2 / 3  # soft, still sums to 1
    labels = probabilities_to_instances(prob, config=InstanceConfig(min_size=0), border_class=2)

    assert labels.max() == 2
    assert np.array_equal(labels > 0, union)  # every border pixel went to an object
    cols = np.arange(shape[1])
    for obj, half in zip(objects(labels), [union & (cols < 30), union & (cols > 30)]):
        assert iou(obj, half) > 0.95
    # without the border class the same pixels are one object
    fg_only = probabilities_to_instances(prob[1] + prob[2], config=InstanceConfig(min_size=0))
    assert fg_only.max() == 1


def test_instances_to_border_classes_marks_shared_edge():
    instances = np.zeros((10, 12), np.int32)
    instances[2:8, 2:6] = 1
    instances[2:8, 6:10] = 2
    classes = instances_to_border_classes(instances)
    expected = np.zeros((10, 12), np.uint8)
    expected[2:8, 2:10] = 2
    expected[3:7, 3:5] = 1
    expected[3:7, 7:9] = 1
    assert classes.dtype == np.uint8
    assert np.array_equal(classes, expected)
    assert (classes[2:8, 5] == 2).all() and (classes[2:8, 6] == 2).all()  # both sides of the shared edge

    wide = instances_to_border_classes(instances, border_width=2)
    assert np.array_equal(wide == 1, _interior(instances, 2))
    assert np.array_equal(classes == 1, _interior(instances, 1))
    # the image edge is not a border
    edge = np.zeros((6, 6), np.int32)
    edge[:, :4] = 3
    assert (instances_to_border_classes(edge)[:, :3] == 1).all()
    assert (instances_to_border_classes(edge)[:, 3] == 2).all()


def _interior(instances, width):
    """Reference: object pixels with no other label within city-block distance ``width``."""
    out = np.zeros(instances.shape, bool)
    h, w = instances.shape
    for r, c in zip(*np.nonzero(instances)):
        ok = True
        for dr in range(-width, width + 1):
            for dc in range(-width + abs(dr), width - abs(dr) + 1):
                rr, cc = min(max(r + dr, 0), h - 1), min(max(c + dc, 0), w - 1)
                ok &= instances[rr, cc] == instances[r, c]
        out[r, c] = ok
    return out


def test_border_classes_round_trip_reproduces_instances():
    shape = (48, 48)
    instances = np.zeros(shape, np.uint16)
    instances[4:20, 4:20] = 4
    instances[4:20, 20:30] = 9  # touches object 4
    instances[disk(shape, (34, 30), 9)] = 2
    classes = instances_to_border_classes(instances)
    out = probabilities_to_instances(one_hot(classes, 3), config=InstanceConfig(min_size=0), border_class=2)
    assert same_partition(out, instances)


def test_border_classes_round_trip_on_real_nuclei():
    truth = load_dsb_labels()
    n_true = len(np.unique(truth)) - 1
    classes = instances_to_border_classes(truth)
    out = probabilities_to_instances(one_hot(classes, 3), config=InstanceConfig(min_size=0), border_class=2)
    # only nuclei thinner than two border widths can be lost
    assert match_count(truth, out, 0.9) >= n_true - 3
    # and connected components of the foreground merge many touching nuclei, which watershed partly undoes
    fg = (truth > 0).astype(np.float32)
    plain = probabilities_to_instances(fg)
    split = probabilities_to_instances(fg, config=InstanceConfig(watershed=True))
    assert match_count(truth, plain, 0.5) < match_count(truth, split, 0.5)
    assert match_count(truth, split, 0.5) >= 0.85 * n_true


# --------------------------------------------------------------------------- numbering and dtype


def test_labels_are_consecutive():
    rng = np.random.default_rng(0)
    prob = rng.random((64, 64)).astype(np.float32)
    labels = probabilities_to_instances(prob, config=InstanceConfig(min_size=3))
    n = labels.max()
    assert n > 5
    assert np.array_equal(np.unique(labels), np.arange(n + 1))
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes.min() >= 3

    gaps = np.array([[0, 5, 5], [9, 0, 200]], np.int64)
    relabeled = relabel_sequential(gaps)
    assert relabeled.dtype == np.uint16
    assert np.array_equal(relabeled, [[0, 1, 1], [2, 0, 3]])


def test_uint32_when_more_than_65535_objects():
    prob = np.zeros((600, 600), np.float32)
    prob[::2, ::2] = 1.0  # isolated pixels, even under 8-connectivity
    labels = probabilities_to_instances(prob, config=InstanceConfig(min_size=0))
    assert labels.dtype == np.uint32
    assert labels.max() == 90_000
    assert np.count_nonzero(labels) == 90_000
    assert labels[0, 0] == 1 and labels[0, 2] == 2 and labels[2, 0] == 301  # raster order
    small = probabilities_to_instances(prob[:100, :100], config=InstanceConfig(min_size=0))
    assert small.dtype == np.uint16 and small.max() == 2500


def test_smallest_dtype_for():
    assert smallest_dtype_for(0) == np.uint16
    assert smallest_dtype_for(65_535) == np.uint16
    assert smallest_dtype_for(65_536) == np.uint32
    assert smallest_dtype_for(2**32 - 1) == np.uint32
    for bad in (-1, 2**32):
        with pytest.raises(ValueError):
            smallest_dtype_for(bad)


def test_empty_prediction_gives_empty_labels():
    labels = probabilities_to_instances(np.zeros((2, 8, 8), np.float32) + [[[1.0]], [[0.0]]])
    assert labels.dtype == np.uint16 and not labels.any()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("prob", "kwargs", "match"),
    [
        (np.zeros(5, np.float32), {}, "shape"),
        (np.zeros((1, 2, 4, 4), np.float32), {}, "shape"),
        (np.full((4, 4), 1.5, np.float32), {}, r"\[0, 1\]"),
        (np.full((2, 4, 4), -0.2, np.float32), {}, r"\[0, 1\]"),
        (np.full((4, 4), np.nan, np.float32), {}, "NaN"),
        (np.zeros((4, 4), np.uint8), {}, "floating"),
        (np.full((2, 4, 4), 0.5, np.float32), {"border_class": 2}, "three classes"),
        (np.full((4, 4), 0.5, np.float32), {"border_class": 2}, "border_class"),
        (np.full((3, 4, 4), 0.3, np.float32), {"border_class": 1}, "differ"),
        (np.full((2, 4, 4), 0.5, np.float32), {"foreground_class": 2}, "foreground_class"),
        (np.full((1, 4, 4), 0.5, np.float32), {}, "C >= 2"),
    ],
)
def test_bad_input_raises(prob, kwargs, match):
    with pytest.raises(ValueError, match=match):
        probabilities_to_instances(prob, **kwargs)


def test_bad_config_and_helper_input_raise():
    with pytest.raises(ValueError, match="threshold"):
        InstanceConfig(threshold=1.5)
    with pytest.raises(ValueError, match="connectivity"):
        InstanceConfig(connectivity=3)
    with pytest.raises(ValueError, match="min_size"):
        InstanceConfig(min_size=-1)
    with pytest.raises(ValueError, match="non-negative"):
        relabel_sequential(np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="integer dtype"):
        fill_label_holes(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="border_width"):
        instances_to_border_classes(np.zeros((3, 3), np.int32), border_width=0)
    with pytest.raises(ValueError, match="connectivity"):
        label_components(np.ones((3, 3), bool), connectivity=3)


# --------------------------------------------------------------------------- overlay


def test_label_overlay_colours_objects_and_boundaries_deterministically():
    image = np.tile(np.linspace(0, 1000, 20, dtype=np.float32), (20, 1)).astype(np.uint16)
    labels = np.zeros((20, 20), np.int32)
    labels[3:10, 3:10] = 1
    labels[12:18, 4:16] = 5
    rgb = label_overlay(image, labels, alpha=0.5)
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 20, 3)
    assert np.array_equal(rgb, label_overlay(image, labels, alpha=0.5))  # deterministic
    # background keeps the gray image; boundaries get the boundary colour
    bg = labels == 0
    assert (rgb[bg][:, 0] == rgb[bg][:, 1]).all() and (rgb[bg][:, 1] == rgb[bg][:, 2]).all()
    assert rgb[bg].max() > 200 and rgb[bg].min() < 30  # contrast stretched to full range
    assert (rgb[3, 3:10] == (255, 255, 0)).all() and (rgb[12, 4:16] == (255, 255, 0)).all()
    # interiors are coloured (not gray), and a label's colour depends on its number only
    inner = rgb[5, 5].astype(int)
    assert not (inner[0] == inner[1] == inner[2])
    flat = np.full((20, 20), 500, np.uint16)
    shifted = np.roll(labels, 1, axis=1)
    a = label_overlay(flat, labels, alpha=1.0)
    b = label_overlay(flat, shifted, alpha=1.0)
    assert np.array_equal(a[14, 8], b[14, 9]) and not np.array_equal(a[14, 8], a[5, 5])
    empty = label_overlay(image, np.zeros_like(labels))
    assert np.array_equal(empty[bg], rgb[bg])  # no labels: just the gray image
    with pytest.raises(ValueError, match="shape"):
        label_overlay(image, labels[:10])
