import numpy as np
import pytest
import tifffile

from unetkit.io import ImageReadError, open_array, read_image, read_stack, write_mask, write_png, write_tiff


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_round_trip_gray(tmp_path, dtype, rng):
    a = (rng.random((33, 47)) * 200).astype(dtype)
    write_tiff(tmp_path / "a.tif", a)
    b = read_image(tmp_path / "a.tif")
    assert b.dtype == dtype
    np.testing.assert_array_equal(a, b)


def test_tiff_stack_and_multichannel(tmp_path, rng):
    stack = rng.integers(0, 65535, (4, 20, 30), dtype=np.uint16)
    write_tiff(tmp_path / "s.tif", stack)
    planes = read_stack(tmp_path / "s.tif")
    assert len(planes) == 4
    np.testing.assert_array_equal(np.stack(planes), stack)
    # a colour TIFF stored (H, W, 3) comes back channels-first
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.tif"), np.moveaxis(rgb, -1, 0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip(tmp_path, dtype, rng):
    a = rng.integers(0, np.iinfo(dtype).max, (25, 31), dtype=dtype)
    write_png(tmp_path / "a.png", a)
    b = read_image(tmp_path / "a.png")
    assert b.dtype == dtype
    np.testing.assert_array_equal(a, b)
    rgb = rng.integers(0, 255, (25, 31, 3), dtype=np.uint8)
    write_png(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), np.moveaxis(rgb, -1, 0))


def test_npy_and_memmap(tmp_path, rng):
    a = rng.normal(size=(3, 10, 12)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(read_image(tmp_path / "a.npy"), a)
    mm = open_array(tmp_path / "a.npy")
    assert isinstance(mm, np.memmap)
    np.testing.assert_array_equal(mm, a)


def test_masks_binary_is_0_255_and_multiclass_keeps_indices(tmp_path):
    classes = np.array([[0, 1], [1, 0]])
    write_mask(tmp_path / "m.png", classes, num_classes=2)
    np.testing.assert_array_equal(read_image(tmp_path / "m.png"), [[0, 255], [255, 0]])
    write_mask(tmp_path / "m3.png", np.array([[0, 2], [1, 2]]), num_classes=3)
    np.testing.assert_array_equal(read_image(tmp_path / "m3.png"), [[0, 2], [1, 2]])
    labels = np.arange(70000, dtype=np.uint32).reshape(280, 250)
    write_tiff(tmp_path / "l.tif", labels)
    np.testing.assert_array_equal(read_image(tmp_path / "l.tif"), labels)


def test_unreadable_and_missing_files_raise_clear_errors(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ImageReadError, match="cannot read as an image"):
        read_image(bad)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "x.png"
    with pytest.raises(ValueError):
        write_png(target, np.zeros((4, 4), np.float32))  # PNG holds integers only
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
