"""The official ISBI 2012 threshold sweep of a probability map against labels.

Binarisations (and warping flip orders) repeated across thresholds are
computed once; each metric keeps its best value over the sweep and its value
at t = 0.5. Definitions: ``docs/METRICS.md``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..labels import connected_components
from .pixel import confusion_per_plane, dice_score, f1_score, iou_score
from .region import _v_info_plane, _v_rand_plane, rand_abc, rand_error_from_abc, thin_boundaries
from .table import HIGHER_IS_BETTER, METRIC_NAMES, THRESHOLDS, WARPING_THRESHOLDS, _overlap, as_probability, contingency_table, planes_of
from .warping import WARPING_RADIUS, _warping_counts

__all__ = ["evaluate_probabilities"]


def _check_thresholds(ts, name: str) -> list[float]:
    ts = [float(t) for t in ts]
    if not ts:
        raise ValueError(f"{name} must not be empty")
    bad = [t for t in ts if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"{name} must lie in [0, 1], got {bad}")
    return sorted(set(ts))


def _select(metrics, warping: bool) -> list[str]:
    if metrics is None:
        chosen = list(METRIC_NAMES)
    else:
        chosen = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = sorted(set(chosen) - set(METRIC_NAMES))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)}")
    if not warping:
        chosen = [m for m in chosen if m != "warping_error"]
    return [m for m in METRIC_NAMES if m in chosen]


def _plane_terms(pred: np.ndarray, gt: np.ndarray, gt_labels: np.ndarray, want_rand: bool, want_thin: bool) -> dict:
    """Per-plane counts of every non-warping metric for one binarisation."""
    nz = pred.shape[0]
    terms = {"confusion": confusion_per_plane(gt, pred)}
    if want_rand:
        pl = connected_components(pred)
        terms["rand"] = np.array([rand_abc(_overlap(contingency_table(gt_labels[z], pl[z]))) for z in range(nz)])
    if want_thin:
        th = thin_boundaries(pred)
        vr, vi, valid = np.zeros((nz, 3)), np.zeros((nz, 3)), np.zeros(nz, dtype=bool)
        for z in range(nz):
            ov = _overlap(contingency_table(gt_labels[z], th[z]))
            valid[z] = ov.sizes.sum() > 0
            vr[z], vi[z] = _v_rand_plane(ov), _v_info_plane(ov)
        terms["v_rand"], terms["v_info"], terms["valid"] = vr, vi, valid
    return terms


def _concat_terms(parts: list[tuple[np.ndarray, dict]], n_planes: int) -> dict:
    """Put per-group plane terms back into the input plane order."""
    out = {}
    for idx, terms in parts:
        for key, val in terms.items():
            if key not in out:
                out[key] = np.zeros((n_planes,) + val.shape[1:], dtype=val.dtype)
            out[key][idx] = val
    return out


def _pool(terms: dict, chosen: list[str]) -> dict:
    """Metric values of one threshold from per-plane terms."""
    vals = {}
    tp, fp, fn, tn = (float(v) for v in terms["confusion"].sum(axis=0))
    if "pixel_error" in chosen:
        vals["pixel_error"] = 1.0 - f1_score(tp, fp, fn)
    if "iou" in chosen:
        vals["iou"] = iou_score(tp, fp, fn)
    if "dice" in chosen:
        vals["dice"] = dice_score(tp, fp, fn)
    vals["accuracy"] = (tp + tn) / (tp + fp + fn + tn)
    if "rand_error" in chosen:
        a, b, c = (float(v) for v in terms["rand"].sum(axis=0))
        vals["rand_error"] = rand_error_from_abc(a, b, c)
    for name in ("v_rand", "v_info"):
        if name in chosen:
            sel = terms[name][terms["valid"]]
            mean = sel.mean(axis=0) if sel.size else np.full(3, np.nan)
            vals[name], vals[name + "_split"], vals[name + "_merge"] = (float(v) for v in mean)
    return vals


def _best(values: list[float], ts: list[float], higher: bool) -> tuple[float | None, float | None]:
    arr = np.asarray(values, dtype=float)
    if np.all(np.isnan(arr)):
        return None, None
    i = int(np.nanargmax(arr) if higher else np.nanargmin(arr))  # first best: lowest t
    return float(arr[i]), ts[i]


def evaluate_probabilities(
    prob_stack,
    gt_stack,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    warping_thresholds: Sequence[float] = WARPING_THRESHOLDS,
    metrics: Sequence[str] | None = None,
    warping: bool = True,
    radius: int = WARPING_RADIUS,
) -> dict:
    """Run the ISBI 2012 threshold sweep of a probability map against labels.

    Parameters
    ----------
    prob_stack : array_like, shape (H, W) or (Z, H, W), or list of (H, W)
        ``P(cell)`` in [0, 1] (0 = surely boundary). A binary mask (values
        0/1, bool, or 0/255) is treated as a probability map, so every
        threshold in [0, 1) gives the same binarisation. Planes may differ in
        shape when given as a list.
    gt_stack : same layout
        Ground-truth label images; cell = ``label > 0``.
    thresholds : sequence of float
        Sweep of pixel error, Rand error, V_rand, V_info, IoU and Dice
        (default 0.0, 0.1, ..., 1.0).
    warping_thresholds : sequence of float
        Sweep of the warping error (default 0.0, ..., 0.9).
    metrics : sequence of str, optional
        Subset of :data:`METRIC_NAMES` (default all).
    warping : bool
        False skips the warping error (the slowest metric).
    radius : int
        Window half width of the warping classification (41 x 41).

    Returns
    -------
    dict
        ``pixel_error``, ``rand_error``, ``warping_error``, ``v_rand``,
        ``v_info``, ``iou``, ``dice``: the best value over the sweep (min for
        the errors, max for the scores; IoU and Dice of the cell class), None
        for a metric not computed. ``at_0.5``: the same keys at t = 0.5 (the
        sweep picks t on the evaluated labels and is optimistic).
        ``best_threshold``: the t of each best value (the lowest on ties).
        ``curves``: ``thresholds``, ``warping_thresholds`` and the value of
        every metric at every threshold, with ``v_rand_split``,
        ``v_rand_merge``, ``v_info_split``, ``v_info_merge``, ``accuracy``,
        ``warping_splits`` and ``warping_merges``.

    Notes
    -----
    Pooling follows the challenge: pixel error, IoU, Dice and Rand error
    pool their counts over planes; V_rand and V_info are averaged over the
    planes with ground-truth foreground; the warping error divides all
    splits and merges by all pixels. Binarisations (and warping flip orders)
    repeated across thresholds are computed once.

    References
    ----------
    .. [1] Arganda-Carreras I. et al. (2015) Crowdsourcing the creation of
       image segmentation algorithms for connectomics. Front. Neuroanat. 9:142.
    .. [2] Ronneberger O., Fischer P., Brox T. (2015) U-Net: convolutional
       networks for biomedical image segmentation. MICCAI, Table 1.
    """
    probs, gts = _paired_planes(prob_stack, gt_stack)
    chosen = _select(metrics, warping)
    ts = _check_thresholds(thresholds, "thresholds")
    wts = _check_thresholds(warping_thresholds, "warping_thresholds")
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    sweep = sorted(set(ts) | {0.5}) if any(m != "warping_error" for m in chosen) else []
    wsweep = sorted(set(wts) | {0.5}) if "warping_error" in chosen else []
    per_t: dict[float, list] = {t: [] for t in sweep}
    per_wt: dict[float, list] = {t: [] for t in wsweep}
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(probs):
        groups.setdefault(p.shape, []).append(i)
    for idx in groups.values():  # planes of one shape are stacked and swept together
        _sweep_group(np.stack([probs[i] for i in idx]), np.stack([gts[i] for i in idx]) > 0, idx, chosen, radius,
                     per_t, per_wt)
    n = len(probs)
    values = {t: _pool(_concat_terms(per_t[t], n), chosen) for t in sweep}
    wvalues = {}
    for t in wsweep:
        terms = _concat_terms(per_wt[t], n)
        s, m, npix = int(terms["splits"].sum()), int(terms["merges"].sum()), int(terms["npix"].sum())
        wvalues[t] = {"warping_error": (s + m) / npix, "warping_splits": s, "warping_merges": m}
    return _summarise(values, wvalues, ts, wts, chosen)


def _paired_planes(prob_stack, gt_stack) -> tuple[list[np.ndarray], list[np.ndarray]]:
    probs = planes_of(prob_stack, "prob_stack")
    gts = planes_of(gt_stack, "gt_stack")
    if len(probs) != len(gts):
        raise ValueError(f"prob_stack has {len(probs)} planes but gt_stack has {len(gts)}")
    for i, (p, g) in enumerate(zip(probs, gts)):
        if p.shape != g.shape:
            raise ValueError(f"plane {i}: prediction shape {p.shape} differs from ground truth {g.shape}")
    return [as_probability(p, f"prob_stack[{i}]") for i, p in enumerate(probs)], gts


def _sweep_group(prob: np.ndarray, gt: np.ndarray, idx: list[int], chosen: list[str], radius: int,
                 per_t: dict, per_wt: dict) -> None:
    """Per-plane terms of a (Z, H, W) group at every threshold of ``per_t`` and ``per_wt`` (appended)."""
    want_rand = "rand_error" in chosen
    want_thin = "v_rand" in chosen or "v_info" in chosen
    gt_labels = connected_components(gt) if (want_rand or want_thin) else None
    seen: list[tuple[np.ndarray, dict]] = []  # a binarisation repeated across thresholds is scored once
    for t in per_t:
        pred = prob > t
        terms = next((tr for b, tr in seen if np.array_equal(b, pred)), None)
        if terms is None:
            terms = _plane_terms(pred, gt, gt_labels, want_rand, want_thin)
            seen.append((pred, terms))
        per_t[t].append((idx, terms))
    del seen
    cache: list = []
    for t in per_wt:
        splits, merges = _warping_counts(gt, prob, t, radius, cache)
        npix = np.full(len(idx), gt.shape[1] * gt.shape[2], dtype=np.int64)
        per_wt[t].append((idx, {"splits": splits, "merges": merges, "npix": npix}))


def _summarise(values: dict, wvalues: dict, ts: list[float], wts: list[float], chosen: list[str]) -> dict:
    """Best value, best threshold, value at t = 0.5 and curves of every chosen metric."""
    curves: dict = {"thresholds": ts, "warping_thresholds": wts if wvalues else []}
    extra = {
        "v_rand": ["v_rand_split", "v_rand_merge"],
        "v_info": ["v_info_split", "v_info_merge"],
        "warping_error": ["warping_splits", "warping_merges"],
    }
    result: dict = {}
    best_t: dict = {}
    at_half: dict = {}
    for name in METRIC_NAMES:
        result[name] = best_t[name] = at_half[name] = None
        if name not in chosen:
            continue
        src, grid = (wvalues, wts) if name == "warping_error" else (values, ts)
        curves[name] = [src[t][name] for t in grid]
        for key in extra.get(name, []):
            curves[key] = [src[t][key] for t in grid]
        result[name], best_t[name] = _best(curves[name], grid, name in HIGHER_IS_BETTER)
        at_half[name] = src[0.5][name]
    if values:
        curves["accuracy"] = [values[t]["accuracy"] for t in ts]
    result["at_0.5"] = at_half
    result["best_threshold"] = best_t
    result["curves"] = curves
    return result
