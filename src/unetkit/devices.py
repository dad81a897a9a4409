"""Device choice and the CUDA speed settings, scoped to one call (no global state left behind)."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["resolve_device", "cuda_speed", "autocast"]


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> ``cuda`` when available, else ``cpu``; anything else -> ``torch.device(name)``."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextlib.contextmanager
def cuda_speed(device: torch.device, *, benchmark: bool = True):
    """On CUDA, set cuDNN autotuning (``cudnn.benchmark``) to ``benchmark`` inside the block.

    The previous setting is restored on exit. Training turns it on (one tile
    shape repeats thousands of times, so the one-off search pays) and turns it
    off around validation, whose whole-image shapes would each trigger a new
    search. TF32 for convolutions is PyTorch's default (``cudnn.allow_tf32``)
    and is left as is. On CPU this does nothing.
    """
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when ``enabled``; a no-op elsewhere (bf16 convolutions are slow on CPU)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
