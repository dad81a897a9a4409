"""Evaluate predictions stored in files against ground-truth files.

The file-level layer under ``unetkit evaluate PRED GT [--json FILE]
[--metrics ...]``: :func:`load_pairs` reads and matches the images,
:func:`evaluate_paths` scores them with :mod:`unetkit.metrics`,
:func:`format_table` renders the result and :func:`write_json` saves it.

Inputs
------
``PRED`` and ``GT`` are each a folder of images (``.png``, ``.tif``,
``.tiff``, ``.npy``; matched by file stem, or by sorted order when no stem
matches and the counts agree) or a single file (a multi-page TIFF is a
stack of planes). What a prediction image means depends on its values:

* floating point: ``P(cell)`` in [0, 1] (the official threshold sweep);
* integer or bool with at most two values (0/1, 0/255): a binary mask,
  cell = value > 0;
* integer with more than two values: an instance label image. The
  semantic metrics then score its foreground (label > 0), and SEG and AP
  at IoU 0.5 score the instances against the ground-truth instances: the
  4-connected components of a binary ground truth, or its labels as given.

Ground truth: cell = label > 0.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from . import metrics as _m
from .io import ImageReadError, list_images, natural_key, read_image_axes, write_json
from .labels import is_binary_values, to_objects

__all__ = [
    "ImagePair",
    "load_pairs",
    "evaluate_paths",
    "format_table",
    "headline_scores",
    "write_json",
]

INSTANCE_METRICS = ("seg", "ap50")
#: The ISBI 2012 figures that run summaries report (the paper's three plus the challenge's V_rand, V_info).
HEADLINE_METRICS = ("rand_error", "warping_error", "v_rand", "pixel_error", "v_info")


class ImagePair(NamedTuple):
    """One prediction plane and its ground truth."""

    name: str
    pred: np.ndarray
    gt: np.ndarray


# ---------------------------------------------------------------------------
# Reading (files through unetkit.io: one suffix list, one colour rule)
# ---------------------------------------------------------------------------


def _planes(path: Path) -> list[tuple[str, np.ndarray]]:
    """(name, plane) for every 2D plane of one file; a colour image is refused."""
    arr, axes = read_image_axes(path)
    if axes == "CYX":
        raise ImageReadError(f"{path}: colour image ({arr.shape[0]} channels); expected a single-channel image "
                             "(a stack of 3 or 4 planes must be saved with photometric='minisblack')")
    if arr.ndim == 2:
        return [(path.stem, arr)]
    return [(f"{path.stem}[{i}]", plane) for i, plane in enumerate(arr)]


def _collect(path: str | os.PathLike, role: str) -> list[tuple[str, np.ndarray]]:
    p = Path(path)
    if p.is_dir():
        files = list_images(p)
        if not files:
            raise ValueError(f"{role} folder {p} holds no images")
        planes: list[tuple[str, np.ndarray]] = []
        for f in files:
            planes.extend(_planes(f))
        names = [n for n, _ in planes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{role} folder {p} has several images named {dupes} (e.g. a.png and a.tif)")
        return planes
    if p.is_file():
        return _planes(p)
    raise ValueError(f"{role} path {p} does not exist")


def load_pairs(pred_path: str | os.PathLike, gt_path: str | os.PathLike) -> list[ImagePair]:
    """Read prediction and ground-truth images and pair them plane by plane.

    Parameters
    ----------
    pred_path, gt_path : path
        Each a folder of images (png/tif/tiff/npy) or a single image or
        (multi-page) TIFF stack. Planes of a stack are named
        ``stem[i]``.

    Returns
    -------
    list of ImagePair
        In natural order of the prediction names.

    Raises
    ------
    ValueError
        When counts differ, when only some names match, or when a pair
        differs in shape; the message names the offending images.

    Notes
    -----
    Planes are matched by name (file stem). When no name matches at all but
    the counts agree (e.g. a folder of ``00.png ...`` against one TIFF
    stack), they are matched in sorted order.
    """
    preds = _collect(pred_path, "prediction")
    gts = _collect(gt_path, "ground-truth")
    pred_names = [n for n, _ in preds]
    gt_by_name = dict(gts)
    common = set(pred_names) & set(gt_by_name)
    if common == set(pred_names) == set(gt_by_name):
        pairs = [(n, p, gt_by_name[n]) for n, p in preds]
    elif not common:
        if len(preds) != len(gts):
            raise ValueError(
                f"prediction has {len(preds)} images and ground truth {len(gts)}; "
                f"names do not match either (e.g. {pred_names[0]!r} vs {gts[0][0]!r})"
            )
        pairs = [(pn, p, g) for (pn, p), (_, g) in zip(sorted(preds, key=lambda x: natural_key(x[0])),
                                                        sorted(gts, key=lambda x: natural_key(x[0])))]
    else:
        only_pred = sorted(set(pred_names) - common, key=natural_key)
        only_gt = sorted(set(gt_by_name) - common, key=natural_key)
        raise ValueError(
            f"prediction and ground-truth names match only in part: "
            f"without ground truth: {only_pred[:10]}; without prediction: {only_gt[:10]}"
        )
    out = []
    for name, p, g in pairs:
        if p.shape != g.shape:
            raise ValueError(f"image {name!r}: prediction shape {p.shape} differs from ground truth {g.shape}")
        out.append(ImagePair(name, p, g))
    return out


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


def _pred_kind(planes: Sequence[np.ndarray]) -> str:
    """'probability', 'binary' or 'instances' for a list of prediction planes."""
    kinds = set()
    for i, p in enumerate(planes):
        if np.issubdtype(p.dtype, np.floating):
            kinds.add("probability")
        elif p.dtype == bool:
            kinds.add("binary")
        elif np.issubdtype(p.dtype, np.integer):
            values = np.unique(p)
            if is_binary_values(values):
                kinds.add("binary")
            elif values.size == 2:
                raise ValueError(
                    f"prediction plane {i}: a two-valued mask must use 0 for boundary, got values {values.tolist()}"
                )
            else:
                kinds.add("instances")
        else:
            raise ValueError(f"prediction plane {i}: unsupported dtype {p.dtype}")
    if "instances" in kinds and "probability" in kinds:
        raise ValueError("predictions mix probability maps (float) and instance label images (integer)")
    for kind in ("instances", "probability", "binary"):
        if kind in kinds:
            return kind
    raise ValueError("no prediction images")


def _probability(pred: np.ndarray, name: str) -> np.ndarray:
    """P(cell) of one prediction plane: an instance label image as its foreground, else the metrics' rule."""
    if np.issubdtype(pred.dtype, np.integer) and not is_binary_values(np.unique(pred)):
        return (pred > 0).astype(np.float32)
    return _m.as_probability(pred, f"prediction {name!r}")


def _split_metrics(metrics: Sequence[str] | None) -> tuple[list[str] | None, list[str] | None]:
    if metrics is None:
        return None, None
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    allowed = list(_m.METRIC_NAMES) + list(INSTANCE_METRICS)
    unknown = sorted(set(metrics) - set(allowed))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {allowed}")
    return [m for m in metrics if m in _m.METRIC_NAMES], [m for m in metrics if m in INSTANCE_METRICS]


def evaluate_paths(
    pred: str | os.PathLike,
    gt: str | os.PathLike,
    *,
    metrics: Sequence[str] | None = None,
    warping: bool = True,
) -> dict:
    """Score prediction files against ground-truth files.

    Parameters
    ----------
    pred, gt : path
        Folders of images or single (multi-page) files; see :func:`load_pairs`
        and the module docstring for what a prediction image may hold.
    metrics : sequence of str, optional
        Any of :data:`unetkit.metrics.METRIC_NAMES` and ``seg``, ``ap50``.
        Default: all semantic metrics, plus ``seg`` and ``ap50`` when the
        predictions are instance label images. ``seg``/``ap50`` requested
        for a probability map or mask score the 4-connected components of
        ``p > 0.5``.
    warping : bool
        False skips the (slowest) warping error.

    Returns
    -------
    dict
        The result of :func:`unetkit.metrics.evaluate_probabilities`
        (best over the sweep, ``at_0.5``, ``best_threshold``, ``curves``),
        plus ``instances`` (from :func:`unetkit.metrics.evaluate_instances`)
        when instance metrics were computed, and ``inputs``: the paths,
        the number of images and the prediction kind.
    """
    semantic, instance = _split_metrics(metrics)
    pairs = load_pairs(pred, gt)
    kind = _pred_kind([p.pred for p in pairs])
    probs = [_probability(p.pred, p.name) for p in pairs]
    gts = [p.gt for p in pairs]

    if semantic is None or semantic:
        result = _m.evaluate_probabilities(probs, gts, metrics=semantic, warping=warping)
    else:
        result = {name: None for name in _m.METRIC_NAMES}
        result.update({"at_0.5": {}, "best_threshold": {}, "curves": {}})

    want_instances = instance if instance is not None else (list(INSTANCE_METRICS) if kind == "instances" else [])
    if want_instances:
        if kind == "instances":
            pred_inst = [p.pred for p in pairs]
        else:
            pred_inst = [to_objects(_m.threshold(p, 0.5), 'binary') for p in probs]
        gt_inst = [to_objects(g) for g in gts]
        result["instances"] = _m.evaluate_instances(pred_inst, gt_inst)
        result["instances"]["source"] = "labels" if kind == "instances" else "components of p > 0.5"
    result["inputs"] = {
        "pred": str(pred),
        "gt": str(gt),
        "n_images": len(pairs),
        "names": [p.name for p in pairs],
        "pred_kind": kind,
    }
    return result


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def headline_scores(result: dict, metrics: Sequence[str] = HEADLINE_METRICS) -> dict[str, dict[str, float]]:
    """``{"best": {metric: value}, "at_0.5": {metric: value}}`` of an :func:`evaluate_paths` result.

    ``best`` is each metric's best over the threshold sweep (each at its own
    threshold), ``at_0.5`` its value at t = 0.5; unitless floats.
    """
    return {"best": {k: result[k] for k in metrics}, "at_0.5": {k: result["at_0.5"][k] for k in metrics}}


def _num(v, digits: int = 6) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{v:.{digits}f}"


def format_table(result: dict) -> str:
    """A readable table of an :func:`evaluate_paths` (or sweep) result.

    One row per metric: the best value over the threshold sweep with its
    threshold, and the value at t = 0.5; then the instance metrics when
    present.
    """
    names = [n for n in _m.METRIC_NAMES if result.get(n) is not None]
    lines = []
    inputs = result.get("inputs")
    if inputs:
        lines.append(f"{inputs['n_images']} image(s), prediction: {inputs['pred_kind']}")
    if names:
        width = max(len("metric"), *(len(n) for n in names))
        lines.append(f"{'metric':<{width}}  {'best':>10}  {'at t':>5}  {'at t=0.5':>10}")
        lines.append(f"{'-' * width}  {'-' * 10}  {'-' * 5}  {'-' * 10}")
        for n in names:
            t = result.get("best_threshold", {}).get(n)
            lines.append(
                f"{n:<{width}}  {_num(result[n]):>10}  {'' if t is None else f'{t:.1f}':>5}  "
                f"{_num(result.get('at_0.5', {}).get(n)):>10}"
            )
        lines.append("(errors: lower is better, best = min over t; v_rand, v_info, iou, dice: best = max)")
    inst = result.get("instances")
    if inst:
        if lines:
            lines.append("")
        lines.append(f"instances ({inst.get('source', 'labels')}):")
        for key in ("seg", "ap50", "precision", "recall", "mean_matched_iou",
                    "n_true", "n_pred", "true_positives", "false_positives", "false_negatives"):
            if key in inst:
                lines.append(f"  {key:<18} {_num(inst[key])}")
    return "\n".join(lines)
