"""Training data: image/label pairs from folders, multi-page TIFF stacks or Python lists.

Every pair becomes a :class:`TrainingPair` of a normalised image, a class map and
the paper's per-pixel weight map (computed once and cached in memory):

- ``classes``: label values are class indices 0..C-1.
- ``binary``: two values such as ISBI's 0/255; the larger is class 1 (255 = cell).
  Objects are the 4-connected components of class 1; the border weight map is
  computed from them.
- ``instances``: 0 = background, 1..N = objects. Touching objects are separated
  by a carved 1-pixel background line, and the weight map emphasises it.
- ``auto``: values {0, v} with v > 1 -> ``binary``; all values < num_classes
  -> ``classes``; otherwise ``instances``.

An ``ignore_value`` marks pixels that do not count in the loss (weight 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .io import ImageReadError, list_images, read_image, read_stack
from .normalize import NormalizationConfig, intensity_range, normalize
from .weights import WeightMapConfig, border_weight_map, class_balance_weights, instances_to_classes

__all__ = ["DataConfig", "TrainingPair", "load_pairs_from_paths", "make_pairs", "parse_select"]

LABEL_KINDS = ("auto", "classes", "binary", "instances")


@dataclass(frozen=True)
class DataConfig:
    """Where training and validation pairs come from.

    ``images``/``labels``: a folder (pairs matched by file stem) or a multi-page
    TIFF stack (pairs matched by page). ``select``/``val_select``: Python-style
    slices of the sorted pairs, e.g. ``"0:20"`` and ``"20:25"`` to validate on
    the last slices of a stack. Paths are relative to the config file's folder
    unless absolute; ``$VAR`` and ``~`` are expanded.
    """

    images: str = ""
    labels: str = ""
    select: str = ":"
    val_images: str = ""
    val_labels: str = ""
    val_select: str = ""
    label_kind: str = "auto"
    ignore_value: int | None = None

    def __post_init__(self):
        if self.label_kind not in LABEL_KINDS:
            raise ValueError(f"label_kind must be one of {LABEL_KINDS}, got {self.label_kind!r}")


@dataclass
class TrainingPair:
    """One training image with its targets.

    Attributes
    ----------
    image : (C, H, W) float32, normalised
    classes : (H, W) int64 class index per pixel
    weights : (H, W) float32 loss weight w(x) (0 = ignored)
    name : str
    """

    image: np.ndarray
    classes: np.ndarray
    weights: np.ndarray
    name: str = ""
    instances: np.ndarray | None = field(default=None, repr=False)


def parse_select(text: str, n: int) -> list[int]:
    """Indices chosen by ``"a:b"``, ``"a:b:s"``, ``"i,j,k"`` or ``":"`` from n items."""
    text = text.strip()
    if not text:
        return []
    try:
        if ":" in text:
            parts = [int(p) if p.strip() else None for p in text.split(":")]
            return list(range(n))[slice(*parts)]
        idx = [int(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"select {text!r} must look like 'a:b' or 'i,j,k'") from None
    bad = [i for i in idx if not -n <= i < n]
    if bad:
        raise ValueError(f"select {text!r}: index {bad[0]} out of range for {n} items")
    return [i % n for i in idx]


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(os.path.expandvars(os.path.expanduser(path)))
    if "$" in str(p):
        raise ValueError(f"path {path!r} uses an environment variable that is not set")
    return p if p.is_absolute() or base is None else base / p


def _read_many(path: Path) -> tuple[list[str], list[np.ndarray]]:
    if path.is_dir():
        files = list_images(path)
        return [f.stem for f in files], [read_image(f) for f in files]
    planes = read_stack(path)
    return [f"{path.stem}[{i}]" for i in range(len(planes))], planes


def load_arrays(images: str, labels: str, *, base: Path | None = None) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Read matched image and label arrays from two folders or two stacks."""
    ipath, lpath = _resolve(images, base), _resolve(labels, base)
    for p, what in ((ipath, "images"), (lpath, "labels")):
        if not p.exists():
            raise ImageReadError(f"{what} path {p} does not exist")
    inames, imgs = _read_many(ipath)
    lnames, labs = _read_many(lpath)
    if ipath.is_dir() and lpath.is_dir():
        lmap = dict(zip(lnames, labs))
        missing = [n for n in inames if n not in lmap]
        if missing:
            raise ValueError(f"no label for image(s) {missing[:5]} in {lpath} (pairs are matched by file stem)")
        labs = [lmap[n] for n in inames]
    elif len(imgs) != len(labs):
        raise ValueError(f"{len(imgs)} images but {len(labs)} labels ({ipath}, {lpath})")
    return inames, imgs, labs


def detect_label_kind(labels: list[np.ndarray], num_classes: int) -> str:
    """Guess the label kind from the values (see module docstring)."""
    values = np.unique(np.concatenate([np.unique(l) for l in labels]))
    if len(values) <= 2 and values.min() == 0 and values.max() > 1:
        return "binary"
    if values.max() < num_classes:
        return "classes"
    return "instances"


def make_pair(
    image: np.ndarray,
    label: np.ndarray,
    *,
    kind: str,
    num_classes: int,
    in_channels: int,
    normalization: NormalizationConfig,
    weight_config: WeightMapConfig,
    ignore_value: int | None = None,
    name: str = "",
) -> TrainingPair:
    """Turn one raw image and label into a :class:`TrainingPair` (normalised image, classes, weights)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] != in_channels:
        raise ValueError(f"{name}: expected an image (H, W) or ({in_channels}, H, W), got shape {image.shape}")
    label = np.asarray(label)
    if label.ndim != 2 or label.shape != image.shape[1:]:
        raise ValueError(f"{name}: label shape {label.shape} does not match image shape {image.shape[1:]}")
    if not np.issubdtype(label.dtype, np.integer):
        if np.any(label != np.round(label)):
            raise ValueError(f"{name}: labels must be integers, got non-integer values ({label.dtype})")
        label = label.astype(np.int64)
    ignore = label == ignore_value if ignore_value is not None else np.zeros(label.shape, bool)
    valid = label[~ignore]
    instances = None
    if kind == "binary":
        values = np.unique(valid)
        if len(values) > 2:
            raise ValueError(f"{name}: binary labels have more than two values: {values[:6]}")
        if num_classes != 2:
            raise ValueError(f"{name}: binary labels need a 2-class model, got num_classes={num_classes}")
        fg = (label == values.max()) & ~ignore if len(values) == 2 and values.max() > 0 else (label > 0) & ~ignore
        instances, _ = ndimage.label(fg)
        classes = fg.astype(np.int64)
    elif kind == "instances":
        if valid.size and valid.min() < 0:
            raise ValueError(f"{name}: instance labels must be >= 0, got {valid.min()}")
        if num_classes != 2:
            raise ValueError(f"{name}: instance labels need a 2-class model (background/object), got {num_classes}")
        instances = np.where(ignore, 0, label).astype(np.int64)
        classes = instances_to_classes(instances).astype(np.int64)
    else:
        if valid.size and (valid.min() < 0 or valid.max() >= num_classes):
            raise ValueError(
                f"{name}: label values must be class indices 0..{num_classes - 1}, got {valid.min()}..{valid.max()}"
            )
        classes = np.where(ignore, 0, label).astype(np.int64)
    if instances is not None and weight_config.w0 > 0:
        weights = border_weight_map(instances, w0=weight_config.w0, sigma=weight_config.sigma,
                                    class_balance=weight_config.class_balance)
    elif weight_config.class_balance:
        weights = class_balance_weights(classes, num_classes)
    else:
        weights = np.ones(label.shape, np.float32)
    weights = np.where(ignore, 0.0, weights).astype(np.float32)
    offset, scale = intensity_range(image, normalization, channels=True)
    return TrainingPair(normalize(image, offset, scale), classes, weights, name,
                        instances.astype(np.int32) if instances is not None else None)


def make_pairs(images, labels, *, names=None, kind: str = "auto", num_classes: int = 2, in_channels: int = 1,
               normalization: NormalizationConfig | None = None, weight_config: WeightMapConfig | None = None,
               ignore_value: int | None = None) -> list[TrainingPair]:
    """Training pairs from Python lists of arrays (images (H, W) or (C, H, W); labels (H, W) integers)."""
    if len(images) == 0:
        raise ValueError("no training images: the set is empty")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    names = names or [f"#{i}" for i in range(len(images))]
    if kind == "auto":
        kept = [np.where(l == ignore_value, 0, l) if ignore_value is not None else l for l in labels]
        kind = detect_label_kind(kept, num_classes)
    return [
        make_pair(i, l, kind=kind, num_classes=num_classes, in_channels=in_channels,
                  normalization=normalization or NormalizationConfig(), weight_config=weight_config or WeightMapConfig(),
                  ignore_value=ignore_value, name=n)
        for i, l, n in zip(images, labels, names)
    ]


def load_pairs_from_paths(config: DataConfig, *, validation: bool = False, base: Path | None = None, **kwargs) -> list[TrainingPair]:
    """Training (or validation) pairs described by a :class:`DataConfig`.

    Validation pairs come from ``val_images``/``val_labels`` when given, else
    from ``images``/``labels`` with ``val_select``. Returns [] when no
    validation set is configured.
    """
    images = (config.val_images or config.images) if validation else config.images
    labels = (config.val_labels or config.labels) if validation else config.labels
    select = (config.val_select or (":" if config.val_images else "")) if validation else config.select
    if validation and not select:
        return []
    if not images or not labels:
        raise ValueError("data.images and data.labels must name a folder or a TIFF stack")
    names, imgs, labs = load_arrays(images, labels, base=base)
    idx = parse_select(select, len(imgs))
    if not idx:
        raise ValueError(f"selection {select!r} of {len(imgs)} pairs is empty")
    return make_pairs([imgs[i] for i in idx], [labs[i] for i in idx], names=[names[i] for i in idx],
                      kind=config.label_kind, ignore_value=config.ignore_value, **kwargs)
