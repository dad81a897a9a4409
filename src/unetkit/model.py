"""The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015).

At the defaults this is the paper's network: 23 convolutional layers, unpadded
3x3 convolutions with ReLU, 2x2 max pooling, 64 to 1024 channels, 2x2
up-convolutions that halve the channels, crop-and-concatenate skip
connections, a final 1x1 convolution, dropout at the end of the contracting
path and He initialisation. A 572x572 input gives a 388x388 output; 1 -> 2
classes has 31,030,658 parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from . import geometry
from .network import UNetNetwork, center_crop, he_init_  # noqa: F401 (he_init_, center_crop: re-exported)
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
    residual: bool = False
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    class_names: tuple[str, ...] | None = None

    def network_kwargs(self) -> dict:
        """The keyword arguments of :class:`unetkit.network.UNetNetwork` for this architecture."""
        return {k: getattr(self, k) for k in ("in_channels", "num_classes", "depth", "base_features", "padding",
                                              "dropout", "batch_norm", "residual")}

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


class UNet(UNetNetwork):
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
        Add batch normalisation after each convolution (not in the paper). In
        eval mode it is a per-channel affine map, so tiles still join without
        seams (group or instance norm would not: their statistics depend on
        the tile).
    residual : bool
        Residual double-conv blocks (:class:`ResidualDoubleConv`; not in the paper).
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
        residual: bool = False,
        normalization: NormalizationConfig | None = None,
        class_names=None,
    ):
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
        self_config = ModelConfig(
            in_channels=in_channels,
            num_classes=num_classes,
            depth=depth,
            base_features=base_features,
            padding=padding,
            dropout=dropout,
            batch_norm=batch_norm,
            residual=residual,
            normalization=normalization or NormalizationConfig(),
            class_names=tuple(class_names) if class_names is not None else None,
        )
        super().__init__(**self_config.network_kwargs())
        self.config = self_config

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
            residual=config.residual,
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
        return super().forward(x)
