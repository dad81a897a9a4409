"""Data augmentation of the U-Net paper: tile position, rotation, flips, elastic
deformation and gray-value variation, applied to image, labels and weights alike.

Randomness and computation are kept apart (kornia style): ``sample_params``
draws every random quantity from an explicit :class:`numpy.random.Generator`
into an :class:`AugmentParams`; ``apply_params`` is a deterministic function of
the arrays and those parameters. ``augment`` does both.

All geometric changes (tile offset, rotation, flips, elastic field) are
composed into ONE sampling grid, and every array is resampled once with
:func:`torch.nn.functional.grid_sample`: the image with cubic interpolation,
the labels with nearest neighbour (their value set is kept exactly) and the
weights with linear interpolation. Where the grid reaches outside the image,
all arrays are mirrored (reflection about the outermost pixel centres, as
``np.pad(mode="reflect")``), as in the paper's overlap-tile strategy. When
the map sends pixel centres onto pixel centres (integer offset, flips,
multiples of 90 degrees, no elastic field) the arrays are gathered by index
instead, which is exact and faster. "Bicubic" is torch's: the Keys cubic
convolution with a = -0.75 (:func:`keys_cubic_kernel`), not a cubic B-spline
as in scipy.ndimage / elasticdeform.

Coordinates are (row, column) in pixels, pixel centres at integers. The
transform is a backward map: output pixel ``p`` (row, column) of the tile
takes the input value at ::

    src(p) = offset + c + R(angle) F (p - c) + d(p)

where ``c = ((h - 1) / 2, (w - 1) / 2)`` is the tile centre, ``F`` flips rows
and/or columns, ``R`` rotates counter-clockwise as displayed (``angle = 90``
equals ``np.rot90(image)``) and ``d`` is the elastic displacement field in
pixels.

References
----------
.. [1] O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for
   Biomedical Image Segmentation", MICCAI 2015, arXiv:1505.04597.
.. [2] R. Keys, "Cubic convolution interpolation for digital image
   processing", IEEE Trans. ASSP 29(6), 1981.

Modules: :mod:`~unetkit.augment.params` (config and parameters),
:mod:`~unetkit.augment.elastic` (the deformation field),
:mod:`~unetkit.augment.sample` and :mod:`~unetkit.augment.apply`. A new
transform adds its probability/range to :class:`AugmentConfig`, its drawn
value to :class:`AugmentParams`, its draw to ``sample_params`` (at the end
of the fixed draw order) and its effect to the one grid or the gray-value
step of ``apply_params``.
"""

from .apply import apply_params, augment
from .elastic import KEYS_A, elastic_field, keys_cubic_kernel, sample_elastic
from .params import AugmentConfig, AugmentParams
from .sample import sample_params

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "sample_elastic",
    "elastic_field",
    "sample_params",
    "apply_params",
    "augment",
    "keys_cubic_kernel",
    "KEYS_A",
]
