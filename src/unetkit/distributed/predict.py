"""Block-wise segmentation of Zarr / OME-Zarr volumes, in one process or on a Dask cluster.

The unit of work is one output block, aligned with the output chunks, of one
plane. A block task reads its block plus the network's context from the input
store (mirrored only at the image's true edges), runs the whole image's tiles
that reach into the block (:func:`unetkit.inference.predict_region`: the same
tiles, the same normalisation, hence bit for bit the numbers of a
single-process :func:`unetkit.predict`), writes its own chunks and then a
completion marker. Valid convolutions make blocks independent: no blending,
no locks. A rerun skips the blocks whose marker exists and removes the
marker temporaries that killed writers left; a chunk is written atomically
by zarr's local store, so a killed run never leaves a half-written block
behind a marker.

Normalisation statistics are computed once per plane, over the whole plane,
before any block runs (the same strided sample :func:`unetkit.predict` takes),
so blocks cannot disagree. On a cluster each worker loads the model once
(:class:`ModelPlugin`) and sets its torch thread count explicitly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from ..io import sha256_file

__all__ = ["SegmentConfig", "BlockJob", "segment_volume", "ModelPlugin", "run_block", "output_layout"]

_PLUGIN = "unetkit-model"
_DONE = ".unetkit_done"


@dataclass(frozen=True)
class SegmentConfig:
    """Options of :func:`segment_volume`.

    ``chunks``: output block (= chunk) size (rows, columns); default: the
    tile's output step times the smallest factor that reaches 1024 px, so that
    no tile straddles two blocks. ``tile_shape``: as for :func:`unetkit.predict`.
    ``tiles``: ``"whole-image"`` (default) runs the whole image's tiles, so the
    output equals single-process :func:`unetkit.predict` bit for bit; with a
    chunking that does not follow the tile grid a tile that straddles blocks
    is computed once per block (the log gives the factor). ``"region"`` plans
    each block's own tiles: nothing is computed twice, equal up to rounding.
    ``threads``: torch threads per worker (0: torch's default). ``instances``:
    also write ``labels/instances`` (connected components of ``P > threshold``,
    merged across blocks, objects under ``min_size`` pixels removed).
    """

    chunks: tuple[int, int] | None = None
    tile_shape: object = "auto"
    batch_size: int = 1
    threads: int = 0
    tiles: str = "whole-image"
    instances: bool = False
    threshold: float = 0.5
    min_size: int = 0
    progress: bool = False

    def __post_init__(self):
        if self.chunks is not None and (len(self.chunks) != 2 or min(self.chunks) < 1):
            raise ValueError(f"chunks must be two positive sizes (rows, columns), got {self.chunks}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.tiles not in ("whole-image", "region"):
            raise ValueError(f"tiles must be 'whole-image' or 'region', got {self.tiles!r}")
        if self.batch_size < 1 or self.threads < 0 or self.min_size < 0:
            raise ValueError("batch_size must be >= 1, threads and min_size >= 0")


@dataclass(frozen=True)
class BlockJob:
    """Everything a block task needs (small and picklable; the model travels by path)."""

    checkpoint: str
    source: str
    output: str
    axes: str
    tile_shape: tuple[int, int]
    chunks: tuple[int, int]
    batch_size: int
    tiles: str
    num_classes: int
    planes: int
    norm: tuple = field(repr=False)  # per plane: (offset tuple, scale tuple)

    def prob_axes(self) -> str:
        return ("c" if self.num_classes > 2 else "") + ("z" if "z" in self.axes else "") + "yx"

    def label_axes(self) -> str:
        return ("z" if "z" in self.axes else "") + "yx"


def output_layout(job: BlockJob, plane_shape: tuple[int, int]) -> dict:
    """Shapes, chunks and dtypes of the output arrays of ``job``."""
    z = (job.planes,) if "z" in job.axes else ()
    zc = (1,) if "z" in job.axes else ()
    prob = ((job.num_classes,) if job.num_classes > 2 else ()) + z + tuple(plane_shape)
    prob_chunks = ((job.num_classes,) if job.num_classes > 2 else ()) + zc + tuple(job.chunks)
    return {"probabilities": (prob, prob_chunks, "f4"), "mask": (z + tuple(plane_shape), zc + tuple(job.chunks), "u1")}


def _default_chunks(tile_shape, config) -> tuple[int, int]:
    from ..tiling import plan_axis

    out = []
    for t in tile_shape:
        step = plan_axis(10**6, t, depth=config.depth, padding=config.padding).starts[1]
        out.append(step * max(1, -(-1024 // step)))
    return tuple(out)


def _block_index(job: BlockJob, z: int, by: int, bx: int, plane_shape) -> tuple[slice, slice]:
    (cy, cx), (h, w) = job.chunks, plane_shape
    return slice(by * cy, min(h, (by + 1) * cy)), slice(bx * cx, min(w, (bx + 1) * cx))


def _marker(job: BlockJob, stage: str, z: int, by: int, bx: int) -> Path:
    return Path(job.output) / _DONE / f"{stage}-{z}-{by}-{bx}"


def run_block(job: BlockJob, z: int, by: int, bx: int, model) -> tuple[int, int, int]:
    """Predict one block of plane ``z``, write its probabilities and mask, then its completion marker."""
    import zarr

    from ..inference import predict_region
    from ..io import atomic_path
    from ..io.ome_zarr import open_volume

    volume = open_volume(job.source)
    rows, cols = _block_index(job, z, by, bx, volume.plane_shape)
    offset, scale = (np.asarray(v, dtype=np.float64) for v in job.norm[z])
    prob = predict_region(model, volume.plane(z), rows, cols, tile_shape=job.tile_shape, offset=offset, scale=scale,
                          batch_size=job.batch_size, tiles=job.tiles)
    root = zarr.open_group(job.output, mode="r+")
    zi = (z,) if "z" in job.axes else ()
    if job.num_classes > 2:
        root["0"][(slice(None), *zi, rows, cols)] = prob
    else:
        root["0"][(*zi, rows, cols)] = prob[1]
    root["labels/mask/0"][(*zi, rows, cols)] = prob.argmax(0).astype(np.uint8)
    with atomic_path(_marker(job, "prob", z, by, bx)) as tmp:
        tmp.write_text("done\n")
    return z, by, bx


class ModelPlugin(WorkerPlugin):
    """A Dask worker plugin: load the checkpoint once per worker, with an explicit torch thread count."""

    name = _PLUGIN

    def __init__(self, checkpoint: str, threads: int):
        self.checkpoint, self.threads = checkpoint, threads
        self.model = None

    def setup(self, worker=None):
        import torch

        from ..checkpoint import load_model

        if self.threads:
            torch.set_num_threads(self.threads)  # this worker process only
        self.model = load_model(self.checkpoint).eval().to(memory_format=torch.channels_last)  # as predict runs it

    def teardown(self, worker=None):
        self.model = None


def _worker_block(job: BlockJob, z: int, by: int, bx: int):
    from distributed import get_worker

    return run_block(job, z, by, bx, get_worker().plugins[_PLUGIN].model)


def _prepare(checkpoint, source, output, config: SegmentConfig):
    """Load the model, open the input, decide tiles, chunks and normalisation, create or reopen the output."""
    import zarr

    from ..checkpoint import load_model
    from ..io import OutputPathError, remove_stale_temps
    from ..io.ome_zarr import create_label_levels, open_volume, write_image_metadata
    from ..normalize import intensity_range
    from ..tiling import choose_tile_shape

    model = load_model(checkpoint)
    cfg = model.config
    volume = open_volume(source)
    try:  # a chunk that cannot be decoded (missing codec, corrupt file) fails here, before any output
        np.asarray(volume.array[tuple(slice(0, 1) for _ in volume.array.shape)])
    except Exception as exc:
        from ..io import ImageReadError

        raise ImageReadError(f"{source}: cannot read its chunks ({type(exc).__name__}: {exc})") from None
    if volume.n_channels != cfg.in_channels:
        raise ValueError(f"{source}: {volume.n_channels} channel(s) but the model takes {cfg.in_channels}")
    tile = choose_tile_shape(config.tile_shape, volume.plane_shape, cfg, batch_size=config.batch_size, device="cpu")
    chunks = tuple(config.chunks) if config.chunks else _default_chunks(tile, cfg)
    norm = []
    for z in range(volume.n_planes):
        offset, scale = intensity_range(volume.plane(z), cfg.normalization, channels=True)
        norm.append((tuple(map(float, offset)), tuple(map(float, scale))))
    job = BlockJob(checkpoint=str(Path(checkpoint).resolve()), source=str(Path(source).resolve()),
                   output=str(Path(output).resolve()), axes=volume.axes.replace("t", ""), tile_shape=tuple(tile),
                   chunks=chunks, batch_size=config.batch_size, tiles=config.tiles, num_classes=cfg.num_classes,
                   planes=volume.n_planes, norm=tuple(norm))
    spec = {"checkpoint_sha256": sha256_file(checkpoint), "source": job.source, "shape": list(volume.array.shape),
            "axes": job.axes, "tile_shape": list(tile), "chunks": list(chunks), "instances": config.instances,
            "threshold": config.threshold, "min_size": config.min_size, "batch_size": config.batch_size,
            "tiles": config.tiles}
    out = Path(output)
    if out.exists():
        try:
            old = dict(zarr.open_group(str(out), mode="r").attrs).get("unetkit")
        except Exception:
            old = None
        if old != spec:
            raise OutputPathError(f"{out}: holds a different array or job (another input, model, chunking or "
                                  "options); choose a new output path")
        remove_stale_temps(out / _DONE)  # markers a killed run left half-written
        return model, volume, job, False
    root = zarr.open_group(str(out), mode="w", zarr_format=2)
    layout = output_layout(job, volume.plane_shape)
    shape, chunk, dtype = layout["probabilities"]
    root.create_array("0", shape=shape, chunks=chunk, dtype=dtype, fill_value=0)  # the image: probabilities
    write_image_metadata(root, "probabilities", job.prob_axes())
    shape, chunk, dtype = layout["mask"]
    create_label_levels(root, "mask", shape, job.label_axes(), chunk, dtype)
    if config.instances:
        create_label_levels(root, "instances", shape, job.label_axes(), chunk, "u4")
    root.attrs["unetkit"] = spec
    return model, volume, job, True


def _tile_runs(job: BlockJob, plane_shape, config) -> tuple[int, int]:
    """(tile forward passes per plane with ``job.tiles``, tiles of the whole plane's plan)."""
    from ..inference import _region_tiles, clip_tiles
    from ..tiling import plan_tiles

    _, tiles = plan_tiles(plane_shape, job.tile_shape, depth=config.depth, padding=config.padding)
    regions = [_block_index(job, 0, by, bx, plane_shape) for z, by, bx in _blocks(job, plane_shape) if z == 0]
    if job.tiles == "region":
        return sum(len(_region_tiles(plane_shape, r, c, config, "cpu")) for r, c in regions), len(tiles)
    return sum(len(clip_tiles(tiles, r, c)) for r, c in regions), len(tiles)


def _blocks(job: BlockJob, plane_shape) -> list[tuple[int, int, int]]:
    ny, nx = (-(-s // c) for s, c in zip(plane_shape, job.chunks))
    return [(z, by, bx) for z in range(job.planes) for by in range(ny) for bx in range(nx)]


def _run_all(tasks, submit, progress: bool, desc: str) -> None:
    """Run ``tasks`` through ``submit`` (a list of futures or results) with a tqdm bar of blocks."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc=desc, unit="block", disable=not progress)
    try:
        for _ in submit(tasks):
            bar.update(1)
    finally:
        bar.close()


def segment_volume(checkpoint: str | os.PathLike, source: str | os.PathLike, output: str | os.PathLike,
                   config: SegmentConfig = SegmentConfig(), *, client=None, log=None) -> dict:
    """Segment a Zarr / OME-Zarr volume block by block into an OME-Zarr output group.

    Output (``output``, zarr format 2, NGFF 0.4): the image ``0`` holds the
    probabilities (P(class 1) for 2-class models, else all classes),
    ``labels/mask`` (class index
    per pixel, uint8, with a 2x pyramid) and, with ``config.instances``,
    ``labels/instances`` (uint32, unique over the whole volume, with a
    pyramid). Planes of a (Z, H, W) volume are segmented independently.

    ``client``: a :class:`distributed.Client` (its workers do the blocks);
    None runs the blocks here, one after the other. Rerunning with the same
    arguments finishes an interrupted run; an output that holds another job
    is refused (:class:`unetkit.io.OutputPathError`). Returns a summary.
    """
    log = log or (lambda m: None)
    model, volume, job, fresh = _prepare(checkpoint, source, output, config)
    blocks = _blocks(job, volume.plane_shape)
    todo = [b for b in blocks if not _marker(job, "prob", *b).exists()]
    runs, plan = _tile_runs(job, volume.plane_shape, model.config)
    log(f"{len(blocks)} blocks of {job.chunks[0]}x{job.chunks[1]} px ({len(blocks) - len(todo)} already done); "
        f"{job.tiles} tiles: {runs} tile runs per plane where the whole plane has {plan} tiles of "
        f"{job.tile_shape[0]}x{job.tile_shape[1]}")
    if client is None:
        import torch

        threads = torch.get_num_threads()
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            _run_all(todo, lambda ts: (run_block(job, *b, model) for b in ts), config.progress, "blocks")
        finally:
            torch.set_num_threads(threads)
    else:
        from distributed import as_completed

        client.register_plugin(ModelPlugin(job.checkpoint, config.threads), name=_PLUGIN)
        _run_all(todo, lambda ts: as_completed(
            [client.submit(_worker_block, job, *b, pure=False, key=f"unetkit-block-{b[0]}-{b[1]}-{b[2]}")
             for b in ts], raise_errors=True), config.progress, "blocks")
    summary = {"blocks": len(blocks), "computed": len(todo), "tile_shape": job.tile_shape, "chunks": job.chunks,
               "tile_runs_per_plane": runs, "plane_tiles": plan}
    if config.instances:
        from .instances import label_instances

        summary["objects"] = label_instances(job, volume.plane_shape, config, client=client, log=log)
    from .instances import write_pyramid

    write_pyramid(job, "mask", client=client)
    return summary


def describe(job: BlockJob) -> str:  # pragma: no cover - for logs
    return json.dumps({k: v for k, v in asdict(job).items() if k != "norm"})
