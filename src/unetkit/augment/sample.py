"""Sampling: every random quantity of one augmentation, drawn from an explicit Generator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .elastic import sample_elastic
from .params import AugmentConfig, AugmentParams, _check_rng, _check_shape2, _label_margin

__all__ = ["sample_params"]


def sample_params(
    rng: np.random.Generator,
    config: AugmentConfig,
    image_shape: Sequence[int],
    out_shape: Sequence[int],
    *,
    label_shape: Sequence[int] | None = None,
) -> AugmentParams:
    """Draw the parameters of one augmentation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness.
    config : AugmentConfig
        Probabilities and ranges.
    image_shape : (H, W) or (C, H, W)
        Shape of the image to be augmented; only (H, W) is used.
    out_shape : (int, int)
        Shape (h, w) of the image tile to produce.
    label_shape : (int, int), optional
        Shape of the centred label tile (valid convolutions: ``out_shape``
        minus twice the context margin); defaults to ``out_shape``.

    Returns
    -------
    AugmentParams

    Notes
    -----
    The tile offset is uniform over the integer positions that keep the
    (unrotated) label tile inside the image, so every label pixel is a real
    annotation while the image context around it may be mirrored, as in the
    paper's overlap-tile strategy. When the label tile is larger than the
    image along an axis it is centred there. Every random quantity is drawn on
    every call in a fixed order, so changing one probability does not shift
    the others' streams.
    """
    _check_rng(rng)
    if not isinstance(config, AugmentConfig):
        raise TypeError(f"config must be an AugmentConfig, got {type(config).__name__}")
    if len(image_shape) not in (2, 3):
        raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {tuple(image_shape)}")
    in_shape = _check_shape2(tuple(image_shape)[-2:], "image_shape")
    out_shape = _check_shape2(out_shape, "out_shape")
    label_shape = out_shape if label_shape is None else _check_shape2(label_shape, "label_shape")
    margin = _label_margin(out_shape, label_shape)

    offset = []
    for size, lab, m in zip(in_shape, label_shape, margin):
        lo, hi = -m, size - lab - m
        offset.append(int(rng.integers(lo, hi + 1)) if hi >= lo else (size - lab) // 2 - m)
    # Fixed draw order, see Notes.
    u = rng.random(8)
    coarse = sample_elastic(rng, grid=config.elastic_grid, sigma=config.elastic_sigma_px)
    if config.rotation_mode == "90":
        angle = 90.0 * int(rng.integers(4))
    else:
        angle = float(rng.uniform(-config.max_angle_deg, config.max_angle_deg))
    contrast = float(rng.uniform(*config.contrast_range))
    brightness = float(rng.uniform(*config.brightness_range))
    gamma = float(np.exp(rng.uniform(*np.log(config.gamma_range))))
    noise_std = float(rng.uniform(*config.noise_std_range))
    noise_seed = int(rng.integers(2**62))

    if not config.enabled:
        return AugmentParams(out_shape=out_shape, offset=tuple(offset))
    return AugmentParams(
        out_shape=out_shape,
        offset=tuple(offset),
        angle_deg=angle if u[0] < config.rotation_p else 0.0,
        flip=(bool(u[1] < config.flip_p), bool(u[2] < config.flip_p)),
        elastic=coarse if u[3] < config.elastic_p else None,
        contrast=contrast if u[4] < config.contrast_p else 1.0,
        brightness=brightness if u[5] < config.brightness_p else 0.0,
        gamma=gamma if u[6] < config.gamma_p else 1.0,
        noise_std=noise_std if u[7] < config.noise_p else 0.0,
        noise_seed=noise_seed,
    )
