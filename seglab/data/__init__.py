"""Data: a procedural synthetic data set (offline), real nuclei microscopy, and torchvision adapters.

Every data set yields ``(image (C, H, W) float32, mask (H, W) int64)`` and has ``class_names``,
``palette``, ``num_classes``, ``in_channels`` and ``ignore_index`` (255) attributes.
"""

from seglab.data.datasets import (
    IGNORE_INDEX,
    CityscapesSegmentation,
    PetSegmentation,
    VOCSegmentation,
    segmentation_transforms,
)
from seglab.data.nuclei import NucleiDataset, instance_boundaries, load_nuclei
from seglab.data.synthetic import CLASS_NAMES, PALETTE, ShapesConfig, SyntheticShapes, render_shapes

__all__ = [
    "CLASS_NAMES", "IGNORE_INDEX", "PALETTE", "CityscapesSegmentation", "NucleiDataset", "PetSegmentation",
    "ShapesConfig", "SyntheticShapes", "VOCSegmentation", "instance_boundaries", "load_nuclei", "render_shapes",
    "segmentation_transforms",
]
