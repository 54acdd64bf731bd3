"""Segmentation models: FCN-32s/16s/8s and U-Net (notebooks 03-05), a dilated FCN, a small HRNet and two-scale
models (notebook 06), each with a keyword-only builder in the registry (``MODELS``).

>>> model = build_model("fcn8s", num_classes=5)
>>> model.config["name"]
'fcn8s'
"""

from __future__ import annotations

from seglab.models.base import SegmentationModel
from seglab.models.dilated_fcn import DilatedFCN, dilated_fcn
from seglab.models.fcn import BACKBONES, FCN, VGGConfig, convolutionalize, fcn8s, fcn16s, fcn32s
from seglab.models.hrnet import HRNetLite, hrnet_lite
from seglab.models.multiscale import MultiScaleAttention, MultiScaleAverage, multiscale_attention, multiscale_average
from seglab.models.registry import MODELS, build_model, register_model, trainable_models
from seglab.models.unet import DecoderStage, UNet, unet, unet_input_size, unet_output_size

__all__ = [
    "BACKBONES", "FCN", "MODELS", "DecoderStage", "DilatedFCN", "HRNetLite", "MultiScaleAttention",
    "MultiScaleAverage", "SegmentationModel", "UNet", "VGGConfig", "build_model", "convolutionalize", "dilated_fcn",
    "fcn8s", "fcn16s", "fcn32s", "hrnet_lite", "multiscale_attention", "multiscale_average", "register_model",
    "trainable_models", "unet", "unet_input_size", "unet_output_size",
]
