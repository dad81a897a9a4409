"""Named sets of defaults for a config file: ``profile = "paper"`` or the default, the measured winner.

A config file's ``profile`` key (default: ``"default"``) picks one of
:data:`PROFILES`; the file's own values override the profile's. The values of
``"default"`` are what won the measurements in ``examples/isbi2012/README.md``.
"""

from __future__ import annotations

import copy

__all__ = ["PROFILES", "apply_profile", "run_config"]

#: section -> key -> value, applied under a config file's own values.
PROFILES: dict[str, dict] = {
    # The paper's network and training: valid convolutions, no normalisation layers, He init, dropout 0.5,
    # SGD with momentum 0.99, weighted cross-entropy with w0 = 10, elastic deformation on one 572 tile per step.
    # The one addition, for stability (examples/isbi2012/README.md, "Why the paper's SGD diverged"): the first
    # gradients of a He-initialised U-Net are ~100x the later ones and momentum 0.99 carries each for ~100 steps,
    # so the step is warmed up over 200 steps and the gradient norm clipped at 1 (it is ~1 after the first steps).
    "paper": {
        "model": {"batch_norm": False, "residual": False, "dropout": 0.5, "padding": "valid"},
        "weights": {"w0": 10.0, "sigma": 5.0, "class_balance": True},
        "augment": {"enabled": True, "elastic_p": 1.0, "elastic_sigma_px": 10.0, "elastic_grid": 3},
        "train": {"optimizer": "sgd", "momentum": 0.99, "nesterov": False, "lr": 0.001, "schedule": "poly",
                  "warmup_steps": 200, "grad_clip": 1.0, "loss": "ce", "tile": 572, "batch_size": 1, "ema": 0.0},
    },
    # The measured winner within a CPU budget (examples/isbi2012/README.md, "Ablations" and "Dropout by the length
    # of the schedule"): the paper's network with valid convolutions, trained by Adam 1e-3 with a short warm-up and
    # a poly decay (momentum-0.99 SGD crawls at a CPU budget), on cross-entropy + soft Dice (the Dice term keeps
    # thin membranes from being out-voted by cell pixels). The paper's dropout 0.5 is on only for a schedule that
    # shows each training pixel at least 300 times: on ISBI it lost at 20 CPU minutes (~100 passes; TTA Rand 0.095
    # against 0.072 without, 3 seeds each), lost on 380 tiles at 60 (258 passes; 0.078 against 0.067, seed 0) and
    # was ahead on 572 tiles at 60 (~340 passes; 0.059 against 0.067, 3 seeds each);
    # on DSB's one training half (~1,000 passes in 10 minutes) SEG fell without it. On 3 seeds at 7 minutes
    # (ISBI README, "fourth round" and "fifth round"), CE alone, w0 = 10, no elastic deformation, batch norm and
    # SGD-Nesterov each lost Rand error on every seed; EMA 0.999, AdamW and the 444 tile won warping error on every
    # seed without a clear Rand-error gain; rot90-only rotations win warping error on every seed, Rand error on 2
    # of 3 (ISBI README, "rot90 at 60 CPU minutes"), so rotations stay arbitrary.
    # bf16 autocast (``amp``) where the device runs bf16 natively (CUDA; CPUs with AVX512-BF16 or AMX): a CPU
    # budget buys more steps and better scores ("Tiles and bf16", benchmarks/README.md); elsewhere a no-op.
    "default": {
        "model": {"batch_norm": False, "residual": False, "dropout": 0.5, "padding": "valid"},
        "augment": {"enabled": True},
        "train": {"optimizer": "adam", "lr": 0.001, "schedule": "poly", "warmup_steps": 50, "grad_clip": 0.0,
                  "loss": "ce_dice", "dice_weight": 1.0, "ema": 0.0, "dropout_min_passes": 300.0, "amp": True},
    },
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_profile(data: dict) -> dict:
    """A config dict with its profile's values filled in under its own (``profile`` recorded)."""
    name = data.get("profile", "default")
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {name!r}")
    return _merge(PROFILES[name], {**data, "profile": name})


def run_config(data: dict):
    """A :class:`~unetkit.train.config.RunConfig` from a config dict, its profile applied."""
    from ..config import from_dict
    from .config import RunConfig

    return from_dict(RunConfig, apply_profile(data))
