"""``unetkit info``, ``unetkit weights`` and ``unetkit evaluate``: look at models, labels and results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .common import UsageError

__all__ = ["add_parsers", "run_info", "run_weights", "run_evaluate"]


def add_parsers(sub) -> None:
    p = sub.add_parser("info", help="describe a checkpoint or an exported model",
                       description="Print architecture, parameters, normalisation and training metadata of a "
                                   "checkpoint, an exported .onnx or a bioimage.io package written by unetkit export.")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_info)

    p = sub.add_parser("weights", help="the paper's border weight map of a label image",
                       description="w(x) = w_c(x) + w0 exp(-(d1 + d2)^2 / (2 sigma^2)) from instance labels "
                                   "(a 0/v mask is split into 4-connected objects).")
    p.add_argument("labels", help="instance label image (0 = background) or binary mask")
    p.add_argument("--out", required=True, help="output float32 TIFF")
    p.add_argument("--w0", type=float, default=10.0, help="border weight (default 10)")
    p.add_argument("--sigma", type=float, default=5.0, help="border width in pixels (default 5)")
    p.add_argument("--no-class-balance", action="store_true", help="w_c = 1 instead of class-frequency balancing")
    p.add_argument("--instances", action="store_true", help="treat a two-valued image as instance labels")
    p.add_argument("--png", action="store_true", help="also write a figure like the paper's Fig. 3 next to --out")
    p.set_defaults(func=run_weights)

    p = sub.add_parser("evaluate", help="ISBI 2012 / CTC metrics of predictions against ground truth",
                       description="PRED: folder or stack of probability TIFFs P(foreground), masks or label "
                                   "images; GT: folder or stack of label images; matched by stem or order.")
    p.add_argument("pred")
    p.add_argument("gt")
    p.add_argument("--json", help="write every value, with per-threshold curves, to this JSON file")
    p.add_argument("--metrics", help="comma-separated subset (default: all)")
    p.add_argument("--no-warping", action="store_true", help="skip the warping error (the slowest metric)")
    p.set_defaults(func=run_evaluate)


def _exported_info(path: Path) -> dict:
    """What an exported model says about itself: its unetkit config, variant, and for a package its rdf."""
    from .export import require_export_extra

    require_export_extra()
    from ..export.runtime import read_package

    if path.suffix.lower() == ".onnx":
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if "unetkit_config" not in meta:
            raise UsageError(f"{path}: an ONNX file without unetkit metadata")
        info = json.loads(meta["unetkit_config"])
        return {"export": "onnx", "variant": info["variant"], "config": info["model"], "training": {}}
    read, info = read_package(path)
    import yaml

    rdf = yaml.safe_load(read("rdf.yaml"))
    return {"export": "bioimageio", "name": rdf.get("name"), "format_version": rdf.get("format_version"),
            "weights": sorted(rdf.get("weights", {})), "variant": info["variant"], "config": info["model"],
            "training": info.get("training", {})}


def run_info(args) -> int:
    from .. import geometry
    from ..checkpoint import load_checkpoint, load_model
    from ..export.runtime import is_exported
    from ..model import ModelConfig, UNet

    path = Path(args.checkpoint)
    if path.suffix.lower() != ".pt" and is_exported(path):
        info = _exported_info(path)
        cfg = ModelConfig.from_dict(info["config"])
        n_params = sum(p.numel() for p in UNet.from_config(cfg).parameters())
        info = {"model": str(path), "parameters": n_params, **info}
    else:
        payload = load_checkpoint(args.checkpoint)
        cfg = load_model(args.checkpoint).config
        n_params = sum(p.numel() for p in UNet.from_config(cfg).parameters())
        info = {"checkpoint": str(args.checkpoint), "parameters": n_params, "config": cfg.to_dict(),
                "training": payload.get("training", {})}
    if cfg.padding == "valid":
        first = geometry.min_input_size(depth=cfg.depth)
        info["valid_tile_sizes"] = f"{first} + {geometry.size_step(cfg.depth)}k (e.g. 572 -> 388 at depth 4)"
        info["context_margin_px"] = geometry.context_margin(depth=cfg.depth)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{'checkpoint' if 'checkpoint' in info else 'exported':<12} {args.checkpoint}")
    if "export" in info:
        extra = (f", {info['name']!r}, format {info['format_version']}, weights {', '.join(info['weights'])}"
                 if info["export"] == "bioimageio" else "")
        print(f"export       {info['export']} ({info['variant']} variant{extra})")
    print(f"architecture U-Net depth {cfg.depth}, {cfg.base_features} base features, {cfg.padding} padding, "
          f"dropout {cfg.dropout}, batch norm {cfg.batch_norm}, residual {cfg.residual}")
    print(f"channels     {cfg.in_channels} in -> {cfg.num_classes} classes {list(cfg.class_names or [])}")
    print(f"parameters   {n_params:,}")
    print(f"normalise    {cfg.normalization.mode} ({cfg.normalization.low}, {cfg.normalization.high})")
    if "valid_tile_sizes" in info:
        print(f"tiles        valid input sizes {info['valid_tile_sizes']}; context margin {info['context_margin_px']} px")
    training = info["training"]
    if training:
        keys = ("step", "wall_time_s", "best_metric", "best_value", "device", "torch", "dropout", "passes")
        print("training     " + ", ".join(f"{k} {training[k]}" for k in keys if training.get(k) is not None))
        if training.get("validation"):
            print("validation   " + ", ".join(f"{k} {v:.4f}" for k, v in training["validation"].items()))
    return 0


def run_weights(args) -> int:
    from ..io import check_output_file, read_image_axes, write_tiff
    from ..labels import check_label_image, separation_borders, to_objects
    from ..weights import WeightMapConfig, border_weight_map

    out = check_output_file(args.out)
    config = WeightMapConfig(w0=args.w0, sigma=args.sigma, class_balance=not args.no_class_balance)
    labels, axes = read_image_axes(args.labels)
    if axes != "YX":
        what = "colour image" if axes == "CYX" else "stack"
        raise UsageError(f"{args.labels}: {what} of shape {labels.shape}; expected one 2-D label image")
    labels = check_label_image(labels, str(args.labels))
    instances = to_objects(labels, "instances" if args.instances else "auto")
    weights = border_weight_map(instances, w0=config.w0, sigma=config.sigma, class_balance=config.class_balance)
    figure = out.with_suffix(".png")
    write_tiff(out, weights.astype(np.float32))
    n_objects = int(np.count_nonzero(np.unique(instances)))
    print(f"wrote {out} (min {weights.min():.3f}, max {weights.max():.3f}, {n_objects} objects)")
    if args.png:
        from ..plots import plot_weight_map

        plot_weight_map(instances, separation_borders(instances), weights, figure,
                        title=f"w0 = {args.w0}, sigma = {args.sigma} px")
        print(f"wrote {figure}")
    return 0


def run_evaluate(args) -> int:
    from ..evaluate import evaluate_paths, format_table
    from ..io import check_output_file, write_json

    json_path = check_output_file(args.json) if args.json else None
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    result = evaluate_paths(args.pred, args.gt, metrics=metrics, warping=not args.no_warping)
    print(format_table(result))
    if json_path is not None:
        write_json(result, json_path)
        print(f"wrote {json_path}")
    return 0
