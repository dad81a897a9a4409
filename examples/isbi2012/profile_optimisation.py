"""Profile the first steps of training: loss scale, per-layer gradient norms and update sizes.

Trains the ISBI recipe's network on slices 00-19 for N steps under several
optimiser settings (same seed, same tiles) and records, every step: the loss,
the global gradient norm, and per level of the U-Net the gradient norm, the
weight norm and the relative update |dW| / |W|. Also records the statistics
of the loss weights w(x) of each tile (the border weight map multiplies the
per-pixel gradients by up to ~20).

    UNETKIT_DATA=../shared/data python examples/isbi2012/profile_optimisation.py --out runs/profile \
        --steps 500 --arms adam_1e-3 sgd_0.99_1e-2 sgd_0.99_1e-3 --set weights.w0=10

(``weights.w0=10``: the paper's border weights, as profiled in the README; the
ISBI config itself now trains with w0 = 0.) The summary of that run is kept in
``examples/isbi2012/records/profile/summary.json``.

Writes OUT/profile.json and OUT/profile.png.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from unetkit import UNet, geometry
from unetkit.config import load_config_file
from unetkit.data import load_pairs_from_paths
from unetkit.losses import weighted_cross_entropy
from unetkit.plots import figure_grid, save_figure
from unetkit.train import RunConfig, TileDataset, make_optimizer, run_config, schedule_passes, scheduled_dropout

ARMS = {
    "adam_1e-3": dict(optimizer="adam", lr=1e-3),
    "sgd_0.99_1e-2": dict(optimizer="sgd", lr=1e-2, momentum=0.99),
    "sgd_0.99_1e-3": dict(optimizer="sgd", lr=1e-3, momentum=0.99),
    "sgd_0.99_1e-4": dict(optimizer="sgd", lr=1e-4, momentum=0.99),
}


def level_of(name: str) -> str:
    """'down.0', 'bottleneck', 'up.2', 'head' from a parameter name."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] in ("down", "up") else parts[0]


def profile_arm(run: RunConfig, pairs, steps: int, arm: dict) -> dict:
    cfg = replace(run.train, **arm)
    mcfg = run.model
    tile = (cfg.tile, cfg.tile)
    out = tuple(geometry.output_size(t, depth=mcfg.depth) for t in tile)
    data = TileDataset(pairs, run.augment, tile, out, cfg.seed)
    # the dropout a training run of this length has (the default profile's rule: off for short schedules)
    passes = schedule_passes(steps, cfg.batch_size, out, [p.image.shape for p in pairs])
    mcfg = replace(mcfg, dropout=scheduled_dropout(run, passes))
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        model = UNet.from_config(mcfg)
        opt = make_optimizer(model.parameters(), cfg)
        names = [n for n, _ in model.named_parameters()]
        levels = sorted({level_of(n) for n in names}, key=lambda s: (s.split(".")[0], s))
        rec = {"loss": [], "grad_norm": [], "levels": levels, "grad": {l: [] for l in levels},
               "weight": {l: [] for l in levels}, "update": {l: [] for l in levels}, "w_mean": [], "w_max": []}
        t0 = time.perf_counter()
        for step in range(steps):
            x, y, w = (t[None] for t in data[step])
            loss = weighted_cross_entropy(model(x), y, w)
            if not torch.isfinite(loss):
                rec["diverged_at"] = step
                break
            opt.zero_grad()
            loss.backward()
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            grads = {n: p.grad.detach() for n, p in model.named_parameters()}
            opt.step()
            rec["loss"].append(float(loss))
            rec["grad_norm"].append(float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values()))))
            rec["w_mean"].append(float(w.mean()))
            rec["w_max"].append(float(w.max()))
            for level in levels:
                members = [n for n in names if level_of(n) == level]
                g = torch.sqrt(sum((grads[n].double() ** 2).sum() for n in members))
                wn = torch.sqrt(sum((before[n].double() ** 2).sum() for n in members))
                dw = torch.sqrt(sum(((dict(model.named_parameters())[n].detach() - before[n]).double() ** 2).sum()
                                    for n in members))
                rec["grad"][level].append(float(g))
                rec["weight"][level].append(float(wn))
                rec["update"][level].append(float(dw / wn))
        rec["seconds"] = time.perf_counter() - t0
    return rec


def figure(results: dict, path: Path) -> None:
    fig, axes = figure_grid(3, nrows=len(results), size=3.6)
    for row, (arm, rec) in zip(axes, results.items()):
        steps = np.arange(1, len(rec["loss"]) + 1)
        row[0].plot(steps, rec["loss"], lw=0.8)
        row[0].set_yscale("log")
        row[0].set_title(f"{arm}: loss" + (f" (NaN at {rec['diverged_at']})" if "diverged_at" in rec else ""), fontsize=9)
        for level in rec["levels"]:
            row[1].plot(steps, rec["grad"][level], lw=0.6, label=level)
            row[2].plot(steps, rec["update"][level], lw=0.6, label=level)
        row[1].set_yscale("log")
        row[1].set_title("gradient norm per level", fontsize=9)
        row[2].set_yscale("log")
        row[2].set_title("|dW| / |W| per step", fontsize=9)
    axes[0][1].legend(fontsize=6, ncol=2)
    for a in axes.ravel():
        a.set_xlabel("step", fontsize=8)
    save_figure(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(Path(__file__).with_name("config.toml")))
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--set", action="append", default=[], help="config override, as in unetkit train")
    args = parser.parse_args()
    from unetkit.config import apply_overrides

    run = run_config(apply_overrides(load_config_file(args.config), args.set))
    kwargs = dict(num_classes=run.model.num_classes, in_channels=run.model.in_channels,
                  normalization=run.model.normalization, weight_config=run.weights)
    pairs = load_pairs_from_paths(run.data, base=Path(args.config).resolve().parent, **kwargs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for arm in args.arms:
        results[arm] = profile_arm(run, pairs, args.steps, ARMS[arm])
        (out / "profile.json").write_text(json.dumps(results))
        print(f"{arm}: {len(results[arm]['loss'])} steps in {results[arm]['seconds']:.0f} s", flush=True)
    figure(results, out / "profile.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
