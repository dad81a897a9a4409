"""Image I/O: PNG, TIFF (single page and stacks), NumPy ``.npy``; zarr for huge images.

Readers return arrays in (plane, row, column) order: a gray image is (H, W), a
multi-channel image (C, H, W) with channels FIRST (an RGB PNG's (H, W, 3)
becomes (3, H, W)). Writers are atomic: the file appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "read_image",
    "read_stack",
    "list_images",
    "write_tiff",
    "write_png",
    "write_mask",
    "atomic_path",
    "open_array",
]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".jpg", ".jpeg", ".bmp")


class ImageReadError(ValueError):
    """A file that does not exist or cannot be read as an image."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _channels_first(array: np.ndarray) -> np.ndarray:
    # (H, W, C) with a small trailing channel axis, as PNG/TIFF store colour
    if array.ndim == 3 and array.shape[-1] in (2, 3, 4) and array.shape[0] > 4:
        return np.moveaxis(array, -1, 0)
    return array


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image: (H, W) gray or (C, H, W) multi-channel, dtype as stored.

    A multi-page TIFF is returned as its pages (Z, H, W); use :func:`read_stack`
    to get a list of 2-D planes. Raises :class:`ImageReadError` with the path and
    the reason when the file is missing or not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            array = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            array = iio.imread(path, plugin="pillow")
    except Exception as exc:  # any decoder failure is a user-facing read error
        raise ImageReadError(f"{path}: cannot read as an image ({type(exc).__name__}: {exc})") from None
    array = np.asarray(array)
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageReadError(f"{path}: expected a 2-D image or a stack, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ImageReadError(f"{path}: unsupported pixel type {array.dtype}")
    return _channels_first(array)


def read_stack(path: str | os.PathLike) -> list[np.ndarray]:
    """Read a multi-page TIFF (or a 3-D ``.npy``) as a list of 2-D planes; a 2-D file gives one plane."""
    array = read_image(path)
    if array.ndim == 2:
        return [array]
    return [array[i] for i in range(array.shape[0])]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


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
    """Write a class-index mask: PNG or TIFF by suffix.

    For 2 classes the PNG stores 0/255 (the ISBI convention: 255 = class 1);
    otherwise the class index itself (uint8, or uint16 past 255 classes).
    """
    classes = np.asarray(classes)
    if num_classes == 2:
        data = (classes > 0).astype(np.uint8) * 255
    else:
        data = classes.astype(np.uint8 if num_classes <= 256 else np.uint16)
    if Path(path).suffix.lower() in (".tif", ".tiff"):
        return write_tiff(path, data)
    return write_png(path, data)


def open_array(path: str | os.PathLike):
    """Open an image lazily when the format allows it (zarr, ``.npy`` memmap), else read it.

    Returns a sliceable array (H, W) or (C, H, W).
    """
    path = Path(path)
    if path.suffix.lower() == ".zarr" or (path.is_dir() and ((path / "zarr.json").exists() or (path / ".zarray").exists())):
        import zarr

        try:
            return zarr.open_array(str(path), mode="r")
        except Exception as exc:
            raise ImageReadError(f"{path}: cannot open as a zarr array ({exc})") from None
    if path.suffix.lower() == ".npy" and path.is_file():
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise ImageReadError(f"{path}: cannot read as an image ({exc})") from None
    return read_image(path)
