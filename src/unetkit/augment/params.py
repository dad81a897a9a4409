"""Configuration and parameters of one augmentation: what may happen, and what did.

:class:`AugmentConfig` holds probabilities and ranges; :class:`AugmentParams`
everything one draw decided (the defaults are the identity).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

__all__ = ["AugmentConfig", "AugmentParams"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the random augmentation.

    The defaults follow the paper where it speaks (elastic 3x3 grid, sigma
    10 px, always on) and otherwise aim at EM and light-microscopy data,
    which have no preferred orientation.

    Parameters
    ----------
    enabled : bool
        False: only a random tile position, no other change (see
        :meth:`disabled`).
    elastic_p : float
        Probability of the elastic deformation (paper: always, 1.0).
    elastic_sigma_px : float
        Standard deviation of the coarse-grid displacements, pixels (paper: 10).
    elastic_grid : int
        Number of coarse grid points per axis (paper: 3, i.e. a 3x3 grid).
    rotation_p : float
        Probability of a rotation.
    rotation_mode : {"any", "90"}
        "any": angle uniform in ``[-max_angle_deg, max_angle_deg]``;
        "90": a uniformly drawn multiple of 90 degrees (exact, no
        interpolation blur).
    max_angle_deg : float
        Largest rotation angle in degrees for ``rotation_mode="any"``.
    flip_p : float
        Probability of flipping, drawn independently for the row and the
        column axis.
    contrast_p, contrast_range : float, (float, float)
        Probability and range (uniform) of the contrast factor ``c``:
        ``x -> mean + c (x - mean)``.
    brightness_p, brightness_range : float, (float, float)
        Probability and range (uniform) of the brightness shift ``b``, in
        units of the tile's standard deviation: ``x -> x + b std``.
    gamma_p, gamma_range : float, (float, float)
        Probability and range (log-uniform) of the gamma ``g``, applied on the
        tile's [min, max] range: ``x -> lo + (hi - lo) ((x - lo) / (hi - lo))**g``.
    noise_p, noise_std_range : float, (float, float)
        Probability and range (uniform) of the standard deviation of additive
        Gaussian noise, in units of the tile's standard deviation.

    Notes
    -----
    Gray-value statistics (mean, std, min, max) are those of the output tile,
    per channel, so the same defaults work for images scaled to [0, 1],
    [0, 255] or z-scored. Gray-value changes touch the image only.
    """

    enabled: bool = True
    elastic_p: float = 1.0
    elastic_sigma_px: float = 10.0
    elastic_grid: int = 3
    rotation_p: float = 1.0
    rotation_mode: str = "any"
    max_angle_deg: float = 180.0
    flip_p: float = 0.5
    contrast_p: float = 0.5
    contrast_range: tuple[float, float] = (0.75, 1.25)
    brightness_p: float = 0.5
    brightness_range: tuple[float, float] = (-0.2, 0.2)
    gamma_p: float = 0.5
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_p: float = 0.25
    noise_std_range: tuple[float, float] = (0.0, 0.15)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.endswith("_range"):
                value = tuple(float(v) for v in getattr(self, f.name))
                if len(value) != 2 or not value[0] <= value[1]:
                    raise ValueError(
                        f"AugmentConfig.{f.name} must be (low, high) with low <= high, "
                        f"got {getattr(self, f.name)!r}"
                    )
                object.__setattr__(self, f.name, value)
            elif f.name.endswith("_p"):
                p = getattr(self, f.name)
                if not 0.0 <= p <= 1.0:
                    raise ValueError(f"AugmentConfig.{f.name} must be in [0, 1], got {p!r}")
        if self.rotation_mode not in ("any", "90"):
            raise ValueError(
                f"AugmentConfig.rotation_mode must be 'any' or '90', got {self.rotation_mode!r}"
            )
        if self.elastic_sigma_px < 0:
            raise ValueError(
                f"AugmentConfig.elastic_sigma_px must be >= 0, got {self.elastic_sigma_px!r}"
            )
        if int(self.elastic_grid) != self.elastic_grid or self.elastic_grid < 2:
            raise ValueError(
                f"AugmentConfig.elastic_grid must be an integer >= 2, got {self.elastic_grid!r}"
            )
        if self.max_angle_deg < 0:
            raise ValueError(
                f"AugmentConfig.max_angle_deg must be >= 0, got {self.max_angle_deg!r}"
            )
        if self.gamma_range[0] <= 0:
            raise ValueError(
                f"AugmentConfig.gamma_range must be positive, got {self.gamma_range!r}"
            )
        if self.noise_std_range[0] < 0:
            raise ValueError(
                f"AugmentConfig.noise_std_range must be non-negative, got {self.noise_std_range!r}"
            )

    @classmethod
    def disabled(cls) -> AugmentConfig:
        """No augmentation: only the random tile position is sampled."""
        return cls(enabled=False)


@dataclass(frozen=True, eq=False)
class AugmentParams:
    """Everything one augmentation draws; the defaults are the identity.

    Parameters
    ----------
    out_shape : (int, int)
        Output tile shape (h, w), pixels.
    offset : (int, int)
        Input position (row, column) of the tile's top-left pixel before
        rotation, flips and deformation; may be negative or reach past the
        image (mirrored there).
    angle_deg : float
        Counter-clockwise rotation (as displayed) about the tile centre,
        degrees. Multiples of 90 use exact integer rotation matrices.
    flip : (bool, bool)
        Flip the row axis, the column axis.
    elastic : ndarray of shape (2, gh, gw), float, or None
        Coarse displacement grid (row, column components) in pixels, spanning
        the output tile corner to corner; None: no deformation.
    contrast, brightness, gamma, noise_std : float
        Gray-value changes (identity: 1, 0, 1, 0); see :class:`AugmentConfig`.
    noise_seed : int
        Seed of the noise field (torch CPU generator), so the noise is a
        deterministic function of the parameters.
    """

    out_shape: tuple[int, int]
    offset: tuple[int, int] = (0, 0)
    angle_deg: float = 0.0
    flip: tuple[bool, bool] = (False, False)
    elastic: np.ndarray | None = field(default=None, repr=False)
    contrast: float = 1.0
    brightness: float = 0.0
    gamma: float = 1.0
    noise_std: float = 0.0
    noise_seed: int = 0

    def __post_init__(self) -> None:
        shape = _check_shape2(self.out_shape, "out_shape")
        object.__setattr__(self, "out_shape", shape)
        offset = tuple(self.offset)
        if len(offset) != 2 or any(int(o) != o for o in offset):
            raise ValueError(f"offset must be two integers (row, column), got {self.offset!r}")
        object.__setattr__(self, "offset", (int(offset[0]), int(offset[1])))
        flip = tuple(bool(f) for f in self.flip)
        if len(flip) != 2:
            raise ValueError(f"flip must be two booleans (rows, columns), got {self.flip!r}")
        object.__setattr__(self, "flip", flip)
        if self.elastic is not None:
            e = np.array(self.elastic, dtype=np.float64)  # own copy, made read-only
            if e.ndim != 3 or e.shape[0] != 2 or min(e.shape[1:]) < 1:
                raise ValueError(
                    f"elastic must have shape (2, gh, gw) (row and column displacements), "
                    f"got {e.shape}"
                )
            e.setflags(write=False)
            object.__setattr__(self, "elastic", e)
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma!r}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std!r}")


def _check_rng(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )


def _check_shape2(shape: Sequence[int], name: str) -> tuple[int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        raise ValueError(f"{name} must be two positive integers (h, w), got {shape!r}") from None
    if len(values) != 2 or any(int(v) != v or v < 1 for v in values):
        raise ValueError(f"{name} must be two positive integers (h, w), got {shape!r}")
    return int(values[0]), int(values[1])


def _label_margin(out_shape: tuple[int, int], label_shape: tuple[int, int]) -> tuple[int, int]:
    """Border (rows, columns) between the image tile and the centred label tile."""
    diff = (out_shape[0] - label_shape[0], out_shape[1] - label_shape[1])
    if min(diff) < 0 or diff[0] % 2 or diff[1] % 2:
        raise ValueError(
            f"label_shape {label_shape} must fit centred in out_shape {out_shape}: "
            f"smaller or equal, and out_shape - label_shape even"
        )
    return diff[0] // 2, diff[1] // 2
