"""The building blocks of FCN and U-Net.

Nomenclature (as in the course):

* *bilinear upsampling*: fixed interpolation, as in signal processing (:class:`BilinearUpsample`);
* *transposed convolution* = *deconvolution* = *fractionally strided convolution*: a learnable
  upsampling (:class:`TransposedConvUpsample`), initialised as bilinear upsampling in FCN;
* *dilated convolution* = *atrous convolution* (:class:`DilatedConvBlock`);
* *skip-connection* = concatenation (:class:`Skip`, U-Net); *short-cut* = summation
  (:class:`ShortCut`, FCN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BilinearUpsample",
    "ConvBlock",
    "DilatedConvBlock",
    "ShortCut",
    "Skip",
    "TransposedConvUpsample",
    "bilinear_kernel",
    "center_crop",
    "conv_bn_relu",
    "transposed_conv_geometry",
]


# --------------------------------------------------------------------------------------------
# Upsampling
# --------------------------------------------------------------------------------------------

def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weight ``(channels, channels, k, k)`` of a transposed convolution that upsamples each channel
    bilinearly and leaves the channels unmixed (FCN's initialisation of its upsampling layers).

    The 2-D kernel is the outer product of a 1-D triangle (the linear-interpolation filter): for an
    upsampling factor ``f`` the triangle has ``kernel_size = 2f`` taps (``2f - 1`` for odd ``f``).
    """
    if not (isinstance(channels, int) and channels >= 1 and isinstance(kernel_size, int) and kernel_size >= 1):
        raise ValueError(f"channels and kernel_size must be positive integers, got {channels!r}, {kernel_size!r}")
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = torch.arange(kernel_size, dtype=torch.float64)
    triangle = 1 - (taps - center).abs() / factor  # (k,)
    kernel_2d = torch.outer(triangle, triangle).float()  # (k, k), separable
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = kernel_2d  # channel c -> channel c only
    return weight


def transposed_conv_geometry(scale_factor: int) -> tuple[int, int, int]:
    """``(kernel_size, stride, padding)`` of a transposed convolution that upsamples exactly by an
    integer ``scale_factor`` (output size = ``scale_factor * input size``) and, with
    :func:`bilinear_kernel`, equals bilinear interpolation away from the border: kernel ``2f``
    (``2f - 1`` for odd ``f``), stride ``f``, padding ``(kernel - f) / 2``."""
    if not (isinstance(scale_factor, int) and scale_factor >= 1):
        raise ValueError(f"scale_factor must be a positive integer, got {scale_factor!r}")
    kernel = 2 * scale_factor - scale_factor % 2
    return kernel, scale_factor, (kernel - scale_factor) // 2


class BilinearUpsample(nn.Module):
    """Bilinear upsampling by ``scale_factor`` (no parameters, ``align_corners=False``).

    With ``align_corners=False`` pixels are treated as cells: output pixel ``j`` samples the input
    at ``(j + 0.5) / f - 0.5``, so the upsampled map stays aligned with the image it came from.
    """

    def __init__(self, scale_factor: int = 2):
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, fH, fW)
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}"


class TransposedConvUpsample(nn.Module):
    """Upsampling by an integer factor with a transposed convolution, channel count unchanged.

    With ``bilinear_init=True`` (FCN) the weight starts as :func:`bilinear_kernel`, so before
    training the layer *is* bilinear upsampling (away from the border). A learnable layer may learn
    to mix channels; ``learnable=False`` freezes it as bilinear upsampling (FCN's final layer), which
    filters each channel on its own (``groups=channels``: ``C k²`` weights instead of ``C² k²``).
    """

    def __init__(self, channels: int, scale_factor: int = 2, *, bilinear_init: bool = True,
                 learnable: bool = True):
        super().__init__()
        kernel, stride, padding = transposed_conv_geometry(scale_factor)
        self.scale_factor = scale_factor
        groups = 1 if learnable else channels
        self.conv = nn.ConvTranspose2d(channels, channels, kernel, stride=stride, padding=padding, groups=groups,
                                       bias=False)
        if bilinear_init:
            weight = bilinear_kernel(channels, kernel) if groups == 1 else bilinear_kernel(1, kernel).repeat(
                channels, 1, 1, 1)  # (C, C, k, k) or, per channel, (C, 1, k, k)
            with torch.no_grad():
                self.conv.weight.copy_(weight)
        self.conv.weight.requires_grad_(learnable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, fH, fW)
        if x.ndim != 4 or x.shape[1] != self.conv.in_channels:
            raise ValueError(f"TransposedConvUpsample expects (B, {self.conv.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        return self.conv(x)


# --------------------------------------------------------------------------------------------
# Merges: skip-connection (concatenation) and short-cut (summation)
# --------------------------------------------------------------------------------------------

def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height x width`` window of ``x`` (B, C, H, W), as the U-Net paper crops its
    encoder features (torchvision's ``center_crop``: an odd surplus leaves the extra row/column at
    the bottom/right, or at the top/left when rounding half to even says so)."""
    h, w = x.shape[-2:]
    if height > h or width > w:
        raise ValueError(f"cannot crop {h}x{w} to the larger {height}x{width}")
    top, left = round((h - height) / 2), round((w - width) / 2)  # torchvision's rounding (half to even)
    return x[..., top:top + height, left:left + width]


def _align(decoder: torch.Tensor, encoder: torch.Tensor, merge: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre-crop the larger of the two feature maps to the size of the smaller one."""
    if decoder.ndim != 4 or encoder.ndim != 4 or decoder.shape[0] != encoder.shape[0]:
        raise ValueError(f"{merge} merges two (B, C, H, W) feature maps with the same batch size, got "
                         f"decoder {tuple(decoder.shape)} and encoder {tuple(encoder.shape)}")
    height = min(decoder.shape[-2], encoder.shape[-2])
    width = min(decoder.shape[-1], encoder.shape[-1])
    return center_crop(decoder, height, width), center_crop(encoder, height, width)


class Skip(nn.Module):
    """Skip-connection: concatenate the encoder feature to the decoder feature along channels.

    ``(B, C_dec, H, W)`` and ``(B, C_enc, H', W')`` give ``(B, C_dec + C_enc, min H, min W)``: the
    larger map is centre-cropped (U-Net crops its encoder features). Any channel counts merge.
    """

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        decoder, encoder = _align(decoder, encoder, "Skip")
        return torch.cat([decoder, encoder], dim=1)


class ShortCut(nn.Module):
    """Short-cut: add the encoder feature to the decoder feature (FCN fuses its score maps so).

    Both must have the same number of channels; the larger map is centre-cropped to the smaller.
    """

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        if decoder.ndim == 4 and encoder.ndim == 4 and decoder.shape[1] != encoder.shape[1]:
            raise ValueError(
                f"ShortCut adds two feature maps, so their channels must match: decoder "
                f"{tuple(decoder.shape)} has {decoder.shape[1]} channels, encoder {tuple(encoder.shape)} "
                f"has {encoder.shape[1]}. Project one with a 1x1 convolution first, or concatenate "
                "with Skip instead.")
        decoder, encoder = _align(decoder, encoder, "ShortCut")
        return decoder + encoder


# --------------------------------------------------------------------------------------------
# Convolution blocks
# --------------------------------------------------------------------------------------------

def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, *, padding: int = 1,
                 dilation: int = 1, batch_norm: bool = True) -> list[nn.Module]:
    """Convolution (bias only without BatchNorm), optional BatchNorm, ReLU: a list to splice."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding,
                                         dilation=dilation, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return layers


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU (U-Net's "double conv").

    ``padding="same"`` keeps the size; ``padding="valid"`` (the U-Net paper) shrinks it by 4.
    """

    def __init__(self, in_channels: int, out_channels: int, *, padding: str = "same",
                 batch_norm: bool = True):
        if padding not in ("same", "valid"):
            raise ValueError(f'padding must be "same" or "valid", got {padding!r}')
        p = 1 if padding == "same" else 0
        super().__init__(*conv_bn_relu(in_channels, out_channels, padding=p, batch_norm=batch_norm),
                         *conv_bn_relu(out_channels, out_channels, padding=p, batch_norm=batch_norm))
        self.padding = padding


class DilatedConvBlock(nn.Sequential):
    """3x3 dilated (atrous) convolutions + BatchNorm + ReLU that keep the size (padding = dilation).

    A dilation ``d`` spreads the 9 taps ``d`` pixels apart: each layer grows the receptive field by
    ``2d`` pixels with no downsampling and no extra parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, *, dilation: int = 2, num_convs: int = 2,
                 batch_norm: bool = True):
        if not (isinstance(dilation, int) and dilation >= 1 and isinstance(num_convs, int) and num_convs >= 1):
            raise ValueError(f"dilation and num_convs must be positive integers, got {dilation!r}, {num_convs!r}")
        layers: list[nn.Module] = []
        for i in range(num_convs):
            layers += conv_bn_relu(in_channels if i == 0 else out_channels, out_channels, padding=dilation,
                                    dilation=dilation, batch_norm=batch_norm)
        super().__init__(*layers)
        self.dilation = dilation
