"""Sample data: the embedded generated EM section, and an ISBI 2012 slice when ``UNETKIT_DATA`` is set."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["em_sample", "isbi_sample"]


def em_sample() -> list[tuple]:
    """A generated 256x256 EM-like section and its exact membrane/cell labels (nothing is downloaded)."""
    from ..synthetic import make_em_image

    sample = make_em_image((256, 256), seed=10_000)
    return [(sample.image, {"name": "generated EM"}, "image"),
            ((sample.labels > 0).astype("uint8") + 1, {"name": "generated EM truth (1 membrane, 2 cell)",
                                                        "visible": False}, "labels")]


def isbi_sample() -> list[tuple]:
    """Slice 20 of the ISBI 2012 training volume from ``$UNETKIT_DATA`` (never downloaded)."""
    from ..io import read_image

    root = os.environ.get("UNETKIT_DATA")
    path = Path(root or "") / "isbi2012" / "train" / "images" / "20.png"
    if not root or not path.is_file():
        raise ValueError("the ISBI 2012 sample needs UNETKIT_DATA set to the folder with isbi2012/train/images")
    return [(read_image(path), {"name": "ISBI 2012 slice 20"}, "image")]
