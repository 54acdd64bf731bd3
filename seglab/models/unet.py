"""U-Net (Ronneberger, Fischer and Brox, MICCAI 2015).

A contracting path (3x3 convolutions and 2x2 max-pooling, channels doubling at each level) and an
expanding path (2x upsampling, channels halving) of the same depth. At each level of the expanding
path the feature map of the contracting path is merged in:

* ``merge="skip"`` — the real U-Net: a *skip-connection* concatenates the encoder feature, so the
  decoder sees deep features (what) and shallow ones (exactly where) side by side;
* ``merge="shortcut"`` — a *short-cut* adds it instead (as FCN fuses its score maps);
* ``merge="none"`` — no merge: a plain encoder-decoder, for the comparison experiment.

``padding="valid"`` reproduces the paper's unpadded convolutions: every 3x3 convolution shrinks the
map by 2, the encoder features are centre-cropped before merging, and a 572x572 input gives a
388x388 output. ``padding="same"`` keeps the size: an input whose sides are not multiples of
``2**depth`` is mirrored up to the next multiple (the paper's overlap-tile border) and the logits
are cropped back, so any size from ``2**depth`` up works and the logits are ``(B, K, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seglab.layers import BilinearUpsample, ConvBlock, ShortCut, Skip
from seglab.models.base import SegmentationModel
from seglab.models.registry import register_model

__all__ = ["DecoderStage", "UNet", "unet", "unet_input_size", "unet_output_size"]

UPSAMPLINGS = ("transposed", "bilinear")
MERGES = ("skip", "shortcut", "none")
PADDINGS = ("same", "valid")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def unet_output_size(input_size: int, depth: int = 4, padding: str = "valid") -> int:
    """Side of the U-Net's logits for an input of side ``input_size`` (``0`` or less: too small).

    >>> unet_output_size(572)  # the paper's configuration
    388
    """
    _check_choice("padding", padding, PADDINGS)
    if padding == "same":
        return input_size
    size = input_size
    for _ in range(depth):
        size = (size - 4) // 2  # two 3x3 valid convolutions, then 2x2 max-pooling (floor)
        if size <= 0:
            return 0
    size -= 4  # the bottleneck's two convolutions
    for _ in range(depth):
        if size <= 0:
            return 0
        size = 2 * size - 4  # up-convolution 2x2, crop-and-merge, two convolutions
    return size


def unet_input_size(output_size: int, depth: int = 4, padding: str = "valid") -> int:
    """The smallest input side whose output is at least ``output_size`` and whose poolings all see
    even sizes (the paper's rule for choosing the tile size).

    >>> unet_input_size(388), unet_output_size(unet_input_size(300))
    (572, 308)
    """
    _check_choice("padding", padding, PADDINGS)
    if output_size < 1:
        raise ValueError(f"output_size must be >= 1, got {output_size}")
    if padding == "same":
        return max(output_size, 2 ** depth)
    scale, border = 2 ** depth, 4 * (2 ** depth - 1)
    bottom = -(-(output_size + border) // scale)  # ceil: side after the bottleneck
    bottom = max(bottom, 1)
    # output = scale * bottom - border; input = scale * (bottom + 4) + border
    return scale * (bottom + 4) + border


class DecoderStage(nn.Module):
    """One level of the expanding path: upsample 2x (halving channels) -> merge -> ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int, *, up: str = "transposed", merge: str = "skip",
                 padding: str = "same", batch_norm: bool = True):
        super().__init__()
        _check_choice("up", up, UPSAMPLINGS)
        _check_choice("merge", merge, MERGES)
        if up == "transposed":  # the paper's "up-convolution": a 2x2 transposed convolution, stride 2
            self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        else:  # fixed bilinear upsampling, then a 1x1 convolution to halve the channels
            self.up = nn.Sequential(BilinearUpsample(2), nn.Conv2d(in_channels, out_channels, 1))
        self.merge = {"skip": Skip(), "shortcut": ShortCut(), "none": None}[merge]
        merged = 2 * out_channels if merge == "skip" else out_channels
        self.conv = ConvBlock(merged, out_channels, padding=padding, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, C_out, 2H, 2W)
        if self.merge is not None:
            x = self.merge(x, encoder)  # (B, 2 C_out or C_out, 2H, 2W), encoder centre-cropped
        return self.conv(x)  # (B, C_out, 2H, 2W) (4 less per side with valid padding)


class UNet(SegmentationModel):
    """U-Net with ``depth`` poolings; channels ``base_channels * 2**level``.

    Args:
        in_channels: channels of the input images.
        num_classes: classes to score (channels of the logits).
        depth: poolings on the contracting path (the paper: 4).
        base_channels: channels of the first level, doubled per level (the paper: 64; ``unet()``: 16).
        up: ``"transposed"`` (the paper's 2x2 up-convolution) or ``"bilinear"`` (fixed, then a 1x1 convolution).
        merge: ``"skip"`` (skip-connection: concatenation), ``"shortcut"`` (summation) or ``"none"``.
        padding: ``"same"`` (any size from ``2**depth``, logits the input's size) or ``"valid"`` (the paper's
            unpadded convolutions: a smaller output, see :func:`unet_output_size`).
        batch_norm: BatchNorm after every convolution (not in the paper; trains faster).

    >>> model = UNet(3, 4, depth=3, base_channels=8)
    >>> model(torch.zeros(2, 3, 37, 50)).shape  # odd sizes included
    torch.Size([2, 4, 37, 50])
    """

    model_name = "unet"

    def __init__(self, in_channels: int = 3, num_classes: int = 2, depth: int = 4, base_channels: int = 64, *,
                 up: str = "transposed", merge: str = "skip", padding: str = "same", batch_norm: bool = True):
        super().__init__()
        _check_choice("up", up, UPSAMPLINGS)
        _check_choice("merge", merge, MERGES)
        _check_choice("padding", padding, PADDINGS)
        if not (isinstance(depth, int) and depth >= 1):
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.in_channels, self.num_classes, self.depth, self.padding = in_channels, num_classes, depth, padding
        widths = [base_channels * 2 ** level for level in range(depth + 1)]
        self.encoder = nn.ModuleList([ConvBlock(in_channels, widths[0], padding=padding, batch_norm=batch_norm)])
        for level in range(1, depth + 1):  # the last one is the bottleneck
            self.encoder.append(nn.Sequential(
                nn.MaxPool2d(2),
                ConvBlock(widths[level - 1], widths[level], padding=padding, batch_norm=batch_norm)))
        self.decoder = nn.ModuleList([
            DecoderStage(widths[level + 1], widths[level], up=up, merge=merge, padding=padding,
                         batch_norm=batch_norm)
            for level in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], num_classes, 1)  # per-pixel class scores

    def min_input_size(self) -> int:
        return unet_input_size(1, self.depth, self.padding) if self.padding == "valid" else 2 ** self.depth

    def output_size(self, input_size: int) -> int:
        self._check_size(input_size)
        return unet_output_size(input_size, self.depth, self.padding)

    def deepest_path(self) -> nn.Sequential:
        return nn.Sequential(*self.encoder)

    def _check_size(self, size: int) -> None:
        super()._check_size(size)
        if self.padding == "valid" and unet_output_size(size, self.depth, "valid") < 1:
            raise ValueError(f"UNet(padding='valid', depth={self.depth}) gives no output for size {size}: "
                             f"use at least {self.min_input_size()} (see unet_input_size)")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.padding == "same":  # mirror up to a multiple of 2**depth, so every pooling is exact
            multiple = 2 ** self.depth
            x = F.pad(x, (0, -width % multiple, 0, -height % multiple), mode="reflect")
        features = []
        for stage in self.encoder:
            x = stage(x)  # (B, C * 2**level, H / 2**level, W / 2**level)
            features.append(x)
        x = features.pop()  # the bottleneck
        for stage in self.decoder:
            x = stage(x, features.pop())  # one level up
        return self.head(x)  # (B, K, H', W'), mirrored border included: forward crops


@register_model("unet")
def unet(*, num_classes: int, in_channels: int = 3, depth: int = 4, base_channels: int = 16, up: str = "transposed",
         merge: str = "skip", padding: str = "same", batch_norm: bool = True) -> UNet:
    """A U-Net sized for a laptop CPU by default (16 base channels); ``base_channels=64`` is the paper's."""
    return UNet(in_channels, num_classes, depth, base_channels, up=up, merge=merge, padding=padding,
                batch_norm=batch_norm)
