"""Reader and writer contributions: TIFF (pages and stacks), PNG, npy, Zarr and OME-Zarr; labels as TIFF."""

from __future__ import annotations

from pathlib import Path

__all__ = ["get_reader", "read_layers", "write_labels"]


def get_reader(path):
    """The reader function for ``path``, or None when unetkit does not read it (napari then asks others)."""
    from ..io import IMAGE_SUFFIXES, is_zarr_path

    if isinstance(path, list):
        return None
    p = Path(path)
    if is_zarr_path(p) or (p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        return read_layers
    return None


def read_layers(path) -> list[tuple]:
    """Layer data tuples of one file: ``[(data, {"name": ...}, "image")]``; Zarr stays lazy (not read)."""
    from ..io import is_zarr_path, read_image_axes
    from ..io.ome_zarr import open_volume

    p = Path(path)
    name = p.name.split(".")[0]
    if is_zarr_path(p):
        volume = open_volume(p)
        meta = {"name": name}
        if "c" in volume.axes:
            meta["channel_axis"] = volume.axes.index("c")
        return [(volume.array, meta, "image")]
    array, axes = read_image_axes(p)
    if axes == "CYX" and array.shape[0] in (3, 4):
        import numpy as np

        return [(np.moveaxis(array, 0, -1), {"name": name, "rgb": True}, "image")]
    return [(array, {"name": name}, "image")]


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write a labels layer as TIFF (uint8/uint16/uint32 by its largest label); returns the written path."""
    import numpy as np

    from ..io import write_tiff
    from ..labels import smallest_dtype_for

    array = np.asarray(data)
    top = int(array.max()) if array.size else 0
    dtype = np.uint8 if top < 256 else smallest_dtype_for(top)
    return [str(write_tiff(path, array.astype(dtype)))]
