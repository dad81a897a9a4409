"""An exponential moving average of the weights: what validation, checkpoints and prediction use."""

from __future__ import annotations

import copy

import torch

from ..model import UNet

__all__ = ["WeightAverage"]


class WeightAverage:
    """Keeps ``average = d * average + (1 - d) * weights`` after every step, ``d = min(decay, (1 + t) / (10 + t))``.

    The warm-up of ``d`` lets the average follow the fast early changes;
    buffers (batch-norm running statistics) are copied, not averaged.
    """

    def __init__(self, model: UNet, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: UNet, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for avg, p in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(p.detach(), 1 - d)
        for avg, b in zip(self.model.buffers(), model.buffers()):
            avg.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
