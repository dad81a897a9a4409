"""The optimiser and the learning-rate schedule of a run."""

from __future__ import annotations

import math

import torch

from .config import TrainConfig

__all__ = ["make_optimizer", "lr_at"]


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with (Nesterov) momentum (the paper: momentum 0.99), Adam or AdamW, as ``cfg`` says."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of (0-based) ``step``: linear warm-up, then constant, cosine or poly (power 0.9) decay."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = step / max(cfg.steps, 1)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * frac))
    if cfg.schedule == "poly":
        return cfg.lr * (1 - frac) ** 0.9
    return cfg.lr
