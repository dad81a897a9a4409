"""What every command shares: the usage error, progress and log switches, option parsers."""

from __future__ import annotations

import sys

__all__ = ["UsageError", "progress_enabled", "log_for", "parse_tile", "device_arg", "add_quiet"]


class UsageError(ValueError):
    """A mistake in how the command was called (exit status 2, one line)."""


def add_quiet(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")


def progress_enabled(args) -> bool:
    """Progress bars only on a terminal, never with ``--quiet``."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def log_for(args):
    """One-line messages to stderr, or nothing with ``--quiet``."""
    if getattr(args, "quiet", False):
        return lambda *a, **k: None
    return lambda msg: print(msg, file=sys.stderr)


def parse_tile(text: str):
    """``auto``, ``N`` or ``HxW``."""
    if text == "auto":
        return "auto"
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise UsageError(f"--tile must be 'auto', N or HxW, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise UsageError(f"--tile must be 'auto', N or HxW with positive sizes, got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def device_arg(text: str | None):
    """A torch device from ``--device`` (``auto``: CUDA when available), refused when it is not there."""
    import torch

    from ..devices import resolve_device

    try:
        dev = resolve_device(text)
    except RuntimeError:
        raise UsageError(f"--device {text!r} is not a torch device (cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return dev
