"""Data augmentation of the U-Net paper: tile position, rotation, flips, elastic
deformation and gray-value variation, applied to image, labels and weights alike.

Randomness and computation are kept apart (kornia style): ``sample_params``
draws every random quantity from an explicit :class:`numpy.random.Generator`
into an :class:`AugmentParams`; ``apply_params`` is a deterministic function of
the arrays and those parameters. ``augment`` does both.

All geometric changes (tile offset, rotation, flips, elastic field) are
composed into ONE sampling grid, and every array is resampled once with
:func:`torch.nn.functional.grid_sample`: the image with cubic interpolation,
the labels with nearest neighbour (their value set is kept exactly) and the
weights with linear interpolation. Where the grid reaches outside the image,
all arrays are mirrored (reflection about the outermost pixel centres, as
``np.pad(mode="reflect")``), as in the paper's overlap-tile strategy. When
the map sends pixel centres onto pixel centres (integer offset, flips,
multiples of 90 degrees, no elastic field) the arrays are gathered by index
instead, which is exact and faster. "Bicubic" is torch's: the Keys cubic
convolution with a = -0.75 (:func:`keys_cubic_kernel`), not a cubic B-spline
as in scipy.ndimage / elasticdeform.

Coordinates are (row, column) in pixels, pixel centres at integers. The
transform is a backward map: output pixel ``p`` (row, column) of the tile
takes the input value at ::

    src(p) = offset + c + R(angle) F (p - c) + d(p)

where ``c = ((h - 1) / 2, (w - 1) / 2)`` is the tile centre, ``F`` flips rows
and/or columns, ``R`` rotates counter-clockwise as displayed (``angle = 90``
equals ``np.rot90(image)``) and ``d`` is the elastic displacement field in
pixels.

References
----------
.. [1] O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for
   Biomedical Image Segmentation", MICCAI 2015, arXiv:1505.04597.
.. [2] R. Keys, "Cubic convolution interpolation for digital image
   processing", IEEE Trans. ASSP 29(6), 1981.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "sample_elastic",
    "elastic_field",
    "sample_params",
    "apply_params",
    "augment",
    "keys_cubic_kernel",
]

# Float32 represents every integer up to 2**24 exactly: labels within that
# range can go through the float32 nearest-neighbour path without change.
_FLOAT32_EXACT_INT = 2**24
# The Keys (1981) cubic convolution parameter used by torch's "bicubic" modes.
KEYS_A = -0.75


# --------------------------------------------------------------------------
# Configuration and parameters
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the random augmentation.

    The defaults follow the paper where it speaks (elastic 3x3 grid, sigma
    10 px, always on) and otherwise aim at EM and light-microscopy data,
    which have no preferred orientation.

    Parameters
    ----------
    enabled : bool
        False: only a random tile position, no other change (see
        :meth:`disabled`).
    elastic_p : float
        Probability of the elastic deformation (paper: always, 1.0).
    elastic_sigma_px : float
        Standard deviation of the coarse-grid displacements, pixels (paper: 10).
    elastic_grid : int
        Number of coarse grid points per axis (paper: 3, i.e. a 3x3 grid).
    rotation_p : float
        Probability of a rotation.
    rotation_mode : {"any", "90"}
        "any": angle uniform in ``[-max_angle_deg, max_angle_deg]``;
        "90": a uniformly drawn multiple of 90 degrees (exact, no
        interpolation blur).
    max_angle_deg : float
        Largest rotation angle in degrees for ``rotation_mode="any"``.
    flip_p : float
        Probability of flipping, drawn independently for the row and the
        column axis.
    contrast_p, contrast_range : float, (float, float)
        Probability and range (uniform) of the contrast factor ``c``:
        ``x -> mean + c (x - mean)``.
    brightness_p, brightness_range : float, (float, float)
        Probability and range (uniform) of the brightness shift ``b``, in
        units of the tile's standard deviation: ``x -> x + b std``.
    gamma_p, gamma_range : float, (float, float)
        Probability and range (log-uniform) of the gamma ``g``, applied on the
        tile's [min, max] range: ``x -> lo + (hi - lo) ((x - lo) / (hi - lo))**g``.
    noise_p, noise_std_range : float, (float, float)
        Probability and range (uniform) of the standard deviation of additive
        Gaussian noise, in units of the tile's standard deviation.

    Notes
    -----
    Gray-value statistics (mean, std, min, max) are those of the output tile,
    per channel, so the same defaults work for images scaled to [0, 1],
    [0, 255] or z-scored. Gray-value changes touch the image only.
    """

    enabled: bool = True
    elastic_p: float = 1.0
    elastic_sigma_px: float = 10.0
    elastic_grid: int = 3
    rotation_p: float = 1.0
    rotation_mode: str = "any"
    max_angle_deg: float = 180.0
    flip_p: float = 0.5
    contrast_p: float = 0.5
    contrast_range: tuple[float, float] = (0.75, 1.25)
    brightness_p: float = 0.5
    brightness_range: tuple[float, float] = (-0.2, 0.2)
    gamma_p: float = 0.5
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_p: float = 0.25
    noise_std_range: tuple[float, float] = (0.0, 0.15)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.endswith("_range"):
                value = tuple(float(v) for v in getattr(self, f.name))
                if len(value) != 2 or not value[0] <= value[1]:
                    raise ValueError(
                        f"AugmentConfig.{f.name} must be (low, high) with low <= high, "
                        f"got {getattr(self, f.name)!r}"
                    )
                object.__setattr__(self, f.name, value)
            elif f.name.endswith("_p"):
                p = getattr(self, f.name)
                if not 0.0 <= p <= 1.0:
                    raise ValueError(f"AugmentConfig.{f.name} must be in [0, 1], got {p!r}")
        if self.rotation_mode not in ("any", "90"):
            raise ValueError(
                f"AugmentConfig.rotation_mode must be 'any' or '90', got {self.rotation_mode!r}"
            )
        if self.elastic_sigma_px < 0:
            raise ValueError(
                f"AugmentConfig.elastic_sigma_px must be >= 0, got {self.elastic_sigma_px!r}"
            )
        if int(self.elastic_grid) != self.elastic_grid or self.elastic_grid < 2:
            raise ValueError(
                f"AugmentConfig.elastic_grid must be an integer >= 2, got {self.elastic_grid!r}"
            )
        if self.max_angle_deg < 0:
            raise ValueError(
                f"AugmentConfig.max_angle_deg must be >= 0, got {self.max_angle_deg!r}"
            )
        if self.gamma_range[0] <= 0:
            raise ValueError(
                f"AugmentConfig.gamma_range must be positive, got {self.gamma_range!r}"
            )
        if self.noise_std_range[0] < 0:
            raise ValueError(
                f"AugmentConfig.noise_std_range must be non-negative, got {self.noise_std_range!r}"
            )

    @classmethod
    def disabled(cls) -> AugmentConfig:
        """No augmentation: only the random tile position is sampled."""
        return cls(enabled=False)


@dataclass(frozen=True, eq=False)
class AugmentParams:
    """Everything one augmentation draws; the defaults are the identity.

    Parameters
    ----------
    out_shape : (int, int)
        Output tile shape (h, w), pixels.
    offset : (int, int)
        Input position (row, column) of the tile's top-left pixel before
        rotation, flips and deformation; may be negative or reach past the
        image (mirrored there).
    angle_deg : float
        Counter-clockwise rotation (as displayed) about the tile centre,
        degrees. Multiples of 90 use exact integer rotation matrices.
    flip : (bool, bool)
        Flip the row axis, the column axis.
    elastic : ndarray of shape (2, gh, gw), float, or None
        Coarse displacement grid (row, column components) in pixels, spanning
        the output tile corner to corner; None: no deformation.
    contrast, brightness, gamma, noise_std : float
        Gray-value changes (identity: 1, 0, 1, 0); see :class:`AugmentConfig`.
    noise_seed : int
        Seed of the noise field (torch CPU generator), so the noise is a
        deterministic function of the parameters.
    """

    out_shape: tuple[int, int]
    offset: tuple[int, int] = (0, 0)
    angle_deg: float = 0.0
    flip: tuple[bool, bool] = (False, False)
    elastic: np.ndarray | None = field(default=None, repr=False)
    contrast: float = 1.0
    brightness: float = 0.0
    gamma: float = 1.0
    noise_std: float = 0.0
    noise_seed: int = 0

    def __post_init__(self) -> None:
        shape = _check_shape2(self.out_shape, "out_shape")
        object.__setattr__(self, "out_shape", shape)
        offset = tuple(self.offset)
        if len(offset) != 2 or any(int(o) != o for o in offset):
            raise ValueError(f"offset must be two integers (row, column), got {self.offset!r}")
        object.__setattr__(self, "offset", (int(offset[0]), int(offset[1])))
        flip = tuple(bool(f) for f in self.flip)
        if len(flip) != 2:
            raise ValueError(f"flip must be two booleans (rows, columns), got {self.flip!r}")
        object.__setattr__(self, "flip", flip)
        if self.elastic is not None:
            e = np.array(self.elastic, dtype=np.float64)  # own copy, made read-only
            if e.ndim != 3 or e.shape[0] != 2 or min(e.shape[1:]) < 1:
                raise ValueError(
                    f"elastic must have shape (2, gh, gw) (row and column displacements), "
                    f"got {e.shape}"
                )
            e.setflags(write=False)
            object.__setattr__(self, "elastic", e)
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma!r}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std!r}")


# --------------------------------------------------------------------------
# Elastic deformation
# --------------------------------------------------------------------------


def sample_elastic(rng: np.random.Generator, *, grid: int = 3, sigma: float = 10.0) -> np.ndarray:
    """Draw the coarse grid of random displacement vectors of the paper.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    grid : int
        Grid points per axis (paper: 3).
    sigma : float
        Standard deviation of each displacement component, pixels (paper: 10).

    Returns
    -------
    ndarray of shape (2, grid, grid), float64
        Row and column displacements in pixels, i.i.d. N(0, sigma**2).
    """
    _check_rng(rng)
    if int(grid) != grid or grid < 1:
        raise ValueError(f"grid must be a positive integer, got {grid!r}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    return rng.normal(0.0, sigma, size=(2, int(grid), int(grid)))


def keys_cubic_kernel(x: np.ndarray, a: float = KEYS_A) -> np.ndarray:
    """Keys (1981) cubic convolution kernel, the one behind torch's "bicubic".

    ``W(x) = (a+2)|x|^3 - (a+3)|x|^2 + 1`` for ``|x| <= 1``,
    ``a|x|^3 - 5a|x|^2 + 8a|x| - 4a`` for ``1 < |x| < 2``, 0 beyond; torch
    uses ``a = -0.75`` (scipy/skimage cubic splines differ).
    """
    x = np.abs(np.asarray(x, dtype=np.float64))
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


@functools.lru_cache(maxsize=64)
def _cubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of 1-D bicubic upsampling with align_corners=True.

    Reproduces ``F.interpolate(mode="bicubic", align_corners=True)`` along one
    axis: sample positions ``i (n_in - 1) / (n_out - 1)``, Keys kernel,
    indices clamped at the borders.
    """
    pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    i0 = np.floor(pos)
    t = pos - i0
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    for k in (-1, 0, 1, 2):
        idx = np.clip(i0 + k, 0, n_in - 1).astype(np.int64)
        np.add.at(m, (rows, idx), keys_cubic_kernel(t - k))
    m.setflags(write=False)
    return m


def elastic_field(coarse: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Per-pixel displacement field by bicubic interpolation of a coarse grid.

    The coarse grid spans the field corner to corner (grid point (0, 0) at
    pixel (0, 0), the last at pixel (H-1, W-1)), as
    ``F.interpolate(coarse, size=shape, mode="bicubic", align_corners=True)``.

    Parameters
    ----------
    coarse : ndarray of shape (2, gh, gw)
        Row and column displacements in pixels (see :func:`sample_elastic`).
    shape : (int, int)
        Field shape (H, W).

    Returns
    -------
    ndarray of shape (2, H, W), float32
        Row and column displacement of every pixel, pixels.

    Notes
    -----
    Bicubic means the Keys cubic convolution with ``a = -0.75``
    (:func:`keys_cubic_kernel`), torch's definition; it is separable, so the
    field is ``M_r @ coarse @ M_c.T`` per component.
    """
    coarse = np.asarray(coarse, dtype=np.float64)
    if coarse.ndim != 3 or coarse.shape[0] != 2 or min(coarse.shape[1:]) < 1:
        raise ValueError(f"coarse must have shape (2, gh, gw), got {coarse.shape}")
    h, w = _check_shape2(shape, "shape")
    mr = _cubic_matrix(coarse.shape[1], h)
    mc = _cubic_matrix(coarse.shape[2], w)
    return np.einsum("ia,kab,jb->kij", mr, coarse, mc, optimize=True).astype(np.float32)


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------


def apply_params(
    params: AugmentParams,
    image: np.ndarray,
    labels: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    label_shape: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Apply sampled parameters to an image and, alike, to its labels and weights.

    Parameters
    ----------
    params : AugmentParams
        From :func:`sample_params` (or built by hand; the defaults are the
        identity).
    image : ndarray of shape (H, W) or (C, H, W), real
        Image; computed in float32. Cubic (Keys, a = -0.75) interpolation,
        which may overshoot the input range slightly.
    labels : ndarray of shape (H, W), integer or bool, optional
        Label image; nearest-neighbour, so the output holds only input values
        and keeps the input dtype.
    weights : ndarray of shape (H, W), real, optional
        Pixel weights; linear interpolation, float32.
    label_shape : (int, int), optional
        Shape (lh, lw) of the labels/weights output: the centred part of the
        ``params.out_shape`` tile (valid convolutions). Defaults to
        ``out_shape``; ``out_shape - label_shape`` must be even.

    Returns
    -------
    image : ndarray of shape (h, w) or (C, h, w), float32
    labels : ndarray of shape (lh, lw), labels' dtype, or None
    weights : ndarray of shape (lh, lw), float32, or None

    Notes
    -----
    One sampling grid holds offset, rotation, flips and the elastic field;
    each array is resampled once (``grid_sample``, ``align_corners=True``,
    ``padding_mode="reflection"``); positions are accurate to ~1e-5 px.
    When the map sends pixel centres to pixel centres (offset, flips and
    multiples of 90 degrees, no elastic field) the arrays are gathered by
    index instead: exact for every array, so zero displacement is exactly the
    identity. Gray-value changes come last and touch the image only.
    """
    if not isinstance(params, AugmentParams):
        raise TypeError(f"params must be an AugmentParams, got {type(params).__name__}")
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape) < 1:
        raise ValueError(f"image must have shape (H, W) or (C, H, W), got {image.shape}")
    if not (np.issubdtype(image.dtype, np.number) and not np.iscomplexobj(image)):
        raise ValueError(f"image must be real-valued, got dtype {image.dtype}")
    in_shape = image.shape[-2:]
    if min(in_shape) < 2:
        raise ValueError(f"image must be at least 2x2 pixels to mirror, got {image.shape}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != in_shape:
            raise ValueError(
                f"labels must have the image's shape (H, W) = {in_shape}, got {labels.shape}"
            )
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
            raise ValueError(f"labels must have an integer or bool dtype, got {labels.dtype}")
    if weights is not None:
        weights = np.asarray(weights)
        if weights.shape != in_shape:
            raise ValueError(
                f"weights must have the image's shape (H, W) = {in_shape}, got {weights.shape}"
            )
        if not (np.issubdtype(weights.dtype, np.number) and not np.iscomplexobj(weights)):
            raise ValueError(f"weights must be real-valued, got dtype {weights.dtype}")
    out_shape = params.out_shape
    label_shape = out_shape if label_shape is None else _check_shape2(label_shape, "label_shape")
    margin = _label_margin(out_shape, label_shape)

    index = _integer_map(params, in_shape)
    if index is not None:
        # Offset, flips and quarter turns only: every output pixel is an input
        # pixel, so plain (mirrored) indexing is exact and fast.
        out = _take(image, *index).astype(np.float32, copy=False)
        out = _gray_value(torch.from_numpy(out if out.ndim == 3 else out[None]), params)
        out_image = (out if image.ndim == 3 else out[0]).numpy()
        sub = _crop_index(index, margin, label_shape)
        out_labels = None if labels is None else _take(labels, *sub)
        out_weights = None
        if weights is not None:
            out_weights = _take(weights, *sub).astype(np.float32, copy=False)
        return out_image, out_labels, out_weights

    grid = _sampling_grid(params, in_shape)  # (h, w, 2), float32, normalised
    img = _to_tensor(image, torch.float32)
    out = _grid_sample(img if img.ndim == 3 else img[None], grid, "bicubic")
    out = _gray_value(out, params)
    out_image = (out if image.ndim == 3 else out[0]).numpy()

    out_labels = out_weights = None
    if labels is not None or weights is not None:
        lgrid = grid
        if label_shape != out_shape:
            lgrid = grid[
                margin[0] : margin[0] + label_shape[0], margin[1] : margin[1] + label_shape[1]
            ].contiguous()
        if labels is not None:
            out_labels = _sample_labels(labels, lgrid)
        if weights is not None:
            w = _to_tensor(weights, torch.float32)[None]
            out_weights = _grid_sample(w, lgrid, "bilinear")[0].numpy()
    return out_image, out_labels, out_weights


def augment(
    rng: np.random.Generator,
    config: AugmentConfig,
    image: np.ndarray,
    labels: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    out_shape: Sequence[int],
    label_shape: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Sample parameters and apply them: ``apply_params(sample_params(...), ...)``.

    See :func:`sample_params` and :func:`apply_params` for the arguments;
    returns ``(image, labels, weights)`` tiles.
    """
    params = sample_params(rng, config, np.shape(image), out_shape, label_shape=label_shape)
    return apply_params(params, image, labels, weights, label_shape=label_shape)


# --------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------


def _check_rng(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )


def _check_shape2(shape: Sequence[int], name: str) -> tuple[int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        raise ValueError(f"{name} must be two positive integers (h, w), got {shape!r}") from None
    if len(values) != 2 or any(int(v) != v or v < 1 for v in values):
        raise ValueError(f"{name} must be two positive integers (h, w), got {shape!r}")
    return int(values[0]), int(values[1])


def _label_margin(out_shape: tuple[int, int], label_shape: tuple[int, int]) -> tuple[int, int]:
    """Border (rows, columns) between the image tile and the centred label tile."""
    diff = (out_shape[0] - label_shape[0], out_shape[1] - label_shape[1])
    if min(diff) < 0 or diff[0] % 2 or diff[1] % 2:
        raise ValueError(
            f"label_shape {label_shape} must fit centred in out_shape {out_shape}: "
            f"smaller or equal, and out_shape - label_shape even"
        )
    return diff[0] // 2, diff[1] // 2


def _cos_sin(angle_deg: float) -> tuple[float, float]:
    """Cosine and sine, exact (0, +-1) for multiples of 90 degrees."""
    quarter = angle_deg / 90.0
    if quarter == round(quarter):
        return [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][int(round(quarter)) % 4]
    rad = math.radians(angle_deg)
    return math.cos(rad), math.sin(rad)


def _normalized(q: np.ndarray, size: int) -> np.ndarray:
    """float32 grid coordinates that grid_sample maps back as close to ``q`` as float32 allows.

    With ``align_corners=True`` torch computes the pixel position as
    ``(g + 1) * ((size - 1) / 2)`` in float32. Of the float32 values next to
    ``q / ((size - 1) / 2) - 1`` the one whose round trip lands closest to
    ``q`` is kept (often exactly on it, otherwise within ~1e-5 px).
    """
    scale = np.float32((size - 1) / 2)
    g = (np.asarray(q, dtype=np.float64) / ((size - 1) / 2) - 1.0).astype(np.float32)
    steps = [g]
    for _ in range(2):
        steps = [np.nextafter(steps[0], np.float32(-np.inf))] + steps
        steps = steps + [np.nextafter(steps[-1], np.float32(np.inf))]
    cand = np.stack(steps)
    err = np.abs(((cand + np.float32(1)) * scale).astype(np.float64) - q)
    return np.take_along_axis(cand, np.argmin(err, axis=0)[None], axis=0)[0]


def _reflect_index(x: np.ndarray, size: int) -> np.ndarray:
    """Mirror integer positions into [0, size - 1], as ``np.pad(mode="reflect")``."""
    period = 2 * (size - 1)
    x = np.abs(x) % period
    return np.where(x > size - 1, period - x, x)


def _integer_map(
    params: AugmentParams, in_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """Source indices when the transform maps pixel centres onto pixel centres.

    Returns ``(rows, cols, swapped)``: without a quarter turn, output pixel
    (i, j) reads input (rows[i], cols[j]); with one (``swapped``), it reads
    input (rows[j], cols[i]). None when interpolation is needed (elastic
    field, other angles, or a quarter turn of a tile whose h - w is odd).
    """
    if params.elastic is not None and np.any(params.elastic):
        return None
    cos, sin = _cos_sin(params.angle_deg)
    if (cos, sin) not in ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)):
        return None
    h, w = params.out_shape
    f_r = -1.0 if params.flip[0] else 1.0
    f_c = -1.0 if params.flip[1] else 1.0
    dr = np.arange(h) - (h - 1) / 2
    dc = np.arange(w) - (w - 1) / 2
    c_r = params.offset[0] + (h - 1) / 2
    c_c = params.offset[1] + (w - 1) / 2
    if sin == 0.0:
        rows, cols, swapped = c_r + cos * f_r * dr, c_c + cos * f_c * dc, False
    else:
        rows, cols, swapped = c_r + sin * f_c * dc, c_c - sin * f_r * dr, True
    if np.any(rows != np.round(rows)) or np.any(cols != np.round(cols)):
        return None
    rows = _reflect_index(rows.astype(np.int64), in_shape[0])
    cols = _reflect_index(cols.astype(np.int64), in_shape[1])
    return rows, cols, swapped


def _crop_index(
    index: tuple[np.ndarray, np.ndarray, bool], margin: tuple[int, int], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The part of an integer map that produces the centred label tile."""
    rows, cols, swapped = index
    (m_r, m_c), (l_r, l_c) = margin, shape
    if swapped:
        return rows[m_c : m_c + l_c], cols[m_r : m_r + l_r], True
    return rows[m_r : m_r + l_r], cols[m_c : m_c + l_c], False


def _take(array: np.ndarray, rows: np.ndarray, cols: np.ndarray, swapped: bool) -> np.ndarray:
    """Gather an integer map (see :func:`_integer_map`) from (..., H, W); a new array."""
    out = np.take(np.take(array, rows, axis=-2), cols, axis=-1)
    return np.ascontiguousarray(np.swapaxes(out, -1, -2)) if swapped else out


def _sampling_grid(params: AugmentParams, in_shape: tuple[int, int]) -> torch.Tensor:
    """Normalised (x, y) sampling grid of shape (h, w, 2) for grid_sample.

    The source position of output pixel (i, j) is (see module docstring)
    ``q + (R F - I)(p - c) + d(p)`` with ``q = offset + p``. Both components
    are sums of a function of i, a function of j and the bicubic field
    ``M_r C M_c^T``, so the whole grid is one small matrix product
    ``L (h, k) @ R (k, 2w)``.
    """
    h, w = params.out_shape
    size_r, size_c = in_shape
    s_r, s_c = 2.0 / (size_r - 1), 2.0 / (size_c - 1)
    cos, sin = _cos_sin(params.angle_deg)
    f_r = -1.0 if params.flip[0] else 1.0
    f_c = -1.0 if params.flip[1] else 1.0
    i = np.arange(h, dtype=np.float64)
    j = np.arange(w, dtype=np.float64)
    dr, dc = i - (h - 1) / 2, j - (w - 1) / 2
    # Functions of the row index i (u) and of the column index j (v).
    u_r = _normalized(params.offset[0] + i, size_r) + s_r * (cos * f_r - 1.0) * dr
    u_c = s_c * (-sin * f_r) * dr
    v_r = s_r * (sin * f_c) * dc
    v_c = _normalized(params.offset[1] + j, size_c) + s_c * (cos * f_c - 1.0) * dc

    left = [u_r, u_c, np.ones(h)]
    right_y = [np.ones(w), np.zeros(w), v_r]
    right_x = [np.zeros(w), np.ones(w), v_c]
    if params.elastic is not None and np.any(params.elastic):
        coarse = params.elastic
        m_r = _cubic_matrix(coarse.shape[1], h)
        m_c = _cubic_matrix(coarse.shape[2], w)
        left = list(m_r.T) + left
        right_y = list((s_r * coarse[0]) @ m_c.T) + right_y
        right_x = list((s_c * coarse[1]) @ m_c.T) + right_x
    lmat = torch.from_numpy(np.stack(left, axis=1).astype(np.float32))
    rmat = np.stack([np.stack(right_x, axis=0), np.stack(right_y, axis=0)], axis=-1)
    rmat = torch.from_numpy(rmat.reshape(len(left), 2 * w).astype(np.float32))
    return torch.mm(lmat, rmat).view(h, w, 2)


def _to_tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Zero-copy where possible (contiguous, writeable, right dtype)."""
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array).to(dtype)


def _grid_sample(x: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    """Resample (C, H, W) at grid (h, w, 2) -> (C, h, w), mirrored borders.

    grid_sample's CPU kernel parallelises over the batch only; the output rows
    are split into one chunk per thread (the input is shared, not copied) so a
    single image uses all threads. Results are identical to one call.
    """
    h, w = grid.shape[:2]
    k = max(1, min(torch.get_num_threads(), h))
    while h % k:
        k -= 1
    out = F.grid_sample(
        x[None].expand(k, -1, -1, -1),
        grid.reshape(k, h // k, w, 2).to(x.dtype),
        mode=mode,
        padding_mode="reflection",
        align_corners=True,
    )
    return out.permute(1, 0, 2, 3).reshape(x.shape[0], h, w)


def _sample_labels(labels: np.ndarray, grid: torch.Tensor) -> np.ndarray:
    """Nearest-neighbour resampling that returns exactly the input values."""
    dtype = labels.dtype
    if labels.dtype == np.bool_:
        work = labels.view(np.uint8)
    else:
        work = labels
    exact32 = work.dtype.itemsize <= 2 or (
        work.size == 0
        or (int(work.min()) >= -_FLOAT32_EXACT_INT and int(work.max()) <= _FLOAT32_EXACT_INT)
    )
    if exact32:
        out = _grid_sample(_to_tensor(work, torch.float32)[None], grid, "nearest")[0]
        return out.numpy().astype(dtype)
    # Values float32 cannot hold exactly: sample label indices instead.
    index = np.arange(work.size, dtype=np.float64).reshape(work.shape)
    out = _grid_sample(torch.from_numpy(index)[None], grid, "nearest")[0]
    return work.reshape(-1)[out.numpy().astype(np.int64)]


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of (C, h, w), shaped (C, 1, 1).

    Two plain passes: several times faster than ``torch.std_mean`` here.
    """
    mean = x.mean(dim=(1, 2), keepdim=True)
    std = (x - mean).square_().mean(dim=(1, 2), keepdim=True).sqrt_()
    return mean, std


def _gray_value(x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Contrast, brightness, gamma, noise on a (C, h, w) float32 tile, per channel.

    Works in place on ``x`` (a fresh tile) and returns it.
    """
    std = None
    if params.contrast != 1.0 or params.brightness != 0.0:
        mean, std = _mean_std(x)
        # x -> mean + c (x - mean) + b std, in one pass as shift + c x
        shift = (1.0 - params.contrast) * mean + params.brightness * std
        torch.add(shift, x, alpha=params.contrast, out=x)
        std = std * abs(params.contrast)
    if params.gamma != 1.0:
        lo = x.amin(dim=(1, 2), keepdim=True)
        span = (x.amax(dim=(1, 2), keepdim=True) - lo).clamp_min(1e-12)
        x.sub_(lo).div_(span).clamp_(0.0, 1.0).pow_(params.gamma).mul_(span).add_(lo)
        std = None
    if params.noise_std > 0.0:
        if std is None:
            std = _mean_std(x)[1]
        gen = torch.Generator().manual_seed(params.noise_seed)
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        x.add_(noise.mul_(std * params.noise_std))
    return x
