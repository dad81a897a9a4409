"""Speed paths of predict give the plain path's answer (benchmarks/bench_inference.py measures them)."""

import numpy as np
import pytest
import torch

from unetkit import UNet, predict
from unetkit.inference import _tile_shape
from unetkit.tiling import auto_tile_shape, plan_tiles


@pytest.mark.parametrize(
    "image_hw, width, expected",
    [((4096, 4096), 16, (1564, 1564)), ((2048, 2048), 16, (1212, 1212)), ((512, 512), 64, (700, 700))],
)
def test_auto_tile_is_the_smallest_with_the_same_tile_count(image_hw, width, expected):
    model = UNet(1, 2, base_features=width)
    largest = auto_tile_shape(image_hw, base_features=width)
    tile = _tile_shape("auto", image_hw, model, 2 * 1024**3, 1)
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
    balanced = _tile_shape("auto", image.shape, model, budget, 1)
    assert balanced != largest and all(b <= t for b, t in zip(balanced, largest))
    a = predict(model, image, memory_budget=budget)
    b = predict(model, image, tile_shape=largest)
    assert np.abs(a - b).max() < 1e-5
