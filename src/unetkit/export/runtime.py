"""Run exported graphs inside unetkit: ONNX Runtime as a ``predict`` backend; reading packages back.

:class:`OnnxUNet` wraps the ``valid`` ONNX graph of a model so that
:func:`unetkit.predict` tiles, normalises and stitches exactly as for the
PyTorch model, only the tiles run in ONNX Runtime (CPU). It loads from an
exported ``.onnx`` (the unetkit config is in its metadata), from a bioimage.io
package written by :func:`unetkit.export.export_model` (folder, ``rdf.yaml``
or ``.zip``), or converts a checkpoint on the fly.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..model import ModelConfig, UNet

__all__ = ["OnnxUNet", "read_package", "is_exported"]

_METADATA_KEY = "unetkit_config"


class OnnxUNet:
    """An ONNX graph that :func:`unetkit.predict` runs like a :class:`~unetkit.model.UNet` (CPU, float32).

    ``config`` is the model's :class:`~unetkit.model.ModelConfig`; calling it
    with a (B, C, H, W) float32 tensor returns the logits as a tensor.
    """

    training = False

    def __init__(self, onnx_bytes_or_path, config: ModelConfig, *, training_info: dict | None = None,
                 threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        source = str(onnx_bytes_or_path) if isinstance(onnx_bytes_or_path, (str, os.PathLike)) else onnx_bytes_or_path
        self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        self.config = config
        self.training_info = training_info or {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"input": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    @classmethod
    def from_model(cls, model: UNet) -> "OnnxUNet":
        """The model's valid graph, exported to ONNX in memory."""
        from .graphs import check_sizes, export_onnx, plain_module

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            example = torch.zeros(1, model.config.in_channels, *check_sizes(model.config, "valid")[0])
            export_onnx(plain_module(model, "valid"), path, example)
            return cls(path.read_bytes(), model.config, training_info=getattr(model, "training_info", {}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "OnnxUNet":
        """From an exported ``.onnx`` file or a bioimage.io package (folder, rdf.yaml or zip)."""
        path = Path(path)
        if path.suffix.lower() == ".onnx":
            import onnx

            meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            if _METADATA_KEY not in meta:
                raise ValueError(f"{path}: an ONNX file without unetkit metadata (export it with unetkit export)")
            info = json.loads(meta[_METADATA_KEY])
            _check_variant(path, info["variant"])
            return cls(path, ModelConfig.from_dict(info["model"]))
        files, info = read_package(path)
        _check_variant(path, info["variant"])
        return cls(files("weights.onnx"), ModelConfig.from_dict(info["model"]), training_info=info.get("training"))


def _check_variant(path: Path, variant: str) -> None:
    if variant != "valid":
        raise ValueError(f"{path}: the '{variant}' variant pads inside its graph; give unetkit the 'valid' "
                         "variant (bioimageio/valid or onnx/unet_valid.onnx), whose tiles join without seams")


def is_exported(path: str | os.PathLike) -> bool:
    """An exported ``.onnx``, a package folder, its ``rdf.yaml`` or a zip of it."""
    path = Path(path)
    return (path.suffix.lower() in (".onnx", ".zip", ".yaml") or (path.is_dir() and (path / "rdf.yaml").is_file()))


def read_package(path: str | os.PathLike):
    """``(read, config)`` of a package written by unetkit: ``read(name)`` returns a file's bytes."""
    from .bioimageio import CONFIG_ATTACHMENT

    path = Path(path)
    if path.suffix.lower() == ".zip":
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path}: not a zip file")
        zf = zipfile.ZipFile(path)
        names = set(zf.namelist())

        def read(name: str) -> bytes:
            return zf.read(name)
    else:
        folder = path.parent if path.suffix.lower() == ".yaml" else path
        if not (folder / "rdf.yaml").is_file():
            raise ValueError(f"{path}: not a bioimage.io package (no rdf.yaml)")
        names = {p.name for p in folder.iterdir()}

        def read(name: str) -> bytes:
            return (folder / name).read_bytes()
    if CONFIG_ATTACHMENT not in names:
        raise ValueError(f"{path}: a bioimage.io package not written by unetkit (no {CONFIG_ATTACHMENT})")
    return read, json.loads(read(CONFIG_ATTACHMENT))
