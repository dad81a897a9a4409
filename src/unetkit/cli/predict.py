"""``unetkit predict``: segment images with a checkpoint (overlap-tile inference)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import UsageError, add_quiet, device_arg, log_for, parse_tile, progress_enabled

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="segment images with a trained checkpoint (overlap-tile inference)",
                       description="Writes DIR/<stem>_prob.tif (float32 probability of class 1 for 2-class models, "
                                   "else (C, H, W)) and DIR/<stem>_mask.png (class per pixel; 0/255 for 2 classes). "
                                   "A multi-page TIFF is segmented plane by plane into stacks (<stem>_mask.tif). "
                                   "A folder input means every image in it.")
    p.add_argument("checkpoint", help="checkpoint written by 'unetkit train' or 'unetkit demo', or a model exported "
                                      "by 'unetkit export' (.onnx, bioimage.io package folder, rdf.yaml or .zip)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="images: PNG, TIFF (page or stack), .npy, .zarr, or a folder of images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", default="auto", help="input tile size: auto (largest that fits the memory budget), N or HxW")
    p.add_argument("--tta", action="store_true", help="average the 8 flips/rotations (test-time augmentation)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=1, help="tiles per forward pass (default 1)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA and on CPUs with bf16 instructions (AVX512-BF16, AMX); ignored on other CPUs")
    p.add_argument("--backend", choices=("torch", "onnxruntime"),
                   help="run the tiles in PyTorch or ONNX Runtime (CPU); default: torch for checkpoints, "
                        "onnxruntime for exported models")
    p.add_argument("--instances", action="store_true", help="also write <stem>_labels.tif (one label per object)")
    p.add_argument("--png", action="store_true", help="with --instances: also write a colour overlay <stem>_labels.png")
    p.add_argument("--threshold", type=float, default=0.5, help="with --instances: foreground probability threshold")
    p.add_argument("--min-size", type=int, default=10, help="with --instances: smallest object in pixels")
    p.add_argument("--watershed", action="store_true", help="with --instances: split touching objects by watershed")
    g = p.add_argument_group("volumes larger than memory (Zarr / OME-Zarr in, OME-Zarr out)",
                             "With --out ending in .zarr the one INPUT (a Zarr array or OME-Zarr group) is segmented "
                             "block by block into OUT (an OME-Zarr image of the probabilities), OUT/labels/mask "
                             "(and OUT/labels/instances); a "
                             "rerun finishes an interrupted run.")
    g.add_argument("--workers", type=int, help="start a local Dask cluster of N worker processes")
    g.add_argument("--threads-per-worker", type=int, default=0, help="torch threads per worker (default: torch's)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="use an existing Dask scheduler (tcp://HOST:PORT)")
    g.add_argument("--chunks", help="output block size HxW (default: a multiple of the tile's output, ~1024 px)")
    g.add_argument("--tiles", choices=("whole-image", "region"), default="whole-image",
                   help="whole-image: bit-identical to one process; region: each block plans its own tiles")
    add_quiet(p)
    p.set_defaults(func=run)


@dataclass(frozen=True)
class _Input:
    """One input: its path, the sliceable array, and its planes when it is a stack."""

    path: Path
    array: object
    planes: list | None

    @property
    def stem(self) -> str:
        return self.path.name.split(".")[0]


def _expand(paths: list[str]) -> list[Path]:
    """Input paths with every (non-zarr) folder replaced by the images in it."""
    from ..io import ImageReadError, is_zarr_path, list_images

    out = []
    for text in paths:
        path = Path(text)
        if path.is_dir() and not is_zarr_path(path):
            files = list_images(path)
            if not files:
                raise ImageReadError(f"{path}: folder holds no images")
            out.extend(files)
        else:
            out.append(path)
    return out


def _open(path: Path, in_channels: int) -> _Input:
    """Open one input and decide plane / stack / channels, refusing what the model cannot take."""
    from ..inference import count_nonfinite
    from ..io import is_zarr_path, open_array, read_image_axes

    if is_zarr_path(path) or path.suffix.lower() == ".npy":
        array = open_array(path)
        axes = "YX" if array.ndim == 2 else ("CYX" if in_channels > 1 else "ZYX")
    else:
        array, axes = read_image_axes(path)
    if array.ndim not in (2, 3):
        raise UsageError(f"{path}: expected a 2-D image, a stack or a (C, H, W) image, got shape {tuple(array.shape)}")
    if axes == "CYX" and array.shape[0] != in_channels:
        hint = (" but the model takes one gray channel; convert it to gray first (Fiji: Image > Type > 8-bit)"
                if in_channels == 1 else f" but the model takes {in_channels}")
        raise UsageError(f"{path}: colour image with {array.shape[0]} channels{hint}")
    if axes != "CYX" and in_channels != 1:
        raise UsageError(f"{path}: gray image but the model expects {in_channels} channels")
    if isinstance(array, np.ndarray) and not isinstance(array, np.memmap):
        bad = count_nonfinite(array)
        if bad:
            raise UsageError(f"{path}: {bad} NaN or infinite pixel value(s); fix or mask them before segmenting")
    planes = [array[i] for i in range(array.shape[0])] if axes == "ZYX" else None
    return _Input(path, array, planes)


def _load(args, device):
    """The model to run: a checkpoint in PyTorch, or an exported / converted graph in ONNX Runtime."""
    from ..checkpoint import load_model
    from ..export.runtime import is_exported

    exported = Path(args.checkpoint).suffix.lower() != ".pt" and is_exported(args.checkpoint)
    backend = args.backend or ("onnxruntime" if exported else "torch")
    if backend == "torch":
        if exported:
            raise UsageError(f"{args.checkpoint}: an exported model runs with --backend onnxruntime "
                             "(PyTorch needs the .pt checkpoint)")
        return load_model(args.checkpoint).to(device)
    from ..export.runtime import OnnxUNet
    from .export import require_export_extra

    require_export_extra()
    if device.type != "cpu" and args.device != "auto":
        raise UsageError("--backend onnxruntime runs on the CPU; leave --device at cpu or auto")
    return OnnxUNet.load(args.checkpoint) if exported else OnnxUNet.from_model(load_model(args.checkpoint))


def _is_volume_job(args) -> bool:
    return str(args.out).rstrip("/").lower().endswith(".zarr") or bool(args.workers) or bool(args.scheduler)


def run_volume(args) -> int:
    """Block-wise segmentation of one Zarr / OME-Zarr volume into an OME-Zarr output."""
    from ..distributed import SegmentConfig, connect, local_client, segment_volume
    from ..io import is_zarr_path

    if not str(args.out).rstrip("/").lower().endswith(".zarr"):
        raise UsageError(f"--out {args.out}: block-wise segmentation (--workers/--scheduler) writes a Zarr store; "
                         "give a path ending in .zarr")
    if len(args.inputs) != 1 or not is_zarr_path(args.inputs[0]):
        raise UsageError("block-wise segmentation takes exactly one Zarr / OME-Zarr input")
    if args.tta or args.watershed or (args.backend not in (None, "torch")):
        raise UsageError("--tta, --watershed and --backend onnxruntime are not available for Zarr outputs")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.workers and args.scheduler:
        raise UsageError("give --workers (a local cluster) or --scheduler (an existing one), not both")
    chunks = parse_tile(args.chunks) if args.chunks else None
    if isinstance(chunks, int):
        chunks = (chunks, chunks)
    config = SegmentConfig(chunks=chunks, tile_shape=parse_tile(args.tile), batch_size=args.batch_size,
                           threads=args.threads_per_worker, tiles=args.tiles, instances=args.instances,
                           threshold=args.threshold, min_size=args.min_size, progress=progress_enabled(args))
    from ..checkpoint import load_checkpoint

    load_checkpoint(args.checkpoint)  # a bad checkpoint fails before a cluster starts
    client = connect(args.scheduler) if args.scheduler else (local_client(args.workers) if args.workers else None)
    try:
        summary = segment_volume(args.checkpoint, args.inputs[0], args.out, config, client=client, log=log_for(args))
    finally:
        if client is not None:
            cluster = client.cluster if args.workers else None
            client.close()
            if cluster is not None:
                cluster.close()
    print(f"{summary['blocks']} blocks ({summary['computed']} computed now) -> {args.out}"
          + (f"; {summary['objects']} objects" if "objects" in summary else ""))
    return 0


def run(args) -> int:
    if _is_volume_job(args):
        return run_volume(args)
    from ..io import check_output_dir, remove_stale_temps, write_mask, write_tiff
    from ..tiling import choose_tile_shape
    from ..inference import predict

    tile = parse_tile(args.tile)
    out = check_output_dir(args.out)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = device_arg(args.device)
    model = _load(args, device)
    cfg = model.config
    if tile != "auto":
        choose_tile_shape(tile, (1, 1), cfg)  # refuses a size that does not fit, naming the nearest valid ones
    if args.instances and cfg.num_classes not in (2, 3):
        raise UsageError("--instances needs a 2-class (background/object) or 3-class (background/interior/border) model")
    if args.instances:
        from ..instances import InstanceConfig

        InstanceConfig(threshold=args.threshold, min_size=args.min_size, watershed=args.watershed)
    inputs = [_open(p, cfg.in_channels) for p in _expand(args.inputs)]  # every input checked before any output
    stems = [i.stem for i in inputs]
    if len(set(stems)) != len(stems):
        raise UsageError("two inputs share a file stem; their outputs would overwrite each other")
    log = log_for(args)
    kwargs = dict(tile_shape=tile, batch_size=args.batch_size, device=device, tta=args.tta, amp=args.amp,
                  progress=progress_enabled(args))
    for item in inputs:
        arrays = item.planes if item.planes is not None else [item.array]
        prob = np.stack([predict(model, a, **kwargs) for a in arrays])  # (Z, C, H, W)
        stack = item.planes is not None
        fg = prob[:, 1] if cfg.num_classes == 2 else prob
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)
        write_tiff(out / f"{item.stem}_prob.tif", (fg if stack else fg[0]).astype(np.float32))
        masks = prob.argmax(1)
        mask_name = f"{item.stem}_mask.{'tif' if stack else 'png'}"
        write_mask(out / mask_name, masks if stack else masks[0], num_classes=cfg.num_classes)
        written = [f"{item.stem}_prob.tif", mask_name]
        if args.instances:
            written += _write_instances(args, out, item, prob, cfg)
        log(f"{item.path} -> {', '.join(str(out / w) for w in written)}")
    return 0


def _write_instances(args, out: Path, item: _Input, prob: np.ndarray, cfg) -> list[str]:
    from ..instances import InstanceConfig, label_overlay, probabilities_to_instances
    from ..io import write_png, write_tiff
    from ..labels import smallest_dtype_for

    icfg = InstanceConfig(threshold=args.threshold, min_size=args.min_size, watershed=args.watershed)
    border = 2 if cfg.num_classes == 3 else None
    labels = [probabilities_to_instances(p, config=icfg, border_class=border) for p in prob]
    dtype = smallest_dtype_for(max(int(l.max()) for l in labels))
    data = np.stack(labels).astype(dtype) if item.planes is not None else labels[0].astype(dtype)
    write_tiff(out / f"{item.stem}_labels.tif", data)
    written = [f"{item.stem}_labels.tif"]
    if args.png:
        image = np.asarray(item.planes[0] if item.planes is not None else item.array[...])
        if image.ndim == 3:  # (C, H, W) colour: the overlay takes (H, W, 3) or gray
            image = np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0]
        write_png(out / f"{item.stem}_labels.png", label_overlay(image, labels[0]))
        written.append(f"{item.stem}_labels.png")
    return written
