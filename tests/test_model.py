import math

import pytest
import torch

from unetkit import UNet, geometry


def test_paper_configuration_shapes_and_parameters():
    model = UNet()
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(convs) == 23  # the paper: 23 convolutional layers
    assert sum(p.numel() for p in model.parameters()) == 31_030_658  # ~31.0 M for 1 -> 2 classes
    channels = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(channels) == 1024 and channels[0] == 64
    assert model.output_shape((572, 572)) == (388, 388)
    assert model.margin == 92


def test_forward_572_gives_388_on_small_width():
    # the same geometry at width 4 keeps the test fast
    model = UNet(1, 2, base_features=4).eval()
    with torch.no_grad():
        y = model(torch.zeros(1, 1, 572, 572))
    assert y.shape == (1, 2, 388, 388)


def test_same_padding_keeps_size():
    model = UNet(3, 5, base_features=4, padding="same").eval()
    with torch.no_grad():
        y = model(torch.zeros(2, 3, 64, 96))
    assert y.shape == (2, 5, 64, 96)


def test_he_initialisation_statistics():
    model = UNet(1, 2, base_features=64)
    conv = model.down[1][0]  # 3x3 conv with 64 input channels: N = 9 * 64 = 576
    assert conv.in_channels == 64
    std = conv.weight.detach().std().item()
    assert std == pytest.approx(math.sqrt(2 / 576), rel=0.02)
    assert conv.weight.detach().mean().item() == pytest.approx(0.0, abs=3e-3)
    assert torch.all(conv.bias == 0)
    up = model.up[0].up  # 2x2 stride-2 up-conv, 1024 inputs: one input pixel per output unit
    assert up.weight.detach().std().item() == pytest.approx(math.sqrt(2 / 1024), rel=0.02)


def test_dropout_active_in_train_only():
    model = UNet(1, 2, base_features=4, dropout=0.5)
    x = torch.randn(1, 1, 188, 188)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)
    model.train()
    with torch.no_grad():
        c, d = model(x), model(x)
    assert not torch.equal(c, d)


@pytest.mark.parametrize("size, below, above", [(570, 556, 572), (600, 588, 604), (100, None, 188)])
def test_invalid_size_error_names_nearest_valid_sizes(size, below, above):
    model = UNet(1, 2, base_features=4)
    with pytest.raises(ValueError) as err:
        model(torch.zeros(1, 1, size, 572))
    assert str(above) in str(err.value)
    if below is not None:
        assert str(below) in str(err.value)


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        UNet(1, 2, base_features=4)(torch.zeros(1, 3, 188, 188))


def test_geometry_helpers():
    assert geometry.output_size(572) == 388
    assert [s for s in range(150, 700) if geometry.is_valid_input_size(s)] == list(range(188, 700, 16))
    assert geometry.context_margin() == 92
    assert geometry.context_margin(depth=3) == 44
    assert geometry.valid_input_size_for_output(512) == 700
    assert geometry.output_size(700) == 516
    assert geometry.min_input_size() == 188
    assert geometry.is_valid_input_size(64, padding="same") and not geometry.is_valid_input_size(60, padding="same")
    for depth in (2, 3, 4, 5):
        first = geometry.min_input_size(depth=depth)
        margin = geometry.context_margin(depth=depth)
        for k in range(4):
            size = first + k * 2**depth
            assert geometry.output_size(size, depth=depth) == size - 2 * margin


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="padding"):
        UNet(padding="reflect")
    with pytest.raises(ValueError, match="dropout"):
        UNet(dropout=1.5)
    with pytest.raises(ValueError, match="class names"):
        UNet(num_classes=2, class_names=["a"])


@pytest.mark.parametrize("shape, width, depth, padding, cin, ncls", [
    ((572, 572), 64, 4, "valid", 1, 2), ((876, 1212), 16, 4, "valid", 3, 3), ((252, 252), 8, 3, "valid", 1, 2),
    ((256, 192), 16, 4, "same", 2, 4)])
def test_forward_flops_formula_equals_torch_flop_counter(shape, width, depth, padding, cin, ncls):
    from torch.utils.flop_counter import FlopCounterMode

    from unetkit.geometry import forward_flops

    with torch.device("meta"):
        net = UNet(cin, ncls, base_features=width, depth=depth, padding=padding).eval()
        with FlopCounterMode(display=False) as counter:
            net(torch.empty(1, cin, *shape))
    assert forward_flops(shape, depth=depth, base_features=width, in_channels=cin, num_classes=ncls,
                         padding=padding) == counter.get_total_flops()
