"""Tests of unetkit.augment: known answers and invariants of the augmentation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unetkit.augment import (
    AugmentConfig,
    AugmentParams,
    apply_params,
    augment,
    elastic_field,
    keys_cubic_kernel,
    sample_elastic,
    sample_params,
)

# A displacement far below float32 resolution of the grid: it forces the
# interpolating (grid_sample) path without moving anything measurably.
TINY = np.full((2, 3, 3), 1e-9)
FULL = AugmentConfig(contrast_p=1.0, brightness_p=1.0, gamma_p=1.0, noise_p=1.0, flip_p=0.5)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def image(rng):
    return rng.random((40, 52), dtype=np.float32)


@pytest.fixture
def labels(rng):
    return rng.choice(np.array([0, 3, 7], dtype=np.uint8), size=(40, 52))


def smooth_labels(rng, shape, *, sigma=4.0):
    """Blob-shaped 0/1 labels: thresholded smoothed noise."""
    noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))[None, None]
    k = torch.exp(-0.5 * (torch.arange(-12, 13.0) / sigma) ** 2)
    k = (k / k.sum())[None, None]
    smooth = F.conv2d(noise, k[..., None, :], padding=(0, 12))
    smooth = F.conv2d(smooth, k[..., None], padding=(12, 0))
    return (smooth[0, 0].numpy() > 0).astype(np.uint8)


# ---------------------------------------------------------------- elastic


def test_sample_elastic_std_is_sigma():
    rng = np.random.default_rng(0)
    draws = np.stack([sample_elastic(rng, grid=3, sigma=10.0) for _ in range(2000)])
    assert draws.shape == (2000, 2, 3, 3)
    assert abs(draws.std() - 10.0) < 0.5  # 5 %
    assert abs(draws.mean()) < 0.3  # 36000 draws: standard error 0.05
    # Every grid point and component has the same spread.
    assert np.all(np.abs(draws.std(axis=0) - 10.0) < 1.0)


def test_keys_kernel_known_values():
    x = np.array([0.0, 1.0, 2.0, 2.5, -1.0])
    np.testing.assert_allclose(keys_cubic_kernel(x), [1.0, 0.0, 0.0, 0.0, 0.0], atol=1e-15)
    # Keys a = -0.75 at 0.5: (a+2)/8 - (a+3)/4 + 1
    np.testing.assert_allclose(keys_cubic_kernel(0.5), 1.25 / 8 - 2.25 / 4 + 1)
    # Partition of unity: the four taps sum to one for every fraction t.
    t = np.linspace(0, 1, 11)
    total = sum(keys_cubic_kernel(t - k) for k in (-1, 0, 1, 2))
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_elastic_field_is_torch_bicubic_and_hits_grid_points(rng):
    coarse = rng.normal(0, 10, size=(2, 3, 3))
    field = elastic_field(coarse, (33, 21))
    assert field.dtype == np.float32
    ref = F.interpolate(
        torch.from_numpy(coarse[None]).float(), size=(33, 21), mode="bicubic", align_corners=True
    )[0].numpy()
    np.testing.assert_allclose(field, ref, atol=1e-4)
    # Grid points sit at corners, edge centres and the centre.
    np.testing.assert_allclose(field[:, ::16, ::10], coarse, atol=1e-5)


def test_elastic_field_bad_shape():
    with pytest.raises(ValueError, match="coarse"):
        elastic_field(np.zeros((3, 3)), (10, 10))
    with pytest.raises(ValueError, match="shape"):
        elastic_field(np.zeros((2, 3, 3)), (10, 0))


# ---------------------------------------------------------------- identity and exact maps


def test_zero_displacement_is_identity(image, labels):
    weights = image + 1.0
    for elastic in (None, np.zeros((2, 3, 3))):
        params = AugmentParams(out_shape=image.shape, elastic=elastic)
        out, lab, w = apply_params(params, image, labels, weights)
        np.testing.assert_array_equal(out, image)
        np.testing.assert_array_equal(lab, labels)
        np.testing.assert_array_equal(w, weights)
        assert lab.dtype == labels.dtype and w.dtype == np.float32


def test_interpolating_path_identity_is_close(image, labels):
    params = AugmentParams(out_shape=image.shape, elastic=TINY)
    out, lab, w = apply_params(params, image, labels, image)
    np.testing.assert_allclose(out, image, atol=1e-5)
    np.testing.assert_array_equal(lab, labels)
    np.testing.assert_allclose(w, image, atol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3, -1])
def test_rotation_90_equals_rot90(image, labels, k):
    square, lab = image[:40, :40], labels[:40, :40]
    exact = apply_params(AugmentParams(out_shape=(40, 40), angle_deg=90 * k), square, lab)
    np.testing.assert_array_equal(exact[0], np.rot90(square, k))
    np.testing.assert_array_equal(exact[1], np.rot90(lab, k))
    params = AugmentParams(out_shape=(40, 40), angle_deg=90 * k, elastic=TINY)
    interp = apply_params(params, square, lab)
    np.testing.assert_allclose(interp[0], np.rot90(square, k), atol=1e-4)
    np.testing.assert_array_equal(interp[1], np.rot90(lab, k))


def test_rotation_turns_tile_about_its_centre(rng):
    # Tile (6, 4) at offset (5, 5): centre (7.5, 6.5); turned by 90 degrees it
    # reads the 4 x 6 window rows 6..9, columns 4..9, turned.
    img = rng.random((20, 20), dtype=np.float32)
    for elastic in (None, TINY):
        out, _, _ = apply_params(
            AugmentParams(out_shape=(6, 4), offset=(5, 5), angle_deg=90, elastic=elastic), img
        )
        np.testing.assert_allclose(out, np.rot90(img[6:10, 4:10]), atol=1e-4)


def test_rotation_any_angle_moves_a_point_counter_clockwise():
    # A bright pixel right of the centre goes above it after +90 degrees;
    # at +45 degrees it lies up and to the right (as displayed).
    img = np.zeros((41, 41), np.float32)
    img[20, 30] = 1.0
    out, _, _ = apply_params(AugmentParams(out_shape=(41, 41), angle_deg=90.0, elastic=TINY), img)
    assert np.unravel_index(np.argmax(out), out.shape) == (10, 20)
    out, _, _ = apply_params(AugmentParams(out_shape=(41, 41), angle_deg=45.0), img)
    r, c = np.unravel_index(np.argmax(out), out.shape)
    assert (r, c) in {(13, 27), (12, 27), (13, 28), (12, 28)}  # (20 - 7.07, 20 + 7.07)


@pytest.mark.parametrize("flip", [(True, False), (False, True), (True, True)])
def test_flip_equals_np_flip(image, labels, flip):
    axes = tuple(a for a in range(2) if flip[a])
    for elastic in (None, TINY):
        params = AugmentParams(out_shape=image.shape, flip=flip, elastic=elastic)
        out, lab, _ = apply_params(params, image, labels)
        np.testing.assert_allclose(out, np.flip(image, axes), atol=1e-4)
        np.testing.assert_array_equal(lab, np.flip(labels, axes))


def test_crop_at_offset_and_centred_label_tile(image, labels):
    params = AugmentParams(out_shape=(20, 30), offset=(7, 11))
    out, lab, w = apply_params(params, image, labels, image, label_shape=(12, 24))
    np.testing.assert_array_equal(out, image[7:27, 11:41])
    np.testing.assert_array_equal(lab, labels[11:23, 14:38])
    np.testing.assert_array_equal(w, image[11:23, 14:38])
    # Same windows through the interpolating path.
    params = AugmentParams(out_shape=(20, 30), offset=(7, 11), elastic=TINY)
    out, lab, w = apply_params(params, image, labels, image, label_shape=(12, 24))
    np.testing.assert_allclose(out, image[7:27, 11:41], atol=1e-5)
    np.testing.assert_array_equal(lab, labels[11:23, 14:38])
    np.testing.assert_allclose(w, image[11:23, 14:38], atol=1e-5)


def test_boundaries_are_mirrored(image, labels):
    # Tile partly above, left of, and past the image: mirrored about the
    # outermost pixel centres, like np.pad(mode="reflect").
    pad = 30
    img_pad = np.pad(image, pad, mode="reflect")
    lab_pad = np.pad(labels, pad, mode="reflect")
    for offset in [(-12, -20), (25, 40), (-5, 30)]:
        win = np.s_[offset[0] + pad : offset[0] + pad + 24, offset[1] + pad : offset[1] + pad + 32]
        for elastic in (None, TINY):
            params = AugmentParams(out_shape=(24, 32), offset=offset, elastic=elastic)
            out, lab, _ = apply_params(params, image, labels)
            np.testing.assert_allclose(out, img_pad[win], atol=1e-5)
            np.testing.assert_array_equal(lab, lab_pad[win])


def test_channels_move_together(rng):
    img = rng.random((3, 30, 30), dtype=np.float32)
    params = sample_params(rng, AugmentConfig(), img.shape, (24, 24))
    out, _, _ = apply_params(params, img)
    assert out.shape == (3, 24, 24)
    for c in range(3):
        np.testing.assert_allclose(out[c], apply_params(params, img[c])[0], atol=1e-6)


# ---------------------------------------------------------------- random augmentation


def test_labels_keep_their_value_set(rng, image, labels):
    for _ in range(5):
        _, lab, _ = augment(rng, FULL, image, labels, out_shape=(36, 36))
        assert lab.dtype == np.uint8
        assert set(np.unique(lab)) <= {0, 3, 7}


def test_large_and_bool_labels_are_exact(rng, image):
    big = (2**40 + rng.integers(0, 5, size=image.shape)).astype(np.int64)
    params = sample_params(rng, FULL, image.shape, (36, 36))
    _, lab, _ = apply_params(params, image, big)
    assert lab.dtype == np.int64 and set(np.unique(lab)) <= set(np.unique(big))
    _, ref, _ = apply_params(params, image, (big - 2**40).astype(np.int16))
    np.testing.assert_array_equal(lab - 2**40, ref)
    _, lab, _ = apply_params(params, image, big > 2**40 + 2)
    assert lab.dtype == np.bool_
    np.testing.assert_array_equal(lab, ref > 2)


def test_image_and_labels_move_together(rng):
    labels = smooth_labels(rng, (128, 128))
    image = labels.astype(np.float32)
    config = AugmentConfig(contrast_p=0, brightness_p=0, gamma_p=0, noise_p=0)  # geometry only
    for _ in range(3):
        out, lab, w = augment(rng, config, image, labels, image, out_shape=(96, 96))
        assert np.mean((out > 0.5) == (lab == 1)) > 0.99
        assert np.mean((w > 0.5) == (lab == 1)) > 0.99
        # The deformation really moved things.
        assert np.mean(lab != labels[16:112, 16:112]) > 0.05


def test_same_seed_same_output(image, labels):
    a = augment(np.random.default_rng(7), FULL, image, labels, out_shape=(32, 32))
    b = augment(np.random.default_rng(7), FULL, image, labels, out_shape=(32, 32))
    c = augment(np.random.default_rng(8), FULL, image, labels, out_shape=(32, 32))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_elastic_deformation_magnitude(rng):
    # A ramp image reads back its source row/column: the displacement at the
    # coarse grid points equals the sampled vectors.
    rows, cols = np.mgrid[0:200, 0:200].astype(np.float32)
    coarse = np.array(
        [[[5, -3, 2], [0, 4, -6], [1, 1, -2]], [[-4, 2, 0], [3, -5, 1], [2, 0, 6]]], float
    )
    params = AugmentParams(out_shape=(101, 101), offset=(50, 50), elastic=coarse)
    out_r, _, _ = apply_params(params, rows)
    out_c, _, _ = apply_params(params, cols)
    at = 50 + np.arange(0, 101, 50)  # input position of the grid points
    np.testing.assert_allclose(out_r[::50, ::50] - at[:, None], coarse[0], atol=1e-3)
    np.testing.assert_allclose(out_c[::50, ::50] - at[None, :], coarse[1], atol=1e-3)


def test_sample_params_offsets_keep_label_tile_inside(rng):
    # Paper geometry: 572 input tile, 388 output, 512 image: the label tile
    # lies inside the image, the context (92 px margin) may be mirrored.
    config = AugmentConfig.disabled()
    offsets = np.array(
        [
            sample_params(rng, config, (512, 512), (572, 572), label_shape=(388, 388)).offset
            for _ in range(400)
        ]
    )
    assert offsets.min() == -92 and offsets.max() == 512 - 388 - 92
    # Label tile larger than the image: centred.
    p = sample_params(rng, AugmentConfig(), (100, 300), (200, 200))
    assert p.offset[0] == -50 and 0 <= p.offset[1] <= 100


def test_disabled_config_is_a_plain_crop(rng, image, labels):
    params = sample_params(rng, AugmentConfig.disabled(), image.shape, (20, 20))
    assert params.angle_deg == 0 and params.elastic is None and params.flip == (False, False)
    config = AugmentConfig.disabled()
    out, lab, _ = augment(np.random.default_rng(3), config, image, labels, out_shape=(20, 20))
    r, c = sample_params(np.random.default_rng(3), config, image.shape, (20, 20)).offset
    np.testing.assert_array_equal(out, image[r : r + 20, c : c + 20])
    np.testing.assert_array_equal(lab, labels[r : r + 20, c : c + 20])


def test_probabilities_zero_give_identity_params(rng):
    config = AugmentConfig(
        elastic_p=0, rotation_p=0, flip_p=0, contrast_p=0, brightness_p=0, gamma_p=0, noise_p=0
    )
    p = sample_params(rng, config, (50, 50), (50, 50))
    assert (p.angle_deg, p.flip, p.elastic, p.contrast, p.brightness, p.gamma, p.noise_std) == (
        0.0, (False, False), None, 1.0, 0.0, 1.0, 0.0)
    q = sample_params(rng, AugmentConfig(rotation_mode="90"), (50, 50), (50, 50))
    assert q.angle_deg in (0.0, 90.0, 180.0, 270.0)


# ---------------------------------------------------------------- gray values


def test_gray_value_changes_image_only(image, labels):
    base = AugmentParams(out_shape=image.shape)
    gray = AugmentParams(
        out_shape=image.shape, contrast=1.3, brightness=0.2, gamma=1.4, noise_std=0.1, noise_seed=5
    )
    out0, lab0, w0 = apply_params(base, image, labels, image)
    out1, lab1, w1 = apply_params(gray, image, labels, image)
    np.testing.assert_array_equal(lab1, lab0)
    np.testing.assert_array_equal(w1, w0)
    assert np.abs(out1 - out0).mean() > 0.01
    # Deterministic noise.
    np.testing.assert_array_equal(apply_params(gray, image)[0], out1)


def test_gray_value_known_answers(image):
    mean, std = image.mean(), image.std()
    out = apply_params(AugmentParams(out_shape=image.shape, contrast=2.0), image)[0]
    np.testing.assert_allclose(out, mean + 2.0 * (image - mean), atol=1e-5)
    out = apply_params(AugmentParams(out_shape=image.shape, brightness=0.5), image)[0]
    np.testing.assert_allclose(out, image + 0.5 * std, atol=1e-6)
    out = apply_params(AugmentParams(out_shape=image.shape, gamma=2.0), image)[0]
    lo, hi = image.min(), image.max()
    np.testing.assert_allclose(out, lo + (hi - lo) * ((image - lo) / (hi - lo)) ** 2, atol=1e-5)
    out = apply_params(AugmentParams(out_shape=image.shape, noise_std=0.5, noise_seed=1), image)[0]
    assert abs((out - image).std() / std - 0.5) < 0.05
    assert abs((out - image).mean()) < 0.05 * std


# ---------------------------------------------------------------- bad input


def test_bad_input_raises(rng, image, labels):
    params = AugmentParams(out_shape=(20, 20))
    with pytest.raises(ValueError, match="labels must have the image's shape"):
        apply_params(params, image, labels[:-1])
    with pytest.raises(ValueError, match="weights must have the image's shape"):
        apply_params(params, image, None, image.T)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(C, H, W\)"):
        apply_params(params, image[None, None])
    with pytest.raises(ValueError, match="integer or bool"):
        apply_params(params, image, labels.astype(np.float32))
    with pytest.raises(ValueError, match="label_shape"):
        apply_params(params, image, labels, label_shape=(21, 20))
    with pytest.raises(ValueError, match="label_shape"):
        apply_params(params, image, labels, label_shape=(19, 20))
    with pytest.raises(ValueError, match="at least 2x2"):
        apply_params(params, image[:1])
    with pytest.raises(ValueError, match="elastic"):
        AugmentParams(out_shape=(20, 20), elastic=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="out_shape"):
        AugmentParams(out_shape=(20, -1))
    with pytest.raises(ValueError, match="image_shape"):
        sample_params(rng, AugmentConfig(), (2, 3, 40, 52), (20, 20))
    with pytest.raises(TypeError, match="Generator"):
        sample_params(np.random.RandomState(0), AugmentConfig(), image.shape, (20, 20))
    with pytest.raises(ValueError, match="flip_p"):
        AugmentConfig(flip_p=1.5)
    with pytest.raises(ValueError, match="rotation_mode"):
        AugmentConfig(rotation_mode="45")
    with pytest.raises(ValueError, match="contrast_range"):
        AugmentConfig(contrast_range=(1.2, 0.8))


# ---------------------------------------------------------------- real data


def test_isbi_labels_follow_image_under_deformation():
    root = os.environ.get("UNETKIT_DATA")
    if not root:
        pytest.skip("UNETKIT_DATA is not set: no real data to test on")
    path = Path(root) / "isbi2012" / "train" / "labels" / "00.png"
    if not path.exists():
        pytest.skip(f"{path} not found")
    import imageio.v3 as iio

    labels = iio.imread(path)
    image = (labels / 255.0).astype(np.float32)
    rng = np.random.default_rng(0)
    out, lab, _ = augment(rng, FULL, image, labels, out_shape=(572, 572), label_shape=(388, 388))
    assert set(np.unique(lab)) <= {0, 255}
    assert out.shape == (572, 572) and lab.shape == (388, 388)
    # Undo the gray-value change by thresholding at the tile's mid-range.
    centre = out[92:-92, 92:-92]
    cut = (out.min() + out.max()) / 2
    assert np.mean((centre > cut) == (lab == 255)) > 0.97
