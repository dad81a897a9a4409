"""Segmentation metrics of the ISBI 2012 challenge and the Cell Tracking Challenge.

Everything here is pure NumPy/SciPy on arrays. Images are ``(H, W)`` planes or
``(Z, H, W)`` stacks of independent planes (no connectivity across planes);
the region and instance metrics and the ``evaluate_*`` functions also take a
list of planes, which may differ in shape.
The definitions follow ``docs/METRICS.md`` exactly; each function cites its
source. Thresholding (:func:`threshold`), connected components
(:func:`unetkit.labels.connected_components`) and boundary thinning (:func:`thin_boundaries`)
are separate helpers: a metric never binarises or labels its input itself,
except :func:`warping_error`, whose definition needs the probabilities (the
flip order is ``|p - t|``).

Conventions (ISBI 2012)
-----------------------
* A prediction is ``P(cell)`` in [0, 1]; it is binarised with the strict
  rule ``p > t``.
* Ground truth: cell = ``label > 0``.
* Regions are 4-connected components of cell pixels; boundary (membrane)
  pixels have label 0 and belong to no region.

:func:`evaluate_probabilities` runs the official threshold sweep and
:func:`evaluate_instances` the instance metrics (CTC SEG, AP at IoU 0.5).
Note the argument order: the ``evaluate_*`` functions take the prediction
first (like the ``unetkit evaluate PRED GT`` command), the metric functions
take the ground truth first (like ``skimage.metrics``).

Modules: :mod:`~unetkit.metrics.table` (conventions, the contingency table,
what a prediction means), :mod:`~unetkit.metrics.pixel`,
:mod:`~unetkit.metrics.region` (Rand, V_rand, V_info, thinning),
:mod:`~unetkit.metrics.warping`, :mod:`~unetkit.metrics.instance` (SEG, AP)
and :mod:`~unetkit.metrics.sweep` (the official threshold sweep). A new
metric goes into the module of its family and is exported here.
"""

from ..labels import connected_components
from .instance import SegResult, average_precision, evaluate_instances, seg
from .pixel import accuracy, dice, iou, pixel_error
from .region import rand_error, rand_split_merge, thin_boundaries, v_info, v_rand
from .sweep import evaluate_probabilities
from .table import (
    HIGHER_IS_BETTER,
    METRIC_NAMES,
    THRESHOLDS,
    WARPING_THRESHOLDS,
    SplitMerge,
    as_probability,
    contingency_table,
    threshold,
)
from .warping import _SIMPLE, WARPING_RADIUS, WarpingResult, simple_point_warp, warping_error  # noqa: F401 (_SIMPLE: for tests)

__all__ = [
    "THRESHOLDS",
    "WARPING_THRESHOLDS",
    "WARPING_RADIUS",
    "METRIC_NAMES",
    "HIGHER_IS_BETTER",
    "SplitMerge",
    "WarpingResult",
    "SegResult",
    "threshold",
    "as_probability",
    "connected_components",
    "contingency_table",
    "thin_boundaries",
    "pixel_error",
    "rand_error",
    "rand_split_merge",
    "v_rand",
    "v_info",
    "simple_point_warp",
    "warping_error",
    "iou",
    "dice",
    "accuracy",
    "seg",
    "average_precision",
    "evaluate_probabilities",
    "evaluate_instances",
]
