"""Size arithmetic of the U-Net with valid (unpadded) or same (padded) convolutions.

With valid 3x3 convolutions every conv removes one pixel per side, every 2x2
max pooling halves the size (and must see an even size) and every 2x2
up-convolution doubles it. At the paper's depth 4 an input of 572 px gives
388 px of output, and the valid input sizes are 572 + 16 k (Ronneberger et al.
2015, Fig. 1). All functions work on one axis; a tile shape is one size per
axis.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "output_size",
    "context_margin",
    "is_valid_input_size",
    "nearest_valid_input_sizes",
    "valid_input_size_for_output",
    "check_input_shape",
    "size_step",
    "min_input_size",
    "forward_flops",
]


def _check_padding(padding: str) -> None:
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")


def size_step(depth: int) -> int:
    """Distance between consecutive valid input sizes: ``2 ** depth`` pixels."""
    return 2**depth


def _valid_output(size: int, depth: int) -> int | None:
    """Output size of a valid U-Net for one axis, or None when the size does not fit."""
    s = size
    for _ in range(depth):
        s -= 4
        if s < 2 or s % 2:
            return None
        s //= 2
    s -= 4
    if s < 1:
        return None
    for _ in range(depth):
        s = 2 * s - 4
        if s < 1:
            return None
    return s


def is_valid_input_size(size: int, *, depth: int = 4, padding: str = "valid") -> bool:
    """Whether ``size`` pixels along one axis pass through the network exactly.

    Valid padding: every max pooling sees an even size and the output is at
    least one pixel. Same padding: the size is a positive multiple of ``2**depth``.
    """
    _check_padding(padding)
    if int(size) != size or size < 1:
        return False
    if padding == "same":
        return size % size_step(depth) == 0
    return _valid_output(int(size), depth) is not None


def output_size(size: int, *, depth: int = 4, padding: str = "valid") -> int:
    """Output size (pixels) along one axis for an input of ``size`` pixels.

    Raises
    ------
    ValueError
        When ``size`` is not a valid input size; the message names the nearest
        valid sizes.
    """
    check_input_shape((size,), depth=depth, padding=padding)
    if padding == "same":
        return int(size)
    out = _valid_output(int(size), depth)
    assert out is not None  # guaranteed by check_input_shape
    return out


def context_margin(*, depth: int = 4, padding: str = "valid") -> int:
    """Pixels lost per side by valid convolutions (92 at depth 4); 0 for same padding.

    The margin is the same for every valid input size: conv layers at level
    ``l`` (0 = full resolution) remove ``2 * 2**l`` pixels per side in the
    contracting path and the same in the expansive path, plus the bottleneck.
    """
    _check_padding(padding)
    if padding == "same":
        return 0
    size = min_input_size(depth=depth, padding=padding)
    return (size - _valid_output(size, depth)) // 2


def min_input_size(*, depth: int = 4, padding: str = "valid") -> int:
    """Smallest valid input size along one axis (188 px at depth 4, valid)."""
    _check_padding(padding)
    if padding == "same":
        return size_step(depth)
    size = 1
    while _valid_output(size, depth) is None:
        size += 1
    return size


def nearest_valid_input_sizes(size: int, *, depth: int = 4, padding: str = "valid") -> tuple[int | None, int]:
    """The largest valid size <= ``size`` (None if there is none) and the smallest valid size >= ``size``."""
    _check_padding(padding)
    first = min_input_size(depth=depth, padding=padding)
    step = size_step(depth)
    if size <= first:
        return (first if size == first else None), first
    k, rem = divmod(int(size) - first, step)
    below = first + k * step
    above = below if rem == 0 else below + step
    return below, above


def valid_input_size_for_output(out: int, *, depth: int = 4, padding: str = "valid") -> int:
    """Smallest valid input size whose output is at least ``out`` pixels."""
    _check_padding(padding)
    margin = context_margin(depth=depth, padding=padding)
    _, above = nearest_valid_input_sizes(max(int(out), 1) + 2 * margin, depth=depth, padding=padding)
    return above


def check_input_shape(shape: Sequence[int], *, depth: int = 4, padding: str = "valid") -> None:
    """Raise ``ValueError`` naming the nearest valid sizes when ``shape`` does not fit.

    ``shape`` holds the spatial sizes only, e.g. ``(H, W)``.
    """
    _check_padding(padding)
    for axis, size in enumerate(shape):
        if not is_valid_input_size(size, depth=depth, padding=padding):
            below, above = nearest_valid_input_sizes(size, depth=depth, padding=padding)
            rule = (
                f"valid sizes are {min_input_size(depth=depth)} + {size_step(depth)}k"
                if padding == "valid"
                else f"valid sizes are multiples of {size_step(depth)}"
            )
            nearest = f"{below} or {above}" if below is not None else f"{above}"
            raise ValueError(
                f"input size {size} along spatial axis {axis} does not fit a depth-{depth} U-Net "
                f"with {padding} padding ({rule}); nearest valid sizes: {nearest}"
            )


def forward_flops(shape: Sequence[int], *, depth: int = 4, base_features: int = 64, in_channels: int = 1,
                  num_classes: int = 2, padding: str = "valid") -> int:
    """Floating-point operations of one forward pass on a (H, W) input, a multiply-add counted as 2.

    Counts the convolutions, up-convolutions and the 1x1 head (pooling, ReLU,
    cropping and concatenation are memory traffic, not FLOPs), with the same
    convention as ``torch.utils.flop_counter`` and equal to its count for
    :class:`unetkit.UNet` (tested). ``shape`` must be valid for the network.
    """
    check_input_shape(shape, depth=depth, padding=padding)
    shrink = 2 if padding == "valid" else 0  # pixels a 3x3 convolution removes per axis
    h, w = (int(s) for s in shape)
    total, c_prev = 0, in_channels
    for level in range(depth + 1):  # contracting path and bottleneck: two 3x3 convolutions per level
        c = base_features * 2**level
        h, w = h - shrink, w - shrink
        total += 2 * 9 * c_prev * c * h * w
        h, w = h - shrink, w - shrink
        total += 2 * 9 * c * c * h * w
        c_prev = c
        if level < depth:
            h, w = h // 2, w // 2
    for level in range(depth - 1, -1, -1):  # expanding path
        c = base_features * 2**level
        total += 2 * 4 * c_prev * c * h * w  # 2x2 up-convolution, stride 2, per input pixel
        h, w = 2 * h - shrink, 2 * w - shrink
        total += 2 * 9 * 2 * c * c * h * w  # on the concatenation of skip and up-convolution
        h, w = h - shrink, w - shrink
        total += 2 * 9 * c * c * h * w
        c_prev = c
    return total + 2 * c_prev * num_classes * h * w
