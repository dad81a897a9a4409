"""Overlap-tile geometry and the whole tile policy (Ronneberger et al. 2015, Fig. 2): pure arithmetic.

An image of any size is covered by input tiles of one fixed shape laid on the
mirror-padded image. Coordinates: the *padded* image has the source image at
offset ``margin`` and is extended by mirroring (reflection without repeating
the edge pixel) on every side, as far as the tiles need. A tile's output covers
image pixels ``[start, start + out)`` where ``start`` is the tile's input offset
in padded coordinates. With valid convolutions the output of a tile at an input
offset that is a multiple of ``2**depth`` equals the same window of one pass over
the whole padded image, so tiles join without seams and need no blending.

A :class:`Tile` carries everything a caller needs: its ``read`` / ``crop`` /
``write`` slices and the mirror indices (``rows``, ``cols``) of its input
window in the source image. :func:`choose_tile_shape` is the one place that
decides the tile size: an explicit size is checked, ``"auto"`` takes the
largest tile within a memory budget, shrinks it to the smallest with the
same tile count, and on CPU prefers cache-sized tiles when they cost few
more FLOPs (``benchmarks/README.md`` has the measurements behind the rule).
No model is called here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import geometry

__all__ = [
    "AxisPlan",
    "Tile",
    "plan_axis",
    "plan_tiles",
    "mirror_index",
    "mirror_indices",
    "read_window",
    "tile_memory_bytes",
    "auto_tile_shape",
    "balanced_tile",
    "tiled_flops",
    "choose_tile_shape",
    "CPU_TILE_SIDE",
    "CPU_FLOP_ALLOWANCE",
]


@dataclass(frozen=True)
class AxisPlan:
    """Tiling along one axis.

    Attributes
    ----------
    size : image size (pixels)
    tile : input tile size
    out : pixels of output kept per tile (the model's output for valid padding)
    margin : context pixels per side (input offset of the kept output)
    crop_offset : where the kept output starts inside the model's output
        (0 for valid padding; ``margin`` for same padding)
    starts : tile input offsets in padded coordinates (= output offsets in image coordinates)
    """

    size: int
    tile: int
    out: int
    margin: int
    crop_offset: int
    starts: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Tile:
    """One tile.

    Attributes
    ----------
    read : (slice, slice)
        Input window in padded coordinates.
    crop : (slice, slice)
        Kept part of the model's output.
    write : (slice, slice)
        Where the kept output goes, in image coordinates.
    rows, cols : ndarray of int64
        Source-image indices of the input window's rows and columns, mirrored
        at the image borders (:func:`mirror_indices`); ``read_window(image,
        tile.rows, tile.cols)`` is the tile's input.
    """

    read: tuple[slice, slice]
    crop: tuple[slice, slice]
    write: tuple[slice, slice]
    rows: np.ndarray
    cols: np.ndarray


def _halo_for_same(depth: int) -> int:
    # A same-padded U-Net sees as far as the valid one (its receptive field
    # reaches context_margin pixels per side). Discarding a halo at least that
    # wide, on the pooling grid, makes tiles independent of the zero padding
    # at their edges: the tiled result again equals one pass over the image.
    unit = geometry.size_step(depth)
    return unit * math.ceil(geometry.context_margin(depth=depth) / unit)


def plan_axis(size: int, tile: int, *, depth: int = 4, padding: str = "valid") -> AxisPlan:
    """Cover ``size`` image pixels with input tiles of ``tile`` pixels along one axis.

    Tile offsets are multiples of ``2**depth`` (so the pooling grid stays
    aligned) and the step is the kept output size rounded down to that multiple.
    """
    if size < 1:
        raise ValueError(f"image size must be >= 1, got {size}")
    geometry.check_input_shape((tile,), depth=depth, padding=padding)
    step_unit = geometry.size_step(depth)
    if padding == "valid":
        margin = geometry.context_margin(depth=depth)
        out = geometry.output_size(tile, depth=depth)
        crop_offset = 0
    else:
        margin = _halo_for_same(depth)
        out = tile - 2 * margin
        crop_offset = margin
        if out < step_unit:
            raise ValueError(
                f"tile {tile} too small for same padding: needs at least {2 * margin + step_unit} pixels"
            )
    step = (out // step_unit) * step_unit
    if size <= out:
        n = 1
    elif step == 0:
        smallest = geometry.valid_input_size_for_output(step_unit, depth=depth, padding=padding)
        raise ValueError(f"tile {tile} keeps only {out} output pixels; tiles need >= {smallest} pixels")
    else:
        n = 1 + math.ceil((size - out) / step)
    return AxisPlan(size, tile, out, margin, crop_offset, tuple(k * step for k in range(n)))


def plan_tiles(image_shape: tuple[int, int], tile_shape: tuple[int, int], *, depth: int = 4, padding: str = "valid"):
    """All tiles covering an (H, W) image, row-major; their ``write`` windows partition the image.

    Returns
    -------
    plans : tuple of two AxisPlan
    tiles : list of Tile (with their mirror indices)
    """
    plans = tuple(plan_axis(s, t, depth=depth, padding=padding) for s, t in zip(image_shape, tile_shape))
    axis_parts = []
    for p in plans:
        parts = []
        for i, s in enumerate(p.starts):
            # tiles partition the image: each keeps the pixels up to the next tile's start (the last, the rest)
            keep = min(p.out if i == len(p.starts) - 1 else p.starts[i + 1] - s, p.size - s)
            parts.append((slice(s, s + p.tile), slice(p.crop_offset, p.crop_offset + keep), slice(s, s + keep),
                          mirror_indices(s, s + p.tile, p.size, p.margin)))
        axis_parts.append(parts)
    tiles = [Tile(read=(rr, cr), crop=(rc, cc), write=(rw, cw), rows=ri, cols=ci)
             for rr, rc, rw, ri in axis_parts[0] for cr, cc, cw, ci in axis_parts[1]]
    return plans, tiles


def mirror_index(positions: np.ndarray, size: int) -> np.ndarray:
    """Mirror integer positions into ``[0, size - 1]`` as ``np.pad(mode="reflect")`` does.

    Reflection about the first and last pixel without repeating them,
    repeated as often as needed; a 1-pixel axis maps everything to 0. The one
    mirror rule of unetkit (overlap-tile context and augmentation alike).
    """
    p = np.asarray(positions, dtype=np.int64)
    if size == 1:
        return np.zeros_like(p)
    period = 2 * (size - 1)
    p = np.mod(p, period)
    return np.where(p >= size, period - p, p)


def mirror_indices(start: int, stop: int, n: int, margin: int) -> np.ndarray:
    """Source indices for padded coordinates ``[start, stop)`` (source at offset ``margin``).

    See :func:`mirror_index`: even a 1-pixel image can be padded to any size.
    """
    return mirror_index(np.arange(start, stop, dtype=np.int64) - margin, n)


def read_window(image, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Read ``image[..., rows, :][..., cols]`` from any sliceable array, touching only the bounding box.

    ``image`` is (C, H, W); numpy arrays, memmaps and zarr arrays are read with
    one basic slice of the bounding box, then fancy-indexed in memory.
    """
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    box = np.asarray(image[:, r0:r1, c0:c1])
    return box[:, rows - r0][:, :, cols - c0]


def tile_memory_bytes(tile_shape: tuple[int, int], *, base_features: int, batch_size: int = 1,
                      bytes_per_value: int = 4) -> int:
    """Rough peak activation memory of one inference forward pass.

    The full-resolution level holds about eight feature maps of
    ``base_features`` channels at once (skip, conv outputs, concatenation);
    deeper levels add a geometric series worth about a third more.
    """
    return int(11 * base_features * tile_shape[0] * tile_shape[1] * bytes_per_value * batch_size)


def auto_tile_shape(
    image_shape: tuple[int, int],
    *,
    depth: int = 4,
    padding: str = "valid",
    base_features: int = 64,
    memory_budget: int = 2 * 1024**3,
    batch_size: int = 1,
) -> tuple[int, int]:
    """The largest useful tile within a memory budget.

    One tile that covers the whole image is best (the context margin is paid
    once, not per tile): a 512x512 image at depth 4 runs as one 700x700 tile
    with 516x516 output. When that exceeds ``memory_budget`` bytes, the longer
    side shrinks in steps of ``2**depth`` until it fits.
    """
    unit = geometry.size_step(depth)
    if padding == "valid":
        want = [geometry.valid_input_size_for_output(s, depth=depth) for s in image_shape]
        smallest = geometry.min_input_size(depth=depth)
    else:
        halo = _halo_for_same(depth)
        want = [unit * math.ceil((s + 2 * halo) / unit) for s in image_shape]
        smallest = 2 * halo + unit
    # never shrink below a tile whose output is at least as wide as its context
    # (4 margins in all): smaller tiles spend most of their FLOPs on the margin
    margin = geometry.context_margin(depth=depth, padding=padding)
    floor = geometry.nearest_valid_input_sizes(max(smallest, 4 * margin), depth=depth, padding=padding)[1]
    shape = list(want)
    while tile_memory_bytes(tuple(shape), base_features=base_features, batch_size=batch_size) > memory_budget:
        axis = 0 if shape[0] >= shape[1] else 1
        if shape[axis] - unit < floor:
            other = 1 - axis
            if shape[other] - unit < floor:
                break
            axis = other
        shape[axis] -= unit
    return tuple(shape)


def balanced_tile(size: int, tile: int, *, depth: int = 4, padding: str = "valid") -> int:
    """The smallest tile that covers ``size`` pixels with no more tiles than ``tile`` does.

    The largest tile within the memory budget usually leaves the last tile of
    a row mostly outside the image: 4096 px in 1740 px tiles (output 1556)
    needs 3 tiles, and so do 1564 px tiles (output 1380), which compute about
    20% fewer pixels at the same number of tiles (2048 px: 2 tiles of 1212 px
    instead of 1740, half the work). The tile count is non-increasing in the
    tile size, so shrinking until it would grow finds the smallest.
    """
    def count(t):
        return len(plan_axis(size, t, depth=depth, padding=padding).starts)

    n, unit = count(tile), geometry.size_step(depth)
    while True:
        try:
            if count(tile - unit) > n:
                return tile
        except ValueError:  # below the smallest valid tile
            return tile
        tile -= unit


def tiled_flops(image_shape: tuple[int, int], tile_shape: tuple[int, int], config) -> int:
    """FLOPs of covering an (H, W) image with tiles of ``tile_shape`` for a network of ``config``.

    ``config`` is a :class:`unetkit.model.ModelConfig` (depth, padding,
    base_features, in_channels, num_classes).
    """
    count = len(plan_tiles(image_shape, tile_shape, depth=config.depth, padding=config.padding)[1])
    return count * geometry.forward_flops(tile_shape, depth=config.depth, base_features=config.base_features,
                                          in_channels=config.in_channels, num_classes=config.num_classes,
                                          padding=config.padding)


# On CPU, tiles up to about 1000 px run faster per FLOP than larger ones (the
# feature maps of one level stay nearer the caches; measured in
# benchmarks/README.md). Worth up to 20% more FLOPs.
CPU_TILE_SIDE = 1000
CPU_FLOP_ALLOWANCE = 1.2


def _cache_friendly_tile(image_shape, tile, config) -> tuple[int, int]:
    """``tile``, or tiles of at most ``CPU_TILE_SIDE`` px when they cost at most 20% more FLOPs."""
    depth, padding = config.depth, config.padding
    cap = geometry.nearest_valid_input_sizes(CPU_TILE_SIDE, depth=depth, padding=padding)[0]
    if cap is None or max(tile) <= cap:
        return tile
    try:
        smaller = tuple(balanced_tile(s, min(t, cap), depth=depth, padding=padding) for s, t in zip(image_shape, tile))
    except ValueError:  # the cap is below the smallest tile this network can plan (deep same-padding nets)
        return tile
    if tiled_flops(image_shape, smaller, config) <= CPU_FLOP_ALLOWANCE * tiled_flops(image_shape, tile, config):
        return smaller
    return tile


def choose_tile_shape(tile_shape, image_shape: tuple[int, int], config, *, memory_budget: int = 2 * 1024**3,
                      batch_size: int = 1, device: str = "cpu") -> tuple[int, int]:
    """The input tile shape for predicting an (H, W) image with a network of ``config``.

    Parameters
    ----------
    tile_shape : "auto", int or (int, int)
        An explicit size must fit the network (``ValueError`` names the
        nearest valid sizes). ``"auto"``: as few tiles as the largest tile
        within ``memory_budget`` bytes needs (one for images that fit), each
        as small as that count allows (:func:`balanced_tile`); on ``device``
        type ``"cpu"``, tiles of at most ``CPU_TILE_SIDE`` px instead when they
        cost at most ``CPU_FLOP_ALLOWANCE`` times the FLOPs.
    config : ModelConfig
        depth, padding, base_features, in_channels, num_classes of the network.
    device : str
        Device type (``"cpu"``, ``"cuda"``...).
    """
    if isinstance(tile_shape, str):
        if tile_shape != "auto":
            raise ValueError(f"tile_shape must be 'auto', an int or (h, w), got {tile_shape!r}")
        tile = auto_tile_shape(image_shape, depth=config.depth, padding=config.padding,
                               base_features=config.base_features, memory_budget=memory_budget, batch_size=batch_size)
        tile = tuple(balanced_tile(s, t, depth=config.depth, padding=config.padding) for s, t in zip(image_shape, tile))
        if device == "cpu":
            tile = _cache_friendly_tile(image_shape, tile, config)
        return tile
    shape = (int(tile_shape), int(tile_shape)) if np.ndim(tile_shape) == 0 else tuple(int(t) for t in tile_shape)
    if len(shape) != 2:
        raise ValueError(f"tile_shape must be an int or (h, w), got {tile_shape!r}")
    geometry.check_input_shape(shape, depth=config.depth, padding=config.padding)
    return shape
