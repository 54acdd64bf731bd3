"""Data: a procedural synthetic data set (offline), real nuclei microscopy, and torchvision adapters.

Every data set yields ``(image (C, H, W) float32, mask (H, W) int64)`` and has ``class_names``,
``palette``, ``num_classes``, ``in_channels`` and ``ignore_index`` (255) attributes.
"""

from seglab.data.nuclei import NucleiDataset, instance_boundaries, load_nuclei
from seglab.data.synthetic import CLASS_NAMES, PALETTE, ShapesConfig, SyntheticShapes, render_shapes
from seglab.data.weight_map import unet_weight_map

__all__ = [
    "CLASS_NAMES", "IGNORE_INDEX", "PALETTE", "CityscapesSegmentation", "NucleiDataset", "PetSegmentation",
    "ShapesConfig", "SyntheticShapes", "VOCSegmentation", "instance_boundaries", "load_nuclei", "render_shapes",
    "segmentation_transforms", "unet_weight_map",
]

_READ_THROUGH_TORCHVISION = {"IGNORE_INDEX", "CityscapesSegmentation", "PetSegmentation", "VOCSegmentation",
                             "segmentation_transforms"}


def __getattr__(name: str):
    """The real-data adapters, imported on first use: importing torchvision takes seconds, and the synthetic
    and nuclei data (most notebooks) do not need it."""
    if name in _READ_THROUGH_TORCHVISION:
        from seglab.data import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'seglab.data' has no attribute {name!r}")
