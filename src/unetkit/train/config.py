"""The training configuration: one frozen dataclass per concern, nested in :class:`RunConfig`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..augment import AugmentConfig
from ..data import DataConfig
from ..losses import LOSSES
from ..model import ModelConfig
from ..weights import WeightMapConfig

__all__ = ["TrainConfig", "RunConfig", "TrainingDiverged", "LOWER_IS_BETTER", "parse_duration", "schedule_passes",
           "scheduled_dropout"]

#: Validation metrics where smaller is better (for choosing ``best.pt``).
LOWER_IS_BETTER = frozenset({"loss", "pixel_error", "rand_error", "warping_error"})


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite."""


_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``"30m"``, ``"1h30m"``, ``"90s"``, ``"2.5h"`` (a bare number is minutes)."""
    text = str(text).strip().lower()
    try:
        return float(text) * 60.0
    except ValueError:
        pass
    m = _DURATION.match(text)
    if not text or not m or not any(m.groups()):
        raise ValueError(f"a duration looks like 30m, 1h30m, 90s or 2.5h, got {text!r}")
    h, mins, secs = (float(g) if g else 0.0 for g in m.groups())
    return 3600 * h + 60 * mins + secs


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping.

    ``tile`` is the INPUT tile size (572 in the paper); with valid padding the
    loss is computed on the central output window (388 for 572). The paper's
    default is one large tile per step with SGD and momentum 0.99.

    ``amp`` runs the forward pass under bfloat16 autocast (the loss, weights,
    gradients and optimiser state stay float32) on CUDA and on CPUs with
    bf16 instructions (:func:`unetkit.devices.native_bf16`); on other CPUs
    it is ignored. ``channels_last`` trains in that memory format; unset
    (None, the default) it follows bf16: on exactly when ``amp`` runs bf16
    autocast, where it pays, and off in float32, where a CPU training step
    ran 1.3-1.7x slower in it (``benchmarks/README.md``); ``true`` /
    ``false`` force it.
    ``grad_clip`` > 0 rescales the gradients so that their global L2 norm
    is at most that value before each optimiser step (0: off); the largest
    norm before clipping since the last log record is logged as ``grad_norm``.
    ``threads`` > 0 sets torch's intra-op threads for the run (restored after).

    ``budget`` (e.g. ``"30m"``): train for that wall-clock time instead of a
    fixed number of steps: the step time (and the cost of validation) is
    measured over the first ``calibration_steps`` steps and ``steps`` is set
    so that the schedule ends on time. ``ema`` > 0 keeps an exponential moving
    average of the weights (decay per step, warmed up as ``min(ema, (1 + t) /
    (10 + t))``); validation and the checkpoints' weights are the average.
    ``init_from``: a checkpoint whose weights start the run (fine-tuning); its
    architecture must be ``model``'s. ``loss``: ``"ce"`` (the paper's Eq. 1) or ``"ce_dice"`` (plus
    ``dice_weight`` x soft Dice); ``cldice_weight`` > 0 adds that times the
    topology-aware clDice of class ``cldice_class`` (thin connected
    structures: ISBI's membranes are class 0; ``unetkit.losses.cldice_loss``). ``val_tta``: validate with 8-fold
    test-time augmentation.

    ``dropout_min_passes`` > 0 makes ``model.dropout`` depend on the length of
    the schedule: dropout is on only when the schedule shows each training
    pixel at least that many times (passes = steps x tiles per step x
    loss-window pixels / training-image pixels); below, the run trains
    exactly as with dropout 0. A budget run trains without dropout until its
    step count is known (the first ``calibration_steps``) and decides again
    at each re-estimate. 0: ``model.dropout`` always.
    """

    steps: int = 2000
    tile: int = 572
    batch_size: int = 1
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.99
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    val_every: int = 200
    checkpoint_every: int = 200
    log_every: int = 10
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool | None = None
    grad_clip: float = 0.0
    threads: int = 0
    best_metric: str = "loss"
    budget: str = ""
    calibration_steps: int = 20
    ema: float = 0.0
    loss: str = "ce"
    dice_weight: float = 1.0
    cldice_weight: float = 0.0
    cldice_class: int = 0
    dropout_min_passes: float = 0.0
    val_tta: bool = False
    init_from: str = ""
    warping: bool = False
    plots: bool = True
    progress: bool = True

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"train.optimizer must be 'sgd', 'adam' or 'adamw', got {self.optimizer!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"train.loss must be one of {', '.join(map(repr, LOSSES))}, got {self.loss!r}")
        if not self.cldice_weight >= 0 or self.cldice_class < 0:
            raise ValueError(f"train.cldice_weight must be >= 0 (0 = off) and train.cldice_class >= 0, got "
                             f"{self.cldice_weight} and {self.cldice_class}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"train.ema must lie in [0, 1) (0 = off), got {self.ema}")
        if self.budget:
            try:
                seconds = parse_duration(self.budget)
            except ValueError as exc:
                raise ValueError(f"train.budget: {exc}") from None
            if seconds <= 0:
                raise ValueError(f"train.budget must be positive, got {self.budget!r}")
        if self.calibration_steps < 2:
            raise ValueError(f"train.calibration_steps must be >= 2, got {self.calibration_steps}")
        if self.schedule not in ("constant", "cosine", "poly"):
            raise ValueError(f"train.schedule must be 'constant', 'cosine' or 'poly', got {self.schedule!r}")
        for name in ("steps", "batch_size", "val_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if not self.dropout_min_passes >= 0:
            raise ValueError(f"train.dropout_min_passes must be >= 0 (0: always), got {self.dropout_min_passes}")
        if not self.grad_clip >= 0:
            raise ValueError(f"train.grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        for name in ("warmup_steps", "num_workers", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")


    def uses_bf16(self, device) -> bool:
        """Whether the forward pass runs under bf16 autocast on ``device`` (``amp`` and a native-bf16 device)."""
        from ..devices import native_bf16

        return self.amp and native_bf16(device)

    def uses_channels_last(self, device) -> bool:
        """Whether the run trains in channels-last memory format on ``device`` (``channels_last``, or bf16)."""
        return self.uses_bf16(device) if self.channels_last is None else self.channels_last


@dataclass(frozen=True)
class RunConfig:
    """One training run: a section per component, as in the config file.

    ``profile`` names the set of defaults the config file started from
    (:data:`unetkit.train.profiles.PROFILES`); ``"none"`` for a config built
    from the dataclass defaults in Python.
    """

    profile: str = "none"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    weights: WeightMapConfig = field(default_factory=WeightMapConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.train.cldice_weight > 0 and self.train.cldice_class >= self.model.num_classes:
            raise ValueError(f"train.cldice_class must be a class index 0..{self.model.num_classes - 1}, "
                             f"got {self.train.cldice_class}")

    @property
    def dropout_by_schedule(self) -> bool:
        """Whether ``train.dropout_min_passes`` switches ``model.dropout`` on and off."""
        return self.train.dropout_min_passes > 0 and self.model.dropout > 0


def schedule_passes(steps: int, tiles_per_step: int, window_shape: tuple[int, int],
                    image_shapes: list[tuple[int, ...]]) -> float:
    """How many times a schedule shows each training pixel: steps x tiles per step x window pixels / image pixels.

    ``tiles_per_step``: batch size x processes; ``window_shape``: one tile's
    loss window (388 x 388 for a 572 tile at depth 4); ``image_shapes``: the
    training images' shapes (the last two axes are counted).
    """
    train_px = sum(int(np.prod(shape[-2:])) for shape in image_shapes)
    return steps * tiles_per_step * int(np.prod(window_shape)) / max(train_px, 1)


def scheduled_dropout(run: RunConfig, passes: float | None) -> float:
    """The dropout a run trains with: ``model.dropout``, or 0 when ``train.dropout_min_passes`` > 0 and the
    schedule shows each training pixel fewer times than that (``passes``; None: not known yet)."""
    if not run.dropout_by_schedule:
        return run.model.dropout
    return run.model.dropout if passes is not None and passes >= run.train.dropout_min_passes else 0.0
