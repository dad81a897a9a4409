"""Image files: PNG, TIFF (pages and stacks), JPEG/BMP, NumPy ``.npy``; zarr for images larger than memory.

Readers return arrays in (plane, row, column) order with channels FIRST: a
gray image is (H, W), a colour image (C, H, W), a multi-page TIFF or a 3-D
``.npy`` (Z, H, W). The one colour rule (:func:`colour_to_channels`): colour
samples whose colour channels are all equal are gray; a constant alpha
channel is dropped; any other colour image keeps its channels.
:func:`read_image_axes` also says which of these a file holds (``"YX"``,
``"CYX"`` or ``"ZYX"``), so callers can refuse a colour image where one gray
plane is expected instead of taking its channels for planes.

Writers go through :func:`unetkit.io.atomic.atomic_path`.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np

from .atomic import atomic_path

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "colour_to_channels",
    "read_image",
    "read_image_axes",
    "read_stack",
    "list_images",
    "natural_key",
    "write_tiff",
    "write_png",
    "write_mask",
    "write_json",
    "jsonable",
    "open_array",
    "is_zarr_path",
]

#: Every image file suffix unetkit reads (lower case).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".jpg", ".jpeg", ".bmp")


class ImageReadError(ValueError):
    """A file that does not exist or cannot be read as an image (names the path)."""


def colour_to_channels(samples: np.ndarray) -> tuple[np.ndarray, str]:
    """Apply the colour rule to colour samples (H, W, S), S in 2..4.

    Returns ``(array, axes)``: a constant alpha channel (the last of 2 or 4
    samples) is dropped; equal colour channels become one gray (H, W) plane
    (``"YX"``); otherwise (C, H, W) with the channels first (``"CYX"``).
    """
    s = samples.shape[-1]
    if s in (2, 4):
        alpha = samples[..., -1]
        if alpha.size == 0 or np.all(alpha == alpha.flat[0]):
            samples = samples[..., :-1]
    colour = samples
    if colour.shape[-1] == 1 or np.all(colour == colour[..., :1]):
        return np.ascontiguousarray(colour[..., 0]), "YX"
    return np.ascontiguousarray(np.moveaxis(colour, -1, 0)), "CYX"


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        array, axes = series.asarray(), series.axes
    if "S" in axes and array.ndim == 3 and axes.index("S") in (0, 2):
        samples = array if axes.index("S") == 2 else np.moveaxis(array, 0, -1)
        return colour_to_channels(samples)
    if array.ndim == 3:
        return array, "ZYX"
    return array, "YX"


def _read_pillow(path: Path) -> tuple[np.ndarray, str]:
    import imageio.v3 as iio

    array = np.asarray(iio.imread(path, plugin="pillow"))
    if array.ndim == 3:
        return colour_to_channels(array)
    return array, "YX"


def read_image_axes(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read one image file and say what it holds: ``(array, axes)``.

    ``axes`` is ``"YX"`` (one gray plane), ``"CYX"`` (colour, channels first)
    or ``"ZYX"`` (a stack of planes: multi-page TIFF, 3-D ``.npy``). The
    dtype is kept (bool becomes uint8).

    Raises
    ------
    ImageReadError
        When the file is missing, is a folder, or is not a readable 2-D image
        or stack; the message names the path and the reason.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            axes = "ZYX" if array.ndim == 3 else "YX"
        elif suffix in (".tif", ".tiff"):
            array, axes = _read_tiff(path)
        else:
            array, axes = _read_pillow(path)
    except Exception as exc:  # any decoder failure is a user-facing read error
        raise ImageReadError(f"{path}: cannot read as an image ({type(exc).__name__}: {exc})") from None
    array = np.asarray(array)
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageReadError(f"{path}: expected a 2-D image or a stack, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ImageReadError(f"{path}: unsupported pixel type {array.dtype}")
    return array, axes


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image: (H, W) gray, (C, H, W) colour or (Z, H, W) stack (see :func:`read_image_axes`)."""
    return read_image_axes(path)[0]


def read_stack(path: str | os.PathLike) -> list[np.ndarray]:
    """Read a file as a list of 2-D planes: a stack plane by plane, a 2-D image as one plane.

    A colour image is refused (its channels are not planes).
    """
    array, axes = read_image_axes(path)
    if axes == "CYX":
        raise ImageReadError(f"{path}: colour image ({array.shape[0]} channels); expected gray planes")
    if array.ndim == 2:
        return [array]
    return [array[i] for i in range(array.shape[0])]


def natural_key(name: str) -> list:
    """Sort key that orders ``2.png`` before ``10.png``."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder (suffixes :data:`IMAGE_SUFFIXES`), in natural order; hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: not a folder")
    files = [p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def write_tiff(path: str | os.PathLike, array: np.ndarray, *, compression: str | None = "zlib") -> Path:
    """Write an array as TIFF atomically ((H, W), (C, H, W) or a (Z, H, W) stack, dtype kept)."""
    import tifffile

    path = Path(path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(array), compression=compression, photometric="minisblack")
    return path


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 or uint16 (H, W) gray or (H, W, 3|4) colour image as PNG, atomically."""
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG holds uint8 or uint16, got {array.dtype}")
    import imageio.v3 as iio

    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, array, extension=".png", plugin="pillow")
    return path


def write_mask(path: str | os.PathLike, classes: np.ndarray, *, num_classes: int) -> Path:
    """Write a class-index mask (a plane, or a (Z, H, W) stack as TIFF): PNG or TIFF by suffix.

    For 2 classes the file stores 0/255 (the ISBI convention: 255 = class 1);
    otherwise the class index itself (uint8, or uint16 past 256 classes).
    """
    classes = np.asarray(classes)
    if num_classes == 2:
        data = (classes > 0).astype(np.uint8) * 255
    else:
        data = classes.astype(np.uint8 if num_classes <= 256 else np.uint16)
    if Path(path).suffix.lower() in (".tif", ".tiff"):
        return write_tiff(path, data)
    return write_png(path, data)


def jsonable(x):
    """A result as plain JSON data: NumPy values become numbers and lists, NaN and infinities None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(data, path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON atomically (see :func:`jsonable` for NaN and NumPy values)."""
    path = Path(path)
    text = json.dumps(jsonable(data), indent=2, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def is_zarr_path(path: str | os.PathLike) -> bool:
    """A ``.zarr`` path, or a folder holding zarr array metadata."""
    path = Path(path)
    return path.suffix.lower() == ".zarr" or (
        path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup")))


def open_array(path: str | os.PathLike):
    """Open an image lazily when the format allows it (zarr, ``.npy`` memmap), else read it.

    Returns a sliceable array (H, W), (C, H, W) or (Z, H, W).
    """
    path = Path(path)
    if is_zarr_path(path):
        import zarr

        if not path.exists():
            raise ImageReadError(f"{path}: no such zarr array")
        try:
            return zarr.open_array(str(path), mode="r")
        except Exception as exc:
            raise ImageReadError(f"{path}: cannot open as a zarr array ({type(exc).__name__}: {exc})") from None
    if path.suffix.lower() == ".npy" and path.is_file():
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise ImageReadError(f"{path}: cannot read as an image ({type(exc).__name__}: {exc})") from None
    return read_image(path)
