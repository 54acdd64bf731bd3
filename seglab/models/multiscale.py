"""Two-scale inference: the hierarchical multi-scale attention of Tao, Sapra and Catanzaro (arXiv 2020), and the
plain-averaging baseline (notebook 06).

The network runs on the image and on a downscaled copy; the attention model also predicts, at the lower
scale, a per-pixel weight that says how much to trust that scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seglab.layers import conv_bn_relu
from seglab.models.base import SegmentationModel
from seglab.models.registry import build_model, register_model

__all__ = ["MultiScaleAttention", "MultiScaleAverage", "multiscale_attention", "multiscale_average"]


class _TwoScales(SegmentationModel):
    """Runs ``base`` on the image and on a downscaled copy (``low_scale``)."""

    def __init__(self, base: SegmentationModel, low_scale: float = 0.5):
        super().__init__()
        self.base, self.low_scale = base, low_scale
        self.in_channels, self.num_classes = base.in_channels, base.num_classes

    def min_input_size(self) -> int:
        return int(self.base.min_input_size() / self.low_scale) + 1

    def _both(self, x):
        low_input = F.interpolate(x, scale_factor=self.low_scale, mode="bilinear", align_corners=False)
        return self.base(x), self.base(low_input), low_input

    def _up(self, y, like):
        return F.interpolate(y, size=like.shape[-2:], mode="bilinear", align_corners=False)


class MultiScaleAverage(_TwoScales):
    """The baseline: the mean of the logits at full and low scale (the low one upsampled)."""

    model_name = "multiscale_average"

    def logits(self, x):
        high, low, _ = self._both(x)
        return (high + self._up(low, high)) / 2


class MultiScaleAttention(_TwoScales):
    """Learned attention between two scales: ``a * up(low) + (1 - a) * high`` with a per-pixel weight
    ``a`` in [0, 1] predicted at the low scale from its logits and image (``attention(x)`` returns it).

    >>> from seglab.models import UNet
    >>> MultiScaleAttention(UNet(1, 3, depth=2, base_channels=4))(torch.zeros(1, 1, 40, 36)).shape
    torch.Size([1, 3, 40, 36])
    """

    model_name = "multiscale_attention"

    def __init__(self, base: SegmentationModel, low_scale: float = 0.5, hidden: int = 16):
        super().__init__(base, low_scale)
        self.attention_head = nn.Sequential(
            *conv_bn_relu(base.num_classes + base.in_channels, hidden),
            nn.Conv2d(hidden, 1, 1),
            nn.Sigmoid(),
        )

    def _combine(self, x):
        high, low, low_input = self._both(x)
        weight = self.attention_head(torch.cat([low, low_input], dim=1))  # (B, 1, h, w), at the low scale
        weight = self._up(weight, high)
        return weight * self._up(low, high) + (1 - weight) * high, weight

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The weight ``a`` (B, 1, H, W) given to the low scale."""
        self.check_input(x)
        return self._combine(x)[1]

    def logits(self, x):
        return self._combine(x)[0]


def _base_model(base: SegmentationModel | dict) -> SegmentationModel:
    return build_model(**base) if isinstance(base, dict) else base


@register_model("multiscale_average")
def multiscale_average(*, base: SegmentationModel | dict, low_scale: float = 0.5) -> MultiScaleAverage:
    """Two-scale averaging around ``base`` (a model, or its config)."""
    return MultiScaleAverage(_base_model(base), low_scale)


@register_model("multiscale_attention")
def multiscale_attention(*, base: SegmentationModel | dict, low_scale: float = 0.5,
                         hidden: int = 16) -> MultiScaleAttention:
    """Two-scale attention around ``base`` (a model, or its config)."""
    return MultiScaleAttention(_base_model(base), low_scale, hidden)
