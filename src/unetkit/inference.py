"""Overlap-tile prediction of images of any size in bounded memory (Ronneberger et al. 2015, Fig. 2)."""

from __future__ import annotations

import numpy as np
import torch

from . import geometry
from .devices import autocast as _autocast
from .model import UNet
from .normalize import intensity_range, normalize
from .tiling import auto_tile_shape, mirror_indices, plan_axis, plan_tiles, read_window

__all__ = ["predict", "DIHEDRAL"]

# The 8 symmetries of the square as (number of 90-degree rotations, flip left-right first).
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


def _as_chw(image, in_channels: int):
    """View an (H, W) or (C, H, W) sliceable array as (C, H, W) without reading it."""
    if image.ndim == 2:
        if in_channels != 1:
            raise ValueError(f"model expects {in_channels} channels, got a 2-D (H, W) image")
        return _ChannelView(image)
    if image.ndim == 3:
        if image.shape[0] != in_channels:
            raise ValueError(
                f"model expects images (H, W) or ({in_channels}, H, W), got shape {tuple(image.shape)}"
            )
        return image
    raise ValueError(f"expected an image (H, W) or (C, H, W), got shape {tuple(image.shape)}")


class _ChannelView:
    """Adds a leading channel axis to a 2-D sliceable array, lazily."""

    def __init__(self, array):
        self.array = array
        self.shape = (1, *array.shape)
        self.dtype = array.dtype
        self.ndim = 3

    def __getitem__(self, key):
        _, *rest = key
        return np.asarray(self.array[tuple(rest)])[None]


def _tile_shape(tile_shape, image_hw, model: UNet, memory_budget: int, batch_size: int,
                device: torch.device | None = None) -> tuple[int, int]:
    cfg = model.config
    if isinstance(tile_shape, str):
        if tile_shape != "auto":
            raise ValueError(f"tile_shape must be 'auto', an int or (h, w), got {tile_shape!r}")
        tile = auto_tile_shape(
            image_hw,
            depth=cfg.depth,
            padding=cfg.padding,
            base_features=cfg.base_features,
            memory_budget=memory_budget,
            batch_size=batch_size,
        )
        tile = tuple(_balanced_tile(s, t, cfg) for s, t in zip(image_hw, tile))
        if device is not None and device.type == "cpu":
            tile = _cache_friendly_tile(image_hw, tile, cfg)
        return tile
    shape = (int(tile_shape), int(tile_shape)) if np.ndim(tile_shape) == 0 else tuple(int(t) for t in tile_shape)
    if len(shape) != 2:
        raise ValueError(f"tile_shape must be an int or (h, w), got {tile_shape!r}")
    geometry.check_input_shape(shape, depth=cfg.depth, padding=cfg.padding)
    return shape


# On CPU, tiles up to about 1000 px run faster per FLOP than larger ones (the
# feature maps of one level stay nearer the caches): at width 16, 876 px tiles
# reached 86-104 GFLOP/s against 63-75 for 1212-1692 px tiles on the 2-core
# development machine (benchmarks/README.md). Worth up to 20% more FLOPs.
CPU_TILE_SIDE = 1000
CPU_FLOP_ALLOWANCE = 1.2


def _tiled_flops(image_hw, tile, cfg) -> int:
    count = len(plan_tiles(image_hw, tile, depth=cfg.depth, padding=cfg.padding)[1])
    return count * geometry.forward_flops(tile, depth=cfg.depth, base_features=cfg.base_features,
                                          in_channels=cfg.in_channels, num_classes=cfg.num_classes,
                                          padding=cfg.padding)


def _cache_friendly_tile(image_hw, tile, cfg) -> tuple[int, int]:
    """``tile``, or tiles of at most ``CPU_TILE_SIDE`` px when they cost at most 20% more FLOPs."""
    cap = geometry.nearest_valid_input_sizes(CPU_TILE_SIDE, depth=cfg.depth, padding=cfg.padding)[0]
    if cap is None or max(tile) <= cap:
        return tile
    try:
        smaller = tuple(_balanced_tile(s, min(t, cap), cfg) for s, t in zip(image_hw, tile))
    except ValueError:  # the cap is below the smallest tile this network can plan (deep same-padding nets)
        return tile
    if _tiled_flops(image_hw, smaller, cfg) <= CPU_FLOP_ALLOWANCE * _tiled_flops(image_hw, tile, cfg):
        return smaller
    return tile


def _balanced_tile(size: int, tile: int, cfg) -> int:
    """The smallest tile that covers ``size`` pixels with no more tiles than ``tile`` does.

    The largest tile within the memory budget usually leaves the last tile of
    a row mostly outside the image: 4096 px in 1740 px tiles (output 1556)
    needs 3 tiles, and so do 1564 px tiles (output 1380), which compute about
    20% fewer pixels at the same number of tiles (2048 px: 2 tiles of 1212 px
    instead of 1740, half the work). The tile count is non-increasing in the
    tile size, so shrinking until it would grow finds the smallest.
    """
    def count(t):
        return len(plan_axis(size, t, depth=cfg.depth, padding=cfg.padding).starts)

    n, unit = count(tile), geometry.size_step(cfg.depth)
    while True:
        try:
            if count(tile - unit) > n:
                return tile
        except ValueError:  # below the smallest valid tile
            return tile
        tile -= unit


def predict(
    model: UNet,
    image,
    *,
    tile_shape="auto",
    batch_size: int = 1,
    device=None,
    tta: bool = False,
    progress: bool = False,
    normalize_input: bool = True,
    memory_budget: int = 2 * 1024**3,
    amp: bool = False,
    channels_last: bool = True,
    out=None,
    out_dtype=np.float32,
    on_device: bool | None = None,
) -> np.ndarray:
    """Softmax class probabilities of an image of any size, by overlap-tile inference.

    Parameters
    ----------
    model : UNet
        In eval mode during the call (restored afterwards); its
        ``config.normalization`` is applied to the raw image.
    image : array-like, (H, W) or (C, H, W)
        Any sliceable array: numpy array, memmap, zarr array. Only the tiles'
        bounding boxes are read, so images larger than memory work (with ``out``).
        ``H, W >= 1``; borders are mirror-padded.
    tile_shape : "auto", int or (int, int)
        INPUT tile size as in the paper (572 -> 388 output at depth 4). ``"auto"``
        takes as few tiles as the largest tile within ``memory_budget`` needs
        (one tile for images that fit), each as small as that count allows; on
        CPU it takes tiles of at most ~1000 px instead when they cost at most
        20% more FLOPs (they run faster per FLOP: 4096x4096 at width 16 in
        36 tiles of 876 px is ~1.2x faster, with ~40% less memory, than in 9
        tiles of 1564 px). An explicit size must be valid for the model
        (``ValueError`` names the nearest valid sizes).
    batch_size : int
        Tiles per forward pass.
    device : torch.device or str, optional
        Where to run; default: the device of the model's parameters.
    tta : bool
        Average the softmax over the 8 flips/rotations (the paper averaged 7
        rotations). Reads the whole image into memory.
    progress : bool
        Show a tqdm progress bar over tiles.
    normalize_input : bool
        Apply the model's intensity normalisation (turn off for pre-normalised input).
    memory_budget : int
        Bytes of activation memory the automatic tile may use.
    amp : bool
        bfloat16 autocast on CUDA (ignored on CPU, where bf16 is slow). cuDNN
        autotuning (``cudnn.benchmark``) is left as the caller set it: on an
        H200 it gained nothing measurable for prediction, while the first
        autotuned call took seconds and up to 67 GB of transient workspace
        (``benchmarks/bench_gpu.py``).
    channels_last : bool
        Run convolutions in channels-last memory format (faster on CPU and GPU).
    out : array-like, optional
        Writable (C, H, W) array (e.g. zarr or memmap) to fill instead of
        allocating one in memory.
    out_dtype : numpy dtype
        dtype of the returned probabilities when ``out`` is None.
    on_device : bool, optional
        Keep the whole normalised image and its probabilities in device memory
        for the call: one upload, tiles cut on the device, one download, and
        no host-device synchronisation per tile. Default (None): on CUDA when
        both fit in ``memory_budget`` (in addition to the tiles' activations,
        which may use another ``memory_budget``) and ``out`` is a numpy array;
        otherwise tiles stream from and to host memory (bounded memory for any
        size). Both paths give the same numbers (tested bit for bit).

    Returns
    -------
    numpy.ndarray or ``out``, (num_classes, H, W), float32 by default
        Softmax probabilities.
    """
    cfg = model.config
    chw = _as_chw(image, cfg.in_channels)
    _, height, width = chw.shape
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1x1, got {height}x{width}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    tile = _tile_shape(tile_shape, (height, width), model, memory_budget, batch_size, device)
    if out is None:
        out = np.zeros((cfg.num_classes, height, width), dtype=out_dtype)
    elif tuple(out.shape) != (cfg.num_classes, height, width):
        raise ValueError(f"out must have shape {(cfg.num_classes, height, width)}, got {tuple(out.shape)}")

    if normalize_input:
        offset, scale = intensity_range(chw, cfg.normalization, channels=True)
    else:
        offset, scale = np.zeros(cfg.in_channels), np.ones(cfg.in_channels)

    dtype = next(model.parameters()).dtype
    was_training = model.training
    model.eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    in_channels_last = any(p.ndim == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
                           for p in model.parameters())
    was_fmt = torch.channels_last if in_channels_last else torch.contiguous_format
    model.to(memory_format=fmt)  # once per call (not per TTA transform); restored below
    if on_device is None:
        io_bytes = height * width * (12 * cfg.in_channels + 8 * cfg.num_classes)  # float64 input + output
        on_device = device.type == "cuda" and isinstance(out, np.ndarray) and io_bytes <= memory_budget
    try:
        return _predict(model, chw, out, tile, batch_size, device, dtype, offset, scale, progress, amp,
                        channels_last, tta, on_device, cfg)
    finally:
        model.train(was_training)
        if fmt != was_fmt:
            model.to(memory_format=was_fmt)


def _predict(model, chw, out, tile, batch_size, device, dtype, offset, scale, progress, amp, channels_last, tta,
             on_device, cfg):
    """Fill ``out`` (C, H, W) with the tiled prediction of ``chw``; with ``tta`` the mean over the 8 transforms."""
    _, height, width = chw.shape
    tiles_fn = _predict_tiles_on_device if on_device else _predict_tiles
    if not tta:
        tiles_fn(model, chw, out, tile, batch_size, device, dtype, offset, scale, progress, amp, channels_last, cfg)
        return out
    # TTA: the image is read once, each transform is predicted and mapped back.
    full = np.asarray(chw[:, :, :])
    acc = np.zeros((cfg.num_classes, height, width), dtype=np.float64)
    for k, flip in DIHEDRAL:
        x = np.rot90(full[:, :, ::-1] if flip else full, k, axes=(1, 2))
        tshape = tile if x.shape[1:] == (height, width) else tile[::-1]
        prob = np.zeros((cfg.num_classes, *x.shape[1:]), dtype=np.float64)
        tiles_fn(model, x, prob, tshape, batch_size, device, dtype, offset, scale, progress, amp, channels_last, cfg)
        back = np.rot90(prob, -k, axes=(1, 2))
        acc += back[:, :, ::-1] if flip else back
    out[...] = (acc / len(DIHEDRAL)).astype(out.dtype, copy=False)
    return out


def _tile_plan(height: int, width: int, tile, cfg):
    """Tiles of an (H, W) image and the mirror-padded row and column indices of each tile start."""
    plans, tiles = plan_tiles((height, width), tile, depth=cfg.depth, padding=cfg.padding)
    rows = {s: mirror_indices(s, s + tile[0], height, plans[0].margin) for s in plans[0].starts}
    cols = {s: mirror_indices(s, s + tile[1], width, plans[1].margin) for s in plans[1].starts}
    return tiles, rows, cols


def _run_tiles(model, tiles, batch_size, device, amp, channels_last, progress, read, write):
    """Softmax of the model over ``tiles`` in batches.

    ``read(batch)`` returns the (B, C, T, T) input tensor on ``device``;
    ``write(batch, prob)`` stores the (B, num_classes, t, t) probabilities
    (float32, or float64 for a float64 model) of those tiles.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tiles), desc="tiles", unit="tile", leave=False)
    try:
        with torch.inference_mode(), _autocast(device, amp):
            for i in range(0, len(tiles), batch_size):
                batch = tiles[i : i + batch_size]
                logits = model(read(batch).contiguous(memory_format=fmt))
                write(batch, torch.softmax(logits.float() if amp else logits, dim=1))
                if bar is not None:
                    bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()


def _predict_tiles(model, chw, out, tile, batch_size, device, dtype, offset, scale, progress, amp, channels_last, cfg):
    """Fill ``out`` tile by tile, reading each tile's window from ``chw`` on the host (bounded memory)."""
    _, height, width = chw.shape
    tiles, rows, cols = _tile_plan(height, width, tile, cfg)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32

    def read(batch):
        x = np.stack([normalize(read_window(chw, rows[t.read[0].start], cols[t.read[1].start]), offset, scale,
                                dtype=np_dtype) for t in batch])
        return torch.from_numpy(x).to(device=device, dtype=dtype, non_blocking=True)

    def write(batch, prob):
        for t, p in zip(batch, prob.cpu().numpy()):
            out[(slice(None), *t.write)] = p[(slice(None), *t.crop)]

    _run_tiles(model, tiles, batch_size, device, amp, channels_last, progress, read, write)


def _predict_tiles_on_device(model, chw, out, tile, batch_size, device, dtype, offset, scale, progress, amp,
                             channels_last, cfg):
    """As :func:`_predict_tiles`, with the image and the probabilities held on ``device``.

    The image is uploaded in its own dtype (uint8 stays 1 byte per pixel) and
    normalised there with the same float64 arithmetic as
    :func:`unetkit.normalize.normalize`; mirror-padded tiles are gathered with
    the same indices; nothing returns to the host until the last tile is done.
    """
    _, height, width = chw.shape
    tiles, rows, cols = _tile_plan(height, width, tile, cfg)
    rows = {s: torch.as_tensor(i, device=device) for s, i in rows.items()}
    cols = {s: torch.as_tensor(i, device=device) for s, i in cols.items()}
    raw = np.asarray(chw[:, :, :])
    if not raw.dtype.isnative or raw.dtype.kind not in "iuf" or raw.dtype in (np.uint32, np.uint64):
        raw = raw.astype(np.float64)  # dtypes torch cannot take as they are
    elif raw.dtype == np.uint16:
        raw = raw.astype(np.int32)
    image = torch.from_numpy(np.ascontiguousarray(raw)).to(device, non_blocking=True)
    off = torch.as_tensor(offset, dtype=torch.float64, device=device)[:, None, None]
    sc = torch.as_tensor(scale, dtype=torch.float64, device=device)[:, None, None]
    work = torch.float64 if dtype == torch.float64 else torch.float32
    # as normalize(): cast to the working dtype first, then float64 arithmetic
    image = ((image.to(work).to(torch.float64) - off) / sc).to(work).to(dtype)
    out_dtype = torch.float64 if np.dtype(out.dtype) == np.float64 else torch.float32
    probs = torch.empty((cfg.num_classes, height, width), dtype=out_dtype, device=device)

    def read(batch):
        return torch.stack([image[:, rows[t.read[0].start]][:, :, cols[t.read[1].start]] for t in batch])

    def write(batch, prob):
        for t, p in zip(batch, prob):
            probs[(slice(None), *t.write)] = p[(slice(None), *t.crop)]

    _run_tiles(model, tiles, batch_size, device, amp, channels_last, progress, read, write)
    out[...] = probs.cpu().numpy()
