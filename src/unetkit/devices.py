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
    """On CUDA, let cuDNN time its convolution algorithms (``cudnn.benchmark``) inside the block.

    The previous setting is restored on exit. U-Net shapes repeat (one tile size
    per call), so the one-off search pays after the first tile. TF32 for
    convolutions is PyTorch's default (``cudnn.allow_tf32``) and is left as is.
    On CPU this does nothing.
    """
    if device.type != "cuda" or not benchmark:
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when ``enabled``; a no-op elsewhere (bf16 convolutions are slow on CPU)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
