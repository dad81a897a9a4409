"""Speed paths of predict give the plain path's answer (benchmarks/bench_inference.py measures them)."""

import numpy as np
import pytest
import torch

from unetkit import UNet, predict
from unetkit.tiling import auto_tile_shape, choose_tile_shape, plan_tiles, tiled_flops


@pytest.mark.parametrize(
    "image_hw, width, expected",
    [((4096, 4096), 16, (1564, 1564)), ((2048, 2048), 16, (1212, 1212)), ((512, 512), 64, (700, 700))],
)
def test_auto_tile_is_the_smallest_with_the_same_tile_count(image_hw, width, expected):
    model = UNet(1, 2, base_features=width)
    largest = auto_tile_shape(image_hw, base_features=width)
    tile = choose_tile_shape("auto", image_hw, model.config, device="cuda")
    assert tile == expected
    assert len(plan_tiles(image_hw, tile)[1]) == len(plan_tiles(image_hw, largest)[1])
    smaller = (tile[0] - 16, tile[1])
    assert len(plan_tiles(image_hw, smaller)[1]) > len(plan_tiles(image_hw, tile)[1])


@pytest.mark.parametrize("padding, budget", [("valid", 2**21), ("same", 2**24)])  # several tiles per axis
def test_balanced_auto_tiles_equal_the_largest_tiles(padding, budget):
    torch.manual_seed(0)
    model = UNet(1, 2, base_features=2, padding=padding, dropout=0.0).eval()
    image = np.random.default_rng(0).normal(size=(300, 230)).astype(np.float32)
    largest = auto_tile_shape(image.shape, base_features=2, padding=padding, memory_budget=budget)
    balanced = choose_tile_shape("auto", image.shape, model.config, memory_budget=budget, device="cuda")
    assert balanced != largest and all(b <= t for b, t in zip(balanced, largest))
    a = predict(model, image, memory_budget=budget)
    b = predict(model, image, tile_shape=largest)
    assert np.abs(a - b).max() < 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint16, ">u2", np.int32, np.bool_])
@pytest.mark.parametrize("tta", [False, True])
def test_device_resident_path_equals_streamed_tiles(dtype, tta):
    """on_device (one upload, tiles cut on the device) gives exactly the host-streamed answer."""
    torch.manual_seed(0)
    model = UNet(1, 2, base_features=4).eval()
    values = np.random.default_rng(1).random((157, 203))
    scale = 2**30 if dtype is np.int32 else 200  # int32 beyond float32's exact integers
    image = values > 0.5 if dtype is np.bool_ else (values * scale).astype(dtype)
    kwargs = dict(tile_shape=(220, 236), batch_size=2, tta=tta)  # 2 x 2 tiles, one batch of 2 per row
    streamed = predict(model, image, on_device=False, **kwargs)
    resident = predict(model, image, on_device=True, **kwargs)
    assert resident.dtype == streamed.dtype == np.float32
    np.testing.assert_array_equal(resident, streamed)


def test_device_resident_path_keeps_float64_and_out_dtype():
    torch.manual_seed(0)
    model = UNet(1, 2, base_features=4).double().eval()
    image = np.random.default_rng(2).normal(size=(90, 70))
    for out_dtype in (np.float64, np.float16):
        a = predict(model, image, on_device=False, out_dtype=out_dtype)
        b = predict(model, image, on_device=True, out_dtype=out_dtype)
        assert a.dtype == b.dtype == out_dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_predict_restores_the_models_memory_format(fmt):
    """A model trained in channels_last stays so after validation calls predict (and vice versa)."""
    model = UNet(1, 2, base_features=4).to(memory_format=fmt).eval()
    image = np.random.default_rng(3).random((64, 64), dtype=np.float32)
    for channels_last in (True, False):
        predict(model, image, channels_last=channels_last)
        for p in model.parameters():
            if p.ndim == 4:
                assert p.is_contiguous(memory_format=fmt)


def test_cpu_prefers_cache_sized_tiles_only_when_they_cost_few_more_flops():
    w16 = UNet(1, 2, base_features=16)
    # 4096^2: 36 tiles of 876 px cost 10% more FLOPs than 9 of 1564 px (and ran ~1.2x faster)
    assert choose_tile_shape("auto", (4096, 4096), w16.config, device="cpu") == (876, 876)
    assert choose_tile_shape("auto", (4096, 4096), w16.config, device="cuda") == (1564, 1564)
    ratio = tiled_flops((4096, 4096), (876, 876), w16.config) / tiled_flops((4096, 4096), (1564, 1564), w16.config)
    assert 1.0 < ratio < 1.2
    # one 700 tile for 512^2 at width 64 stays: anything smaller costs far more FLOPs
    assert choose_tile_shape("auto", (512, 512), UNet(1, 2, base_features=64).config, device="cpu") == (700, 700)


def test_cpu_tile_rule_keeps_results_equal():
    torch.manual_seed(0)
    model = UNet(1, 2, base_features=2, dropout=0.0).eval()
    image = np.random.default_rng(5).normal(size=(1100, 300)).astype(np.float32)
    tile = choose_tile_shape("auto", image.shape, model.config, device="cpu")
    assert tile[0] < 1100  # several tiles along the long axis
    a = predict(model, image)
    b = predict(model, image, tile_shape=(1292, 492))  # one tile covers it
    assert np.abs(a - b).max() < 1e-5


def test_cpu_tile_rule_leaves_deep_same_padding_networks_alone():
    """A depth-7 same-padding network cannot plan tiles of ~1000 px (its smallest tile is 1664)."""
    model = UNet(1, 2, base_features=1, depth=7, padding="same", dropout=0.0).eval()
    prob = predict(model, np.random.default_rng(6).random((100, 100), dtype=np.float32))
    assert prob.shape == (2, 100, 100) and np.isfinite(prob).all()
