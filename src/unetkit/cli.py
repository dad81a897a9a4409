"""Command-line interface: a thin adapter over the public API.

``main(argv)`` returns the exit status: 0 on success, 2 for a user mistake
(missing file, unreadable image, wrong checkpoint, bad option), reported as ONE
line on stderr without a traceback; outputs are written atomically and only
after every input has been checked, so a failed command leaves nothing partial.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser"]


class UsageError(ValueError):
    """A mistake in how the command was called."""


def _progress_enabled(args) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _log(args):
    return (lambda *a, **k: None) if getattr(args, "quiet", False) else (lambda msg: print(msg, file=sys.stderr))


# ----------------------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    from .demo import DemoConfig, run_demo

    cfg = DemoConfig()
    overrides = {k: v for k, v in (("steps", args.steps), ("image_size", args.size), ("n_train", args.n_train),
                                    ("base_features", args.base_features), ("tile", args.tile), ("seed", args.seed))
                 if v is not None}
    from dataclasses import replace

    cfg = replace(cfg, **overrides)
    result = run_demo(args.out, cfg, progress=_progress_enabled(args), log=_log(args))
    print(f"held-out pixel accuracy: {result['accuracy']:.4f}")
    print(f"trained {result['steps']} steps in {result['train_wall_time_s']:.0f} s; total {result['wall_time_s']:.0f} s")
    print(f"wrote {result['out']}/: model.pt, heldout_prob.tif, heldout_mask.png, heldout_overlay.png, train/")
    return 0


# ----------------------------------------------------------------------------- predict
def _parse_tile(text: str):
    if text == "auto":
        return "auto"
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise UsageError(f"--tile must be 'auto', N or HxW, got {text!r}") from None
    return parts[0] if len(parts) == 1 else tuple(parts)


def _device_arg(text: str | None):
    import torch

    from .devices import resolve_device

    try:
        dev = resolve_device(text)
    except RuntimeError:
        raise UsageError(f"--device {text!r} is not a torch device (cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return dev


def cmd_predict(args) -> int:
    from .checkpoint import load_model
    from .inference import predict
    from .io import open_array, write_mask, write_tiff

    tile = _parse_tile(args.tile)
    device = _device_arg(args.device)
    model = load_model(args.checkpoint).to(device)
    cfg = model.config
    if tile != "auto":
        from . import geometry

        shape = (tile, tile) if isinstance(tile, int) else tile
        geometry.check_input_shape(shape, depth=cfg.depth, padding=cfg.padding)
    # check every input before writing anything
    images = []
    for path in args.inputs:
        array = open_array(path)
        if array.ndim == 3 and cfg.in_channels == 1:
            planes = [array[i] for i in range(array.shape[0])]
        elif array.ndim == 2 or (array.ndim == 3 and array.shape[0] == cfg.in_channels):
            planes = None
        else:
            raise UsageError(f"{path}: image shape {tuple(array.shape)} does not fit a model with {cfg.in_channels} channel(s)")
        if array.ndim == 2 and cfg.in_channels != 1:
            raise UsageError(f"{path}: gray image but the model expects {cfg.in_channels} channels")
        images.append((Path(path), array, planes))
    stems = [p.name.split(".")[0] for p, _, _ in images]
    if len(set(stems)) != len(stems):
        raise UsageError("two inputs share a file stem; their outputs would overwrite each other")
    if args.instances and cfg.num_classes not in (2, 3):
        raise UsageError("--instances needs a 2-class (background/object) or 3-class (background/interior/border) model")
    out = Path(args.out)
    log = _log(args)
    kwargs = dict(tile_shape=tile, batch_size=args.batch_size, device=device, tta=args.tta, amp=args.amp,
                  progress=_progress_enabled(args))
    for (path, array, planes), stem in zip(images, stems):
        if planes is None:
            prob = predict(model, array, **kwargs)[None]
        else:
            prob = np.stack([predict(model, p, **kwargs) for p in planes])
        stack = planes is not None
        fg = prob[:, 1] if cfg.num_classes == 2 else prob
        out.mkdir(parents=True, exist_ok=True)
        write_tiff(out / f"{stem}_prob.tif", (fg if stack else fg[0]).astype(np.float32))
        masks = prob.argmax(1)
        if stack:
            write_tiff(out / f"{stem}_mask.tif", (masks > 0).astype(np.uint8) * 255 if cfg.num_classes == 2 else masks.astype(np.uint8))
        else:
            write_mask(out / f"{stem}_mask.png", masks[0], num_classes=cfg.num_classes)
        written = [f"{stem}_prob.tif", f"{stem}_mask.{'tif' if stack else 'png'}"]
        if args.instances:
            written += _write_instances(args, out, stem, array, planes, prob, cfg)
        log(f"{path} -> {', '.join(str(out / w) for w in written)}")
    return 0


def _write_instances(args, out: Path, stem: str, array, planes, prob, cfg) -> list[str]:
    from .instances import InstanceConfig, label_overlay, probabilities_to_instances, smallest_dtype_for
    from .io import write_png, write_tiff

    icfg = InstanceConfig(threshold=args.threshold, min_size=args.min_size, watershed=args.watershed)
    border = 2 if cfg.num_classes == 3 else None
    labels = [probabilities_to_instances(p, config=icfg, border_class=border) for p in prob]
    dtype = smallest_dtype_for(max(int(l.max()) for l in labels))
    data = np.stack(labels).astype(dtype) if planes is not None else labels[0].astype(dtype)
    write_tiff(out / f"{stem}_labels.tif", data)
    written = [f"{stem}_labels.tif"]
    if args.png:
        image = np.asarray(planes[0] if planes is not None else array[...])
        write_png(out / f"{stem}_labels.png", label_overlay(image, labels[0]))
        written.append(f"{stem}_labels.png")
    return written


# ----------------------------------------------------------------------------- info
def cmd_info(args) -> int:
    from . import geometry
    from .checkpoint import load_checkpoint, load_model

    model = load_model(args.checkpoint)
    payload = load_checkpoint(args.checkpoint)
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    info = {"checkpoint": str(args.checkpoint), "parameters": n_params, "config": cfg.to_dict(),
            "training": payload.get("training", {})}
    if cfg.padding == "valid":
        first = geometry.min_input_size(depth=cfg.depth)
        info["valid_tile_sizes"] = f"{first} + {geometry.size_step(cfg.depth)}k (e.g. 572 -> 388 at depth 4)"
        info["context_margin_px"] = geometry.context_margin(depth=cfg.depth)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"checkpoint   {args.checkpoint}")
    print(f"architecture U-Net depth {cfg.depth}, {cfg.base_features} base features, {cfg.padding} padding, "
          f"dropout {cfg.dropout}, batch norm {cfg.batch_norm}")
    print(f"channels     {cfg.in_channels} in -> {cfg.num_classes} classes {list(cfg.class_names or [])}")
    print(f"parameters   {n_params:,}")
    print(f"normalise    {cfg.normalization.mode} ({cfg.normalization.low}, {cfg.normalization.high})")
    if "valid_tile_sizes" in info:
        print(f"tiles        valid input sizes {info['valid_tile_sizes']}; context margin {info['context_margin_px']} px")
    training = info["training"]
    if training:
        keys = ("step", "wall_time_s", "best_metric", "best_value", "device", "torch")
        print("training     " + ", ".join(f"{k} {training[k]}" for k in keys if training.get(k) is not None))
        if training.get("validation"):
            print("validation   " + ", ".join(f"{k} {v:.4f}" for k, v in training["validation"].items()))
    return 0


# ----------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    from .config import apply_overrides, from_dict, load_config_file
    from .train import RunConfig, train

    data = apply_overrides(load_config_file(args.config), args.set or [])
    run = from_dict(RunConfig, data)
    if not _progress_enabled(args):
        from dataclasses import replace

        run = replace(run, train=replace(run.train, progress=False))
    if args.resume and not (Path(args.out) / "last.pt").is_file():
        raise UsageError(f"--resume: {Path(args.out) / 'last.pt'} does not exist")
    summary = train(run, args.out, resume=args.resume, base=Path(args.config).resolve().parent, log=_log(args))
    print(f"trained {summary['steps']} steps in {summary['wall_time_s']:.0f} s; checkpoints in {args.out}/ (best.pt, last.pt)")
    if summary["validation"]:
        print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["validation"].items()))
    return 0


# ----------------------------------------------------------------------------- weights
def cmd_weights(args) -> int:
    from scipy import ndimage

    from .io import read_image, write_tiff
    from .plots import plot_weight_map
    from .weights import border_weight_map, separation_borders

    labels = read_image(args.labels)
    if labels.ndim != 2:
        raise UsageError(f"{args.labels}: expected one 2-D label image, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"{args.labels}: labels must be integers, got {labels.dtype}")
    values = np.unique(labels)
    if len(values) <= 2 and not args.instances:
        instances, _ = ndimage.label(labels > 0)  # binary mask: objects are 4-connected components
    else:
        instances = labels.astype(np.int64)
    weights = border_weight_map(instances, w0=args.w0, sigma=args.sigma, class_balance=not args.no_class_balance)
    out = Path(args.out)
    write_tiff(out, weights.astype(np.float32))
    print(f"wrote {out} (min {weights.min():.3f}, max {weights.max():.3f}, {int(instances.max())} objects)")
    if args.png:
        fig = out.with_suffix(".png")
        plot_weight_map(instances, separation_borders(instances), weights, fig,
                        title=f"w0 = {args.w0}, sigma = {args.sigma} px")
        print(f"wrote {fig}")
    return 0


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_paths, format_table, write_json

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    result = evaluate_paths(args.pred, args.gt, metrics=metrics, warping=not args.no_warping)
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="unetkit",
        description="U-Net (Ronneberger et al. 2015) for biomedical image segmentation: train, segment, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"unetkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="train on generated EM-like images and segment a held-out one (CPU, ~3 min)",
                       description="Generate EM-like images (no download), train a small U-Net, segment a held-out "
                                   "image and print its pixel accuracy.")
    p.add_argument("--out", default="unetkit_demo", help="output folder (default: unetkit_demo)")
    p.add_argument("--steps", type=int, help="training steps (default 600)")
    p.add_argument("--size", type=int, help="generated image size in pixels (default 256)")
    p.add_argument("--n-train", type=int, help="number of generated training images (default 6)")
    p.add_argument("--base-features", type=int, help="width of the first level (default 16)")
    p.add_argument("--tile", type=int, help="input tile size for training (default 316)")
    p.add_argument("--seed", type=int, help="seed of data, augmentation and initialisation (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("predict", help="segment images with a trained checkpoint (overlap-tile inference)",
                       description="Writes DIR/<stem>_prob.tif (float32 probability of class 1 for 2-class models, "
                                   "else (C, H, W)) and DIR/<stem>_mask.png (class per pixel; 0/255 for 2 classes). "
                                   "A multi-page TIFF is segmented plane by plane into stacks (<stem>_mask.tif).")
    p.add_argument("checkpoint", help="checkpoint file written by 'unetkit train' or 'unetkit demo'")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="images: PNG, TIFF (page or stack), .npy, .zarr")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", default="auto", help="input tile size: auto (largest that fits the memory budget), N or HxW")
    p.add_argument("--tta", action="store_true", help="average the 8 flips/rotations (test-time augmentation)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=1, help="tiles per forward pass (default 1)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA (ignored on CPU)")
    p.add_argument("--instances", action="store_true", help="also write <stem>_labels.tif (one label per object)")
    p.add_argument("--png", action="store_true", help="with --instances: also write a colour overlay <stem>_labels.png")
    p.add_argument("--threshold", type=float, default=0.5, help="with --instances: foreground probability threshold")
    p.add_argument("--min-size", type=int, default=10, help="with --instances: smallest object in pixels")
    p.add_argument("--watershed", action="store_true", help="with --instances: split touching objects by watershed")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("info", help="describe a checkpoint", description="Print architecture, parameters, "
                                                                           "normalisation and training metadata.")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train from a TOML/YAML config", description="Train a U-Net as in the paper. "
                       "Writes DIR/best.pt, DIR/last.pt, DIR/config.json, DIR/metrics.jsonl, DIR/curves.png.")
    p.add_argument("config", help="TOML, YAML or JSON config (sections: model, data, augment, weights, train)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue exactly from DIR/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("weights", help="the paper's border weight map of a label image",
                       description="w(x) = w_c(x) + w0 exp(-(d1 + d2)^2 / (2 sigma^2)) from instance labels "
                                   "(a binary mask is split into 4-connected objects).")
    p.add_argument("labels", help="instance label image (0 = background) or binary mask")
    p.add_argument("--out", required=True, help="output float32 TIFF")
    p.add_argument("--w0", type=float, default=10.0, help="border weight (default 10)")
    p.add_argument("--sigma", type=float, default=5.0, help="border width in pixels (default 5)")
    p.add_argument("--no-class-balance", action="store_true", help="w_c = 1 instead of class-frequency balancing")
    p.add_argument("--instances", action="store_true", help="treat a two-valued image as instance labels")
    p.add_argument("--png", action="store_true", help="also write a figure like the paper's Fig. 3 next to --out")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("evaluate", help="ISBI 2012 / CTC metrics of predictions against ground truth",
                       description="PRED: folder or stack of probability TIFFs P(foreground), masks or label "
                                   "images; GT: folder or stack of label images; matched by stem or order.")
    p.add_argument("pred")
    p.add_argument("gt")
    p.add_argument("--json", help="write every value, with per-threshold curves, to this JSON file")
    p.add_argument("--metrics", help="comma-separated subset (default: all)")
    p.add_argument("--no-warping", action="store_true", help="skip the warping error (the slowest metric)")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user mistake)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("unetkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        sys.stderr.close()
        return 0
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"unetkit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a diverged training run: one line, no traceback
        from .train import TrainingDiverged

        if not isinstance(exc, TrainingDiverged):
            raise
        print(f"unetkit {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
