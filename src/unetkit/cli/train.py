"""``unetkit train``: train from a config file (and ``unetkit demo``, the same on generated data)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from .common import UsageError, add_quiet, log_for, progress_enabled

__all__ = ["add_parser", "add_demo_parser", "run", "run_demo"]


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train from a TOML/YAML config", description="Train a U-Net as in the paper. "
                       "Writes DIR/best.pt, DIR/last.pt, DIR/config.json, DIR/metrics.jsonl, DIR/curves.png.")
    p.add_argument("config", help="TOML, YAML or JSON config (sections: model, data, augment, weights, train)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue exactly from DIR/last.pt")
    p.add_argument("--budget", metavar="TIME", help="train for this wall-clock time (e.g. 30m, 1h30m): the step "
                   "time is measured and train.steps set so that the schedule ends on time")
    add_quiet(p)
    p.set_defaults(func=run)


def add_demo_parser(sub) -> None:
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
    add_quiet(p)
    p.set_defaults(func=run_demo)


def run(args) -> int:
    from ..config import apply_overrides, load_config_file
    from ..io import check_output_dir
    from ..train import run_config, train

    out = check_output_dir(args.out)
    overrides = list(args.set or []) + ([f'train.budget="{args.budget}"'] if args.budget else [])
    config = run_config(apply_overrides(load_config_file(args.config), overrides))
    if not progress_enabled(args):
        config = replace(config, train=replace(config.train, progress=False))
    if args.resume and not (out / "last.pt").is_file():
        raise UsageError(f"--resume: {out / 'last.pt'} does not exist")
    result = train(config, out, resume=args.resume, base=Path(args.config).resolve().parent, log=log_for(args))
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    print(f"trained {result.steps} steps in {result.wall_time_s:.0f} s; checkpoints in {out}/ (best.pt, last.pt)")
    if result.validation:
        print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in result.validation.items()))
    return 0


def run_demo(args) -> int:
    from ..demo import DemoConfig, run_demo as demo

    overrides = {k: v for k, v in (("steps", args.steps), ("image_size", args.size), ("n_train", args.n_train),
                                    ("base_features", args.base_features), ("tile", args.tile), ("seed", args.seed))
                 if v is not None}
    for key, value in overrides.items():
        if key != "seed" and value < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
    result = demo(args.out, replace(DemoConfig(), **overrides), progress=progress_enabled(args), log=log_for(args))
    print(f"held-out pixel accuracy: {result['accuracy']:.4f}")
    print(f"trained {result['steps']} steps in {result['train_wall_time_s']:.0f} s; total {result['wall_time_s']:.0f} s")
    print(f"wrote {result['out']}/: model.pt, heldout_prob.tif, heldout_mask.png, heldout_overlay.png, train/")
    return 0
