"""unetkit: the U-Net of Ronneberger, Fischer and Brox (MICCAI 2015) for biomedical segmentation.

Public API::

    from unetkit import UNet, predict, load_model, save_checkpoint
"""

__version__ = "0.1.0"

from .checkpoint import load_model, save_checkpoint
from .inference import predict
from .model import ModelConfig, UNet
from .normalize import NormalizationConfig

__all__ = ["UNet", "ModelConfig", "NormalizationConfig", "predict", "load_model", "save_checkpoint", "__version__"]
