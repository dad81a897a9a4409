"""The model as graphs other tools run: TorchScript (scripted, never traced) and ONNX, in two variants.

``valid``: the network itself; input sizes ``min + step k`` per axis (188 + 16k
at depth 4), output smaller by the context margin per side. ``same``: the
network inside :class:`unetkit.network.MirrorPadded`, which mirror-pads in the
graph, so any input size gives an output of the same size. Both output
logits (softmax over the channel axis gives the probabilities).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import geometry
from ..model import UNet
from ..network import MirrorPadded, UNetNetwork

__all__ = ["VARIANTS", "OPSET", "size_rule", "check_sizes", "plain_module", "script", "export_onnx", "onnx_max_difference"]

VARIANTS = ("valid", "same")
#: ONNX operator set of the exported graphs.
OPSET = 18


def size_rule(config, variant: str) -> dict:
    """Input sizes and output geometry of a variant: ``min``, ``step``, ``offset`` (output - input), ``halo``."""
    margin = geometry.context_margin(depth=config.depth, padding=config.padding)
    if variant == "valid":
        return {"min": geometry.min_input_size(depth=config.depth, padding=config.padding),
                "step": geometry.size_step(config.depth), "offset": -2 * margin, "halo": 0}
    # the graph mirror-pads itself: any size works; 64 px is a floor for sensible use, 1 px steps need no padding
    return {"min": 64, "step": 1, "offset": 0, "halo": margin}


def check_sizes(config, variant: str) -> list[tuple[int, int]]:
    """Three input sizes the checks use: square, and non-square (H, W) of the variant's size rule."""
    rule = size_rule(config, variant)
    lo, step = rule["min"], rule["step"]
    if variant == "same":
        return [(lo, lo), (lo + 37, lo + 3), (lo + 2 * 16 + 5, lo + 11)]  # any size: odd ones too
    return [(lo + 2 * step, lo + 2 * step), (lo + 4 * step, lo + step), (lo + step, lo + 5 * step)]


def architecture(config, variant: str) -> tuple[str, dict]:
    """(callable name in unetkit/network.py, kwargs) that rebuild the variant from its state dict.

    Dropout is left out (``dropout=0``): it does nothing at inference and has
    no weights, and the ONNX exporter cannot type every scripted dropout.
    """
    kwargs = {**config.network_kwargs(), "dropout": 0.0}
    if variant == "valid":
        return "UNetNetwork", kwargs
    margin = geometry.context_margin(depth=config.depth, padding=config.padding)
    return "MirrorPadded", {"margin": margin, "min_size": geometry.min_input_size(depth=config.depth,
                                                                                  padding=config.padding),
                            "step": geometry.size_step(config.depth), **kwargs}


def plain_module(model: UNet, variant: str) -> torch.nn.Module:
    """The trained weights in the torch-only network of ``variant``, float32, eval mode, on the CPU."""
    name, kwargs = architecture(model.config, variant)
    module = UNetNetwork(**kwargs) if name == "UNetNetwork" else MirrorPadded(**kwargs)
    state = {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    target = module if name == "UNetNetwork" else module.network
    target.load_state_dict(state)
    return module.eval()


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script`` (shape arithmetic stays symbolic; a trace would freeze the crop sizes)."""
    return torch.jit.script(module)


def export_onnx(module: torch.nn.Module, path: Path, example: torch.Tensor) -> Path:
    """ONNX with dynamic batch, height and width, from the scripted module (opset :data:`OPSET`)."""
    import onnx

    torch.onnx.export(script(module), (example,), str(path), dynamo=False, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                    "logits": {0: "batch", 2: "height", 3: "width"}})
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path


def onnx_max_difference(path: Path, module: torch.nn.Module, inputs: list[np.ndarray]) -> float:
    """Largest |ONNX Runtime (CPU) - PyTorch| over ``inputs`` (each (B, C, H, W) float32)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            ref = module(torch.from_numpy(x)).numpy()
            worst = max(worst, float(np.abs(session.run(None, {"input": x})[0] - ref).max()))
    return worst
