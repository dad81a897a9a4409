"""The paper's elastic deformation: a coarse grid of random displacements, bicubic per-pixel field.

"Bicubic" is torch's: the Keys cubic convolution with a = -0.75
(:func:`keys_cubic_kernel`), not a cubic B-spline as in scipy.ndimage /
elasticdeform.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from .params import _check_rng, _check_shape2

__all__ = ["KEYS_A", "sample_elastic", "keys_cubic_kernel", "elastic_field"]

# The Keys (1981) cubic convolution parameter used by torch's "bicubic" modes.
KEYS_A = -0.75


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
