"""unetkit.labels: the label kinds and the one mask-to-objects rule that every part of unetkit uses."""

import numpy as np
import pytest

from unetkit.labels import (
    check_label_image,
    connected_components,
    detect_label_kind,
    instances_to_border_classes,
    instances_to_classes,
    is_binary_values,
    mask_to_objects,
    to_objects,
)


@pytest.mark.parametrize(
    "values, num_classes, kind",
    [
        ([0, 1], 2, "binary"),  # a 0/1 mask for a 2-class model is a mask of objects (w0 applies)
        ([0, 255], 2, "binary"),
        ([0, 255], 3, "binary"),
        ([1], 2, "binary"),
        ([0, 1], 3, "classes"),  # class indices of a 3-class model
        ([0, 1, 2], 3, "classes"),
        ([0, 1, 2], 2, "instances"),
        ([0, 3, 7, 12], 2, "instances"),
        ([1, 2], 2, "instances"),  # two values without background are not a mask
    ],
)
def test_detect_label_kind(values, num_classes, kind):
    label = np.array(values * 3, dtype=np.uint16).reshape(3, -1)
    assert detect_label_kind(label, num_classes) == kind
    assert detect_label_kind([label[:1], label[1:]], num_classes) == kind  # a list is judged as a whole


def test_is_binary_values():
    assert is_binary_values(np.array([0, 255])) and is_binary_values(np.array([0])) and is_binary_values(np.array([7]))
    assert not is_binary_values(np.array([1, 2])) and not is_binary_values(np.array([0, 1, 2]))


def test_mask_to_objects_is_4_connected_and_plane_by_plane():
    mask = np.array([[255, 0, 0], [0, 255, 255], [0, 0, 0]], np.uint8)  # diagonal neighbours: two objects
    np.testing.assert_array_equal(mask_to_objects(mask), [[1, 0, 0], [0, 2, 2], [0, 0, 0]])
    stack = np.stack([mask, mask])
    assert mask_to_objects(stack)[1].max() == 2  # labels restart in every plane
    assert connected_components(mask > 0, 2).max() == 1  # 8-connectivity joins them


def test_to_objects_takes_masks_apart_and_keeps_instances():
    mask = np.array([[1, 1, 0, 1]])
    np.testing.assert_array_equal(to_objects(mask), [[1, 1, 0, 2]])
    inst = np.array([[3, 3, 0, 5]])
    np.testing.assert_array_equal(to_objects(inst), inst)
    np.testing.assert_array_equal(to_objects(mask, "instances"), mask)


def test_check_label_image_refuses_an_intensity_image(data_dir):
    from unetkit.io import read_image

    nuclei = read_image(data_dir / "dsb2018_nuclei" / "labels.tif")
    assert check_label_image(nuclei) is not None  # ~125 nuclei pass
    raw = read_image(data_dir / "dsb2018_nuclei" / "image.tif")
    with pytest.raises(ValueError, match="does not look like a label image"):
        check_label_image(raw, "image.tif")
    em = read_image(data_dir / "isbi2012" / "train" / "images" / "00.png")
    with pytest.raises(ValueError, match="intensity image"):
        check_label_image(em)


def test_check_label_image_types():
    with pytest.raises(ValueError, match="integers"):
        check_label_image(np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match=">= 0"):
        check_label_image(np.full((4, 4), -1))
    np.testing.assert_array_equal(check_label_image(np.ones((2, 2), float)), np.ones((2, 2)))


def test_targets_two_and_three_classes():
    inst = np.zeros((6, 8), np.int32)
    inst[1:5, 1:4], inst[1:5, 4:7] = 1, 2  # two touching boxes
    two = instances_to_classes(inst)
    assert two[1:5, 3].sum() == 0 and two[2, 2] == 1  # the smaller label's contact column is carved
    three = instances_to_border_classes(inst)
    assert set(np.unique(three)) == {0, 1, 2}
    assert (three[inst == 0] == 0).all() and three[2, 2] == 1 and three[2, 3] == 2
