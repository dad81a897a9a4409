"""The U-Net network itself, in one file that needs nothing but torch.

This is the architecture file that exported bioimage.io packages carry
(``pytorch_state_dict`` weights: ``UNetNetwork(**kwargs)``), the module that
TorchScript scripts, and the base of :class:`unetkit.model.UNet`, which adds
the config, the size checks and the normalisation. Keep it free of unetkit
imports.

:class:`MirrorPadded` wraps a network so that its output has the input's
size: the input is mirror-padded by the context margin inside the graph
(reflection without repeating the edge pixel, as ``np.pad(mode="reflect")``,
repeated as often as needed), so any input size works.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["UNetNetwork", "MirrorPadded", "he_init_", "center_crop"]


def he_init_(module: nn.Module) -> None:
    """He et al. (2015) initialisation: weights ~ N(0, 2 / N), biases 0.

    N is the number of incoming connections of one output unit: ``k*k*C_in``
    for a convolution; for a 2x2 stride-2 up-convolution every output pixel
    sees one input pixel per input channel, so ``N = C_in * (k / stride)^2``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.ConvTranspose2d):
            taps = (m.kernel_size[0] // m.stride[0]) * (m.kernel_size[1] // m.stride[1])
            fan_in = m.in_channels * max(taps, 1)
        else:
            continue
        nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_in))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by (optional batch norm and) ReLU."""

    def __init__(self, in_ch: int, out_ch: int, *, pad: int, batch_norm: bool):
        layers: list[nn.Module] = []
        for c_in in (in_ch, out_ch):
            layers.append(nn.Conv2d(c_in, out_ch, 3, padding=pad, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualDoubleConv(nn.Module):
    """:class:`DoubleConv` plus a shortcut: a 1x1 convolution of the input, centre-cropped to the output.

    With valid convolutions the two 3x3 convolutions remove 2 pixels per side,
    so the shortcut takes the central window of the input: the block keeps the
    U-Net's size rule (and hence seamless tiling). The last ReLU comes after
    the sum.
    """

    def __init__(self, in_ch: int, out_ch: int, *, pad: int, batch_norm: bool):
        super().__init__()
        self.body = DoubleConv(in_ch, out_ch, pad=pad, batch_norm=batch_norm)
        self.body[-1] = nn.Identity()  # the ReLU moves after the sum
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=not batch_norm)
        self.skip_norm = nn.BatchNorm2d(out_ch) if batch_norm else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        shortcut = self.skip_norm(self.skip(center_crop(x, y.shape[-2], y.shape[-1])))
        return self.act(y + shortcut)


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Central (height, width) window of a (B, C, H, W) tensor."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


class Up(nn.Module):
    """2x2 up-convolution halving the channels, crop-and-concatenate, two 3x3 convs."""

    def __init__(self, in_ch: int, out_ch: int, *, pad: int, batch_norm: bool, block=None):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        self.conv = (block or DoubleConv)(2 * out_ch, out_ch, pad=pad, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        skip = center_crop(skip, x.shape[-2], x.shape[-1])
        return self.conv(torch.cat([skip, x], dim=1))


class UNetNetwork(nn.Module):
    """The U-Net layers and forward pass (no config, no checks: see :class:`unetkit.model.UNet`).

    Input (B, in_channels, H, W) with H, W valid for the depth and padding;
    output (B, num_classes, H', W') logits. TorchScript can script it.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, depth: int = 4, base_features: int = 64,
                 padding: str = "valid", dropout: float = 0.5, batch_norm: bool = False, residual: bool = False):
        super().__init__()
        pad = 1 if padding == "same" else 0
        block = ResidualDoubleConv if residual else DoubleConv
        feats = [base_features * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for f in feats[:-1]:
            self.down.append(block(c_in, f, pad=pad, batch_norm=batch_norm))
            c_in = f
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = block(feats[-2], feats[-1], pad=pad, batch_norm=batch_norm)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList(
            Up(feats[i + 1], feats[i], pad=pad, batch_norm=batch_norm, block=block) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(feats[0], num_classes, kernel_size=1)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        last = len(self.down) - 1
        for i, block in enumerate(self.down):
            x = block(x)
            if i == last:
                x = self.dropout(x)
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.bottleneck(x))
        for i, block in enumerate(self.up):
            x = block(x, skips[last - i])
        return self.head(x)


class MirrorPadded(nn.Module):
    """Output size = input size: mirror-pad by the context margin (to the next valid size), run, crop.

    ``margin`` is the context a :class:`UNetNetwork` built from ``network_kwargs``
    loses per side, ``min_size`` and ``step`` its valid input sizes
    ``min_size + step * k`` (see :mod:`unetkit.geometry`). The result equals
    unetkit's overlap-tile prediction of the whole image with mirror context.
    TorchScript and ONNX export keep the index arithmetic for any input size.
    """

    def __init__(self, margin: int, min_size: int, step: int, **network_kwargs):
        super().__init__()
        self.network = UNetNetwork(**network_kwargs)
        self.margin = margin
        self.min_size = min_size
        self.step = step

    def _mirror(self, x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
        n = x.shape[dim]
        p = torch.arange(-before, n + after, device=x.device)
        period = max(2 * (n - 1), 1)
        p = torch.remainder(p, period)
        p = torch.where(p >= n, period - p, p)
        return torch.index_select(x, dim, p)

    def _padded_size(self, n: int) -> int:
        need = n + 2 * self.margin
        k = max((need - self.min_size + self.step - 1) // self.step, 0)
        return self.min_size + self.step * k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        ph, pw = self._padded_size(h), self._padded_size(w)
        x = self._mirror(x, 2, self.margin, ph - h - self.margin)
        x = self._mirror(x, 3, self.margin, pw - w - self.margin)
        # the output covers padded rows [margin, ph - margin): image rows 0 .. ph - 2 margin
        return self.network(x)[:, :, :h, :w]
