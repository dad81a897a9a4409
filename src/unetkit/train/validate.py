"""Validation on whole images: overlap-tile prediction, the paper's loss, the ISBI metrics at t = 0.5."""

from __future__ import annotations

import numpy as np
import torch

from .. import metrics
from ..data import TrainingPair
from ..inference import predict
from ..losses import weighted_nll
from ..model import UNet

__all__ = ["predict_pairs", "validation_metrics", "validate", "ISBI_KEYS"]

ISBI_KEYS = ("pixel_error", "rand_error", "iou", "dice", "v_rand", "v_info")


def predict_pairs(model: UNet, pairs: list[TrainingPair], *, device=None, tta: bool = False) -> list[np.ndarray]:
    """Softmax probabilities (C, H, W) float32 of every pair's (already normalised) image."""
    return [predict(model, pair.image, device=device, normalize_input=False, tta=tta) for pair in pairs]


def validation_metrics(pairs: list[TrainingPair], probs: list[np.ndarray], *, warping: bool = False) -> dict:
    """Loss (Eq. 1, :func:`unetkit.losses.weighted_nll`), accuracy and, for 2 classes, the ISBI metrics at t = 0.5.

    Keys: ``loss``, ``accuracy`` (over pixels with weight > 0) and, for
    2-class probabilities, ``pixel_error``, ``rand_error``, ``iou``, ``dice``,
    ``v_rand``, ``v_info`` (``warping_error`` with ``warping``).
    """
    losses, correct, total = [], 0, 0
    for pair, p in zip(pairs, probs):
        log_prob = torch.from_numpy(np.log(np.clip(p, 1e-12, None)))[None]
        target = torch.from_numpy(pair.classes)[None]
        weights = torch.from_numpy(pair.weights)[None]
        losses.append(float(weighted_nll(log_prob, target, weights)))
        counted = pair.weights > 0
        correct += int((p.argmax(0) == pair.classes)[counted].sum())
        total += int(counted.sum())
    result = {"loss": float(np.mean(losses)), "accuracy": correct / max(total, 1)}
    if probs and probs[0].shape[0] == 2:
        m = metrics.evaluate_probabilities([p[1] for p in probs], [pair.classes for pair in pairs],
                                           thresholds=[0.5], warping=warping)
        for key in ISBI_KEYS + (("warping_error",) if warping else ()):
            result[key] = float(m["at_0.5"][key]) if m["at_0.5"][key] is not None else float("nan")
    return result


def validate(model: UNet, pairs: list[TrainingPair], *, device=None, warping: bool = False) -> dict:
    """:func:`validation_metrics` of the model's predictions on ``pairs``."""
    return validation_metrics(pairs, predict_pairs(model, pairs, device=device), warping=warping)
