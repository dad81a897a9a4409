"""Figures people would rather look at: overlays, training curves, the weight map (paper Fig. 3).

All functions write a PNG atomically with matplotlib's non-interactive Agg
backend and return the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_path

__all__ = ["plot_prediction", "plot_training_curves", "plot_samples", "plot_weight_map", "contour_overlay"]


def _figure(ncols: int, *, size: float = 3.6, nrows: int = 1):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False, constrained_layout=True)
    return plt, fig, axes


def _save(plt, fig, path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _gray(image: np.ndarray) -> np.ndarray:
    """(H, W) display image from (H, W) or (C, H, W), scaled to [0, 1] by percentiles."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image[0] if image.shape[0] != 3 else np.moveaxis(image, 0, -1)
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip((image - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def contour_overlay(image: np.ndarray, mask: np.ndarray, *, color=(1.0, 0.2, 0.1)) -> np.ndarray:
    """RGB float (H, W, 3): the gray image with the boundaries of ``mask`` regions drawn in ``color``."""
    from skimage.segmentation import find_boundaries

    g = _gray(image)
    rgb = np.dstack([g, g, g]) if g.ndim == 2 else g
    edges = find_boundaries(np.asarray(mask), mode="inner")
    rgb = rgb.copy()
    rgb[edges] = color
    return rgb


def plot_prediction(image: np.ndarray, probability: np.ndarray, mask: np.ndarray, path, *, title: str = "",
                    truth: np.ndarray | None = None) -> Path:
    """image | probability of the foreground class | mask overlaid on the image (| ground truth)."""
    n = 4 if truth is not None else 3
    plt, fig, axes = _figure(n)
    ax = axes[0]
    ax[0].imshow(_gray(image), cmap="gray")
    ax[0].set_title("image")
    im = ax[1].imshow(probability, cmap="magma", vmin=0, vmax=1)
    ax[1].set_title("probability")
    fig.colorbar(im, ax=ax[1], fraction=0.046, pad=0.02)
    ax[2].imshow(contour_overlay(image, mask))
    ax[2].set_title("mask")
    if truth is not None:
        ax[3].imshow(contour_overlay(image, truth, color=(0.1, 0.8, 0.2)))
        ax[3].set_title("ground truth")
    for a in ax:
        a.set_axis_off()
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def plot_training_curves(history: list[dict], path) -> Path:
    """Training loss (and learning rate) against step, validation metrics against step."""
    train = [r for r in history if "loss" in r]
    val = [r for r in history if "val" in r]
    plt, fig, axes = _figure(2, size=4.2)
    ax = axes[0]
    if train:
        steps = [r["step"] for r in train]
        ax[0].plot(steps, [r["loss"] for r in train], color="#1f77b4", lw=1.2, label="train loss")
        ax[0].set_yscale("log")
        if val:
            ax[0].plot([r["step"] for r in val], [r["val"]["loss"] for r in val], "o-", color="#d62728", ms=3, label="val loss")
        ax[0].legend(frameon=False)
    ax[0].set_xlabel("step")
    ax[0].set_title("weighted cross-entropy")
    ax[0].grid(alpha=0.3)
    keys = [k for k in ("pixel_error", "rand_error", "warping_error", "accuracy", "iou", "v_rand", "v_info") if val and k in val[0]["val"]]
    for k in keys:
        ax[1].plot([r["step"] for r in val], [r["val"][k] for r in val], "o-", ms=3, label=k)
    ax[1].set_xlabel("step")
    ax[1].set_title("validation (t = 0.5)")
    ax[1].grid(alpha=0.3)
    if keys:
        ax[1].legend(frameon=False, fontsize=8)
    return _save(plt, fig, path)


def plot_samples(model, pairs, path, *, device=None) -> Path:
    """One row per validation pair: image | probability | predicted mask | ground truth."""
    from .inference import predict

    plt, fig, axes = _figure(4, nrows=len(pairs), size=3.0)
    for row, pair in zip(axes, pairs):
        p = predict(model, pair.image, device=device, normalize_input=False)
        fg = p[1] if p.shape[0] == 2 else p.argmax(0) / max(p.shape[0] - 1, 1)
        row[0].imshow(_gray(pair.image), cmap="gray")
        row[1].imshow(fg, cmap="magma", vmin=0, vmax=1)
        row[2].imshow(contour_overlay(pair.image, p.argmax(0)))
        row[3].imshow(contour_overlay(pair.image, pair.classes, color=(0.1, 0.8, 0.2)))
        for a, t in zip(row, ("image", "probability", "prediction", "ground truth")):
            a.set_title(f"{pair.name} {t}" if t == "image" else t, fontsize=9)
            a.set_axis_off()
    return _save(plt, fig, path)


def plot_weight_map(labels: np.ndarray, borders: np.ndarray, weights: np.ndarray, path, *, title: str = "") -> Path:
    """The paper's Fig. 3 layout: instance labels | separation borders | weight map."""
    from skimage.color import label2rgb

    plt, fig, axes = _figure(3, size=4.0)
    ax = axes[0]
    ax[0].imshow(label2rgb(np.asarray(labels), bg_label=0))
    ax[0].set_title(f"instances ({int(len(np.unique(labels)) - (labels == 0).any())})")
    ax[1].imshow(borders, cmap="gray")
    ax[1].set_title("separation borders")
    im = ax[2].imshow(weights, cmap="jet")
    ax[2].set_title("weight map w(x)")
    fig.colorbar(im, ax=ax[2], fraction=0.046, pad=0.02)
    for a in ax:
        a.set_axis_off()
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)
