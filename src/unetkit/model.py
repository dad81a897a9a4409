"""The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015).

At the defaults this is the paper's network: 23 convolutional layers, unpadded
3x3 convolutions with ReLU, 2x2 max pooling, 64 to 1024 channels, 2x2
up-convolutions that halve the channels, crop-and-concatenate skip
connections, a final 1x1 convolution, dropout at the end of the contracting
path and He initialisation. A 572x572 input gives a 388x388 output; 1 -> 2
classes has 31,030,658 parameters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from . import geometry
from .normalize import NormalizationConfig

__all__ = ["ModelConfig", "UNet", "he_init_"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a :class:`UNet` and feed it (stored in checkpoints)."""

    in_channels: int = 1
    num_classes: int = 2
    depth: int = 4
    base_features: int = 64
    padding: str = "valid"
    dropout: float = 0.5
    batch_norm: bool = False
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    class_names: tuple[str, ...] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_names"] = list(self.class_names) if self.class_names is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        norm = d.pop("normalization", None)
        names = d.pop("class_names", None)
        return cls(
            **d,
            normalization=NormalizationConfig(**norm) if isinstance(norm, dict) else (norm or NormalizationConfig()),
            class_names=tuple(names) if names is not None else None,
        )


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


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Central (height, width) window of a (B, C, H, W) tensor."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


class Up(nn.Module):
    """2x2 up-convolution halving the channels, crop-and-concatenate, two 3x3 convs."""

    def __init__(self, in_ch: int, out_ch: int, *, pad: int, batch_norm: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_ch, out_ch, pad=pad, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        skip = center_crop(skip, x.shape[-2], x.shape[-1])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015).

    Parameters
    ----------
    in_channels : int
        Channels of the input image.
    num_classes : int
        Output channels (logits; softmax over dim 1 gives class probabilities).
    depth : int
        Number of 2x2 max poolings (4 in the paper).
    base_features : int
        Channels of the first level; doubled at every level (64 -> 1024 in the paper).
    padding : {"valid", "same"}
        ``valid``: unpadded convolutions as in the paper, output smaller than
        input by :func:`unetkit.geometry.context_margin` per side. ``same``:
        zero-padded convolutions, output size = input size.
    dropout : float
        Dropout probability at the end of the contracting path (applied to the
        deepest skip features and to the bottleneck output, the paper's
        "dropout layers"). 0 disables it.
    batch_norm : bool
        Add batch normalisation after each convolution (not in the paper).
    normalization : NormalizationConfig, optional
        Intensity normalisation that prediction applies to raw images.
    class_names : sequence of str, optional
        Names of the output classes (metadata, stored in checkpoints).

    Shapes
    ------
    Input (B, in_channels, H, W) float; output (B, num_classes, H', W') logits
    with ``H' = geometry.output_size(H)`` for valid padding. An input whose size
    does not fit raises ``ValueError`` naming the nearest valid sizes.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        *,
        depth: int = 4,
        base_features: int = 64,
        padding: str = "valid",
        dropout: float = 0.5,
        batch_norm: bool = False,
        normalization: NormalizationConfig | None = None,
        class_names=None,
    ):
        super().__init__()
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        if depth < 1 or base_features < 1 or in_channels < 1 or num_classes < 1:
            raise ValueError(
                "depth, base_features, in_channels and num_classes must be positive, got "
                f"{depth}, {base_features}, {in_channels}, {num_classes}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.config = ModelConfig(
            in_channels=in_channels,
            num_classes=num_classes,
            depth=depth,
            base_features=base_features,
            padding=padding,
            dropout=dropout,
            batch_norm=batch_norm,
            normalization=normalization or NormalizationConfig(),
            class_names=tuple(class_names) if class_names is not None else None,
        )
        pad = 1 if padding == "same" else 0
        feats = [base_features * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for f in feats[:-1]:
            self.down.append(DoubleConv(c_in, f, pad=pad, batch_norm=batch_norm))
            c_in = f
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(feats[-2], feats[-1], pad=pad, batch_norm=batch_norm)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList(
            Up(feats[i + 1], feats[i], pad=pad, batch_norm=batch_norm) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(feats[0], num_classes, kernel_size=1)
        he_init_(self)

    @classmethod
    def from_config(cls, config: ModelConfig) -> "UNet":
        return cls(
            config.in_channels,
            config.num_classes,
            depth=config.depth,
            base_features=config.base_features,
            padding=config.padding,
            dropout=config.dropout,
            batch_norm=config.batch_norm,
            normalization=config.normalization,
            class_names=config.class_names,
        )

    @property
    def margin(self) -> int:
        """Context pixels lost per side (92 at depth 4 with valid padding, 0 with same)."""
        return geometry.context_margin(depth=self.config.depth, padding=self.config.padding)

    def output_shape(self, input_shape: tuple[int, int]) -> tuple[int, int]:
        """Spatial output shape for a spatial input shape (raises ValueError if it does not fit)."""
        c = self.config
        return tuple(geometry.output_size(s, depth=c.depth, padding=c.padding) for s in input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected input (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}"
            )
        geometry.check_input_shape(tuple(x.shape[-2:]), depth=self.config.depth, padding=self.config.padding)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i == len(self.down) - 1:
                x = self.dropout(x)
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.bottleneck(x))
        for block, skip in zip(self.up, reversed(skips)):
            x = block(x, skip)
        return self.head(x)
