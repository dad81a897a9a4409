"""Training data: image/label pairs from folders, multi-page TIFF stacks or Python lists.

Every pair becomes a :class:`TrainingPair` of a normalised image, a class map and
the paper's per-pixel weight map (computed once and cached in memory). What the
label values mean is decided by :mod:`unetkit.labels` (the label kinds and the
one mask-to-objects rule):

- ``binary`` (0/255, 0/1): objects are the 4-connected components of the
  foreground; the border weight map is computed from them;
- ``instances``: 0 = background, 1..N = objects; touching objects are separated
  by a carved 1-pixel background line and the weight map emphasises it;
- ``classes``: class indices 0..C-1;
- ``auto``: by the values (:func:`unetkit.labels.detect_label_kind`).

Objects become a 2-class target (background / object, with carved borders) or,
for 3-class models, the background / interior / border target.

An ``ignore_value`` marks pixels that do not count in the loss (weight 0):
sparse annotations, as the paper's few-annotation setting and a painting user
produce them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .io import ImageReadError, list_images, read_image_axes, read_stack
from .labels import (
    LABEL_KINDS,
    check_label_image,
    detect_label_kind,
    instances_to_border_classes,
    instances_to_classes,
    is_binary_values,
    mask_to_objects,
)
from .normalize import NormalizationConfig, intensity_range, normalize
from .weights import WeightMapConfig, border_weight_map, class_balance_weights

__all__ = ["DataConfig", "TrainingPair", "load_pairs_from_paths", "make_pair", "make_pairs", "parse_select",
           "load_arrays", "resolve_path"]


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


@dataclass(frozen=True, eq=False)
class TrainingPair:
    """One training image with its targets, and how they were made.

    Attributes
    ----------
    image : (C, H, W) float32, normalised
    classes : (H, W) int64 class index per pixel
    weights : (H, W) float32 loss weight w(x) (0 = ignored)
    name : str
    kind : the label kind the targets were made as (``binary``, ``instances``, ``classes``)
    weight_config : the :class:`WeightMapConfig` that made ``weights``
    normalization : the :class:`NormalizationConfig` that made ``image``
    """

    image: np.ndarray
    classes: np.ndarray
    weights: np.ndarray
    name: str = ""
    kind: str = "classes"
    weight_config: WeightMapConfig = WeightMapConfig()
    normalization: NormalizationConfig = NormalizationConfig()


def parse_select(text: str, n: int) -> list[int]:
    """Indices chosen by ``"a:b"``, ``"a:b:s"``, ``"i,j,k"`` or ``":"`` from n items ("" chooses none)."""
    text = text.strip()
    if not text:
        return []
    try:
        if ":" in text:
            parts = [int(p) if p.strip() else None for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError
            return list(range(n))[slice(*parts)]
        idx = [int(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"select {text!r} must look like 'a:b', 'a:b:s' or 'i,j,k'") from None
    bad = [i for i in idx if not -n <= i < n]
    if bad:
        raise ValueError(f"select {text!r}: index {bad[0]} out of range for {n} items")
    return [i % n for i in idx]


def resolve_path(path: str, base: Path | None) -> Path:
    """Expand ``~`` and ``$VAR`` in a config path; a relative path is relative to ``base`` (the config's folder).

    A path that starts with an environment variable whose value is relative
    (``UNETKIT_DATA=../shared/data``) is relative to the working directory,
    where the variable was set.
    """
    p = Path(os.path.expandvars(os.path.expanduser(path)))
    if "$" in str(p):
        raise ValueError(f"path {path!r} uses an environment variable that is not set")
    if p.is_absolute():
        return p
    if path.lstrip().startswith("$") or base is None:
        return Path.cwd() / p
    return base / p


def _read_many(path: Path) -> tuple[list[str], list[np.ndarray]]:
    if path.is_dir():
        files = list_images(path)
        arrays = []
        for f in files:
            array, axes = read_image_axes(f)
            if axes == "ZYX":
                raise ImageReadError(f"{f}: a stack of {array.shape[0]} planes inside a folder of images; "
                                     "give the stack itself as data.images")
            arrays.append(array)
        return [f.stem for f in files], arrays
    planes = read_stack(path)
    return [f"{path.stem}[{i}]" for i in range(len(planes))], planes


def load_arrays(images: str, labels: str, *, base: Path | None = None) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Read matched image and label arrays from two folders or two stacks."""
    ipath, lpath = resolve_path(images, base), resolve_path(labels, base)
    for p, what in ((ipath, "images"), (lpath, "labels")):
        if not p.exists():
            raise ImageReadError(f"{what} path {p} does not exist")
    inames, imgs = _read_many(ipath)
    lnames, labs = _read_many(lpath)
    if not imgs:
        raise ValueError(f"{ipath} holds no images")
    if ipath.is_dir() and lpath.is_dir():
        lmap = dict(zip(lnames, labs))
        missing = [n for n in inames if n not in lmap]
        if missing:
            raise ValueError(f"no label for image(s) {missing[:5]} in {lpath} (pairs are matched by file stem)")
        labs = [lmap[n] for n in inames]
    elif len(imgs) != len(labs):
        raise ValueError(f"{len(imgs)} images but {len(labs)} labels ({ipath}, {lpath})")
    return inames, imgs, labs


def _targets(label: np.ndarray, ignore: np.ndarray, *, kind: str, num_classes: int, weight_config: WeightMapConfig,
             name: str) -> tuple[np.ndarray, np.ndarray]:
    """(classes int64, weights float32 before ignoring) of one label image of ``kind``."""
    valid = label[~ignore]
    objects = None
    if kind == "binary":
        values = np.unique(valid)
        if not is_binary_values(values):
            raise ValueError(f"{name}: binary labels must be 0 (background) and one other value, got {values[:6]}")
        objects = mask_to_objects(np.where(ignore, 0, label))
    elif kind == "instances":
        objects = check_label_image(np.where(ignore, 0, label), name)
    elif valid.size and (valid.min() < 0 or valid.max() >= num_classes):
        raise ValueError(
            f"{name}: label values must be class indices 0..{num_classes - 1}, got {valid.min()}..{valid.max()}")
    if objects is None:
        classes = np.where(ignore, 0, label).astype(np.int64)
    elif num_classes == 2:
        classes = instances_to_classes(objects, width=weight_config.border_width).astype(np.int64)
    elif num_classes == 3:
        classes = instances_to_border_classes(objects, border_width=max(weight_config.border_width, 1)).astype(np.int64)
    else:
        raise ValueError(f"{name}: {kind} labels need a 2-class (background/object) or 3-class "
                         f"(background/interior/border) model, got num_classes={num_classes}")
    if objects is not None and num_classes == 2 and weight_config.w0 > 0:
        weights = border_weight_map(objects, **asdict(weight_config))
    elif weight_config.class_balance:
        weights = np.ones(label.shape, np.float32)  # ignored pixels get 0 later; only annotated ones count here
        weights[~ignore] = class_balance_weights(classes[~ignore], num_classes)
    else:
        weights = np.ones(label.shape, np.float32)
    return classes, weights


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
    """Turn one raw image and label into a :class:`TrainingPair` (normalised image, classes, weights).

    ``kind`` is ``"binary"``, ``"instances"`` or ``"classes"`` (see the module
    docstring); ``weight_config`` is applied in full (w0, sigma, class balance,
    border width, tolerance). Class balancing counts the annotated pixels only.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] != in_channels:
        raise ValueError(f"{name}: expected an image (H, W) or ({in_channels}, H, W), got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError(f"{name}: image has {int(np.size(image) - np.isfinite(image).sum())} NaN or infinite pixels")
    label = np.asarray(label)
    if label.ndim != 2 or label.shape != image.shape[1:]:
        raise ValueError(f"{name}: label shape {label.shape} does not match image shape {image.shape[1:]}")
    if not np.issubdtype(label.dtype, np.integer):
        if label.dtype != bool and np.any(label != np.round(label)):
            raise ValueError(f"{name}: labels must be integers, got non-integer values ({label.dtype})")
        label = label.astype(np.int64)
    if kind not in ("binary", "instances", "classes"):
        raise ValueError(f"{name}: label kind must be binary, instances or classes, got {kind!r}")
    ignore = label == ignore_value if ignore_value is not None else np.zeros(label.shape, bool)
    classes, weights = _targets(label, ignore, kind=kind, num_classes=num_classes, weight_config=weight_config,
                                name=name)
    weights = np.where(ignore, 0.0, weights).astype(np.float32)
    offset, scale = intensity_range(image, normalization, channels=True)
    return TrainingPair(normalize(image, offset, scale), classes, weights, name, kind, weight_config, normalization)


def make_pairs(images, labels, *, names=None, kind: str = "auto", num_classes: int = 2, in_channels: int = 1,
               normalization: NormalizationConfig | None = None, weight_config: WeightMapConfig | None = None,
               ignore_value: int | None = None) -> list[TrainingPair]:
    """Training pairs from Python lists of arrays (images (H, W) or (C, H, W); labels (H, W) integers).

    With ``kind="auto"`` one kind is detected from the values of all labels
    together (ignored pixels left out), so every pair means the same.
    """
    if len(images) == 0:
        raise ValueError("no training images: the set is empty")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if kind not in LABEL_KINDS:
        raise ValueError(f"label kind must be one of {LABEL_KINDS}, got {kind!r}")
    names = names or [f"#{i}" for i in range(len(images))]
    if kind == "auto":
        kept = [np.asarray(l)[np.asarray(l) != ignore_value] if ignore_value is not None else np.asarray(l)
                for l in labels]
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
    validation set is configured. ``kwargs`` go to :func:`make_pairs`.
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
    return make_pairs([imgs[i] for i in idx], [labs[i] for i in idx], names=[f"{names[i]}" for i in idx],
                      kind=config.label_kind, ignore_value=config.ignore_value, **kwargs)
