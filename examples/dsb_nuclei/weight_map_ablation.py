"""What the border weight map buys on touching nuclei (the paper's point, on real data).

Train on the left half of ``$UNETKIT_DATA/dsb2018_nuclei`` (columns 0-255),
evaluate on the right half (256-511): Cell Tracking Challenge SEG, AP at IoU 0.5
and the number of ground-truth nuclei merged with a neighbour, with the border
weight (w0 = 10) and without it (w0 = 0), same budget and seeds.

    UNETKIT_DATA=../shared/data python examples/dsb_nuclei/weight_map_ablation.py [--steps 600] [--seeds 0,1,2]

Prints a table, writes ``results.json`` and ``ablation.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from unetkit.augment import AugmentConfig
from unetkit.data import make_pairs
from unetkit.inference import predict
from unetkit.instances import InstanceConfig, probabilities_to_instances
from unetkit.io import read_image
from unetkit.metrics import evaluate_instances
from unetkit.model import ModelConfig
from unetkit.normalize import NormalizationConfig
from unetkit.train import RunConfig, TrainConfig, train_on_pairs
from unetkit.weights import WeightMapConfig


def merged_objects(pred: np.ndarray, gt: np.ndarray) -> int:
    """Ground-truth objects whose majority predicted object is also the majority object of another one."""
    owner = {}
    for i in np.unique(gt[gt > 0]):
        hits = pred[gt == i]
        hits = hits[hits > 0]
        if hits.size * 2 > (gt == i).sum():  # more than half of the nucleus is predicted foreground
            owner[int(i)] = int(np.bincount(hits).argmax())
    counts = np.bincount(list(owner.values())) if owner else np.zeros(1, int)
    return int(sum(1 for j in owner.values() if counts[j] > 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="runs/dsb_ablation")
    args = parser.parse_args(argv)
    root = Path(os.environ.get("UNETKIT_DATA", "../shared/data")) / "dsb2018_nuclei"
    image, labels = read_image(root / "image.tif"), read_image(root / "labels.tif").astype(np.int64)
    left, right = (slice(None), slice(0, 256)), (slice(None), slice(256, 512))
    gt = labels[right]
    norm = NormalizationConfig(mode="zscore")
    model = ModelConfig(depth=3, base_features=16, dropout=0.5, normalization=norm, class_names=("background", "nucleus"))
    out = Path(args.out)
    results = []
    for w0 in (10.0, 0.0):
        wcfg = WeightMapConfig(w0=w0, sigma=5.0, class_balance=True)
        pairs = make_pairs([image[left]], [labels[left]], kind="instances", normalization=norm, weight_config=wcfg)
        for seed in [int(s) for s in args.seeds.split(",")]:
            run = RunConfig(model=model, augment=AugmentConfig(), weights=wcfg,
                            train=TrainConfig(steps=args.steps, tile=228, optimizer="adam", lr=1e-3, seed=seed,
                                              val_every=args.steps, checkpoint_every=args.steps, progress=False,
                                              plots=False))
            t0 = time.perf_counter()
            summary = train_on_pairs(run, pairs, [], out / f"w0_{w0:g}_seed{seed}", log=lambda m: None)
            prob = predict(summary.model, image[right])
            pred = probabilities_to_instances(prob, config=InstanceConfig(threshold=0.5, min_size=10))
            scores = evaluate_instances(pred, gt)
            row = {"w0": w0, "seed": seed, "seg": scores["seg"], "ap50": scores["ap50"],
                   "merged": merged_objects(pred, gt), "n_true": scores["n_true"], "n_pred": scores["n_pred"],
                   "train_s": time.perf_counter() - t0}
            results.append(row)
            print(f"w0={w0:>4g} seed={seed}: SEG {row['seg']:.3f}  AP50 {row['ap50']:.3f}  merged {row['merged']:3d}"
                  f"  objects {row['n_pred']}/{row['n_true']}  ({row['train_s']:.0f} s)", flush=True)
            np.save(out / f"w0_{w0:g}_seed{seed}" / "pred.npy", pred)
    print("\nw0    SEG (mean ± sd)    AP50 (mean ± sd)   merged GT nuclei (mean)")
    for w0 in (10.0, 0.0):
        r = [x for x in results if x["w0"] == w0]
        seg, ap, mg = (np.array([x[k] for x in r]) for k in ("seg", "ap50", "merged"))
        print(f"{w0:<4g}  {seg.mean():.3f} ± {seg.std():.3f}      {ap.mean():.3f} ± {ap.std():.3f}      {mg.mean():.1f}")
    (out / "results.json").write_text(json.dumps({"steps": args.steps, "rows": results}, indent=2))
    _figure(image[right], gt, out, results)
    return 0


def _figure(image, gt, out: Path, results) -> None:
    from skimage.segmentation import find_boundaries

    from unetkit.plots import display_gray, figure_grid, save_figure

    seed = results[0]["seed"]
    fig, axes = figure_grid(3, size=4.0)
    panels = [("ground truth", gt)] + [
        (f"w0 = {w0:g} (seed {seed})", np.load(out / f"w0_{w0:g}_seed{seed}" / "pred.npy")) for w0 in (10.0, 0.0)]
    for ax, (title, lab) in zip(axes[0], panels):
        g = display_gray(image)
        rgb = np.dstack([g, g, g])
        rgb[find_boundaries(lab, mode="inner")] = (1.0, 0.85, 0.0)
        ax.imshow(rgb)
        ax.set_title(f"{title}: {len(np.unique(lab[lab > 0]))} objects")
        ax.set_axis_off()
    save_figure(fig, out / "ablation.png")


if __name__ == "__main__":
    raise SystemExit(main())
