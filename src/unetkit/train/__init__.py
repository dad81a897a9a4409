"""Training as in the paper: random augmented tiles, weighted cross-entropy, SGD momentum 0.99.

``train(run_config, out_dir)`` loads the data a :class:`RunConfig` names and
trains; ``train_on_pairs`` trains on prepared :class:`unetkit.data.TrainingPair`
lists (the demo, the napari plugin). The ``unetkit train`` command calls
``train``.

Modules: :mod:`~unetkit.train.config` (the run config),
:mod:`~unetkit.train.profiles` (named defaults: ``paper`` and the default),
:mod:`~unetkit.train.dataset` (keyed random tiles), :mod:`~unetkit.train.optim`
(optimiser, schedule), :mod:`~unetkit.train.ema` (weight averaging),
:mod:`~unetkit.train.validate` and :mod:`~unetkit.train.loop`.
"""

from .config import (LOWER_IS_BETTER, RunConfig, TrainConfig, TrainingDiverged, parse_duration, schedule_passes,
                     scheduled_dropout)
from .dataset import TileDataset
from .ema import WeightAverage
from .loop import TrainCallbacks, TrainResult, train, train_on_pairs, training_loss
from .optim import lr_at, make_optimizer
from .profiles import PROFILES, apply_profile, run_config
from .validate import predict_pairs, validate, validation_metrics

__all__ = [
    "TrainConfig",
    "RunConfig",
    "TrainingDiverged",
    "TrainResult",
    "TrainCallbacks",
    "TileDataset",
    "train",
    "train_on_pairs",
    "training_loss",
    "validate",
    "validation_metrics",
    "predict_pairs",
    "make_optimizer",
    "lr_at",
    "LOWER_IS_BETTER",
    "PROFILES",
    "apply_profile",
    "run_config",
    "parse_duration",
    "schedule_passes",
    "scheduled_dropout",
    "WeightAverage",
]
