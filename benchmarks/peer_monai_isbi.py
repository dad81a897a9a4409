"""The peer, side by side: a plain MONAI U-Net recipe on ISBI 2012, trained for a wall-clock budget.

MONAI BasicUNet (features 16, 32, 64, 128, 256, 16), DiceCE loss, Adam 1e-3,
batches of four random 256x256 crops with random 90-degree rotations and flips
(MONAI's own dictionary transforms), intensities scaled to [0, 1], trained on
slices 00-19 of the shared training volume; then sliding-window inference
(roi 256, overlap 0.25, MONAI's defaults) on slices 20-24 with and without
8-fold test-time augmentation, written as P(cell) TIFFs that `unetkit
evaluate` scores like unetkit's own predictions.

    UNETKIT_DATA=../shared/data python benchmarks/peer_monai_isbi.py --out runs/monai_20m --minutes 20 --seed 0 \
        --record monai_20m_seed0
    (scores are written too: scores.json, scores_tta.json, summary.json, as unetkit evaluate computes them)

``--steps N`` trains for N steps instead (the comparison tables convert each
budget to steps from a step time measured alone on the machine). Needs the
``bench`` extra (monai).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from machine import machine_info  # noqa: E402  (benchmarks/machine.py, beside this script)
from unetkit.io import read_image, write_tiff

RECORDS = Path(__file__).resolve().parents[1] / "examples" / "isbi2012" / "records"
TRAIN = range(0, 20)
VAL = range(20, 25)


def load(data: Path, indices) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images = [read_image(data / "isbi2012" / "train" / "images" / f"{i:02d}.png").astype(np.float32) / 255 for i in indices]
    labels = [(read_image(data / "isbi2012" / "train" / "labels" / f"{i:02d}.png") > 0).astype(np.int64)
              for i in indices]
    return images, labels


def make_loader(images, labels, seed: int):
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, RandFlipd, RandRotate90d, RandSpatialCropSamplesd

    items = [{"image": im[None], "label": lab[None]} for im, lab in zip(images, labels)]
    transform = Compose([
        RandSpatialCropSamplesd(keys=("image", "label"), roi_size=(256, 256), num_samples=4, random_size=False),
        RandRotate90d(keys=("image", "label"), prob=0.5, max_k=3),
        RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=0),
        RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=1),
    ])
    transform.set_random_state(seed=seed)
    # batch_size 1 of 4 crop samples = batches of four 256x256 crops
    return DataLoader(Dataset(items, transform=transform), batch_size=1, shuffle=True, num_workers=0,
                      generator=torch.Generator().manual_seed(seed))


def train(images, labels, *, seed: int, minutes: float | None, steps: int | None, log) -> tuple[torch.nn.Module, dict]:
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet

    torch.manual_seed(seed)
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(16, 32, 64, 128, 256, 16))
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loader = make_loader(images, labels, seed)
    t0, step, losses = time.perf_counter(), 0, []
    net.train()
    while True:
        for batch in loader:
            x, y = batch["image"].as_tensor(), batch["label"].as_tensor()
            loss = loss_fn(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
            if step % 100 == 0:
                log(f"step {step}: loss {np.mean(losses[-100:]):.4f}, {time.perf_counter() - t0:.0f} s")
            if (steps is not None and step >= steps) or (minutes is not None and time.perf_counter() - t0 >= 60 * minutes):
                return net.eval(), {"steps": step, "train_s": time.perf_counter() - t0, "final_loss": float(np.mean(losses[-50:]))}


def predict(net, image: np.ndarray, *, tta: bool) -> np.ndarray:
    """P(cell) (H, W) by MONAI's sliding window (roi 256, overlap 0.25), optionally averaged over the 8 flips/rotations."""
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(image)[None, None]
    transforms = [(k, f) for f in (False, True) for k in range(4)] if tta else [(0, False)]
    acc = np.zeros(image.shape, np.float64)
    with torch.no_grad():
        for k, flip in transforms:
            t = torch.rot90(torch.flip(x, (-1,)) if flip else x, k, (-2, -1))
            p = torch.softmax(sliding_window_inference(t, (256, 256), 4, net, overlap=0.25), 1)[0, 1]
            p = torch.rot90(p, -k, (-2, -1))
            acc += (torch.flip(p, (-1,)) if flip else p).numpy()
    return (acc / len(transforms)).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, help="wall-clock training budget")
    parser.add_argument("--steps", type=int, help="train for this many steps instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--record", help="copy run.json, scores and summary to examples/isbi2012/records/NAME")
    args = parser.parse_args()
    if (args.minutes is None) == (args.steps is None):
        parser.error("give exactly one of --minutes and --steps")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(os.environ["UNETKIT_DATA"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load(data, TRAIN)
    net, info = train(images, labels, seed=args.seed, minutes=args.minutes, steps=args.steps,
                      log=lambda m: print(m, flush=True))
    torch.save(net.state_dict(), out / "monai_basicunet.pt")
    val_images, val_labels = load(data, VAL)
    for sub in ("prob", "prob_tta", "val_labels"):
        (out / sub).mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for i, image, label in zip(VAL, val_images, val_labels):
        write_tiff(out / "prob" / f"{i:02d}.tif", predict(net, image, tta=False))
        write_tiff(out / "prob_tta" / f"{i:02d}.tif", predict(net, image, tta=True))
        write_tiff(out / "val_labels" / f"{i:02d}.tif", (label * 255).astype(np.uint8))
    info.update(seed=args.seed, minutes=args.minutes, predict_s=time.perf_counter() - t0,
                torch=torch.__version__, threads=torch.get_num_threads(), machine=machine_info())
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    info.update(score(out))
    print(json.dumps({k: info[k] for k in ("steps", "train_s", "best_tta", "best")}), flush=True)
    if args.record:
        dest = RECORDS / args.record
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("run.json", "scores.json", "scores_tta.json", "summary.json"):
            shutil.copy(out / name, dest / name)
    return 0


def score(out: Path) -> dict:
    """unetkit evaluate of ``prob`` and ``prob_tta`` against ``val_labels``, as examples/isbi2012/run_arm.py does."""
    from unetkit.evaluate import evaluate_paths, headline_scores
    from unetkit.io import write_json

    summary = json.loads((out / "run.json").read_text())
    for tag in ("", "_tta"):
        result = evaluate_paths(out / f"prob{tag}", out / "val_labels")
        write_json(result, out / f"scores{tag}.json")
        summary.update({f"{mode}{tag}": scores for mode, scores in headline_scores(result).items()})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
