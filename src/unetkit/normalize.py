"""Intensity normalisation: part of a model's config, so prediction applies what training used."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NormalizationConfig", "intensity_range", "normalize"]

_MODES = ("zscore", "percentile", "dtype", "fixed", "none")


@dataclass(frozen=True)
class NormalizationConfig:
    """How raw intensities map to network input.

    Attributes
    ----------
    mode : {"zscore", "percentile", "dtype", "fixed", "none"}
        ``zscore`` (default): per image and channel, ``(x - mean) / std``: the
        zero-centred, unit-scale input that He initialisation assumes (with
        [0, 1]-scaled inputs a U-Net without batch norm can sit on the
        constant-prediction plateau for hundreds of steps); ``percentile``: per image and channel, ``(x - p_low) / (p_high - p_low)``
        with percentiles of the whole image (robust for uint16 fluorescence);
        ``dtype``: divide by the dtype's maximum (uint8 -> /255, uint16 -> /65535,
        floats unchanged); ``fixed``: ``(x - low) / (high - low)`` with the values
        below; ``none``: cast to float only.
    low, high : float
        Percentiles (0-100) for ``percentile``; intensities for ``fixed``.
    """

    mode: str = "zscore"
    low: float = 1.0
    high: float = 99.8

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"normalization mode must be one of {_MODES}, got {self.mode!r}")
        if self.mode in ("percentile", "fixed") and not self.high > self.low:
            raise ValueError(f"normalization needs high > low, got low={self.low}, high={self.high}")
        if self.mode == "percentile" and not (0 <= self.low < self.high <= 100):
            raise ValueError(f"percentiles must lie in [0, 100], got {self.low}, {self.high}")


def _subsample(image, channel_axis: bool, max_pixels: int = 4_000_000) -> np.ndarray:
    """A strided view small enough to take percentiles of, read from any sliceable array."""
    h, w = image.shape[-2:]
    stride = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    if channel_axis:
        return np.asarray(image[:, ::stride, ::stride])
    return np.asarray(image[::stride, ::stride])[None]


def intensity_range(image, config: NormalizationConfig, *, channels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Offset and scale per channel so that ``(x - offset) / scale`` is the network input.

    Parameters
    ----------
    image : array-like, (H, W) or (C, H, W) when ``channels`` is True
        Any sliceable array (numpy, memmap, zarr); large images are subsampled
        with a fixed stride (deterministic) to take percentiles.

    Returns
    -------
    offset, scale : float64 arrays of shape (C,)
    """
    c = image.shape[0] if channels else 1
    if config.mode == "none":
        return np.zeros(c), np.ones(c)
    if config.mode == "fixed":
        return np.full(c, config.low), np.full(c, config.high - config.low)
    if config.mode == "dtype":
        dtype = np.dtype(image.dtype)
        top = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
        return np.zeros(c), np.full(c, top)
    sample = _subsample(image, channels).reshape(c, -1).astype(np.float64)
    if config.mode == "zscore":
        std = sample.std(axis=1)
        std[std <= 0] = 1.0
        return sample.mean(axis=1), std
    lo, hi = np.percentile(sample, [config.low, config.high], axis=1)
    scale = hi - lo
    scale[scale <= 0] = 1.0  # a constant channel maps to 0, not to inf
    return lo, scale


def normalize(image: np.ndarray, offset: np.ndarray, scale: np.ndarray, *, dtype=np.float32) -> np.ndarray:
    """Apply ``(x - offset) / scale`` per channel to a (C, H, W) array."""
    x = np.asarray(image, dtype=np.float64 if dtype == np.float64 else np.float32)
    return ((x - offset[:, None, None]) / scale[:, None, None]).astype(dtype, copy=False)
