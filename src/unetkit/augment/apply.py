"""Applying sampled parameters: one sampling grid, one resampling per array, gray values last.

Offset, rotation, flips and the elastic field are composed into ONE grid;
image (cubic), labels (nearest, values kept exactly) and weights (linear) are
each resampled once with :func:`torch.nn.functional.grid_sample`, mirrored
where the grid leaves the image. Maps that send pixel centres onto pixel
centres are gathered by index instead (exact and faster), with the mirror
rule of :func:`unetkit.tiling.mirror_index`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..tiling import mirror_index
from .elastic import _cubic_matrix
from .params import AugmentConfig, AugmentParams, _check_shape2, _label_margin
from .sample import sample_params

__all__ = ["apply_params", "augment"]

# Float32 represents every integer up to 2**24 exactly: labels within that
# range can go through the float32 nearest-neighbour path without change.
_FLOAT32_EXACT_INT = 2**24


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
    image, labels, weights = _check_arrays(image, labels, weights)
    in_shape = image.shape[-2:]
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
        out_weights = None if weights is None else _take(weights, *sub).astype(np.float32, copy=False)
        return out_image, out_labels, out_weights

    grid = _sampling_grid(params, in_shape)  # (h, w, 2), float32, normalised
    img = _to_tensor(image, torch.float32)
    out = _gray_value(_grid_sample(img if img.ndim == 3 else img[None], grid, "bicubic"), params)
    out_image = (out if image.ndim == 3 else out[0]).numpy()
    out_labels = out_weights = None
    if labels is not None or weights is not None:
        lgrid = grid
        if label_shape != out_shape:
            lgrid = grid[margin[0] : margin[0] + label_shape[0], margin[1] : margin[1] + label_shape[1]].contiguous()
        if labels is not None:
            out_labels = _sample_labels(labels, lgrid)
        if weights is not None:
            out_weights = _grid_sample(_to_tensor(weights, torch.float32)[None], lgrid, "bilinear")[0].numpy()
    return out_image, out_labels, out_weights


def _check_arrays(image, labels, weights):
    """The arrays as numpy, checked: image (H, W) or (C, H, W) real and >= 2x2; labels and weights (H, W)."""
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
            raise ValueError(f"labels must have the image's shape (H, W) = {in_shape}, got {labels.shape}")
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
            raise ValueError(f"labels must have an integer or bool dtype, got {labels.dtype}")
    if weights is not None:
        weights = np.asarray(weights)
        if weights.shape != in_shape:
            raise ValueError(f"weights must have the image's shape (H, W) = {in_shape}, got {weights.shape}")
        if not (np.issubdtype(weights.dtype, np.number) and not np.iscomplexobj(weights)):
            raise ValueError(f"weights must be real-valued, got dtype {weights.dtype}")
    return image, labels, weights


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
    rows = mirror_index(rows.astype(np.int64), in_shape[0])
    cols = mirror_index(cols.astype(np.int64), in_shape[1])
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
