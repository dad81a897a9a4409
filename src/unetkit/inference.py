"""Overlap-tile prediction of images of any size in bounded memory (Ronneberger et al. 2015, Fig. 2).

:func:`predict` checks its input, asks :func:`unetkit.tiling.choose_tile_shape`
for the tile, and runs the tiles of :func:`unetkit.tiling.plan_tiles` through
one small frozen :class:`TileRun` (model, device, batching, normalisation):
either streamed from and to host memory (bounded memory for any size) or with
the whole image resident on the device (one upload, one download).
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass

import numpy as np
import torch

from .devices import autocast
from .model import UNet
from .normalize import intensity_range, normalize
from .tiling import Tile, choose_tile_shape, plan_tiles, read_window

__all__ = ["predict", "predict_region", "DIHEDRAL", "TileRun", "count_nonfinite", "clip_tiles"]

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


def count_nonfinite(array) -> int:
    """Number of NaN or infinite values of an array (0 for integer dtypes)."""
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.floating):
        return 0
    return int(a.size - np.count_nonzero(np.isfinite(a)))


def _check_finite(chw) -> None:
    """Refuse a numpy image with NaN or infinite pixels (lazy arrays are checked tile by tile)."""
    if isinstance(chw, _ChannelView):
        chw = chw.array
    if isinstance(chw, np.ndarray) and not isinstance(chw, np.memmap):
        bad = count_nonfinite(chw)
        if bad:
            raise ValueError(f"image has {bad} NaN or infinite pixel value(s); fix or mask them before segmenting")


@dataclass(frozen=True)
class TileRun:
    """Everything the tile loop needs besides the image: model, device, batching, normalisation.

    ``offset``/``scale`` (per channel, float64) normalise raw pixels as
    ``(x - offset) / scale`` (:func:`unetkit.normalize.normalize`).
    """

    model: UNet
    device: torch.device
    dtype: torch.dtype
    batch_size: int
    amp: bool
    channels_last: bool
    progress: bool
    offset: np.ndarray
    scale: np.ndarray
    on_device: bool
    callback: object = None  # callback(tiles done, tiles in all) after each batch; raising in it cancels

    @property
    def memory_format(self):
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def forward(self, tiles: list[Tile], read, write) -> None:
        """Softmax of the model over ``tiles`` in batches.

        ``read(batch)`` returns the (B, C, T, T) input tensor on the device;
        ``write(batch, prob)`` stores the (B, num_classes, t, t) probabilities
        (float32, or float64 for a float64 model) of those tiles.
        """
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(tiles), desc="tiles", unit="tile", leave=False)
        try:
            with torch.inference_mode(), autocast(self.device, self.amp):
                for i in range(0, len(tiles), self.batch_size):
                    batch = tiles[i : i + self.batch_size]
                    logits = self.model(read(batch).contiguous(memory_format=self.memory_format))
                    write(batch, torch.softmax(logits.float() if self.amp else logits, dim=1))
                    if bar is not None:
                        bar.update(len(batch))
                    if self.callback is not None:
                        self.callback(min(i + self.batch_size, len(tiles)), len(tiles))
        finally:
            if bar is not None:
                bar.close()

    def fill(self, chw, out, tile_shape: tuple[int, int]) -> None:
        """Fill ``out`` (num_classes, H, W) with the tiled prediction of ``chw`` (C, H, W)."""
        cfg = self.model.config
        _, tiles = plan_tiles(tuple(chw.shape[1:]), tile_shape, depth=cfg.depth, padding=cfg.padding)
        (self._fill_on_device if self.on_device else self._fill_streamed)(chw, out, tiles)

    def fill_region(self, chw, out, tile_shape: tuple[int, int], rows: slice, cols: slice, *,
                    tiles: str = "whole-image") -> int:
        """Fill ``out`` (num_classes, h, w) with the image's prediction in ``rows`` x ``cols`` (image coordinates).

        ``tiles="whole-image"``: the tiles of the whole image's plan
        (:func:`unetkit.tiling.plan_tiles` with ``tile_shape``) that reach into
        the region: every pixel is computed by the same tile, from the same
        input, as in :meth:`fill`, so the region equals that window of the whole
        prediction bit for bit; a tile that straddles the region's edge is
        computed for each region it reaches into. ``tiles="region"``: the
        region's own plan, started on the whole image's pooling grid (the
        start rounded down to a multiple of ``2**depth``) with the whole
        image's mirror context: no tile is computed twice, and the numbers
        equal the whole prediction's up to the rounding of other tile shapes.
        Returns the number of tiles run.
        """
        cfg = self.model.config
        if tiles == "whole-image":
            _, plan = plan_tiles(tuple(chw.shape[1:]), tile_shape, depth=cfg.depth, padding=cfg.padding)
            chosen = clip_tiles(plan, rows, cols)
        elif tiles == "region":
            chosen = _region_tiles(chw.shape[1:], rows, cols, cfg, self.device.type)
        else:
            raise ValueError(f"tiles must be 'whole-image' or 'region', got {tiles!r}")
        self._fill_streamed(chw, out, chosen)
        return len(chosen)

    def _fill_streamed(self, chw, out, tiles: list[Tile]) -> None:
        """Read each tile's window from ``chw`` on the host (bounded memory)."""
        np_dtype = np.float64 if self.dtype == torch.float64 else np.float32

        def read(batch):
            windows = []
            for t in batch:
                window = read_window(chw, t.rows, t.cols)
                bad = count_nonfinite(window)
                if bad:
                    raise ValueError(f"image has {bad} NaN or infinite pixel value(s) in the tile at rows "
                                     f"{t.write[0].start}-{t.write[0].stop}, columns {t.write[1].start}-"
                                     f"{t.write[1].stop}; fix or mask them before segmenting")
                windows.append(normalize(window, self.offset, self.scale, dtype=np_dtype))
            return torch.from_numpy(np.stack(windows)).to(device=self.device, dtype=self.dtype, non_blocking=True)

        def write(batch, prob):
            for t, p in zip(batch, prob.cpu().numpy()):
                out[(slice(None), *t.write)] = p[(slice(None), *t.crop)]

        self.forward(tiles, read, write)

    def _fill_on_device(self, chw, out, tiles: list[Tile]) -> None:
        """As :meth:`_fill_streamed`, with the image and the probabilities held on the device.

        The image is uploaded in its own dtype (uint8 stays 1 byte per pixel)
        and normalised there with the same float64 arithmetic as
        :func:`unetkit.normalize.normalize`; mirror-padded tiles are gathered
        with the same indices; nothing returns to the host until the last tile
        is done.
        """
        device, num_classes = self.device, self.model.config.num_classes
        _, height, width = chw.shape
        rows = {t.read[0].start: torch.as_tensor(t.rows, device=device) for t in tiles}
        cols = {t.read[1].start: torch.as_tensor(t.cols, device=device) for t in tiles}
        raw = np.asarray(chw[:, :, :])
        if not raw.dtype.isnative or raw.dtype.kind not in "iuf" or raw.dtype in (np.uint32, np.uint64):
            raw = raw.astype(np.float64)  # dtypes torch cannot take as they are
        elif raw.dtype == np.uint16:
            raw = raw.astype(np.int32)
        image = torch.from_numpy(np.ascontiguousarray(raw)).to(device, non_blocking=True)
        off = torch.as_tensor(self.offset, dtype=torch.float64, device=device)[:, None, None]
        sc = torch.as_tensor(self.scale, dtype=torch.float64, device=device)[:, None, None]
        work = torch.float64 if self.dtype == torch.float64 else torch.float32
        # as normalize(): cast to the working dtype first, then float64 arithmetic
        image = ((image.to(work).to(torch.float64) - off) / sc).to(work).to(self.dtype)
        out_dtype = torch.float64 if np.dtype(out.dtype) == np.float64 else torch.float32
        probs = torch.empty((num_classes, height, width), dtype=out_dtype, device=device)

        def read(batch):
            return torch.stack([image[:, rows[t.read[0].start]][:, :, cols[t.read[1].start]] for t in batch])

        def write(batch, prob):
            for t, p in zip(batch, prob):
                probs[(slice(None), *t.write)] = p[(slice(None), *t.crop)]

        self.forward(tiles, read, write)
        out[...] = probs.cpu().numpy()

    def fill_tta(self, chw, out, tile_shape: tuple[int, int]) -> None:
        """Fill ``out`` with the mean over the 8 flips and rotations (the image is read once)."""
        _, height, width = chw.shape
        full = np.asarray(chw[:, :, :])
        acc = np.zeros((self.model.config.num_classes, height, width), dtype=np.float64)
        for k, flip in DIHEDRAL:
            x = np.rot90(full[:, :, ::-1] if flip else full, k, axes=(1, 2))
            tshape = tile_shape if x.shape[1:] == (height, width) else tile_shape[::-1]
            prob = np.zeros((self.model.config.num_classes, *x.shape[1:]), dtype=np.float64)
            self.fill(x, prob, tshape)
            back = np.rot90(prob, -k, axes=(1, 2))
            acc += back[:, :, ::-1] if flip else back
        out[...] = (acc / len(DIHEDRAL)).astype(out.dtype, copy=False)


def clip_tiles(tiles: list[Tile], rows: slice, cols: slice) -> list[Tile]:
    """The tiles that write into ``rows`` x ``cols``, their ``crop``/``write`` cut to the region (``write`` relative to it)."""
    clipped = []
    for t in tiles:
        parts = []
        for write, crop, region in zip(t.write, t.crop, (rows, cols)):
            lo, hi = max(write.start, region.start), min(write.stop, region.stop)
            if lo >= hi:
                break
            shift = crop.start - write.start
            parts.append((slice(lo + shift, hi + shift), slice(lo - region.start, hi - region.start)))
        if len(parts) == 2:
            (cr, wr), (cc, wc) = parts
            clipped.append(Tile(read=t.read, crop=(cr, cc), write=(wr, wc), rows=t.rows, cols=t.cols))
    return clipped


def _region_tiles(image_hw, rows: slice, cols: slice, cfg, device_type: str) -> list[Tile]:
    """Tiles of a region's own plan on the whole image's pooling grid, clipped to the region."""
    from .tiling import mirror_indices

    unit = 2**cfg.depth
    starts = (rows.start - rows.start % unit, cols.start - cols.start % unit)
    size = (rows.stop - starts[0], cols.stop - starts[1])
    tile = choose_tile_shape("auto", size, cfg, device=device_type)
    plans, local = plan_tiles(size, tile, depth=cfg.depth, padding=cfg.padding)
    shifted = []
    for t in local:
        write = tuple(slice(w.start + o, w.stop + o) for w, o in zip(t.write, starts))
        ri, ci = (mirror_indices(r.start + o, r.stop + o, n, p.margin)
                  for r, o, n, p in zip(t.read, starts, image_hw, plans))
        shifted.append(Tile(read=t.read, crop=t.crop, write=write, rows=ri, cols=ci))
    return clip_tiles(shifted, rows, cols)


def predict_region(model: UNet, image, rows: slice, cols: slice, *, tile_shape: tuple[int, int],
                   offset: np.ndarray, scale: np.ndarray, batch_size: int = 1, out_dtype=np.float32,
                   tiles: str = "whole-image") -> np.ndarray:
    """Probabilities (num_classes, h, w) of the ``rows`` x ``cols`` window of a whole-image prediction.

    For block-wise (distributed) prediction: ``tile_shape`` is the whole
    image's tile (:func:`unetkit.tiling.choose_tile_shape`) and
    ``offset``/``scale`` its normalisation (:func:`unetkit.normalize.intensity_range`
    of the whole image); ``tiles`` as in :meth:`TileRun.fill_region`
    (``"whole-image"``: the same window of :func:`predict` bit for bit).
    The image is read only around the region.
    The model runs on its own device, in eval mode.
    """
    cfg = model.config
    chw = _as_chw(image, cfg.in_channels)
    is_torch = isinstance(model, torch.nn.Module)
    device = next(model.parameters()).device if is_torch else torch.device("cpu")
    dtype = next(model.parameters()).dtype if is_torch else torch.float32
    out = np.zeros((cfg.num_classes, rows.stop - rows.start, cols.stop - cols.start), dtype=out_dtype)
    run = TileRun(model=model, device=device, dtype=dtype, batch_size=batch_size, amp=False,
                  channels_last=is_torch, progress=False, offset=np.asarray(offset), scale=np.asarray(scale),
                  on_device=False)
    with _evaluating(model, run.memory_format if is_torch else None):
        run.fill_region(chw, out, tuple(tile_shape), rows, cols, tiles=tiles)
    return out


@contextlib.contextmanager
def _evaluating(model, memory_format):
    """``model`` in eval mode and, for a torch model, in ``memory_format`` (the input's: channels-last input needs
    channels-last weights), once per call rather than per tile or TTA transform; both restored after."""
    was_training = model.training
    was_format = _model_format(model) if memory_format is not None else None
    model.eval()
    if memory_format is not None and memory_format != was_format:
        model.to(memory_format=memory_format)
    try:
        yield
    finally:
        model.train(was_training)
        if memory_format is not None and memory_format != was_format:
            model.to(memory_format=was_format)


def _model_format(model: UNet):
    channels_last = any(p.ndim == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
                        for p in model.parameters())
    return torch.channels_last if channels_last else torch.contiguous_format


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
    callback=None,
) -> np.ndarray:
    """Softmax class probabilities of an image of any size, by overlap-tile inference.

    Parameters
    ----------
    model : UNet or unetkit.export.OnnxUNet
        In eval mode during the call (restored afterwards); its
        ``config.normalization`` is applied to the raw image. An exported
        ONNX graph (:class:`unetkit.export.OnnxUNet`) runs the same tiles in
        ONNX Runtime on the CPU.
    image : array-like, (H, W) or (C, H, W)
        Any sliceable array: numpy array, memmap, zarr array. Only the tiles'
        bounding boxes are read, so images larger than memory work (with ``out``).
        ``H, W >= 1``; borders are mirror-padded. NaN or infinite pixels are
        refused with their count (``ValueError``): a numpy image before any
        work, a lazy array when the tile that holds them is read.
    tile_shape : "auto", int or (int, int)
        INPUT tile size as in the paper (572 -> 388 output at depth 4); see
        :func:`unetkit.tiling.choose_tile_shape` for ``"auto"``. An explicit
        size must be valid for the model (``ValueError`` names the nearest
        valid sizes).
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
        bfloat16 autocast on CUDA and on CPUs with bf16 instructions
        (:func:`unetkit.devices.native_bf16`; ignored on other CPUs). cuDNN
        autotuning (``cudnn.benchmark``) is left as the caller set it
        (``benchmarks/README.md``: it gains nothing for prediction).
    channels_last : bool
        Run convolutions in channels-last memory format (faster on CPU and GPU).
    out : array-like, optional
        Writable (C, H, W) array (e.g. zarr or memmap) to fill instead of
        allocating one in memory.
    out_dtype : numpy dtype
        dtype of the returned probabilities when ``out`` is None.
    on_device : bool, optional
        Keep the whole normalised image and its probabilities in device memory
        for the call. Default (None): on CUDA when both fit in
        ``memory_budget`` and ``out`` is a numpy array; otherwise tiles stream
        from and to host memory. Both paths give the same numbers (tested bit
        for bit).
    callback : callable, optional
        ``callback(done, total)`` after each batch of tiles (with TTA, per
        transform); an exception raised in it stops the prediction (a GUI's
        cancel button).

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
    _check_finite(chw)
    is_torch = isinstance(model, torch.nn.Module)
    if is_torch:
        device = torch.device(device if device is not None else next(model.parameters()).device)
        dtype = next(model.parameters()).dtype
    else:  # an exported graph run by another runtime (unetkit.export.OnnxUNet): CPU, float32
        device, dtype = torch.device("cpu"), torch.float32
    tile = choose_tile_shape(tile_shape, (height, width), cfg, memory_budget=memory_budget, batch_size=batch_size,
                             device=device.type)
    if out is None:
        out = np.zeros((cfg.num_classes, height, width), dtype=out_dtype)
    elif tuple(out.shape) != (cfg.num_classes, height, width):
        raise ValueError(f"out must have shape {(cfg.num_classes, height, width)}, got {tuple(out.shape)}")
    if normalize_input:
        offset, scale = intensity_range(chw, cfg.normalization, channels=True)
    else:
        offset, scale = np.zeros(cfg.in_channels), np.ones(cfg.in_channels)
    if on_device is None:
        io_bytes = height * width * (12 * cfg.in_channels + 8 * cfg.num_classes)  # float64 input + output
        on_device = device.type == "cuda" and isinstance(out, np.ndarray) and io_bytes <= memory_budget
    run = TileRun(model=model, device=device, dtype=dtype, batch_size=batch_size, amp=amp,
                  channels_last=channels_last and is_torch, progress=progress, offset=offset, scale=scale,
                  on_device=on_device, callback=callback)
    with _evaluating(model, run.memory_format if is_torch else None):
        (run.fill_tta if tta else run.fill)(chw, out, tile)
    return out
