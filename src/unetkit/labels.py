"""Label images: what kind a label image is, and the ONE rule from a mask to objects.

Every part of unetkit that turns label files into objects or training
targets (training data, ``unetkit weights``, ``unetkit evaluate``, the
metrics, instance post-processing) asks this module, so that the same file
means the same objects everywhere.

Label kinds
-----------
``binary``
    A mask with values in ``{0, v}``, ``v > 0`` (ISBI's 0/255, or 0/1):
    foreground = ``label > 0``; objects = its **4-connected components**
    (:func:`mask_to_objects`).
``instances``
    0 = background, each positive value one object.
``classes``
    Class indices ``0 .. num_classes - 1`` (semantic labels, no objects).
``auto``
    Decided by the values (:func:`detect_label_kind`): ``binary`` when they
    lie in ``{0, v}`` and either the model has 2 classes or ``v`` is no class
    index; ``classes`` when every value is a class index; else
    ``instances``. A 0/1 mask for a 2-class model is therefore ``binary``,
    so the paper's border weight applies to its objects.

Targets
-------
* :func:`instances_to_classes`: background / object with a 1-pixel line
  carved between touching objects (:func:`separation_borders`), the paper's
  two-class target;
* :func:`instances_to_border_classes`: background / interior / border, the
  three-class target.

All functions are pure: arrays in, new arrays out.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "LABEL_KINDS",
    "detect_label_kind",
    "is_binary_values",
    "mask_to_objects",
    "to_objects",
    "check_label_image",
    "check_connectivity",
    "connected_components",
    "label_components",
    "separation_borders",
    "instances_to_classes",
    "instances_to_border_classes",
    "relabel_sequential",
    "smallest_dtype_for",
]

LABEL_KINDS = ("auto", "classes", "binary", "instances")

_CROSS = ndi.generate_binary_structure(2, 1)
_SQUARE = ndi.generate_binary_structure(2, 2)


# ----------------------------------------------------------------------------- kinds
def is_binary_values(values: np.ndarray) -> bool:
    """Whether sorted distinct label ``values`` form a binary mask: a subset of ``{0, v}`` with ``v > 0``."""
    values = np.asarray(values)
    return values.size <= 2 and (values.size == 0 or values[0] == 0 or values.size == 1) and bool(np.all(values >= 0))


def _values(labels) -> np.ndarray:
    if isinstance(labels, np.ndarray):
        return np.unique(labels)
    return np.unique(np.concatenate([np.unique(np.asarray(l)) for l in labels])) if len(labels) else np.zeros(0)


def detect_label_kind(labels, num_classes: int) -> str:
    """``"binary"``, ``"classes"`` or ``"instances"`` for a label image or a list of them (see module docstring)."""
    values = _values(labels)
    if values.size and values.min() < 0:
        raise ValueError(f"labels must be >= 0, got {values.min()}")
    if is_binary_values(values) and (num_classes == 2 or values.size == 0 or values[-1] >= num_classes):
        return "binary"
    if values.size == 0 or values[-1] < num_classes:
        return "classes"
    return "instances"


def check_label_image(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Refuse an image that is not a label image: non-integers, negatives, or an intensity image.

    An intensity image (a raw gray image passed where labels belong) has many
    values that each fall apart into scattered pixels; in a label image
    nearly every value is one connected region. The test: the regions of
    equal value (4-connected, background 0 excluded) number more than
    ``2 * values + 10``.

    Returns the labels (bool as uint8). Raises ``ValueError`` naming ``name``.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"{name}: labels must be integers, got {labels.dtype} values")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0 (0 = background), got {labels.min()}")
    values = np.unique(labels)
    n_values = int(np.count_nonzero(values))
    if n_values > 2 and labels.ndim == 2:
        from skimage.measure import label as _label_regions

        n_regions = int(_label_regions(labels, background=0, connectivity=1).max())
        if n_regions > 2 * n_values + 10:
            raise ValueError(
                f"{name}: does not look like a label image: its {n_values} values fall apart into "
                f"{n_regions} separate regions (an intensity image?); labels hold 0 = background and "
                "one value per object, or a 0/255 mask")
    return labels


def mask_to_objects(mask, *, connectivity: int = 1) -> np.ndarray:
    """THE rule from a binary mask to objects: connected components of ``mask > 0`` (4-connected by default).

    Parameters
    ----------
    mask : ndarray (H, W) or (Z, H, W), bool or integer
        A stack is labelled plane by plane.

    Returns
    -------
    ndarray of int32, same shape: 0 = background, 1..N objects (per plane for a stack).
    """
    return connected_components(np.asarray(mask) > 0, connectivity)


def to_objects(labels, kind: str = "auto") -> np.ndarray:
    """Objects of a label image: a binary mask's components (:func:`mask_to_objects`), instance labels as given.

    ``kind`` is ``"binary"``, ``"instances"`` or ``"auto"`` (binary when the
    values lie in ``{0, v}``, else instances). Class maps have no objects.
    """
    labels = np.asarray(labels)
    if kind == "auto":
        kind = "binary" if labels.dtype == bool or is_binary_values(np.unique(labels)) else "instances"
    if kind == "binary":
        return mask_to_objects(labels)
    if kind == "instances":
        return labels
    raise ValueError(f"kind must be 'auto', 'binary' or 'instances', got {kind!r}")


# ----------------------------------------------------------------------------- components
def check_connectivity(connectivity: int, ndim: int) -> None:
    """``ValueError`` unless ``connectivity`` is an integer in ``[1, ndim]`` (1 = edge neighbours)."""
    if isinstance(connectivity, bool) or int(connectivity) != connectivity or not 1 <= connectivity <= ndim:
        raise ValueError(f"connectivity must be an integer in [1, {ndim}] for {ndim}-D arrays "
                         f"(1 = edge neighbours), got {connectivity!r}")


def connected_components(binary, connectivity: int = 1, *, by_plane: bool = True) -> np.ndarray:
    """Label the connected regions of a binary plane, of each plane of a stack, or of a volume.

    Parameters
    ----------
    binary : array_like of bool, shape (H, W) or (Z, H, W); any shape with ``by_plane=False``
        Foreground mask (non-zero = foreground).
    connectivity : int
        1 = neighbours share an edge (4-connectivity in 2-D, the ISBI 2012
        convention), up to the number of axes labelled together (2 = 8 in 2-D).
    by_plane : bool
        True (default): a (Z, H, W) stack is a set of independent planes,
        labelled separately (labels restart at 1 in every plane). False: the
        array is labelled as one volume.

    Returns
    -------
    ndarray of int32, same shape: 0 for background, 1..n for the regions in raster order.
    """
    b = np.asarray(binary).astype(bool, copy=False)
    if by_plane and b.ndim not in (2, 3):
        raise ValueError(f"expected a (H, W) plane or a (Z, H, W) stack, got shape {b.shape}")
    if b.ndim < 1:
        raise ValueError("mask must be an array with at least one axis, got a scalar")
    ndim = 2 if by_plane else b.ndim
    check_connectivity(connectivity, ndim)
    structure = ndi.generate_binary_structure(ndim, int(connectivity))
    if by_plane and b.ndim == 3:
        out = np.empty(b.shape, dtype=np.int32)
        for z in range(b.shape[0]):
            ndi.label(b[z], structure=structure, output=out[z])
        return out
    return ndi.label(b, structure=structure, output=np.int32)[0]


def label_components(mask, *, connectivity: int = 1) -> np.ndarray:
    """Connected components of a mask of any number of axes, labelled as one volume (int32)."""
    return connected_components(mask, connectivity, by_plane=False)


def _check_instances(instances, name: str = "instances", *, ndim: int | None = 2) -> np.ndarray:
    a = np.asarray(instances)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be a 2-D (H, W) label image, got shape {a.shape}")
    if ndim is None and a.ndim < 1:
        raise ValueError(f"{name} must be an array with at least one axis, got a scalar")
    if a.size == 0 and ndim is not None:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    if a.dtype == bool:
        return a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype (0 = background), got dtype {a.dtype}")
    if a.size and np.issubdtype(a.dtype, np.signedinteger) and a.min() < 0:
        raise ValueError(f"{name} must be non-negative (>= 0: 0 = background, > 0 = one label per object), "
                         f"got {a.min()}")
    return a


def _check_width(width, name: str = "width") -> int:
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 0:
        raise ValueError(f"{name} must be an integer >= 0 (pixels), got {width!r}")
    return int(width)


# ----------------------------------------------------------------------------- targets
def _grey_dilation(labels: np.ndarray, width: int) -> np.ndarray:
    """Maximum over the (2 width + 1)^2 square around each pixel (outside the image counts as 0).

    Separable: ``width`` 3-pixel passes per axis; a few slice operations per
    pass, faster than ``ndimage.maximum_filter`` on label images.
    """
    out = labels.copy()
    for _ in range(width):
        np.maximum(out[1:], out[:-1], out=out[1:])
        np.maximum(out[:-1], out[1:], out=out[:-1])
        np.maximum(out[:, 1:], out[:, :-1], out=out[:, 1:])
        np.maximum(out[:, :-1], out[:, 1:], out=out[:, :-1])
    return out


def separation_borders(instances, *, width: int = 1) -> np.ndarray:
    """Pixels carved out between touching instances to separate them (the paper's Fig. 3c).

    A pixel of instance ``a`` is a border pixel when a pixel of an instance
    with a larger label ``b > a`` lies within ``width`` pixels (the
    ``(2 width + 1) x (2 width + 1)`` square around it): a grey dilation of
    the labels compared with the labels.

    Parameters
    ----------
    instances : ndarray of shape (H, W), integer or bool
        Instance labels: 0 = background, each positive value one instance.
    width : int, keyword-only
        Border width in pixels (>= 0). 1 (default) gives the paper's thin
        line between touching cells; 0 carves nothing.

    Returns
    -------
    borders : ndarray of shape (H, W), bool
        True on carved pixels.

    Raises
    ------
    ValueError
        For labels that are not a 2-D array of non-negative integers, or a
        negative or non-integer ``width``.

    Notes
    -----
    Carving is one-sided, on the side of the smaller label, so two instances
    touching along a straight contact are separated by a line ``width``
    pixels wide, not ``2 width``. After carving, any two pixels of different
    instances are more than ``width`` pixels apart in the chessboard metric
    (for ``width = 1``: no longer 8-connected). Instances that do not come
    within ``width`` pixels of a larger label are untouched, and so is the
    largest label of every contact. The result depends on the label values
    only through their order.
    """
    labels = _check_instances(instances)
    width = _check_width(width)
    if width == 0:
        return np.zeros(labels.shape, bool)
    return (labels > 0) & (_grey_dilation(labels, width) > labels)


def instances_to_classes(instances, *, width: int = 1) -> np.ndarray:
    """Two-class training target from instance labels: touching cells come apart.

    Parameters
    ----------
    instances : ndarray of shape (H, W), integer or bool
        Instance labels, 0 = background.
    width : int, keyword-only
        Width of the separation borders, pixels (see :func:`separation_borders`).

    Returns
    -------
    classes : ndarray of shape (H, W), uint8
        1 on instance pixels, 0 on background and on separation borders.
    """
    labels = _check_instances(instances)
    return ((labels > 0) & ~separation_borders(labels, width=width)).astype(np.uint8)


def instances_to_border_classes(instances: np.ndarray, *, border_width: int = 1) -> np.ndarray:
    """Three-class training target (background / interior / border) from instances.

    Parameters
    ----------
    instances : ndarray of int, shape (H, W) (any number of axes works)
        Instance labels, 0 = background.
    border_width : int, keyword-only
        Pixels; an object pixel is border when another label (background or
        another object) lies within this city-block distance. >= 1.

    Returns
    -------
    ndarray of uint8, shape of ``instances``
        0 = background, 1 = interior, 2 = border.

    Notes
    -----
    Both sides of an edge shared by two touching objects become border, so
    the interiors of touching objects are separated by ``2 * border_width``
    pixels. The image edge is not a border: objects cut by it keep their
    interior up to the edge. Objects at most ``2 * border_width`` pixels thick
    have no interior and cannot be recovered by
    :func:`unetkit.instances.probabilities_to_instances` in border mode.
    """
    instances = _check_instances(instances, "instances", ndim=None)
    if int(border_width) != border_width or border_width < 1:
        raise ValueError(f"border_width must be an integer >= 1, got {border_width!r}")
    cross = ndi.generate_binary_structure(instances.ndim, 1)
    footprint = ndi.iterate_structure(cross, int(border_width))
    # a pixel is interior when its whole diamond neighbourhood has its label
    lo = ndi.minimum_filter(instances, footprint=footprint, mode="nearest")
    hi = ndi.maximum_filter(instances, footprint=footprint, mode="nearest")
    out = np.zeros(instances.shape, dtype=np.uint8)
    fg = instances > 0
    out[fg] = 2
    out[fg & (lo == instances) & (hi == instances)] = 1
    return out


# ----------------------------------------------------------------------------- numbering
def smallest_dtype_for(n: int) -> np.dtype:
    """Unsigned dtype for a label image with ``n`` objects.

    ``uint16`` for ``n <= 65535`` (what most tools read), ``uint32`` up to
    ``2**32 - 1``; ``ValueError`` if ``n`` is negative or does not fit.
    """
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if n <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    if n <= np.iinfo(np.uint32).max:
        return np.dtype(np.uint32)
    raise ValueError(f"{n} objects do not fit in uint32 labels")


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Number objects 1..N consecutively, in the smallest unsigned label dtype.

    Parameters
    ----------
    labels : ndarray of int, any shape
        Instance labels, 0 = background, possibly with gaps in the numbering.

    Returns
    -------
    ndarray of uint16 or uint32, shape of ``labels``
        Objects renumbered 1..N in increasing order of their old labels, 0 kept
        as background; dtype from :func:`smallest_dtype_for` ``(N)``.
    """
    from skimage.segmentation import relabel_sequential as _relabel

    labels = _check_instances(labels, "labels", ndim=None)
    relabeled, _, _ = _relabel(labels)
    n = int(relabeled.max()) if relabeled.size else 0
    return relabeled.astype(smallest_dtype_for(n), copy=False)
