"""The napari loop on a real ISBI 2012 slice, headless: paint a few strokes, train, segment, measure, screenshot.

What a user does with the mouse, done by this script: open slice 20 of the
ISBI training volume, press "New strokes layer", paint a few strokes of label
1 on membranes and label 2 inside cells (here: short strokes taken from the
slice's own label image at a few places, the way a user would draw them),
set the time budget, press "Train", then look at the probability and mask
layers. Prints the painted pixels, the training time and the pixel error of
the result on the slice's FULL label (unetkit.metrics), and saves a screenshot
of the viewer.

    UNETKIT_DATA=../shared/data xvfb-run -a python examples/napari/sparse_loop.py --seconds 120 \\
        --screenshot docs/napari_sparse_loop.png
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def strokes_from_labels(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` short strokes per class, 3 px wide and 15-40 px long, inside membrane (1) and cell (2) regions."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    cell = labels > 0
    strokes = np.zeros(labels.shape, np.uint8)
    for value, region in ((1, ~cell), (2, ndi.binary_erosion(cell, iterations=4))):
        ys, xs = np.nonzero(region)
        for _ in range(n):
            i = rng.integers(len(ys))
            y, x = ys[i], xs[i]
            dy, dx = rng.normal(size=2)
            length = rng.integers(15, 40)
            for t in range(length):
                yy, xx = int(round(y + t * dy / np.hypot(dy, dx))), int(round(x + t * dx / np.hypot(dy, dx)))
                if 1 <= yy < labels.shape[0] - 1 and 1 <= xx < labels.shape[1] - 1 and region[yy, xx]:
                    strokes[yy - 1: yy + 2, xx - 1: xx + 2] = np.where(region[yy - 1: yy + 2, xx - 1: xx + 2], value,
                                                                       strokes[yy - 1: yy + 2, xx - 1: xx + 2])
    return strokes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--strokes", type=int, default=25, help="strokes per class")
    parser.add_argument("--screenshot", default="napari_sparse_loop.png")
    parser.add_argument("--out", default="napari_loop_model.pt")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    import warnings

    # napari shows warnings as toasts over the canvas; this one is about the Qt binding, not the loop.
    warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")
    import napari
    from qtpy.QtWidgets import QApplication

    from unetkit.io import read_image
    from unetkit.metrics import pixel_error
    from unetkit.napari_plugin.widgets import SegmentWidget, TrainWidget

    data = Path(os.environ["UNETKIT_DATA"]) / "isbi2012" / "train"
    image = read_image(data / "images" / "20.png")
    truth = read_image(data / "labels" / "20.png") > 0
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1100)
    viewer.add_image(image, name="ISBI 20")
    segment, train = SegmentWidget(viewer), TrainWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    viewer.window.add_dock_widget(train, name="Train")
    train.segment = segment
    train.image.value = viewer.layers["ISBI 20"]
    train.add_strokes_layer()
    strokes = strokes_from_labels(truth, args.strokes)
    viewer.layers["ISBI 20 strokes"].data = strokes
    train.seconds.value = args.seconds
    train.save_to.value = str(Path(args.out).resolve())
    t0 = time.perf_counter()
    train.train()
    app = QApplication.instance()
    while train.result is None or "ISBI 20 mask" not in viewer.layers or segment.status.value != "done":
        app.processEvents()
        time.sleep(0.05)
        if time.perf_counter() - t0 > args.seconds + 600:
            raise TimeoutError("training or segmentation did not finish")
    mask = np.asarray(viewer.layers["ISBI 20 mask"].data) > 0
    result = {"painted_pixels": int((strokes > 0).sum()), "painted_fraction": float((strokes > 0).mean()),
              "training_seconds": round(train.result.wall_time_s, 1), "steps": train.result.steps,
              "pixel_error_full_label": round(pixel_error(truth, mask), 4),
              "accuracy_full_label": round(float((mask == truth).mean()), 4),
              "pixel_error_all_cell": round(pixel_error(truth, np.ones_like(truth)), 4),  # the trivial answer
              "accuracy_all_cell": round(float(truth.mean()), 4)}
    viewer.layers["ISBI 20 probability"].visible = False
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
    viewer.screenshot(args.screenshot, canvas_only=False)
    print(json.dumps(result))
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
