"""Device choice and the CUDA speed settings, scoped to one call (no global state left behind)."""

from __future__ import annotations

import contextlib
import functools

import torch

__all__ = ["resolve_device", "cuda_speed", "autocast", "native_bf16"]


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


@functools.lru_cache(maxsize=None)
def _cpu_has_bf16_instructions() -> bool:
    get = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.6; older: assume no
    if get is None:
        return False
    caps = get()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions faster than float32.

    CUDA: always (autocast's bf16 path). CPU: only with the AVX512-BF16 or
    AMX-BF16 instructions, for which oneDNN has bf16 kernels (the speed-up
    is measured in ``benchmarks/README.md``); without them bf16 is emulated
    and slower than float32.
    """
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _cpu_has_bf16_instructions()


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast when ``enabled`` and the device runs bf16 natively (:func:`native_bf16`); else a no-op."""
    if enabled and native_bf16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
