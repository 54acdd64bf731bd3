"""Further-reading models in a small form, runnable on a laptop CPU (notebook 06).

* :class:`DilatedFCN` — DeepLab's idea (Chen et al., 2015/2017): drop the last poolings and dilate
  (atrous) the following convolutions instead, so the score map keeps output stride 8 with the
  receptive field of a deeper network and no learned upsampling stages.
* :class:`HRNetLite` — HRNet's idea (Wang et al., TPAMI 2020): keep a full-resolution branch through
  the whole network, add lower-resolution branches stage by stage, and exchange information between
  all resolutions after every stage (instead of an encoder-decoder that goes down and back up).
* :class:`MultiScaleAttention` — the hierarchical multi-scale attention of Tao, Sapra and Catanzaro
  (arXiv 2020) for two scales: the network also predicts, at the lower scale, a per-pixel weight that
  says how much to trust that scale; :class:`MultiScaleAverage` is the plain-averaging baseline.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn

from seglab.layers import conv_bn_relu
from seglab.models.base import SegmentationModel
from seglab.models.fcn import VGGConfig, _resolve_backbone

__all__ = ["DilatedFCN", "HRNetLite", "MultiScaleAttention", "MultiScaleAverage", "dilated_fcn", "hrnet_lite"]


class DilatedFCN(SegmentationModel):
    """A VGG-style FCN with output stride 8: pool4 and pool5 removed, stage 5 dilated by 2 and fc6 by 4.

    >>> DilatedFCN(5, in_channels=1)(torch.zeros(1, 1, 45, 61)).shape
    torch.Size([1, 5, 45, 61])
    """

    output_stride = 8

    def __init__(self, num_classes: int, in_channels: int = 3, *, backbone: str | VGGConfig | dict = "narrow"):
        super().__init__()
        cfg = _resolve_backbone(backbone)
        self.num_classes, self.in_channels = num_classes, in_channels
        self.config = {"name": "dilated_fcn", "num_classes": num_classes, "in_channels": in_channels,
                       "backbone": asdict(cfg)}
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        height, width = x.shape[-2:]
        scores = self.classifier(self.backbone(x))  # (B, K, H/8, W/8)
        up = F.interpolate(scores, scale_factor=8, mode="bilinear", align_corners=False)  # fixed upsampling
        return up[..., :height, :width]


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (HRNet's basic block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*conv_bn_relu(channels, channels), nn.Conv2d(channels, channels, 3, padding=1,
                                                                              bias=False), nn.BatchNorm2d(channels))

    def forward(self, x):
        return F.relu(x + self.body(x))


class _Exchange(nn.Module):
    """Fuse n input branches into m output branches: each output sums every input, resampled to its
    resolution (strided 3x3 convolutions down, a 1x1 convolution and bilinear upsampling up)."""

    def __init__(self, widths_in: list[int], widths_out: list[int]):
        super().__init__()
        self.paths = nn.ModuleList()
        for j, c_out in enumerate(widths_out):
            row = nn.ModuleList()
            for i, c_in in enumerate(widths_in):
                if i == j:
                    row.append(nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False))
                elif i > j:  # lower resolution -> 1x1 conv, then upsample
                    row.append(nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)))
                else:  # higher resolution -> (j - i) strided 3x3 convs
                    steps: list[nn.Module] = []
                    for s in range(j - i):
                        last = s == j - i - 1
                        steps += [nn.Conv2d(c_in, c_out if last else c_in, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(c_out if last else c_in)]
                        if not last:
                            steps.append(nn.ReLU(inplace=True))
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)

    def forward(self, branches: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for j, row in enumerate(self.paths):
            total = 0
            for i, path in enumerate(row):
                y = path(branches[i])  # strided 3x3 convs halve sizes exactly as the branches were made
                if i > j:
                    y = F.interpolate(y, size=branches[j].shape[-2:], mode="bilinear", align_corners=False)
                total = total + y
            outputs.append(F.relu(total))
        return outputs


class HRNetLite(SegmentationModel):
    """A small HRNet: a full-resolution branch kept throughout, one more branch (half the resolution,
    twice the channels) per stage, and an exchange between all branches after each stage.

    >>> HRNetLite(1, 5, width=8)(torch.zeros(2, 1, 37, 50)).shape
    torch.Size([2, 5, 37, 50])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, *, width: int = 16, branches: int = 3,
                 blocks: int = 1):
        super().__init__()
        self.in_channels, self.num_classes, self.branches = in_channels, num_classes, branches
        self.config = {"name": "hrnet_lite", "in_channels": in_channels, "num_classes": num_classes, "width": width,
                       "branches": branches, "blocks": blocks}
        widths = [width * 2 ** b for b in range(branches)]
        self.stem = nn.Sequential(*conv_bn_relu(in_channels, width), *conv_bn_relu(width, width))
        self.stages = nn.ModuleList()
        self.exchanges = nn.ModuleList()
        for stage in range(1, branches + 1):
            self.stages.append(nn.ModuleList(
                nn.Sequential(*(_BasicBlock(widths[b]) for _ in range(blocks))) for b in range(stage)))
            widths_out = widths[: min(stage + 1, branches)]
            self.exchanges.append(_Exchange(widths[:stage], widths_out))
        self.head = nn.Sequential(*conv_bn_relu(sum(widths), width, 1, padding=0), nn.Conv2d(width, num_classes, 1))

    def min_input_size(self) -> int:
        return 2 ** (self.branches - 1)

    def deepest_path(self) -> nn.Sequential:
        return nn.Sequential(self.stem)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        height, width = x.shape[-2:]
        branches = [self.stem(x)]  # (B, C, H, W): the full-resolution branch
        for stage, exchange in zip(self.stages, self.exchanges, strict=True):
            branches = [blocks(b) for blocks, b in zip(stage, branches, strict=False)]
            branches = exchange(branches)  # adds a branch at half the lowest resolution, until the last stage
        full = branches[0]
        merged = torch.cat([full] + [F.interpolate(b, size=full.shape[-2:], mode="bilinear", align_corners=False)
                                     for b in branches[1:]], dim=1)  # every resolution, at full resolution
        return self.head(merged)[..., :height, :width]


class _TwoScales(SegmentationModel):
    """Runs ``base`` on the image and on a downscaled copy (``low_scale``)."""

    def __init__(self, base: SegmentationModel, low_scale: float = 0.5):
        super().__init__()
        self.base, self.low_scale = base, low_scale
        self.in_channels, self.num_classes = base.in_channels, base.num_classes

    def min_input_size(self) -> int:
        return int(self.base.min_input_size() / self.low_scale) + 1

    def _both(self, x):
        self.check_input(x)
        low_input = F.interpolate(x, scale_factor=self.low_scale, mode="bilinear", align_corners=False)
        return self.base(x), self.base(low_input), low_input

    def _up(self, y, like):
        return F.interpolate(y, size=like.shape[-2:], mode="bilinear", align_corners=False)


class MultiScaleAverage(_TwoScales):
    """The baseline: the mean of the logits at full and low scale (the low one upsampled)."""

    def __init__(self, base: SegmentationModel, low_scale: float = 0.5):
        super().__init__(base, low_scale)
        self.config = {"name": "multiscale_average", "base": getattr(base, "config", None), "low_scale": low_scale}

    def forward(self, x):
        high, low, _ = self._both(x)
        return (high + self._up(low, high)) / 2


class MultiScaleAttention(_TwoScales):
    """Learned attention between two scales: ``a * up(low) + (1 - a) * high`` with a per-pixel weight
    ``a`` in [0, 1] predicted at the low scale from its logits and image (``attention(x)`` returns it).

    >>> from seglab.models import UNet
    >>> MultiScaleAttention(UNet(1, 3, depth=2, base_channels=4))(torch.zeros(1, 1, 40, 36)).shape
    torch.Size([1, 3, 40, 36])
    """

    def __init__(self, base: SegmentationModel, low_scale: float = 0.5, hidden: int = 16):
        super().__init__(base, low_scale)
        self.config = {"name": "multiscale_attention", "base": getattr(base, "config", None), "low_scale": low_scale}
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
        return self._combine(x)[1]

    def forward(self, x):
        return self._combine(x)[0]


def dilated_fcn(*, num_classes: int, in_channels: int = 3, backbone: str | VGGConfig | dict = "narrow") -> DilatedFCN:
    """DeepLab-style dilated FCN with output stride 8."""
    return DilatedFCN(num_classes, in_channels, backbone=backbone)


def hrnet_lite(*, num_classes: int, in_channels: int = 3, width: int = 16, branches: int = 3,
               blocks: int = 1) -> HRNetLite:
    """A small HRNet with a full-resolution branch throughout."""
    return HRNetLite(in_channels, num_classes, width=width, branches=branches, blocks=blocks)
