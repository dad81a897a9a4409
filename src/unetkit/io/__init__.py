"""Every reader and writer of unetkit: image files, JSON, atomic output.

:mod:`unetkit.io.images` reads and writes image files (one suffix list, one
colour rule); :mod:`unetkit.io.atomic` makes every output appear complete or
not at all, with the umask's permissions, and cleans up after killed runs.
"""

from .atomic import (
    TEMP_SUFFIX,
    OutputPathError,
    atomic_dir,
    atomic_path,
    check_output_dir,
    check_output_file,
    file_mode,
    remove_stale_temps,
    sha256_file,
)
from .images import (
    IMAGE_SUFFIXES,
    ImageReadError,
    colour_to_channels,
    is_zarr_path,
    jsonable,
    list_images,
    natural_key,
    open_array,
    read_image,
    read_image_axes,
    read_stack,
    write_json,
    write_mask,
    write_png,
    write_tiff,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "OutputPathError",
    "TEMP_SUFFIX",
    "atomic_dir",
    "atomic_path",
    "check_output_dir",
    "check_output_file",
    "colour_to_channels",
    "file_mode",
    "is_zarr_path",
    "jsonable",
    "list_images",
    "natural_key",
    "open_array",
    "read_image",
    "read_image_axes",
    "read_stack",
    "remove_stale_temps",
    "sha256_file",
    "write_json",
    "write_mask",
    "write_png",
    "write_tiff",
]
