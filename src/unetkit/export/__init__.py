"""Models that travel: bioimage.io packages, TorchScript and ONNX for Fiji, ilastik, QuPath, napari.

``export_model(checkpoint, out_dir)`` writes, into a new folder (built in a
temporary folder and renamed, so a failed export leaves nothing)::

    OUT/torchscript/unet_valid.pt, unet_same.pt      scripted (not traced): every valid size works
    OUT/onnx/unet_valid.onnx, unet_same.onnx         dynamic batch/height/width, unetkit config in metadata
    OUT/bioimageio/valid/, same/ (rdf.yaml ...)      one package per variant (+ .zip with ``zip=True``)

``valid`` keeps the network's size rule (input ``min + step k``, output
smaller by the context margin); ``same`` mirror-pads inside the graph (output
= input size). All graphs output logits. Before anything is written the
graphs are checked against PyTorch at three input sizes (TorchScript within
1e-5, ONNX Runtime within 1e-4); a model that cannot be expressed faithfully
raises :class:`ExportError`. Needs the ``export`` extra.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint, load_model
from ..io import atomic_dir, check_output_dir
from .bioimageio import CONFIG_ATTACHMENT, ExportError, build_package, preprocessing_for
from .graphs import VARIANTS, check_sizes, export_onnx, onnx_max_difference, plain_module, script

__all__ = ["FORMATS", "ExportConfig", "ExportError", "export_model", "check_sizes", "CONFIG_ATTACHMENT"]

FORMATS = ("bioimageio", "torchscript", "onnx")
ONNX_METADATA_KEY = "unetkit_config"
TORCHSCRIPT_TOLERANCE = 1e-5
ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportConfig:
    """What to write and how to describe it (bioimage.io metadata)."""

    formats: tuple[str, ...] = FORMATS
    name: str = "unetkit U-Net"
    description: str = "U-Net (Ronneberger et al. 2015) trained with unetkit for semantic segmentation."
    authors: tuple[str, ...] = field(default_factory=lambda: (os.environ.get("USER") or "unetkit user",))
    license: str = "CC-BY-4.0"
    cite: tuple[tuple[str, str], ...] = ()
    zip: bool = False

    def __post_init__(self):
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ExportError(f"format must be among {FORMATS} (or 'all'), got {list(self.formats)}")
        if not self.authors or not all(a.strip() for a in self.authors):
            raise ExportError("give at least one author name")
        if len(self.name.strip()) < 5:
            raise ExportError(f"the name must have at least 5 characters, got {self.name!r}")


def _check_graphs(model, variant: str, stage: Path) -> dict:
    """TorchScript and ONNX against PyTorch at three sizes; raises ExportError beyond the tolerances."""
    module = plain_module(model, variant)
    scripted = script(module)
    gen = torch.Generator().manual_seed(0)
    sizes = check_sizes(model.config, variant)
    inputs = [torch.randn(1 + (i == 1), model.config.in_channels, h, w, generator=gen) for i, (h, w) in enumerate(sizes)]
    with torch.no_grad():
        ts = max(float((scripted(x) - module(x)).abs().max()) for x in inputs)
    onnx_path = export_onnx(module, stage / f"check_{variant}.onnx", inputs[0])
    ox = onnx_max_difference(onnx_path, module, [x.numpy() for x in inputs])
    onnx_path.unlink()
    if ts > TORCHSCRIPT_TOLERANCE or ox > ONNX_TOLERANCE:
        raise ExportError(f"{variant} graphs differ from PyTorch (TorchScript {ts:.2e}, ONNX {ox:.2e}); not exported")
    return {"torchscript": ts, "onnx": ox, "sizes": [list(s) for s in sizes]}


def _add_onnx_metadata(path: Path, model, variant: str) -> None:
    import onnx

    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key = ONNX_METADATA_KEY
    entry.value = json.dumps({"variant": variant, "model": model.config.to_dict()})
    onnx.save(graph, str(path))


def export_model(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, config: ExportConfig = ExportConfig(),
                 *, log=None) -> dict:
    """Export a unetkit checkpoint (see the module docstring); returns what was written and the checks."""
    log = log or (lambda m: None)
    out = check_output_dir(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out}: exists and is not empty; export into a new folder")
    model = load_model(checkpoint).float().eval()
    training = dict(load_checkpoint(checkpoint).get("training", {}))
    if "bioimageio" in config.formats:
        preprocessing_for(model.config.normalization)  # refuses what no standard operation expresses
    written: dict = {"checks": {}}
    with atomic_dir(out, replace=out.exists()) as stage:
        for variant in VARIANTS:
            written["checks"][variant] = _check_graphs(model, variant, stage)
            log(f"{variant}: TorchScript {written['checks'][variant]['torchscript']:.1e}, "
                f"ONNX {written['checks'][variant]['onnx']:.1e} from PyTorch")
            module = plain_module(model, variant)
            example = torch.zeros(1, model.config.in_channels, *check_sizes(model.config, variant)[0])
            if "torchscript" in config.formats:
                (stage / "torchscript").mkdir(exist_ok=True)
                script(module).save(str(stage / "torchscript" / f"unet_{variant}.pt"))
            if "onnx" in config.formats:
                (stage / "onnx").mkdir(exist_ok=True)
                path = export_onnx(module, stage / "onnx" / f"unet_{variant}.onnx", example)
                _add_onnx_metadata(path, model, variant)
            if "bioimageio" in config.formats:
                package = stage / "bioimageio" / variant
                package.mkdir(parents=True)
                name = config.name if variant == "valid" else f"{config.name} (same size)"
                build_package(model, training, package, variant, name=name, description=config.description,
                              authors=list(config.authors), license=config.license, cite=list(config.cite),
                              checks=written["checks"][variant])
                if config.zip:
                    _zip(package, stage / "bioimageio" / f"{variant}.zip")
        (stage / "export.json").write_text(json.dumps({"checkpoint": str(checkpoint), **written}, indent=2) + "\n")
    written["files"] = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return written


def _zip(folder: Path, path: Path) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
