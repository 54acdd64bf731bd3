"""Segmentation models: FCN-32s/16s/8s and U-Net, with keyword-only builders.

>>> model = build_model("fcn8s", num_classes=5)
>>> model.config["name"]
'fcn8s'
"""

from __future__ import annotations

from seglab.models.base import SegmentationModel
from seglab.models.extras import (
    DilatedFCN,
    HRNetLite,
    MultiScaleAttention,
    MultiScaleAverage,
    dilated_fcn,
    hrnet_lite,
)
from seglab.models.fcn import BACKBONES, FCN, VGGConfig, convolutionalize, fcn8s, fcn16s, fcn32s
from seglab.models.unet import DecoderStage, UNet, unet, unet_input_size, unet_output_size

__all__ = [
    "BACKBONES", "FCN", "MODELS", "DecoderStage", "DilatedFCN", "HRNetLite", "MultiScaleAttention",
    "MultiScaleAverage", "SegmentationModel", "UNet", "VGGConfig", "build_model", "convolutionalize", "dilated_fcn",
    "fcn8s", "fcn16s", "fcn32s", "hrnet_lite", "unet", "unet_input_size", "unet_output_size",
]

#: Builders by name, as the command line and checkpoints name them.
MODELS = {"fcn32s": fcn32s, "fcn16s": fcn16s, "fcn8s": fcn8s, "unet": unet, "dilated_fcn": dilated_fcn,
          "hrnet_lite": hrnet_lite}


def build_model(name: str, **kwargs) -> SegmentationModel:
    """Build a model by name (``MODELS``), or rebuild one from its ``config`` dict.

    ``build_model(**model.config)`` gives a fresh model of the same architecture.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {sorted(MODELS)}")
    return MODELS[name](**kwargs)
