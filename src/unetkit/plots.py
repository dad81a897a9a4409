"""Figures people would rather look at: overlays, training curves, the weight map (paper Fig. 3).

Every function draws from arrays it is given (none runs a model) and writes a
PNG atomically. Figures are made with :class:`matplotlib.figure.Figure` and
the Agg canvas directly, so no pyplot state and no global backend are
touched. :func:`figure_grid`, :func:`display_gray` and :func:`save_figure`
are the building blocks for recipes that draw their own figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_path

__all__ = ["plot_prediction", "plot_training_curves", "plot_samples", "plot_weight_map", "contour_overlay",
           "figure_grid", "display_gray", "save_figure"]


def figure_grid(ncols: int, *, nrows: int = 1, size: float = 3.6):
    """A new figure with an (nrows, ncols) array of axes: ``(fig, axes)``; no pyplot, no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * ncols, size * nrows), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path) -> Path:
    """Write ``fig`` as PNG (110 dpi) atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def display_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) display image from (H, W) or (C, H, W), scaled to [0, 1] by percentiles (RGB kept as (H, W, 3))."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image[0] if image.shape[0] != 3 else np.moveaxis(image, 0, -1)
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip((image - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def contour_overlay(image: np.ndarray, mask: np.ndarray, *, color=(1.0, 0.2, 0.1)) -> np.ndarray:
    """RGB float (H, W, 3): the gray image with the boundaries of ``mask`` regions drawn in ``color``."""
    from skimage.segmentation import find_boundaries

    g = display_gray(image)
    rgb = np.dstack([g, g, g]) if g.ndim == 2 else g
    edges = find_boundaries(np.asarray(mask), mode="inner")
    rgb = rgb.copy()
    rgb[edges] = color
    return rgb


def plot_prediction(image: np.ndarray, probability: np.ndarray, mask: np.ndarray, path, *, title: str = "",
                    truth: np.ndarray | None = None) -> Path:
    """image | probability of the foreground class | mask overlaid on the image (| ground truth)."""
    fig, axes = figure_grid(4 if truth is not None else 3)
    ax = axes[0]
    ax[0].imshow(display_gray(image), cmap="gray")
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
    return save_figure(fig, path)


def plot_training_curves(history: list[dict], path) -> Path:
    """Training loss (and learning rate) against step, validation metrics against step."""
    train = [r for r in history if "loss" in r]
    val = [r for r in history if "val" in r]
    fig, axes = figure_grid(2, size=4.2)
    ax = axes[0]
    if train:
        ax[0].plot([r["step"] for r in train], [r["loss"] for r in train], color="#1f77b4", lw=1.2, label="train loss")
        ax[0].set_yscale("log")
        if val:
            ax[0].plot([r["step"] for r in val], [r["val"]["loss"] for r in val], "o-", color="#d62728", ms=3,
                       label="val loss")
        ax[0].legend(frameon=False)
    ax[0].set_xlabel("step")
    ax[0].set_title("weighted cross-entropy")
    ax[0].grid(alpha=0.3)
    keys = [k for k in ("pixel_error", "rand_error", "warping_error", "accuracy", "iou", "v_rand", "v_info")
            if val and k in val[0]["val"]]
    for k in keys:
        ax[1].plot([r["step"] for r in val], [r["val"][k] for r in val], "o-", ms=3, label=k)
    ax[1].set_xlabel("step")
    ax[1].set_title("validation (t = 0.5)")
    ax[1].grid(alpha=0.3)
    if keys:
        ax[1].legend(frameon=False, fontsize=8)
    return save_figure(fig, path)


def plot_samples(pairs, probabilities, path) -> Path:
    """One row per pair: image | probability | predicted mask | ground truth.

    ``pairs`` are :class:`unetkit.data.TrainingPair` (image, classes, name);
    ``probabilities`` their (C, H, W) softmax outputs, e.g. from validation.
    """
    if len(pairs) != len(probabilities):
        raise ValueError(f"{len(pairs)} pairs but {len(probabilities)} probability maps")
    fig, axes = figure_grid(4, nrows=len(pairs), size=3.0)
    for row, pair, p in zip(axes, pairs, probabilities):
        fg = p[1] if p.shape[0] == 2 else p.argmax(0) / max(p.shape[0] - 1, 1)
        row[0].imshow(display_gray(pair.image), cmap="gray")
        row[1].imshow(fg, cmap="magma", vmin=0, vmax=1)
        row[2].imshow(contour_overlay(pair.image, p.argmax(0)))
        row[3].imshow(contour_overlay(pair.image, pair.classes, color=(0.1, 0.8, 0.2)))
        for a, t in zip(row, ("image", "probability", "prediction", "ground truth")):
            a.set_title(f"{pair.name} {t}" if t == "image" else t, fontsize=9)
            a.set_axis_off()
    return save_figure(fig, path)


def plot_weight_map(labels: np.ndarray, borders: np.ndarray, weights: np.ndarray, path, *, title: str = "") -> Path:
    """The paper's Fig. 3 layout: instance labels | separation borders | weight map."""
    from skimage.color import label2rgb

    fig, axes = figure_grid(3, size=4.0)
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
    return save_figure(fig, path)
