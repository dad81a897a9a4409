"""Overlap-tile inference: tiled output equals one pass over the whole mirror-padded image."""

import numpy as np
import pytest
import torch

from unetkit import UNet, geometry, predict
from unetkit.tiling import auto_tile_shape, mirror_indices, plan_tiles


def whole_image_reference(model: UNet, image: np.ndarray) -> np.ndarray:
    """Softmax of ONE forward pass over the mirror-padded image (independent of the tiling code)."""
    h, w = image.shape
    m = model.margin
    th = geometry.valid_input_size_for_output(h, depth=model.config.depth)
    tw = geometry.valid_input_size_for_output(w, depth=model.config.depth)
    padded = np.pad(image, ((m, th - h - m), (m, tw - w - m)), mode="reflect")
    with torch.no_grad():
        logits = model(torch.from_numpy(padded)[None, None])
    return torch.softmax(logits, 1)[0, :, :h, :w].numpy()


@pytest.fixture(scope="module")
def model64():
    torch.manual_seed(3)
    return UNet(1, 3, base_features=4, dropout=0.5).double().eval()


@pytest.mark.parametrize("shape", [(37, 251), (300, 201), (190, 190), (5, 3), (421, 77)])
@pytest.mark.parametrize("tile", [204, 236, (252, 220)])
def test_tiled_equals_whole_image_in_float64(model64, shape, tile):
    image = np.random.default_rng(sum(shape)).normal(size=shape)
    ref = whole_image_reference(model64, image)
    out = predict(model64, image, tile_shape=tile, normalize_input=False, out_dtype=np.float64)
    assert out.shape == (3, *shape)
    assert np.abs(out - ref).max() < 1e-9
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-12)


def test_batched_tiles_equal_single_tiles(model64):
    image = np.random.default_rng(0).normal(size=(260, 333))
    a = predict(model64, image, tile_shape=220, batch_size=1, normalize_input=False, out_dtype=np.float64)
    b = predict(model64, image, tile_shape=220, batch_size=5, normalize_input=False, out_dtype=np.float64)
    assert np.abs(a - b).max() < 1e-12


def test_one_pixel_image():
    model = UNet(1, 2, base_features=2, dropout=0.0).double().eval()
    out = predict(model, np.array([[3.0]]), normalize_input=False, out_dtype=np.float64)
    assert out.shape == (2, 1, 1)
    with torch.no_grad():
        ref = torch.softmax(model(torch.full((1, 1, 188, 188), 3.0, dtype=torch.float64)), 1)[0, :, 0, 0].numpy()
    np.testing.assert_allclose(out[:, 0, 0], ref, atol=1e-12)


def test_memmap_and_zarr_inputs_match_numpy(tmp_path, model64):
    import zarr

    image = np.random.default_rng(1).normal(size=(150, 260)).astype(np.float32)
    np.save(tmp_path / "img.npy", image)
    mm = np.load(tmp_path / "img.npy", mmap_mode="r")
    z = zarr.open_array(str(tmp_path / "img.zarr"), mode="w", shape=image.shape, chunks=(64, 64), dtype="f4")
    z[:] = image
    model = model64.float()
    try:
        ref = predict(model, image, tile_shape=220)
        np.testing.assert_array_equal(predict(model, mm, tile_shape=220), ref)
        np.testing.assert_array_equal(predict(model, z, tile_shape=220), ref)
    finally:
        model64.double()


def test_output_into_zarr(tmp_path, tiny_model):
    import zarr

    image = np.random.default_rng(2).normal(size=(100, 120)).astype(np.float32)
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="w", shape=(2, 100, 120), chunks=(2, 50, 50), dtype="f4")
    predict(tiny_model, image, out=out)
    np.testing.assert_allclose(out[:], predict(tiny_model, image), atol=1e-6)


def test_tta_on_a_symmetric_input(tiny_model):
    # An image with all 8 symmetries of the square: every transformed input is the
    # image itself, so TTA = the average of the 8 back-transformed plain predictions,
    # and the result has the image's symmetry (the plain prediction does not:
    # random kernels are not symmetric).
    # 116 = the output of a 300 tile: the pooling grid is then symmetric about the image
    yy, xx = np.mgrid[-57.5:58.5, -57.5:58.5]
    image = np.cos(np.hypot(yy, xx) / 4.0) + 0.1 * (np.abs(yy) + np.abs(xx)) / 50
    model = tiny_model.double().eval()
    plain = predict(model, image, normalize_input=False, out_dtype=np.float64)
    tta = predict(model, image, tta=True, normalize_input=False, out_dtype=np.float64)
    expected = np.mean(
        [np.rot90(plain, -k, axes=(1, 2))[:, :, ::-1] if flip else np.rot90(plain, -k, axes=(1, 2))
         for flip in (False, True) for k in range(4)], axis=0)
    assert np.abs(tta - expected).max() < 1e-9
    assert np.abs(tta - np.rot90(tta, 1, axes=(1, 2))).max() < 1e-9
    assert np.abs(tta - tta[:, ::-1, :]).max() < 1e-9
    assert np.abs(plain - np.rot90(plain, 1, axes=(1, 2))).max() > 1e-3
    # on an asymmetric, non-square image TTA still returns probabilities of the right shape
    t = predict(model, np.random.default_rng(0).normal(size=(60, 90)), tta=True, normalize_input=False,
                out_dtype=np.float64)
    assert t.shape == (2, 60, 90)
    np.testing.assert_allclose(t.sum(0), 1.0, atol=1e-12)


def test_explicit_invalid_tile_raises_geometry_error(tiny_model):
    with pytest.raises(ValueError, match="nearest valid sizes: 556 or 572"):
        predict(tiny_model, np.zeros((50, 50)), tile_shape=570)


def test_auto_tile_is_one_tile_for_512():
    assert auto_tile_shape((512, 512), base_features=64) == (700, 700)
    plans, tiles = plan_tiles((512, 512), (700, 700))
    assert len(tiles) == 1
    # four 572 tiles would cost (4 * 572^2) / 700^2 = 2.67x the FLOPs of one 700 tile
    assert len(plan_tiles((512, 512), (572, 572))[1]) == 4
    # a huge image gets tiles bounded by the memory budget
    h, w = auto_tile_shape((20000, 20000), base_features=64, memory_budget=2**30)
    assert 11 * 64 * h * w * 4 <= 2**30 and h >= 380


def test_mirror_indices_match_numpy_reflect():
    for n in (1, 2, 3, 7):
        src = np.arange(n)
        padded = np.pad(src, (20, 30), mode="reflect") if n > 1 else np.zeros(n + 50, int)
        np.testing.assert_array_equal(mirror_indices(0, n + 50, n, 20), padded)


def test_same_padding_tiles_equal_whole_image():
    torch.manual_seed(0)
    model = UNet(1, 2, base_features=4, padding="same", dropout=0.0).double().eval()
    image = np.random.default_rng(0).normal(size=(200, 230))
    tiled = predict(model, image, tile_shape=224, normalize_input=False, out_dtype=np.float64)
    whole = predict(model, image, normalize_input=False, out_dtype=np.float64)
    assert tiled.shape == whole.shape == (2, 200, 230)
    # the discarded halo covers the receptive field, so tiles do not see their zero padding
    assert np.abs(tiled - whole).max() < 1e-9


def test_nan_or_infinite_pixels_are_refused_with_their_count(tmp_path):
    import zarr

    model = UNet(1, 2, base_features=2, depth=2, dropout=0.0).eval()
    image = np.random.default_rng(0).random((60, 70)).astype(np.float32)
    image[1, 2], image[3, 4], image[50, 60] = np.nan, np.inf, -np.inf
    with pytest.raises(ValueError, match="3 NaN or infinite"):
        predict(model, image)
    z = zarr.open_array(str(tmp_path / "nan.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="f4")
    z[:] = image
    with pytest.raises(ValueError, match="NaN or infinite pixel value"):  # a lazy array: when its tile is read
        predict(model, z)
