"""Training pairs: label kinds, the border weight of 0/1 masks, the whole weight config, ignore values, selections."""

import dataclasses

import numpy as np
import pytest

from unetkit.data import make_pair, make_pairs, parse_select
from unetkit.labels import instances_to_classes
from unetkit.normalize import NormalizationConfig
from unetkit.weights import WeightMapConfig, border_weight_map


def two_touching_cells(value=1):
    label = np.zeros((40, 40), np.uint8)
    label[5:35, 5:19] = value
    label[5:35, 21:35] = value  # two cells, a 2-pixel gap between them
    image = np.random.default_rng(0).normal(size=label.shape).astype(np.float32)
    return image, label


@pytest.mark.parametrize("value", [1, 255])
def test_a_binary_mask_gets_the_border_weight_under_auto(value):
    image, label = two_touching_cells(value)
    with_w0 = make_pairs([image], [label], weight_config=WeightMapConfig(w0=10.0))[0]
    without = make_pairs([image], [label], weight_config=WeightMapConfig(w0=0.0))[0]
    assert with_w0.kind == "binary"
    gap = (slice(10, 30), slice(19, 21))
    assert with_w0.weights[gap].min() > without.weights[gap].max() + 5  # the gap between the cells is emphasised
    np.testing.assert_array_equal(with_w0.classes, without.classes)


def test_the_whole_weight_config_reaches_the_map():
    inst = np.zeros((40, 40), np.int32)
    inst[5:35, 5:20], inst[5:35, 20:35] = 1, 2  # touching
    image = np.zeros(inst.shape, np.float32)
    config = WeightMapConfig(w0=8.0, sigma=3.0, border_width=3, tol=1e-3)
    pair = make_pair(image, inst, kind="instances", num_classes=2, in_channels=1,
                     normalization=NormalizationConfig(), weight_config=config)
    np.testing.assert_array_equal(pair.weights, border_weight_map(inst, **dataclasses.asdict(config)))
    np.testing.assert_array_equal(pair.classes, instances_to_classes(inst, width=3))
    assert (pair.classes[5:35, 17:20] == 0).all()  # a 3-pixel carved line
    default = make_pair(image, inst, kind="instances", num_classes=2, in_channels=1,
                        normalization=NormalizationConfig(), weight_config=WeightMapConfig(w0=8.0, sigma=3.0))
    assert not np.array_equal(default.weights, pair.weights)


def test_ignore_value_marks_unlabelled_pixels():
    image, label = two_touching_cells(255)
    sparse = np.full(label.shape, 7, np.uint8)  # 7 = not painted
    sparse[8:12, 8:12] = 255
    sparse[0:3, :] = 0
    pair = make_pairs([image], [sparse], ignore_value=7, weight_config=WeightMapConfig(w0=0.0))[0]
    assert pair.kind == "binary"  # the ignore value does not count as a label value
    painted = sparse != 7
    assert (pair.weights[~painted] == 0).all() and (pair.weights[painted] > 0).all()
    # class balance over the painted pixels only: both classes carry the same total weight
    fg = pair.weights[pair.classes == 1].sum()
    bg = pair.weights[(pair.classes == 0) & painted].sum()
    assert fg == pytest.approx(bg, rel=1e-5)


def test_three_class_models_train_on_border_classes():
    inst = np.zeros((30, 30), np.int32)
    inst[3:15, 3:15], inst[3:15, 15:27] = 1, 2
    pair = make_pairs([np.zeros(inst.shape)], [inst], num_classes=3, weight_config=WeightMapConfig())[0]
    assert set(np.unique(pair.classes)) == {0, 1, 2}


def test_bad_images_and_labels_are_refused():
    image, label = two_touching_cells()
    with pytest.raises(ValueError, match="NaN"):
        make_pairs([np.full(label.shape, np.nan)], [label])
    with pytest.raises(ValueError, match="label shape"):
        make_pairs([image], [label[:10]])
    with pytest.raises(ValueError, match="integers"):
        make_pairs([image], [label + 0.5])
    with pytest.raises(ValueError, match="binary labels"):
        make_pairs([image], [label.astype(int) + 1], kind="binary")
    with pytest.raises(ValueError, match="class indices"):
        make_pairs([image], [label * 3], kind="classes")
    with pytest.raises(ValueError, match="empty"):
        make_pairs([], [])


@pytest.mark.parametrize(
    "text, expected",
    [(":", [0, 1, 2, 3, 4]), ("0:3", [0, 1, 2]), ("3:", [3, 4]), ("::2", [0, 2, 4]), ("-2:", [3, 4]),
     ("1,3", [1, 3]), ("-1", [4]), ("", [])],
)
def test_parse_select(text, expected):
    assert parse_select(text, 5) == expected


@pytest.mark.parametrize("text", ["a:b", "1,x", "7", "1:2:3:4"])
def test_parse_select_errors(text):
    with pytest.raises(ValueError, match="select"):
        parse_select(text, 5)
