"""A dilated (atrous) FCN: DeepLab's idea (Chen et al., 2015/2017), small enough for a laptop CPU (notebook 06).

Drop the last poolings and dilate the following convolutions instead, so the score map keeps output stride 8
with the receptive field of a deeper network and no learned upsampling stages.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seglab.layers import conv_bn_relu
from seglab.models.base import SegmentationModel
from seglab.models.fcn import VGGConfig, resolve_backbone
from seglab.models.registry import register_model

__all__ = ["DilatedFCN", "dilated_fcn"]


class DilatedFCN(SegmentationModel):
    """A VGG-style FCN with output stride 8: pool4 and pool5 removed, stage 5 dilated by 2 and fc6 by 4.

    >>> DilatedFCN(5, in_channels=1)(torch.zeros(1, 1, 45, 61)).shape
    torch.Size([1, 5, 45, 61])
    """

    model_name = "dilated_fcn"
    output_stride = 8

    def __init__(self, num_classes: int, in_channels: int = 3, *, backbone: str | VGGConfig | dict = "narrow"):
        super().__init__()
        cfg = resolve_backbone(backbone)
        self.num_classes, self.in_channels = num_classes, in_channels
        stages, c_in = [], in_channels
        for i, (width, convs) in enumerate(zip(cfg.widths, cfg.convs_per_stage, strict=True)):
            dilation = 2 if i == 4 else 1  # stage 5 sees through the removed pool4 (stage 4 keeps stride 8)
            layers: list[nn.Module] = []
            for n in range(convs):
                layers += conv_bn_relu(c_in if n == 0 else width, width, padding=dilation, dilation=dilation,
                                       batch_norm=cfg.batch_norm)
            if i < 3:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))  # pool1..pool3: stride 8 in total
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.backbone = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            *conv_bn_relu(c_in, cfg.fc_channels, 3, padding=4, dilation=4, batch_norm=cfg.batch_norm),  # fc6, atrous
            nn.Dropout(cfg.dropout),
            *conv_bn_relu(cfg.fc_channels, cfg.fc_channels, 1, padding=0, batch_norm=cfg.batch_norm),  # fc7
            nn.Dropout(cfg.dropout),
            nn.Conv2d(cfg.fc_channels, num_classes, 1),  # scores at stride 8
        )

    def min_input_size(self) -> int:
        return 8

    def deepest_path(self) -> nn.Sequential:
        return nn.Sequential(self.backbone, self.classifier)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.classifier(self.backbone(x))  # (B, K, H/8, W/8)
        return F.interpolate(scores, scale_factor=8, mode="bilinear", align_corners=False)  # fixed upsampling


@register_model("dilated_fcn")
def dilated_fcn(*, num_classes: int, in_channels: int = 3, backbone: str | VGGConfig | dict = "narrow") -> DilatedFCN:
    """DeepLab-style dilated FCN with output stride 8."""
    return DilatedFCN(num_classes, in_channels, backbone=backbone)
