"""Convolution arithmetic: output sizes, receptive field and total stride.

All formulas use PyTorch's conventions: padding ``p`` is added on *each* side, dilation ``d``
spreads the kernel taps ``d`` pixels apart (a dilated kernel of size ``k`` spans ``d*(k-1)+1``
pixels), and a transposed convolution may add ``output_padding`` rows/columns on one side.
Every function here is tested against the real ``nn.Conv2d``, ``nn.ConvTranspose2d`` and pooling
layers (see ``tests/lab/test_arithmetic.py``); the guide by Dumoulin and Visin, "A guide to convolution
arithmetic for deep learning" (2016), derives them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "LayerGeometry",
    "ReceptiveField",
    "conv_output_size",
    "layer_geometry",
    "measured_receptive_field",
    "pool_output_size",
    "receptive_field",
    "receptive_fields",
    "transposed_conv_output_size",
]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_common(i: int, k: int, s: int, p: int, d: int) -> None:
    for name, value, low in (("input size i", i, 1), ("kernel size k", k, 1), ("stride s", s, 1),
                             ("padding p", p, 0), ("dilation d", d, 1)):
        _require(isinstance(value, int) and value >= low,
                 f"{name} must be an integer >= {low}, got {value!r}")


def conv_output_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """Output size of a convolution along one axis: ``floor((i + 2p - d(k-1) - 1) / s) + 1``.

    >>> conv_output_size(5, 3, s=2, p=1)
    3
    """
    _check_common(i, k, s, p, d)
    span = d * (k - 1) + 1  # pixels covered by one (dilated) kernel
    _require(i + 2 * p >= span,
             f"the kernel spans {span} pixels (k={k}, d={d}) but the padded input has only "
             f"{i + 2 * p} (i={i}, p={p} per side): use a larger input, more padding or a smaller kernel")
    return (i + 2 * p - span) // s + 1


def transposed_conv_output_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1,
                                output_padding: int = 0) -> int:
    """Output size of a transposed convolution: ``(i-1)s - 2p + d(k-1) + output_padding + 1``.

    It inverts :func:`conv_output_size` in shape: a convolution maps several input sizes to the same
    output size when ``s > 1``, and ``output_padding`` (``< max(s, d)``) picks which one to go back to.

    >>> transposed_conv_output_size(3, 3, s=2, p=1, output_padding=1)
    6
    """
    _check_common(i, k, s, p, d)
    _require(isinstance(output_padding, int) and 0 <= output_padding < max(s, d),
             f"output_padding must be >= 0 and smaller than the stride or the dilation "
             f"(max(s, d) = {max(s, d)}), got {output_padding!r}")
    size = (i - 1) * s - 2 * p + d * (k - 1) + output_padding + 1
    _require(size >= 1, f"the padding p={p} removes the whole output (size would be {size}): use less padding")
    return size


def pool_output_size(i: int, k: int, s: int | None = None, p: int = 0, ceil_mode: bool = False, *,
                     d: int = 1) -> int:
    """Output size of max/average pooling (``s`` defaults to ``k``, as in ``nn.MaxPool2d``; the arguments in
    notebook 01's order, dilation ``d`` by keyword only).

    With ``ceil_mode=True`` the last, partial window counts too, unless it would start after the
    input's last pixel, in the right padding or (with ``p=0``) beyond the input: every window must
    start on an input pixel or in the left padding (PyTorch's rule).

    >>> pool_output_size(5, 2), pool_output_size(5, 2, ceil_mode=True)
    (2, 3)
    >>> pool_output_size(18, 2, 3, ceil_mode=True)  # a 7th window would start at 18, past the input
    6
    """
    s = k if s is None else s
    _check_common(i, k, s, p, d)
    _require(p <= k // 2, f"pooling padding must be at most half the kernel (k // 2 = {k // 2}), got p={p}")
    span = d * (k - 1) + 1
    rounding = math.ceil if ceil_mode else math.floor
    out = rounding((i + 2 * p - span) / s) + 1
    if ceil_mode and (out - 1) * s >= i + p:  # the last window would start after the input
        out -= 1
    _require(out >= 1, f"the pooling window spans {span} pixels (k={k}, d={d}) but the padded input has only "
                       f"{i + 2 * p} (i={i}, p={p} per side): use a larger input or a smaller window")
    return out


# --------------------------------------------------------------------------------------------
# Receptive field
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerGeometry:
    """The spatial parameters of one layer along one axis (square layers only)."""

    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    transposed: bool = False  # transposed convolution or upsampling: the stride divides

    @property
    def span(self) -> int:
        """Pixels covered by one (dilated) kernel: ``d * (k - 1) + 1``."""
        return self.dilation * (self.kernel - 1) + 1


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field after a stack of layers, in input pixels.

    ``size``: side of the square of input pixels that one output pixel sees.
    ``jump``: distance in input pixels between two neighbouring output pixels (the total stride).
    ``start``: input coordinate of the centre of output pixel 0's receptive field (pixel centres
    are at 0, 1, 2, ...; a negative value means it is centred in the padding).
    """

    size: float
    jump: float
    start: float

    def step(self, layer: LayerGeometry) -> ReceptiveField:
        """The receptive field after one more layer."""
        if not layer.transposed:
            return ReceptiveField(
                size=self.size + (layer.span - 1) * self.jump,
                jump=self.jump * layer.stride,
                start=self.start + ((layer.span - 1) / 2 - layer.padding) * self.jump,
            )
        # A transposed convolution with stride s makes s output pixels per input pixel; each output
        # pixel is a weighted sum of ceil(span / s) input pixels.
        inputs_per_output = math.ceil(layer.span / layer.stride)
        return ReceptiveField(
            size=self.size + (inputs_per_output - 1) * self.jump,
            jump=self.jump / layer.stride,
            start=self.start + (layer.padding - (layer.span - 1) / 2) / layer.stride * self.jump,
        )


def _square(value, what: str, module: nn.Module) -> int:
    if isinstance(value, int):
        return value
    value = tuple(value)
    _require(len(set(value)) == 1,
             f"{type(module).__name__} has a non-square {what} {value}: the receptive field is "
             "computed for square layers only")
    return int(value[0])


def layer_geometry(module: nn.Module) -> LayerGeometry:
    """The :class:`LayerGeometry` of one spatial layer (see :data:`SPATIAL_LAYERS`)."""
    from seglab.layers import BilinearUpsample  # seglab.layers does not import this module

    if isinstance(module, nn.Conv2d):
        k = _square(module.kernel_size, "kernel", module)
        d = _square(module.dilation, "dilation", module)
        padding = module.padding
        if isinstance(padding, str):  # "same" (stride 1 only) or "valid"
            p = d * (k - 1) // 2 if padding == "same" else 0
        else:
            p = _square(padding, "padding", module)
        return LayerGeometry(k, _square(module.stride, "stride", module), p, d)
    if isinstance(module, nn.ConvTranspose2d):
        return LayerGeometry(_square(module.kernel_size, "kernel", module),
                             _square(module.stride, "stride", module),
                             _square(module.padding, "padding", module),
                             _square(module.dilation, "dilation", module), transposed=True)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return LayerGeometry(_square(module.kernel_size, "kernel", module),
                             _square(module.stride, "stride", module),
                             _square(module.padding, "padding", module),
                             _square(getattr(module, "dilation", 1), "dilation", module))
    if isinstance(module, (nn.Upsample, BilinearUpsample)):
        factor = module.scale_factor
        _require(factor is not None and float(factor) == int(factor),
                 f"{type(module).__name__} needs one integer scale_factor to have a receptive field, "
                 f"got {factor!r}")
        f = int(factor)
        if getattr(module, "mode", "bilinear") == "nearest":  # one input pixel per output pixel
            return LayerGeometry(f, f, 0, transposed=True)
        # bilinear (align_corners=False) behaves like a transposed convolution with kernel 2f,
        # stride f and padding f/2: each output pixel interpolates between 2 input pixels.
        return LayerGeometry(2 * f, f, f / 2, transposed=True)
    raise ValueError(f"{type(module).__name__} depends on the input size, so a stack containing it has "
                     "no fixed receptive field: convolutionalise it first (seglab.models.convolutionalize)")


#: Layers that change the spatial geometry; everything else (activations, normalisation, dropout,
#: merges) keeps it and is ignored by the receptive-field computation.
SPATIAL_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.Upsample,
                  nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear)


def is_spatial(module: nn.Module) -> bool:
    from seglab.layers import BilinearUpsample

    return isinstance(module, (*SPATIAL_LAYERS, BilinearUpsample))


def _spatial_layers(module: nn.Module) -> list[nn.Module]:
    """The spatial layers of a module, in registration order."""
    if is_spatial(module):
        return [module]
    return [layer for child in module.children() for layer in _spatial_layers(child)]


def as_geometries(layers) -> list[LayerGeometry]:
    if isinstance(layers, nn.Module):
        path = layers.deepest_path() if hasattr(layers, "deepest_path") else layers
        return [layer_geometry(m) for m in _spatial_layers(path)]
    geometries = []
    for layer in layers:
        if isinstance(layer, LayerGeometry):
            geometries.append(layer)
        elif isinstance(layer, nn.Module):
            geometries.extend(as_geometries(layer))
        else:
            _require(isinstance(layer, Iterable) and 1 <= len(tuple(layer)) <= 4,
                     f"a layer must be (kernel, stride, padding, dilation) or an nn.Module, got {layer!r}")
            geometries.append(LayerGeometry(*layer))
    return geometries


def receptive_fields(layers) -> list[ReceptiveField]:
    """Receptive field after each layer of a stack (see :func:`receptive_field`)."""
    field = ReceptiveField(size=1, jump=1, start=0.0)
    out = []
    for geometry in as_geometries(layers):
        field = field.step(geometry)
        out.append(field)
    return out


def receptive_field(layers) -> ReceptiveField:
    """Receptive field size, jump (total stride) and start offset at the end of a stack of layers.

    ``layers`` is a sequence of ``(kernel, stride, padding, dilation)`` tuples (shorter tuples use
    the defaults ``stride=1, padding=0, dilation=1``), an ``nn.Sequential`` (its convolution and
    pooling layers are read in order), or a seglab model (its deepest path: the backbone and
    classifier of an FCN, the encoder and bottleneck of a U-Net).

    >>> receptive_field([(3, 1, 1), (3, 1, 1), (2, 2)])  # two 3x3 convs and a 2x2 pooling
    ReceptiveField(size=6, jump=2, start=0.5)
    """
    fields = receptive_fields(layers)
    return fields[-1] if fields else ReceptiveField(size=1, jump=1, start=0.0)


def measured_receptive_field(model: nn.Module, *, in_channels: int | None = None, width: int | None = None,
                             largest: int = 4096) -> int:
    """The receptive field in input rows of the output pixel in the middle of the image, measured: the rows
    whose gradient is non-zero, in a copy of ``model`` whose weights are positive and whose max-poolings
    average (so that no gradient cancels out or is routed to one pixel). It works for any model, also those
    whose field :func:`receptive_field` cannot read from the layers (HRNet's exchanges between resolutions,
    the multi-scale models' resized inputs, an upsampled output); the image grows until the field fits.

    >>> measured_receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3)))
    8
    """
    probe = _positive_copy(model).eval()
    in_channels = in_channels or getattr(model, "in_channels", None) or _first_conv(probe).in_channels
    minimum = model.min_input_size() if hasattr(model, "min_input_size") else 1
    width = width or max(minimum, 8)
    height = max(64, minimum)
    while True:
        x = torch.ones(1, in_channels, height, width, requires_grad=True)
        out = probe(x)  # (1, K, H', W')
        out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
        rows = (x.grad[0].abs().sum((0, 2)) > 0).nonzero().flatten()  # (rows that reach the pixel,)
        first, last = int(rows[0]), int(rows[-1])
        if first > 0 and last < height - 1:  # the whole field lies inside the image
            return last - first + 1
        if height >= largest:
            raise ValueError(f"the receptive field of {type(model).__name__} is wider than {largest} rows "
                             "(or the whole image): pass a larger `largest`")
        height *= 2


def _positive_copy(model: nn.Module) -> nn.Module:
    probe = copy.deepcopy(model).float()
    with torch.no_grad():
        for name, parameter in probe.named_parameters():
            parameter.copy_(torch.full_like(parameter, 1.0 if name.endswith("weight") else 0.01))
    for layer in probe.modules():  # normalisation by the defaults (mean 0, variance 1): stays positive
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.reset_running_stats()
    for parent in probe.modules():  # max-pooling passes the gradient to one pixel: average instead
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
    return probe


def _first_conv(module: nn.Module) -> nn.Conv2d:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            return layer
    raise ValueError(f"{type(module).__name__} has no convolution: pass in_channels")
