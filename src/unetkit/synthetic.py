"""Embedded default data: deterministic generators of microscopy-like images with exact labels.

Nothing is downloaded: the same seed gives the same image on every machine
(up to floating-point rounding of SciPy filters).

- :func:`make_em_image`: EM-like sections, cells separated by thin dark
  membranes, with texture, dark organelles, blur and noise (ISBI 2012 style
  labels: 255 = cell, 0 = membrane).
- :func:`make_nuclei_image`: fluorescence-like nuclei that touch, with exact
  instance labels (DSB 2018 style).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["SyntheticSample", "make_em_image", "make_nuclei_image", "make_em_dataset"]

from dataclasses import dataclass


@dataclass(frozen=True)
class SyntheticSample:
    """One generated image with its exact labels.

    Attributes
    ----------
    image : (H, W) uint8 (EM) or uint16 (nuclei)
    labels : (H, W) uint8 semantic labels, 255 = cell/nucleus, 0 = membrane/background
    instances : (H, W) int32 instance ids, 0 = background, 1..N objects
    """

    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered white noise."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)


def make_em_image(shape=(256, 256), *, seed: int = 0, cell_size: float = 38.0, membrane_width: float = 2.2,
                  noise: float = 0.05) -> SyntheticSample:
    """An EM-like section: irregular cells (warped Voronoi) separated by thin dark membranes.

    Parameters
    ----------
    shape : (H, W) pixels
    seed : int
        Seed of the local ``np.random.Generator``.
    cell_size : float
        Typical cell diameter in pixels.
    membrane_width : float
        Membrane thickness in pixels (pixels whose distances to the two nearest
        cell centres differ by less than this are membrane).
    noise : float
        Std of additive Gaussian noise, in units of the [0, 1] intensity range.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    # jittered grid of cell centres, a margin of one cell beyond the image
    ys = np.arange(-cell_size, h + cell_size, cell_size)
    xs = np.arange(-cell_size, w + cell_size, cell_size)
    centres = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    centres = centres + rng.uniform(-0.4, 0.4, centres.shape) * cell_size
    # warp pixel coordinates with a smooth field: curved, irregular membranes
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    warp = cell_size * 0.18
    coords = np.stack(
        [yy + warp * _smooth_noise(rng, shape, cell_size / 3), xx + warp * _smooth_noise(rng, shape, cell_size / 3)], -1
    )
    dist, idx = cKDTree(centres).query(coords.reshape(-1, 2), k=2)
    gap = (dist[:, 1] - dist[:, 0]).reshape(shape)
    nearest = idx[:, 0].reshape(shape)
    membrane = gap < membrane_width
    cell = ~membrane
    instances, _ = ndimage.label(cell)
    # intensities: bright textured cytoplasm, darker organelles, dark membranes
    cells_level = 0.62 + 0.10 * rng.standard_normal(len(centres))[nearest]
    texture = 0.06 * _smooth_noise(rng, shape, 1.5) + 0.05 * _smooth_noise(rng, shape, 6)
    image = cells_level + texture
    blobs = ndimage.gaussian_filter((rng.random(shape) < 0.0016).astype(float), 2.5)
    image -= 0.25 * np.clip(blobs / (blobs.max() + 1e-12) * 2.5, 0, 1)
    membrane_profile = np.exp(-(gap**2) / (2 * (membrane_width * 0.6) ** 2))
    image = image * (1 - 0.75 * membrane_profile)
    image = ndimage.gaussian_filter(image, 1.0)
    image = image + noise * rng.standard_normal(shape)
    image = np.clip(image, 0, 1)
    labels = np.where(cell, 255, 0).astype(np.uint8)
    return SyntheticSample((image * 255 + 0.5).astype(np.uint8), labels, instances.astype(np.int32))


def make_em_dataset(n: int, shape=(256, 256), *, seed: int = 0) -> list[SyntheticSample]:
    """``n`` EM-like samples from consecutive seeds ``seed, seed + 1, ...``."""
    return [make_em_image(shape, seed=seed + i) for i in range(n)]


def make_nuclei_image(shape=(256, 256), *, seed: int = 0, n_nuclei: int | None = None, radius=(7.0, 13.0),
                      noise: float = 0.03) -> SyntheticSample:
    """Fluorescence-like nuclei, many touching, with exact instance labels.

    Nuclei are random ellipses; where two overlap, each pixel goes to the
    nucleus whose ellipse-normalised distance is smaller, so touching nuclei
    share a straight-ish contact line (no gap): the case the paper's border
    weight map is for.

    Parameters
    ----------
    shape : (H, W) pixels
    seed : int
    n_nuclei : int, optional
        Number of nuclei (default: covers about 35% of the image).
    radius : (float, float)
        Range of the ellipses' semi-axes in pixels.
    noise : float
        Std of Gaussian noise relative to the mean nucleus intensity.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    mean_area = np.pi * np.mean(radius) ** 2
    if n_nuclei is None:
        n_nuclei = max(1, int(0.35 * h * w / mean_area))
    # clustered centres so that many nuclei touch
    n_clusters = max(1, n_nuclei // 4)
    cluster_centres = rng.uniform([0, 0], [h, w], (n_clusters, 2))
    centres = cluster_centres[rng.integers(0, n_clusters, n_nuclei)] + rng.normal(0, 2.0 * radius[1], (n_nuclei, 2))
    axes = rng.uniform(radius[0], radius[1], (n_nuclei, 2))
    angle = rng.uniform(0, np.pi, n_nuclei)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    best = np.full(shape, np.inf)
    instances = np.zeros(shape, np.int32)
    intensity = np.zeros(shape)
    levels = rng.uniform(0.5, 1.0, n_nuclei)
    for i in range(n_nuclei):
        cy, cx = centres[i]
        r = int(np.ceil(axes[i].max())) + 1
        y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
        x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        c, s = np.cos(angle[i]), np.sin(angle[i])
        u, v = (c * dy + s * dx) / axes[i, 0], (-s * dy + c * dx) / axes[i, 1]
        d = np.sqrt(u**2 + v**2)
        win_best = best[y0:y1, x0:x1]
        take = (d < 1.0) & (d < win_best)
        win_best[take] = d[take]
        instances[y0:y1, x0:x1][take] = i + 1
        intensity[y0:y1, x0:x1][take] = levels[i] * (1 - 0.25 * d[take] ** 2)
    # drop nuclei swallowed by neighbours or clipped to slivers, renumber 1..N
    ids, counts = np.unique(instances[instances > 0], return_counts=True)
    keep = ids[counts >= 20]
    lut = np.zeros(n_nuclei + 1, np.int32)
    lut[keep] = np.arange(1, len(keep) + 1)
    instances = lut[instances]
    intensity[instances == 0] = 0
    texture = 1 + 0.08 * _smooth_noise(rng, shape, 1.2)
    image = ndimage.gaussian_filter(intensity * texture, 1.0) + 0.05
    image = image + noise * rng.standard_normal(shape)
    image = np.clip(image, 0, None)
    labels = np.where(instances > 0, 255, 0).astype(np.uint8)
    return SyntheticSample((image / image.max() * 4000 + 100).astype(np.uint16), labels, instances)
