"""Zarr and OME-Zarr (NGFF 0.4) volumes: read level 0 with its axes, write images and label pyramids.

Reading: a plain zarr array, or a multiscale OME-Zarr group (level 0 of its
first multiscale, axes from the metadata). Axes are lower-case letters in
NGFF order (``t c z y x``); a ``t`` axis must have length 1.

Writing: groups in zarr format 2 with NGFF 0.4 metadata (``multiscales`` in
``.zattrs``), the layout napari and the ``ome-zarr`` package read: an image
group with one level, and label images under ``labels/<name>`` with a 2x
pyramid (nearest-neighbour) and ``image-label`` metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import ImageReadError

__all__ = ["Volume", "open_volume", "write_image_metadata", "create_label_levels", "label_level_shapes",
           "NGFF_VERSION"]

NGFF_VERSION = "0.4"


@dataclass(frozen=True)
class Volume:
    """A lazily read volume: the zarr array of level 0 and its axes (e.g. ``"yx"``, ``"zyx"``, ``"czyx"``)."""

    array: object
    axes: str
    path: str

    @property
    def plane_shape(self) -> tuple[int, int]:
        return tuple(int(self.array.shape[self.axes.index(a)]) for a in "yx")

    @property
    def n_planes(self) -> int:
        return int(self.array.shape[self.axes.index("z")]) if "z" in self.axes else 1

    @property
    def n_channels(self) -> int:
        return int(self.array.shape[self.axes.index("c")]) if "c" in self.axes else 1

    def plane(self, z: int) -> "PlaneView":
        """Plane ``z`` as a lazily sliced (C, H, W) array."""
        return PlaneView(self, z)


class PlaneView:
    """One (C, H, W) plane of a :class:`Volume`, read only where it is sliced."""

    def __init__(self, volume: Volume, z: int):
        self.volume, self.z = volume, z
        self.shape = (volume.n_channels, *volume.plane_shape)
        self.ndim = 3
        self.dtype = volume.array.dtype

    def __getitem__(self, key):
        c, rows, cols = key
        index = []
        for a in self.volume.axes:
            index.append({"t": 0, "c": c, "z": self.z, "y": rows, "x": cols}[a])
        out = np.asarray(self.volume.array[tuple(index)])
        if "c" not in self.volume.axes:
            out = out[None]
        return out


def _multiscales(attrs: dict):
    if "multiscales" in attrs:
        return attrs["multiscales"]
    return attrs.get("ome", {}).get("multiscales")


def open_volume(path: str | os.PathLike) -> Volume:
    """Open a zarr array or an OME-Zarr multiscale group (level 0) for reading.

    A plain array's axes are ``yx`` (2-D), ``zyx`` (3-D) or ``czyx`` (4-D).
    Raises :class:`ImageReadError` naming the path for anything else.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such zarr store")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot open as zarr ({type(exc).__name__}: {exc})") from None
    if isinstance(node, zarr.Array):
        axes = {2: "yx", 3: "zyx", 4: "czyx"}.get(node.ndim)
        if axes is None:
            raise ImageReadError(f"{path}: a {node.ndim}-D zarr array; expected (H, W), (Z, H, W) or (C, Z, H, W)")
        return Volume(node, axes, str(path))
    scales = _multiscales(dict(node.attrs))
    if not scales:
        raise ImageReadError(f"{path}: a zarr group without OME-Zarr multiscales metadata")
    meta = scales[0]
    axes = "".join(a["name"] if isinstance(a, dict) else a for a in meta["axes"]).lower()
    level0 = node[meta["datasets"][0]["path"]]
    if set(axes) - set("tczyx") or not axes.endswith("yx") or len(axes) != level0.ndim:
        raise ImageReadError(f"{path}: unsupported OME-Zarr axes {axes!r} for shape {level0.shape}")
    if "t" in axes and level0.shape[axes.index("t")] != 1:
        raise ImageReadError(f"{path}: a time series ({level0.shape[axes.index('t')]} time points); give one time point")
    return Volume(level0, axes, str(path))


def _axes_meta(axes: str) -> list[dict]:
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    return [{"name": a, "type": kinds[a], **({"unit": "micrometer"} if kinds[a] == "space" else {})} for a in axes]


def _multiscale(name: str, axes: str, n_levels: int) -> dict:
    datasets = []
    for level in range(n_levels):
        scale = [1.0 if a in "tcz" else float(2**level) for a in axes]
        datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    return {"version": NGFF_VERSION, "name": name, "axes": _axes_meta(axes), "datasets": datasets}


def write_image_metadata(group, name: str, axes: str, n_levels: int = 1) -> None:
    """NGFF ``multiscales`` metadata of an image group whose levels are arrays "0", "1", ..."""
    group.attrs["multiscales"] = [_multiscale(name, axes, n_levels)]


def label_level_shapes(shape: tuple[int, ...], axes: str, min_side: int = 256) -> list[tuple[int, ...]]:
    """Shapes of a 2x pyramid in y and x, down to ``min_side`` pixels (level 0 first)."""
    shapes = [tuple(shape)]
    while min(shapes[-1][axes.index(a)] for a in "yx") > 2 * min_side:
        shapes.append(tuple(-(-s // 2) if a in "yx" else s for s, a in zip(shapes[-1], axes)))
    return shapes


def create_label_levels(root, name: str, shape: tuple[int, ...], axes: str, chunks: tuple[int, ...], dtype,
                        *, source_image: str = "../../") -> list:  # the root image, two levels up
    """Create ``labels/<name>`` (levels "0", "1", ...) with NGFF image-label metadata; returns the level arrays."""
    labels = root.require_group("labels")
    names = list(labels.attrs.get("labels", []))
    if name not in names:
        labels.attrs["labels"] = names + [name]
    group = labels.require_group(name)
    shapes = label_level_shapes(shape, axes)
    levels = [group.require_array(str(i), shape=s, chunks=tuple(min(c, n) for c, n in zip(chunks, s)), dtype=dtype,
                                  fill_value=0)
              for i, s in enumerate(shapes)]
    write_image_metadata(group, name, axes, len(shapes))
    group.attrs["image-label"] = {"version": NGFF_VERSION, "source": {"image": source_image}}
    return levels
