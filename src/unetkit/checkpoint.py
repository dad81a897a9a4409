"""Checkpoints: one file with the model config, training metadata and the state dict.

The file is a plain ``dict`` of tensors and Python primitives saved with
``torch.save`` and loaded with ``torch.load(..., weights_only=True)``, so
loading never executes code. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .io import atomic_path
from .model import ModelConfig, UNet

__all__ = ["CheckpointError", "FORMAT", "save_checkpoint", "load_checkpoint", "load_model"]

FORMAT = "unetkit-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is missing or is not a unetkit checkpoint."""


def save_checkpoint(path: str | os.PathLike, model: UNet, *, training: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``model`` (config + weights) and metadata to ``path`` atomically.

    Parameters
    ----------
    training : dict, optional
        JSON-like training metadata (steps, data, metrics, wall time...).
    extra : dict, optional
        Further entries of tensors/primitives (e.g. optimiser state and RNG
        states for exact resume).
    """
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "training": dict(training or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if extra:
        payload.update(extra)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location="cpu") -> dict:
    """Load and validate a checkpoint dict (safe: ``weights_only=True``)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a unetkit checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a unetkit checkpoint (no '{FORMAT}' header)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload['version']} is newer than this unetkit ({VERSION})")
    return payload


def load_model(path: str | os.PathLike, *, map_location="cpu") -> UNet:
    """Rebuild the :class:`UNet` stored in a checkpoint, in eval mode.

    The training metadata is attached as ``model.training_info`` (a dict).
    """
    payload = load_checkpoint(path, map_location=map_location)
    try:
        model = UNet.from_config(ModelConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not match its config ({exc})") from None
    model.training_info = payload.get("training", {})
    return model.eval()
