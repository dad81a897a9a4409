"""From U-Net class probabilities to instance labels (one integer per object).

The network gives a probability per pixel and class; users of nuclei and cell
images want one label per object. Two ways lead there:

* **Two classes** (background / foreground), trained with the paper's border
  weight map so that the network learns the thin background gaps between
  touching cells (Ronneberger et al. 2015, Sec. 3). Objects are the connected
  components of ``P(foreground) > threshold`` (4-connectivity by default);
  optionally touching objects that still merged are split by a seeded
  watershed (:func:`watershed_split`).
* **Three classes** (background / interior / border), an alternative to the
  weight map (Caicedo et al. 2019): training targets come from
  :func:`instances_to_border_classes`; at inference the interior class gives
  one seed per object and the seeds grow over interior and border pixels by a
  watershed on ``P(border)``.

Both then remove objects smaller than ``min_size`` pixels, fill holes enclosed
by a single object and number the objects 1..N (0 is background) in the
smallest unsigned dtype that holds N (uint16, or uint32 above 65,535 objects).

All functions are pure: arrays in, new arrays out.

References
----------
.. [1] Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for
   Biomedical Image Segmentation", MICCAI 2015, arXiv:1505.04597.
.. [2] Caicedo et al., "Evaluation of Deep Learning Strategies for Nucleus
   Segmentation in Fluorescence Images", Cytometry A 95(9), 2019.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import segmentation as _seg
from skimage.color import label2rgb
from skimage.morphology import h_maxima

from .labels import (
    _check_instances,
    check_connectivity,
    instances_to_border_classes,
    label_components,
    relabel_sequential,
    smallest_dtype_for,
)

__all__ = [
    "InstanceConfig",
    "probabilities_to_instances",
    "label_components",
    "remove_small",
    "fill_label_holes",
    "watershed_split",
    "relabel_sequential",
    "smallest_dtype_for",
    "instances_to_border_classes",
    "label_overlay",
]

# Softmax outputs in float32 can overshoot [0, 1] by rounding; beyond this the
# input is not a probability map (logits, or an unnormalised image).
_PROB_TOLERANCE = 1e-5


@dataclass(frozen=True)
class InstanceConfig:
    """Options of :func:`probabilities_to_instances`.

    Parameters
    ----------
    threshold : float
        A pixel is foreground when ``P(foreground) > threshold`` (two-class
        mode) or ``P(interior) + P(border) > threshold`` (border mode).
        In [0, 1]; default 0.5.
    min_size : int
        Objects with fewer pixels than this are removed (set to background)
        before hole filling. 0 or 1 keeps everything. Default 10 pixels.
    fill_holes : bool
        Fill background regions enclosed by a single object (never regions
        bounded by two or more objects, so objects are not merged).
    watershed : bool
        Two-class mode only: split merged objects with :func:`watershed_split`
        instead of taking plain connected components. Ignored in border mode,
        which always grows seeds by watershed.
    seed_threshold : float
        Watershed seeds are looked for only where ``P(foreground) >
        seed_threshold``; in [0, 1], normally above ``threshold``. Default 0.9.
    seed_h : float
        Pixels. Inside the seed region, each maximum of the Euclidean distance
        transform that rises at least ``seed_h`` above the saddle joining it to
        a higher maximum gives one seed (the h-maxima transform). Larger values
        split less. Default 2.0.
    connectivity : int
        1 for 4-connectivity (edge neighbours), 2 for 8-connectivity (edge and
        corner neighbours) of objects. Default 1: two objects that meet only
        at a pixel corner stay apart.
    """

    threshold: float = 0.5
    min_size: int = 10
    fill_holes: bool = True
    watershed: bool = False
    seed_threshold: float = 0.9
    seed_h: float = 2.0
    connectivity: int = 1

    def __post_init__(self) -> None:
        for name in ("threshold", "seed_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if int(self.min_size) != self.min_size or self.min_size < 0:
            raise ValueError(f"min_size must be a non-negative integer, got {self.min_size!r}")
        if not self.seed_h > 0:
            raise ValueError(f"seed_h must be > 0 pixels, got {self.seed_h!r}")
        if self.connectivity not in (1, 2):
            raise ValueError(f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), got {self.connectivity!r}")


# --------------------------------------------------------------------------- helpers


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to background.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W) (any number of axes works)
        Instance labels, 0 = background. Not modified.
    min_size : int
        Minimum object size in pixels; objects with exactly ``min_size``
        pixels are kept. 0 or 1 keeps everything.

    Returns
    -------
    ndarray, same shape and dtype as ``labels``
        A copy without the small objects. The remaining labels keep their
        numbers (use :func:`relabel_sequential` to close the gaps).
    """
    labels = _check_instances(labels, "labels", ndim=None)
    if int(min_size) != min_size or min_size < 0:
        raise ValueError(f"min_size must be a non-negative integer, got {min_size!r}")
    out = labels.copy()
    if min_size <= 1 or out.size == 0:
        return out
    sizes = np.bincount(out.ravel().astype(np.intp))
    small = sizes < min_size
    small[0] = False
    out[small[out]] = 0
    return out


def fill_label_holes(labels: np.ndarray) -> np.ndarray:
    """Fill background regions that are enclosed by a single object.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W) (any number of axes works)
        Instance labels, 0 = background. Not modified.

    Returns
    -------
    ndarray, same shape and dtype as ``labels``
        A copy in which every hole takes the label of the object around it.

    Notes
    -----
    A hole is a connected component of background (full connectivity: in 2-D
    corner neighbours count, which is the dual of 4-connected objects) that
    does not touch the image border and whose neighbouring pixels all belong
    to one object. A gap enclosed by two or more touching objects is left as
    background, so filling never merges objects; a ring around another object
    is not filled either, because the background inside it also touches the
    inner object.
    """
    labels = _check_instances(labels, "labels", ndim=None)
    out = labels.copy()
    if out.size == 0 or not out.any():
        return out
    ndim = out.ndim
    full = ndi.generate_binary_structure(ndim, ndim)
    background, n_bg = ndi.label(out == 0, structure=full, output=np.int64)
    if n_bg == 0:
        return out

    # background components touching the image border are not holes
    open_bg = np.zeros(n_bg + 1, dtype=bool)
    for axis in range(ndim):
        for index in (0, -1):
            open_bg[np.unique(np.take(background, index, axis=axis))] = True

    # pairs (background component, neighbouring object) over all shifts of the
    # full neighbourhood; every neighbour of a background component that is not
    # in the component is an object pixel
    n_obj = int(out.max()) + 1
    pairs = []
    for offset in np.argwhere(full) - 1:
        if not offset.any():
            continue
        src = tuple(slice(max(-o, 0), s - max(o, 0)) for o, s in zip(offset, out.shape))
        dst = tuple(slice(max(o, 0), s - max(-o, 0)) for o, s in zip(offset, out.shape))
        bg = background[src]
        obj = out[dst]
        touching = (bg > 0) & (obj > 0)
        pairs.append(bg[touching] * n_obj + obj[touching].astype(np.int64))
    pairs = np.unique(np.concatenate(pairs))
    bg_ids, obj_ids = np.divmod(pairs, n_obj)
    n_neighbours = np.bincount(bg_ids, minlength=n_bg + 1)

    fill_with = np.zeros(n_bg + 1, dtype=out.dtype)
    single = n_neighbours[bg_ids] == 1
    fill_with[bg_ids[single]] = obj_ids[single]
    fill_with[open_bg] = 0
    fill_with[0] = 0
    holes = fill_with[background]
    out[holes > 0] = holes[holes > 0]
    return out


def watershed_split(
    prob_fg: np.ndarray,
    mask: np.ndarray,
    *,
    seed_threshold: float = 0.9,
    seed_h: float = 2.0,
    connectivity: int = 1,
) -> np.ndarray:
    """Split touching objects of a foreground mask by a seeded watershed.

    Parameters
    ----------
    prob_fg : ndarray of float, shape (H, W)
        Foreground probability in [0, 1].
    mask : ndarray of bool, shape (H, W)
        Foreground pixels to be divided into objects, normally
        ``prob_fg > threshold``.
    seed_threshold : float, keyword-only
        Seeds lie where ``prob_fg > seed_threshold`` (inside ``mask``).
    seed_h : float, keyword-only
        Pixels; h of the h-maxima transform of the seed region's distance
        transform. A maximum becomes its own seed only if it stands at least
        ``seed_h`` pixels above the saddle to any higher maximum.
    connectivity : int, keyword-only
        1 (4-connectivity) or 2 (8-connectivity) for seeds and flooding.

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 outside ``mask``; every ``mask`` pixel carries an object label.
        Labels are unique but need not be consecutive.

    Notes
    -----
    Seeds come from the probability map in two steps, so that both signals a
    U-Net gives are used: (1) thresholding at ``seed_threshold`` separates
    objects whose probability dips between them (what the paper's border
    weight map teaches the network); (2) objects still joined in that seed
    region are separated at necks: each h-maximum of its Euclidean distance
    transform is one seed (two overlapping disks of radius r whose neck has
    half-width w are split when r - w >= ``seed_h``; of two equally high
    maxima the later one in raster order counts as the higher). A seed-region component
    without an h-maximum (thinner than ``seed_h``) is one seed as a whole.
    The seeds are then flooded over ``mask`` on ``1 - prob_fg``, so borders
    fall on probability valleys; where the probability is flat they fall
    midway between seeds. Components of ``mask`` without any seed (never above
    ``seed_threshold``) are kept as one object each.
    """
    prob_fg = np.asarray(prob_fg, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if prob_fg.shape != mask.shape:
        raise ValueError(f"prob_fg and mask must have the same shape, got {prob_fg.shape} and {mask.shape}")
    if prob_fg.ndim < 1:
        raise ValueError("prob_fg must be an array with at least one axis, got a scalar")
    check_connectivity(connectivity, prob_fg.ndim)
    if not 0.0 <= seed_threshold <= 1.0:
        raise ValueError(f"seed_threshold must be in [0, 1], got {seed_threshold!r}")
    if not seed_h > 0:
        raise ValueError(f"seed_h must be > 0 pixels, got {seed_h!r}")

    seed_region = mask & (prob_fg > seed_threshold)
    regions = label_components(seed_region, connectivity=connectivity)
    distance = ndi.distance_transform_edt(seed_region)
    # Break exact ties (mirror-symmetric shapes, flat ridges) so that of two
    # equally high maxima only one counts as the higher: otherwise both would
    # always be kept, however shallow the saddle between them. The offset is far
    # below the spacing of distinct distance values (> 1e-4 px).
    distance += 1e-7 * np.arange(distance.size, dtype=np.float64).reshape(distance.shape) / max(distance.size, 1)
    distance[~seed_region] = 0.0
    peaks = h_maxima(distance, seed_h).astype(bool) & seed_region
    full = ndi.generate_binary_structure(prob_fg.ndim, prob_fg.ndim)
    markers, n_markers = ndi.label(peaks, structure=full, output=np.int32)
    # seed-region components without a peak become one seed each
    has_peak = np.zeros(int(regions.max()) + 1, dtype=bool)
    has_peak[regions[peaks]] = True
    has_peak[0] = True
    orphan = ~has_peak[regions]
    markers[orphan] = regions[orphan] + n_markers

    out = _seg.watershed(1.0 - prob_fg, markers, mask=mask, connectivity=connectivity).astype(np.int32)
    # mask components that no seed reached are kept whole
    unreached = mask & (out == 0)
    if unreached.any():
        rest = label_components(unreached, connectivity=connectivity)
        out[unreached] = rest[unreached] + out.max()
    return out


# --------------------------------------------------------------------------- main entry


def _check_probabilities(prob: np.ndarray) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.ndim not in (2, 3):
        raise ValueError(f"prob must have shape (C, H, W) or (H, W), got {prob.ndim} axes with shape {prob.shape}")
    if not np.issubdtype(prob.dtype, np.floating):
        raise ValueError(f"prob must be floating-point probabilities, got dtype {prob.dtype}")
    if prob.size == 0:
        raise ValueError(f"prob must not be empty, got shape {prob.shape}")
    lo, hi = float(np.min(prob)), float(np.max(prob))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("prob contains NaN or infinite values")
    if lo < -_PROB_TOLERANCE or hi > 1.0 + _PROB_TOLERANCE:
        raise ValueError(
            f"prob must hold probabilities in [0, 1] (softmax output, not logits), got values in [{lo:.4g}, {hi:.4g}]"
        )
    return prob


def probabilities_to_instances(
    prob: np.ndarray,
    *,
    config: InstanceConfig | None = None,
    foreground_class: int = 1,
    border_class: int | None = None,
) -> np.ndarray:
    """Instance labels from U-Net softmax probabilities.

    Parameters
    ----------
    prob : ndarray of float, shape (C, H, W) or (H, W)
        Class probabilities in [0, 1]: softmax over C >= 2 classes, or
        (H, W) foreground probability ``P(foreground)``.
    config : InstanceConfig, keyword-only, optional
        Threshold, minimum size, hole filling and watershed options;
        ``InstanceConfig()`` when None.
    foreground_class : int, keyword-only
        Channel of the foreground class (the interior class in border mode).
        Ignored for (H, W) input. Default 1.
    border_class : int, keyword-only, optional
        Channel of the border class of a three-class (background / interior /
        border) model; needs (C, H, W) input with C >= 3. None (default) for a
        two-class model.

    Returns
    -------
    ndarray of uint16 or uint32, shape (H, W)
        0 = background, objects numbered 1..N consecutively; uint32 only when
        N > 65,535.

    Raises
    ------
    ValueError
        For a wrong number of axes, values outside [0, 1], class indices out
        of range, or ``border_class`` with fewer than three channels.

    Notes
    -----
    Two-class mode: foreground is ``P(foreground) > threshold``; objects are
    its connected components (``config.connectivity``), or with
    ``config.watershed`` the regions of :func:`watershed_split`.

    Border mode: the region is ``P(interior) + P(border) > threshold``; seeds
    are the connected components of pixels whose most likely class is the
    interior; the seeds grow over the region by a watershed on ``P(border)``,
    so every border pixel joins the object it is best connected to. Parts of
    the region that no seed reaches (border fragments without interior) are
    dropped. Objects thinner than the border (no interior pixel) are lost.

    Both modes then remove objects smaller than ``config.min_size`` pixels,
    fill holes enclosed by one object (``config.fill_holes``, see
    :func:`fill_label_holes`) and renumber 1..N (:func:`relabel_sequential`).
    """
    config = InstanceConfig() if config is None else config
    prob = _check_probabilities(prob)

    if prob.ndim == 2:
        if border_class is not None:
            raise ValueError("border_class needs (C, H, W) probabilities with C >= 3, got an (H, W) foreground map")
        p_fg = prob
    else:
        n_classes = prob.shape[0]
        if n_classes < 2:
            raise ValueError(f"prob must have C >= 2 class channels in (C, H, W), got C = {n_classes}")
        if not 0 <= foreground_class < n_classes:
            raise ValueError(f"foreground_class must be in [0, {n_classes - 1}] for C = {n_classes}, got {foreground_class}")
        if border_class is not None:
            if n_classes < 3:
                raise ValueError(
                    f"border_class needs three classes (background / interior / border), got C = {n_classes}"
                )
            if not 0 <= border_class < n_classes or border_class == foreground_class:
                raise ValueError(
                    f"border_class must be in [0, {n_classes - 1}] and differ from foreground_class "
                    f"({foreground_class}), got {border_class}"
                )
        p_fg = prob[foreground_class]

    if border_class is None:
        mask = p_fg > config.threshold
        if config.watershed:
            labels = watershed_split(
                p_fg,
                mask,
                seed_threshold=config.seed_threshold,
                seed_h=config.seed_h,
                connectivity=config.connectivity,
            )
        else:
            labels = label_components(mask, connectivity=config.connectivity)
    else:
        p_border = prob[border_class]
        region = (p_fg + p_border) > config.threshold
        seeds = region & (np.argmax(prob, axis=0) == foreground_class)
        markers = label_components(seeds, connectivity=config.connectivity)
        labels = _seg.watershed(
            p_border.astype(np.float64), markers, mask=region, connectivity=config.connectivity
        ).astype(np.int32)

    labels = remove_small(labels, config.min_size)
    if config.fill_holes:
        labels = fill_label_holes(labels)
    return relabel_sequential(labels)


# --------------------------------------------------------------------------- display


def _to_unit_rgb(image: np.ndarray) -> np.ndarray:
    """Gray (H, W) or RGB (H, W, 3) image as float RGB in [0, 1] (1st-99.8th percentile stretch)."""
    image = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(image, (1.0, 99.8))
    if hi <= lo:
        lo, hi = float(image.min()), float(image.max())
    scaled = np.clip((image - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(image)
    if scaled.ndim == 2:
        scaled = np.repeat(scaled[..., None], 3, axis=-1)
    return scaled


def label_overlay(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    alpha: float = 0.35,
    boundary_color: tuple[int, int, int] = (255, 255, 0),
    seed: int = 0,
) -> np.ndarray:
    """Colour overlay of instance labels on an image, for looking at results.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3)
        Gray or RGB image of any numeric dtype; its 1st to 99.8th percentile
        range is stretched to full brightness. Shown in gray under the colours
        (``label2rgb`` converts an RGB underlay to gray).
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 = background (left uncoloured).
    alpha : float, keyword-only
        Opacity of the object colours, in [0, 1].
    boundary_color : tuple of 3 int, keyword-only
        RGB (0-255) drawn on the inner boundary pixels of every object.
    seed : int, keyword-only
        Seed of the colour table. A label's colour depends only on its number
        and ``seed``, so the same object has the same colour in every image.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        RGB overlay.
    """
    image = np.asarray(image)
    labels = _check_instances(labels, "labels", ndim=None)
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (H, W), got shape {labels.shape}")
    if image.shape != labels.shape and image.shape != (*labels.shape, 3):
        raise ValueError(
            f"image must have shape (H, W) or (H, W, 3) matching labels {labels.shape}, got {image.shape}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if len(boundary_color) != 3 or not all(0 <= c <= 255 for c in boundary_color):
        raise ValueError(f"boundary_color must be three values in [0, 255], got {boundary_color!r}")

    rgb = _to_unit_rgb(image)
    labels = labels.astype(np.int64)
    present = np.unique(labels)
    present = present[present != 0]
    if present.size:
        # bright, saturated colours from a fixed table indexed by label number
        table = np.random.default_rng(seed).uniform(0.25, 1.0, size=(int(present.max()) + 1, 3))
        rgb = label2rgb(labels, image=rgb, colors=table[present], alpha=alpha, bg_label=0, bg_color=None)
        rgb[_seg.find_boundaries(labels, connectivity=1, mode="inner")] = np.asarray(boundary_color) / 255.0
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
