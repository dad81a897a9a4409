"""Seconds per training step of unetkit's ISBI recipe and of the MONAI peer, measured side by side, alone.

A wall-clock budget means nothing while other jobs share the cores, so the
comparison tables convert each budget to steps with these step times,
measured here in one run, alternating the two recipes (``--rounds`` x
``--steps`` steps each, the first ``--warmup`` steps of a round dropped).
Prints one JSON line: seconds per step of each, and the steps that fit 20
and 60 minutes.

    UNETKIT_DATA=../shared/data python benchmarks/calibrate_isbi_budget.py --set weights.w0=0 ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def unetkit_steps(overrides: list[str], n: int) -> list[float]:
    from unetkit import geometry
    from unetkit.config import apply_overrides, load_config_file
    from unetkit.data import load_pairs_from_paths
    from unetkit.model import UNet
    from unetkit.train import TileDataset, make_optimizer, run_config, scheduled_dropout, training_loss

    config = HERE.parent / "examples" / "isbi2012" / "config.toml"
    run = run_config(apply_overrides(load_config_file(config), overrides))
    kw = dict(num_classes=2, in_channels=1, normalization=run.model.normalization, weight_config=run.weights)
    pairs = load_pairs_from_paths(run.data, base=config.parent, **kw)
    cfg = run.train
    out = geometry.output_size(cfg.tile, depth=run.model.depth)
    data = TileDataset(pairs, run.augment, (cfg.tile, cfg.tile), (out, out), cfg.seed)
    # dropout as a budget run's calibration steps have it (the default profile's rule: off until the length is known)
    model = UNet.from_config(replace(run.model, dropout=scheduled_dropout(run, None))).train()
    opt = make_optimizer(model.parameters(), cfg)
    times = []
    for k in range(n):
        t = time.perf_counter()
        batch = [data[k * cfg.batch_size + i] for i in range(cfg.batch_size)]
        x, y, w = (torch.stack(v) for v in zip(*batch))
        loss = training_loss(cfg, model(x), y, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return times


def monai_steps(n: int) -> list[float]:
    import peer_monai_isbi as peer
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet

    images, labels = peer.load(Path(os.environ["UNETKIT_DATA"]), peer.TRAIN)
    loader = peer.make_loader(images, labels, 0)
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(16, 32, 64, 128, 256, 16)).train()
    loss_fn, opt = DiceCELoss(to_onehot_y=True, softmax=True), torch.optim.Adam(net.parameters(), lr=1e-3)
    times = []
    while len(times) < n:
        it = iter(loader)
        while len(times) < n:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            loss = loss_fn(net(batch["image"].as_tensor()), batch["label"].as_tensor())
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    ours, peer = [], []
    for _ in range(args.rounds):
        ours += unetkit_steps(args.set, args.steps)[args.warmup:]
        peer += monai_steps(args.steps)[args.warmup:]
    result = {"unetkit_s_per_step": float(np.median(ours)), "monai_s_per_step": float(np.median(peer)),
              "overrides": args.set, "threads": torch.get_num_threads(),
              "load_average_1min": os.getloadavg()[0]}
    for minutes in (20, 60):
        result[f"unetkit_steps_{minutes}m"] = int(60 * minutes / result["unetkit_s_per_step"])
        result[f"monai_steps_{minutes}m"] = int(60 * minutes / result["monai_s_per_step"])
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
