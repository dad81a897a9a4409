"""DSB 2018 nuclei: unetkit's recipe with instances against a plain MONAI recipe + connected components.

Both train on the left half of the shared DSB image (columns 0-255) for the
same number of minutes (or steps) and are scored on the right half (57
nuclei) with CTC SEG and AP at IoU 0.5 (``unetkit.metrics.evaluate_instances``).

* unetkit: the default profile (Adam, poly decay, CE + Dice, full
  augmentation) with the paper's border weight map (w0 = 10, sigma = 5),
  depth 3, width 16, 228-px tiles; instances by
  connected components of p > 0.5 plus a seeded watershed split
  (``--watershed``) or plain components.
* MONAI: BasicUNet (16, 32, 64, 128, 256, 16), DiceCE, Adam 1e-3, batches of
  four 128x128 crops with rot90/flip; connected components of p > 0.5.

    UNETKIT_DATA=../shared/data python examples/dsb_nuclei/compare.py --out runs/dsb --minutes 10 --seed 0

Writes OUT/<method>_seed<k>/scores.json (and, for unetkit, the run's config.json, metrics.jsonl and
train.log) and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from unetkit.io import read_image
from unetkit.labels import label_components
from unetkit.metrics import evaluate_instances

LEFT, RIGHT = (slice(None), slice(0, 256)), (slice(None), slice(256, 512))


def data():
    root = Path(os.environ["UNETKIT_DATA"]) / "dsb2018_nuclei"
    return read_image(root / "image.tif"), read_image(root / "labels.tif").astype(np.int64)


def run_unetkit(image, labels, out: Path, *, seed: int, steps: int | None, minutes: float | None, watershed: bool):
    from unetkit import predict
    from unetkit.data import make_pairs
    from unetkit.instances import InstanceConfig, probabilities_to_instances
    from unetkit.train import run_config, train_on_pairs

    # The default profile's recipe (unetkit.train.profiles) with what belongs to this data: the border weight map
    # for touching nuclei and a network of depth 3 for 256-px-wide training data. The profile's dropout 0.5 is on
    # here by its own rule: ten minutes show each pixel of the one training half ~1,000 times (>= 300); without
    # dropout SEG fell (README.md here).
    run = run_config({
        "model": {"depth": 3, "base_features": 16, "normalization": {"mode": "zscore"}},
        "weights": {"w0": 10.0, "sigma": 5.0},
        "train": {"steps": steps or 10**6, "budget": f"{minutes * 60:.0f}s" if minutes else "", "tile": 228,
                  "seed": seed, "val_every": 10**6, "checkpoint_every": 10**6, "plots": False, "progress": False}})
    pairs = make_pairs([image[LEFT]], [labels[LEFT]], kind="instances", normalization=run.model.normalization,
                       weight_config=run.weights)
    t0 = time.perf_counter()
    messages: list[str] = []  # the run's own log lines (the dropout the rule chose among them), kept in train.log
    result = train_on_pairs(run, pairs, [], out, log=messages.append)
    (out / "train.log").write_text("\n".join(messages) + "\n")
    prob = predict(result.model, image[RIGHT])
    pred = probabilities_to_instances(prob, config=InstanceConfig(threshold=0.5, min_size=10, watershed=watershed))
    return pred, {"steps": result.steps, "train_s": time.perf_counter() - t0}


def run_monai(image, labels, out: Path, *, seed: int, steps: int | None, minutes: float | None):
    from monai.data import DataLoader, Dataset
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet
    from monai.transforms import Compose, RandFlipd, RandRotate90d, RandSpatialCropSamplesd

    torch.manual_seed(seed)
    img = image.astype(np.float32)
    img = (img - img.min()) / (img.max() - img.min())
    items = [{"image": img[LEFT][None], "label": (labels[LEFT] > 0).astype(np.int64)[None]}]
    transform = Compose([
        RandSpatialCropSamplesd(keys=("image", "label"), roi_size=(128, 128), num_samples=4, random_size=False),
        RandRotate90d(keys=("image", "label"), prob=0.5, max_k=3),
        RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=0),
        RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=1)])
    transform.set_random_state(seed=seed)
    loader = DataLoader(Dataset(items, transform=transform), batch_size=1, shuffle=True, num_workers=0)
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(16, 32, 64, 128, 256, 16))
    loss_fn, opt = DiceCELoss(to_onehot_y=True, softmax=True), torch.optim.Adam(net.parameters(), lr=1e-3)
    t0, step = time.perf_counter(), 0
    net.train()
    while not ((steps and step >= steps) or (minutes and time.perf_counter() - t0 >= 60 * minutes)):
        for batch in loader:
            loss = loss_fn(net(batch["image"].as_tensor()), batch["label"].as_tensor())
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    net.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(img[RIGHT]))[None, None]
        prob = torch.softmax(sliding_window_inference(x, (128, 128), 4, net, overlap=0.25), 1)[0, 1].numpy()
    from unetkit.instances import remove_small

    pred = remove_small(label_components(prob > 0.5), 10)
    return pred, {"steps": step, "train_s": time.perf_counter() - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--method", choices=("unetkit", "unetkit-watershed", "monai"), default="unetkit-watershed")
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    image, labels = data()
    out = Path(args.out) / f"{args.method}_seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    kwargs = dict(seed=args.seed, steps=args.steps, minutes=args.minutes)
    if args.method == "monai":
        pred, info = run_monai(image, labels, out, **kwargs)
    else:
        pred, info = run_unetkit(image, labels, out, watershed=args.method.endswith("watershed"), **kwargs)
    scores = evaluate_instances(pred, labels[RIGHT])
    record = {"method": args.method, "seed": args.seed, **info, **scores, "minutes": args.minutes}
    (out / "scores.json").write_text(json.dumps(record, indent=2) + "\n")
    np.save(out / "pred.npy", pred)
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
