"""Overlap-tile geometry (Ronneberger et al. 2015, Fig. 2): pure arithmetic, no model calls.

An image of any size is covered by input tiles of one fixed shape laid on the
mirror-padded image. Coordinates: the *padded* image has the source image at
offset ``margin`` and is extended by mirroring (reflection without repeating
the edge pixel) on every side, as far as the tiles need. A tile's output covers
image pixels ``[start, start + out)`` where ``start`` is the tile's input offset
in padded coordinates. With valid convolutions the output of a tile at an input
offset that is a multiple of ``2**depth`` equals the same window of one pass over
the whole padded image, so tiles join without seams and need no blending.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import geometry

__all__ = ["AxisPlan", "Tile", "plan_axis", "plan_tiles", "mirror_indices", "read_window", "auto_tile_shape"]


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


@dataclass(frozen=True)
class Tile:
    """One tile: ``read`` (padded input coords), ``crop`` (model-output coords), ``write`` (image coords)."""

    read: tuple[slice, slice]
    crop: tuple[slice, slice]
    write: tuple[slice, slice]


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
    """All tiles covering an (H, W) image, row-major.

    Returns
    -------
    plans : tuple of two AxisPlan
    tiles : list of Tile
    """
    plans = tuple(plan_axis(s, t, depth=depth, padding=padding) for s, t in zip(image_shape, tile_shape))
    tiles = []
    for r in plans[0].starts:
        for c in plans[1].starts:
            slices = []
            for p, s in zip(plans, (r, c)):
                keep = min(p.out, p.size - s)
                slices.append((slice(s, s + p.tile), slice(p.crop_offset, p.crop_offset + keep), slice(s, s + keep)))
            (rr, rc, rw), (cr, cc, cw) = slices
            tiles.append(Tile(read=(rr, cr), crop=(rc, cc), write=(rw, cw)))
    return plans, tiles


def mirror_indices(start: int, stop: int, n: int, margin: int) -> np.ndarray:
    """Source indices for padded coordinates ``[start, stop)`` (source at offset ``margin``).

    Mirroring reflects about the first and last pixel without repeating them
    (numpy's ``np.pad(mode="reflect")``), repeated as often as needed, so even a
    1-pixel image can be padded to any size.
    """
    p = np.arange(start, stop, dtype=np.int64) - margin
    if n == 1:
        return np.zeros_like(p)
    period = 2 * (n - 1)
    p = np.mod(p, period)
    return np.where(p >= n, period - p, p)


def read_window(image, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Read ``image[..., rows, :][..., cols]`` from any sliceable array, touching only the bounding box.

    ``image`` is (C, H, W); numpy arrays, memmaps and zarr arrays are read with
    one basic slice of the bounding box, then fancy-indexed in memory.
    """
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    box = np.asarray(image[:, r0:r1, c0:c1])
    return box[:, rows - r0][:, :, cols - c0]


def tile_memory_bytes(tile_shape: tuple[int, int], *, base_features: int, batch_size: int = 1, bytes_per_value: int = 4) -> int:
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
