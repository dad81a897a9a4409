"""Random augmented training tiles, each keyed by its global sample index."""

from __future__ import annotations

import numpy as np
import torch

from ..augment import AugmentConfig, augment
from ..data import TrainingPair

__all__ = ["TileDataset"]


class TileDataset(torch.utils.data.Dataset):
    """The k-th item is an augmented random tile drawn with ``np.random.default_rng([seed, k])``.

    Items: image (C, T, T) float32, classes (O, O) int64, weights (O, O) float32,
    where T is the input tile and O the model's output size for it. Because an
    item depends only on ``(seed, k)``, a run resumed at step s draws exactly
    the samples it would have drawn, and K processes that share the indices
    draw what one process would.
    """

    def __init__(self, pairs: list[TrainingPair], config: AugmentConfig, tile: tuple[int, int],
                 label_shape: tuple[int, int], seed: int):
        if not pairs:
            raise ValueError("no training pairs")
        self.pairs, self.config, self.tile, self.label_shape, self.seed = pairs, config, tile, label_shape, seed

    def __len__(self) -> int:  # indices are unbounded; the sampler decides
        return 2**62

    def __getitem__(self, k: int):
        rng = np.random.default_rng([self.seed, int(k)])
        pair = self.pairs[int(rng.integers(len(self.pairs)))]
        image, classes, weights = augment(rng, self.config, pair.image, pair.classes, pair.weights,
                                          out_shape=self.tile, label_shape=self.label_shape)
        return (torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(classes, dtype=np.int64)),
                torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32)))
