"""A small HRNet: HRNet's idea (Wang et al., TPAMI 2020), small enough for a laptop CPU (notebook 06).

Keep a full-resolution branch through the whole network, add lower-resolution branches stage by stage, and
exchange information between all resolutions after every stage (instead of an encoder-decoder that goes
down and back up).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seglab.layers import conv_bn_relu
from seglab.models.base import SegmentationModel
from seglab.models.registry import register_model

__all__ = ["HRNetLite", "hrnet_lite"]


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

    model_name = "hrnet_lite"

    def __init__(self, in_channels: int = 3, num_classes: int = 2, *, width: int = 16, branches: int = 3,
                 blocks: int = 1):
        super().__init__()
        self.in_channels, self.num_classes, self.branches = in_channels, num_classes, branches
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

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.stem(x)]  # (B, C, H, W): the full-resolution branch
        for stage, exchange in zip(self.stages, self.exchanges, strict=True):
            branches = [blocks(b) for blocks, b in zip(stage, branches, strict=False)]
            branches = exchange(branches)  # adds a branch at half the lowest resolution, until the last stage
        full = branches[0]
        merged = torch.cat([full] + [F.interpolate(b, size=full.shape[-2:], mode="bilinear", align_corners=False)
                                     for b in branches[1:]], dim=1)  # every resolution, at full resolution
        return self.head(merged)  # (B, K, H, W)


@register_model("hrnet_lite")
def hrnet_lite(*, num_classes: int, in_channels: int = 3, width: int = 16, branches: int = 3,
               blocks: int = 1) -> HRNetLite:
    """A small HRNet with a full-resolution branch throughout."""
    return HRNetLite(in_channels, num_classes, width=width, branches=branches, blocks=blocks)
