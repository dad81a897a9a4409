"""A bioimage.io model package (spec 0.5, the installed ``bioimageio.spec``'s format version) of a unetkit model.

One package per variant (``valid``: output smaller by the context margin,
``same``: output of the input's size; its context margin is stated in the
documentation, not as an output halo, see :func:`build_package`). Each carries three
weight formats: ``pytorch_state_dict`` (the parent: the torch-only
``unetkit/network.py`` as architecture file, its kwargs, the weights),
``torchscript`` and ``onnx`` (children), all with sha256; fp32 test tensors;
a cover; documentation with the model's validation metrics; the training
config as an attachment (``unetkit_config.json``, which ``unetkit info`` and
``unetkit predict`` read back); preprocessing that is unetkit's normalisation
expressed as standard operations; softmax postprocessing.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import torch

from .. import network as network_module
from ..inference import predict
from ..io import sha256_file
from ..model import UNet
from ..normalize import NormalizationConfig
from .graphs import OPSET, architecture, export_onnx, plain_module, script, size_rule

__all__ = ["ExportError", "preprocessing_for", "build_package", "PAPER_DOI", "CONFIG_ATTACHMENT"]

PAPER_DOI = "10.1007/978-3-319-24574-4_28"
CONFIG_ATTACHMENT = "unetkit_config.json"
_EPS = 1e-6


class ExportError(ValueError):
    """A model that cannot be exported faithfully (nothing is written)."""


def preprocessing_for(norm: NormalizationConfig) -> list:
    """unetkit's normalisation as bioimage.io operations (after a cast to float32).

    zscore -> ``zero_mean_unit_variance`` over (y, x) per sample and channel;
    percentile -> ``scale_range`` with the same percentiles; fixed ->
    ``scale_linear``; none -> nothing. ``dtype`` (divide by the input dtype's
    maximum) has no standard operation once the input is float32:
    :class:`ExportError`.
    """
    from bioimageio.spec.model import v0_5 as m

    steps: list = [m.EnsureDtypeDescr(kwargs=m.EnsureDtypeKwargs(dtype="float32"))]
    yx = [m.AxisId("y"), m.AxisId("x")]
    if norm.mode == "zscore":
        steps.append(m.ZeroMeanUnitVarianceDescr(kwargs=m.ZeroMeanUnitVarianceKwargs(axes=yx, eps=_EPS)))
    elif norm.mode == "percentile":
        steps.append(m.ScaleRangeDescr(kwargs=m.ScaleRangeKwargs(axes=yx, min_percentile=norm.low,
                                                                 max_percentile=norm.high, eps=_EPS)))
    elif norm.mode == "fixed":
        span = norm.high - norm.low
        steps.append(m.ScaleLinearDescr(kwargs=m.ScaleLinearKwargs(gain=1.0 / span, offset=-norm.low / span)))
    elif norm.mode == "dtype":
        raise ExportError("normalization mode 'dtype' (divide by the image dtype's maximum) has no standard "
                          "bioimage.io operation; retrain with mode 'fixed' (low 0, high 255 for 8-bit data) or 'zscore'")
    return steps




def _test_image(config, variant: str) -> np.ndarray:
    """A generated EM-like raw image (C, S, S) of a size the variant takes (uint8 values as float32)."""
    from ..synthetic import make_em_image

    rule = size_rule(config, variant)
    size = rule["min"] + rule["step"] * max(0, -(-(256 - rule["min"]) // rule["step"]))
    image = make_em_image((size, size), seed=7).image.astype(np.float32)
    return np.repeat(image[None], config.in_channels, axis=0)


def _cover(image: np.ndarray, prob: np.ndarray, path: Path) -> None:
    from ..plots import display_gray, figure_grid, save_figure

    fig, axes = figure_grid(2, size=3.0)
    axes[0][0].imshow(display_gray(image), cmap="gray")
    axes[0][0].set_title("input", fontsize=9)
    axes[0][1].imshow(display_gray(image), cmap="gray")
    fg = prob[1] if prob.shape[0] > 1 else prob[0]
    axes[0][1].imshow(fg, cmap="magma", alpha=0.55, vmin=0, vmax=1)
    axes[0][1].set_title("probability", fontsize=9)
    for a in axes[0]:
        a.set_axis_off()
    save_figure(fig, path)


def _documentation(model: UNet, variant: str, rule: dict, checks: dict, training: dict) -> str:
    cfg = model.config
    val = training.get("validation") or {}
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in val.items()) or "| (no validation set in training) | |"
    size = (f"{rule['min']} + {rule['step']}k pixels per axis; the output is {-rule['offset'] // 2} pixels smaller "
            "on every side (valid convolutions)" if variant == "valid" else
            f"any size from {rule['min']} pixels; the output has the input's size: the graph "
            f"mirror-pads the input by the {rule['halo']}-pixel context margin")
    return f"""# U-Net (unetkit export, {variant} variant)

The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015) trained with unetkit:
depth {cfg.depth}, {cfg.base_features} base features, {cfg.padding} convolutions, batch norm {cfg.batch_norm},
{cfg.in_channels} input channel(s), classes {list(cfg.class_names or range(cfg.num_classes))}.

Input size: {size}. Preprocessing: unetkit's `{cfg.normalization.mode}` normalisation as a standard
operation; postprocessing: softmax over the channel axis (the graphs output logits).
Context (halo): {rule['halo'] if variant == 'same' else -rule['offset'] // 2} pixels per side. Tiles of the
valid variant join without seams when their inputs overlap by twice that; tiles of the same-size variant must
overlap by twice that and have that many pixels cropped from each inner side, because the graph mirrors the
input at every tile edge. The whole image in one piece needs no tiling.

# Validation

Validation metrics of the training run (unetkit, at t = 0.5, step {training.get('step', '?')}):

| metric | value |
|---|---|
{rows}

Export checks (largest absolute difference of the logits from PyTorch's, float32):
TorchScript {checks['torchscript']:.2e}, ONNX Runtime (CPU) {checks['onnx']:.2e}, at input sizes {checks['sizes']}.
"""


def build_package(model: UNet, training: dict, stage: Path, variant: str, *, name: str, description: str,
                  authors: list[str], license: str, cite: list[tuple[str, str]], checks: dict) -> Path:
    """Write the files of one package into ``stage`` and its ``rdf.yaml``; returns the rdf path."""
    from bioimageio.spec import ValidationContext, save_bioimageio_yaml_only
    from bioimageio.spec.model import v0_5 as m

    cfg = model.config
    rule = size_rule(cfg, variant)
    steps = preprocessing_for(cfg.normalization)
    module = plain_module(model, variant)
    (stage / "unet_network.py").write_text(inspect.getsource(network_module))
    torch.save(module.state_dict(), stage / "weights.pt")
    script(module).save(str(stage / "weights_torchscript.pt"))
    image = _test_image(cfg, variant)
    export_onnx(module, stage / "weights.onnx", torch.from_numpy(image[None]))
    prob = predict(model, image, tile_shape="auto") if variant == "same" else _valid_output(model, image)
    np.save(stage / "test_input.npy", image[None].astype(np.float32))
    np.save(stage / "test_output.npy", prob[None].astype(np.float32))
    _cover(image[:, -rule["offset"] // 2: image.shape[1] + rule["offset"] // 2,
                 -rule["offset"] // 2: image.shape[2] + rule["offset"] // 2] if variant == "valid" else image,
           prob, stage / "cover.png")
    (stage / "README.md").write_text(_documentation(model, variant, rule, checks, training))
    (stage / CONFIG_ATTACHMENT).write_text(json.dumps({"format": "unetkit-export", "variant": variant,
                                                       "model": cfg.to_dict(), "training": training}, indent=2,
                                                      default=str) + "\n")
    callable_name, kwargs = architecture(cfg, variant)
    names = list(cfg.class_names) if cfg.class_names else [f"class{i}" for i in range(cfg.num_classes)]
    space_in = [m.SpaceInputAxis(id=m.AxisId(a), size=m.ParameterizedSize(min=rule["min"], step=rule["step"]))
                for a in ("y", "x")]
    ref = {a: m.SizeReference(tensor_id=m.TensorId("raw"), axis_id=m.AxisId(a), offset=rule["offset"]) for a in "yx"}
    # No output halo, not even for the same-size variant: bioimageio.core pads a declared halo itself, BEFORE
    # the normalisation (whose statistics would then include the padding) and with its own padding mode; the
    # graph already mirror-pads as unetkit does. The overlap a tiling consumer needs is in the documentation.
    space_out = [m.SpaceOutputAxis(id=m.AxisId(a), size=ref[a]) for a in ("y", "x")]
    with ValidationContext(root=stage, perform_io_checks=True):
        descr = m.ModelDescr(
            name=name, description=description, authors=[m.Author(name=a) for a in authors],
            cite=[m.CiteEntry(text="Ronneberger O, Fischer P, Brox T. U-Net: Convolutional Networks for Biomedical "
                                   "Image Segmentation. MICCAI 2015", doi=m.Doi(PAPER_DOI))]
                 + [m.CiteEntry(text=text, **({"doi": m.Doi(ref_)} if ref_.startswith("10.") else {"url": ref_}))
                    for text, ref_ in cite],
            license=m.LicenseId(license),
            documentation=m.FileDescr(source=Path("README.md"), sha256=m.Sha256(sha256_file(stage / "README.md"))),
            covers=[m.FileDescr(source=Path("cover.png"), sha256=m.Sha256(sha256_file(stage / "cover.png")))],
            attachments=[m.FileDescr(source=Path(CONFIG_ATTACHMENT), sha256=m.Sha256(sha256_file(stage / CONFIG_ATTACHMENT)))],
            tags=["unetkit", "u-net", "segmentation", "2d", "pytorch", "onnx"],
            inputs=[m.InputTensorDescr(
                id=m.TensorId("raw"), axes=[m.BatchAxis(), m.ChannelAxis(channel_names=[
                    m.Identifier(f"channel{i}") for i in range(cfg.in_channels)])] + space_in,
                test_tensor=m.FileDescr(source=Path("test_input.npy"), sha256=m.Sha256(sha256_file(stage / "test_input.npy"))),
                preprocessing=steps)],
            outputs=[m.OutputTensorDescr(
                id=m.TensorId("probabilities"), axes=[m.BatchAxis(), m.ChannelAxis(channel_names=[
                    m.Identifier(n) for n in names])] + space_out,
                test_tensor=m.FileDescr(source=Path("test_output.npy"),
                                        sha256=m.Sha256(sha256_file(stage / "test_output.npy"))),
                postprocessing=[m.SoftmaxDescr(kwargs=m.SoftmaxKwargs(axis=m.AxisId("channel")))])],
            weights=m.WeightsDescr(
                pytorch_state_dict=m.PytorchStateDictWeightsDescr(
                    source=Path("weights.pt"), sha256=m.Sha256(sha256_file(stage / "weights.pt")),
                    architecture=m.ArchitectureFromFileDescr(
                        source=Path("unet_network.py"), sha256=m.Sha256(sha256_file(stage / "unet_network.py")),
                        callable=m.Identifier(callable_name), kwargs=kwargs),
                    pytorch_version=m.Version(torch.__version__.split("+")[0])),
                torchscript=m.TorchscriptWeightsDescr(
                    source=Path("weights_torchscript.pt"), sha256=m.Sha256(sha256_file(stage / "weights_torchscript.pt")),
                    parent="pytorch_state_dict", pytorch_version=m.Version(torch.__version__.split("+")[0])),
                onnx=m.OnnxWeightsDescr(source=Path("weights.onnx"), sha256=m.Sha256(sha256_file(stage / "weights.onnx")),
                                        parent="pytorch_state_dict", opset_version=OPSET)),
        )
    return save_bioimageio_yaml_only(descr, file=stage / "rdf.yaml")


def _valid_output(model: UNet, image: np.ndarray) -> np.ndarray:
    """Softmax of one pass over a valid-size raw image (the output is smaller by the margin)."""
    from ..normalize import intensity_range, normalize

    offset, scale = intensity_range(image, model.config.normalization, channels=True)
    x = torch.from_numpy(normalize(image, offset, scale))[None]
    with torch.no_grad():
        return torch.softmax(plain_module(model, "valid")(x), 1)[0].numpy()
