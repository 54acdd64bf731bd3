"""Notebooks 02-04: every public check holds the cases that tell the typical mistakes apart.

Each typical wrong answer, written as a student writes it, fails the student's own check (✘, not full
points) for every seed; the official solution (read from ``solutions/``) passes for every seed. A check
whose random cases only sometimes contain the telling case would pass a wrong answer by chance.
"""

from __future__ import annotations

import io
import math
import random
import re
from contextlib import redirect_stdout
from functools import cache

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2.functional import center_crop

from seglab.arithmetic import conv_output_size, pool_output_size, transposed_conv_output_size
from seglab.checks import draw_cases, public, run_answer, score
from seglab.checks.fcn import FCN8S_FUSION, LINEAR_TO_CONV, TOTAL_STRIDE
from seglab.checks.unet import DECODER_STAGE, SHORTCUT_MERGE, SKIP_MERGE, UNET_SIZES, WEIGHT_MAP
from seglab.checks.upsampling import (
    BILINEAR_KERNEL,
    CONVOLUTION_MATRIX,
    TRANSPOSED_CONV_BY_AUTOGRAD,
    TRANSPOSED_CONV_BY_ZERO_INSERTION,
)
from seglab.checks.wire import encode
from seglab.layers import ConvBlock
from tests.support import SOLUTIONS, nbgrader

SEEDS = range(100)
SOLUTIONS = SOLUTIONS


# --- notebook 02: upsampling --------------------------------------------------------------------------------

def _bilinear(channels, kernel_size, *, centre=None, scale=None, diagonal=True, divide_by=None):
    factor = (kernel_size + 1) // 2
    c = (factor - 1 if kernel_size % 2 else factor - 0.5) if centre is None else centre(factor, kernel_size)
    taps = torch.arange(kernel_size, dtype=torch.float32)
    triangle = (1 - (taps - c).abs() / (divide_by or factor)).clamp(min=0)
    kernel = torch.outer(triangle, triangle)
    if scale:
        kernel = kernel / kernel.sum()
    if not diagonal:
        return kernel.expand(channels, channels, kernel_size, kernel_size).clone()
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    for ch in range(channels if diagonal is True else 1):
        weight[ch, ch] = kernel
    return weight


BILINEAR_MISTAKES = {
    "centre at factor − 1 for every kernel": lambda c, k: _bilinear(c, k, centre=lambda f, k: f - 1),
    "centre at k // 2": lambda c, k: _bilinear(c, k, centre=lambda f, k: k // 2),
    "kernel normalised to sum 1": lambda c, k: _bilinear(c, k, scale=True),
    "every channel feeds every channel": lambda c, k: _bilinear(c, k, diagonal=False),
    "only channel 0 filled": lambda c, k: _bilinear(c, k, diagonal="first"),
    "triangle over the kernel size, not the factor": lambda c, k: _bilinear(c, k, divide_by=k),
}


def _zero_insertion(x, weight, stride, padding, output_padding, *, flip=True, swap=True, border=None,
                    op_where="end", stretch="between"):
    batch, channels, height, width = x.shape
    k = weight.shape[-1]
    if stretch == "after every pixel":
        stretched = x.new_zeros(batch, channels, height * stride, width * stride)
    else:
        stretched = x.new_zeros(batch, channels, (height - 1) * stride + 1, (width - 1) * stride + 1)
    stretched[..., ::stride, ::stride] = x
    b = k - 1 - padding if border is None else border(k, padding)
    op = output_padding
    pads = {"end": (b, b + op, b, b + op), "start": (b + op, b, b + op, b), "both": (b + op, b + op, b + op, b + op),
            "none": (b, b, b, b)}[op_where]
    stretched = F.pad(stretched, pads)
    kernel = weight.flip(-1, -2) if flip else weight
    return F.conv2d(stretched, kernel.transpose(0, 1) if swap else kernel)


ZERO_INSERTION_MISTAKES = {
    "kernel not flipped": lambda *a: _zero_insertion(*a, flip=False),
    "in/out channels not swapped": lambda *a: _zero_insertion(*a, swap=False),
    "output_padding ignored": lambda *a: _zero_insertion(*a, op_where="none"),
    "output_padding at the top/left": lambda *a: _zero_insertion(*a, op_where="start"),
    "output_padding on both sides": lambda *a: _zero_insertion(*a, op_where="both"),
    "padding ignored (border k − 1)": lambda *a: _zero_insertion(*a, border=lambda k, p: k - 1),
    "border p instead of k − 1 − p": lambda *a: _zero_insertion(*a, border=lambda k, p: p),
    "zeros after every pixel, the last one too": lambda *a: _zero_insertion(*a, stretch="after every pixel"),
    "no zeros inserted (stride ignored)": lambda x, w, s, p, op: _zero_insertion(x, w, 1, p, op),
}


def _matrix(kernel, n, stride, *, flip=False, column_major=False, ignore_stride=False):
    k = kernel.shape[0]
    s = 1 if ignore_stride else stride
    o = (n - k) // s + 1
    kernel = kernel.flip(0, 1) if flip else kernel
    matrix = torch.zeros(o * o, n * n, dtype=kernel.dtype)
    for row in range(o):
        for col in range(o):
            for a in range(k):
                for b in range(k):
                    r, c = row * s + a, col * s + b
                    matrix[row * o + col, c * n + r if column_major else r * n + c] = kernel[a, b]
    return matrix


MATRIX_MISTAKES = {
    "kernel flipped (a true convolution)": lambda k, n, s: _matrix(k, n, s, flip=True),
    "columns in column-major order": lambda k, n, s: _matrix(k, n, s, column_major=True),
    "stride ignored": lambda k, n, s: _matrix(k, n, s, ignore_stride=True),
}


def _autograd(y, weight, stride, padding, input_size, *, size=None, conv_padding=None, channels="in"):
    n = input_size if size is None else size(y, weight, stride, padding, input_size)
    c = weight.shape[1] if channels == "in" else weight.shape[0]
    x = torch.zeros(1, c, n, n, requires_grad=True)
    (F.conv2d(x, weight, stride=stride, padding=padding if conv_padding is None else conv_padding) * y).sum().backward()
    return x.grad


AUTOGRAD_MISTAKES = {
    "input size from the output size (no remainder)": lambda y, w, s, p, n: _autograd(
        y, w, s, p, n, size=lambda y, w, s, p, n: (y.shape[-1] - 1) * s - 2 * p + w.shape[-1]),
    "padding left out of the convolution": lambda y, w, s, p, n: _autograd(
        y, w, s, p, n - 2 * p, conv_padding=0),
    "stride left out of the convolution": lambda y, w, s, p, n: _autograd(y, w, 1, p, n),
}


# --- notebook 03: FCN ---------------------------------------------------------------------------------------

def _linear_to_conv(linear, channels, size, *, order="chw", bias=True, kernel=None):
    k = size if kernel is None else kernel
    conv = nn.Conv2d(channels, linear.out_features, kernel_size=k)
    with torch.no_grad():
        weight = linear.weight
        if order == "hwc":  # a channels-last reading of the flattened map
            weight = weight.reshape(linear.out_features, size, size, channels).permute(0, 3, 1, 2)
        elif order == "cwh":  # rows and columns swapped
            weight = weight.reshape(linear.out_features, channels, size, size).transpose(-1, -2)
        conv.weight.copy_(weight.reshape(linear.out_features, channels, k, k) if k == size else conv.weight)
        if bias:
            conv.bias.copy_(linear.bias)
        else:
            conv.bias.zero_()
    return conv


LINEAR_MISTAKES = {
    "channels-last reshape (size, size, channels)": lambda lin, c, s: _linear_to_conv(lin, c, s, order="hwc"),
    "rows and columns swapped": lambda lin, c, s: _linear_to_conv(lin, c, s, order="cwh"),
    "bias not copied": lambda lin, c, s: _linear_to_conv(lin, c, s, bias=False),
    "kernel_size 1": lambda lin, c, s: _linear_to_conv(lin, c, s, kernel=1),
}


def _total_stride(module, *, kinds=(nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d), pairs="first", children=False):
    stride = 1
    for layer in (module.children() if children else module.modules()):
        if isinstance(layer, kinds):
            s = layer.stride
            if isinstance(s, int):
                stride *= s
            else:
                stride *= s[0] * (s[1] if pairs == "both" else 1)
    return stride


STRIDE_MISTAKES = {
    "convolutions left out": lambda m: _total_stride(m, kinds=(nn.MaxPool2d, nn.AvgPool2d)),
    "poolings left out": lambda m: _total_stride(m, kinds=(nn.Conv2d,)),
    "average pooling left out": lambda m: _total_stride(m, kinds=(nn.Conv2d, nn.MaxPool2d)),
    "max pooling left out": lambda m: _total_stride(m, kinds=(nn.Conv2d, nn.AvgPool2d)),
    "both elements of a stride pair multiplied": lambda m: _total_stride(m, pairs="both"),
    "only the top-level layers (children)": lambda m: _total_stride(m, children=True),
}


def _fusion(model, pool3, pool4, pool5, size, *, pool3_used=True, crop=True, upsample=None, classifier=True):
    height, width = size
    score = model.score_fr(model.classifier(pool5) if classifier else pool5)
    score = model.fuse(model.up_pool5(score), model.score_pool4(pool4))
    if pool3_used:
        score = model.fuse(model.up_pool4(score), model.score_pool3(pool3))
        out = model.upsample(score) if upsample is None else upsample(score, 8)
    else:
        out = F.interpolate(score, scale_factor=16, mode="bilinear", align_corners=False)
    return out[..., :height, :width] if crop else out


def _fusion_one_upsampling_twice(model, pool3, pool4, pool5, size):
    height, width = size
    score = model.fuse(model.up_pool5(model.score_fr(model.classifier(pool5))), model.score_pool4(pool4))
    score = model.fuse(model.up_pool5(score), model.score_pool3(pool3))  # up_pool5 again, not up_pool4
    return model.upsample(score)[..., :height, :width]


FUSION_MISTAKES = {
    "up_pool5 used for both 2x upsamplings": _fusion_one_upsampling_twice,
    "pool3 left out (FCN-16s)": lambda *a: _fusion(*a, pool3_used=False),
    "F.interpolate instead of the model's upsampling": lambda *a: _fusion(
        *a, upsample=lambda s, f: F.interpolate(s, scale_factor=f, mode="bilinear", align_corners=False)),
    "not cropped to the image": lambda *a: _fusion(*a, crop=False),
}


# --- notebook 04: U-Net -------------------------------------------------------------------------------------

def _crop(t, size, where="centre"):
    return center_crop(t, size) if where == "centre" else t[..., :size[0], :size[1]]


def _merge(decoder, encoder, *, combine="cat", where="centre", order="decoder first", swapped=False):
    height, width = min(decoder.shape[-2], encoder.shape[-2]), min(decoder.shape[-1], encoder.shape[-1])
    size = [width, height] if swapped else [height, width]
    a, b = _crop(decoder, size, where), _crop(encoder, size, where)
    if combine == "sum":
        return a + b
    return torch.cat([a, b] if order == "decoder first" else [b, a], dim=1)


def _crop_only_encoder(decoder, encoder):
    return center_crop(encoder, list(decoder.shape[-2:]))


SKIP_MISTAKES = {
    "encoder first": lambda d, e: _merge(d, e, order="encoder first"),
    "crop at the top-left corner": lambda d, e: _merge(d, e, where="corner"),
    "only the encoder cropped (to the decoder's size)": lambda d, e: torch.cat([d, _crop_only_encoder(d, e)], 1),
    "height and width swapped in the crop": lambda d, e: _merge(d, e, swapped=True),
}
SHORTCUT_MISTAKES = {
    "crop at the top-left corner": lambda d, e: _merge(d, e, combine="sum", where="corner"),
    "only the encoder cropped (to the decoder's size)": lambda d, e: d + _crop_only_encoder(d, e),
    "height and width swapped in the crop": lambda d, e: _merge(d, e, combine="sum", swapped=True),
    "concatenated, not summed": lambda d, e: _merge(d, e),
}


def _stage_class(*, up="transposed", merge="skip", padding="valid"):
    class Stage(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            if up == "transposed":
                self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
            elif up == "3x3 transposed":  # the same size, with output_padding
                self.up = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)
            elif up == "nearest + 1x1":
                self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                        nn.Conv2d(in_channels, out_channels, 1))
            else:  # bilinear, channels kept
                self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            reads = {"skip": 2 * out_channels, "skip, encoder first": 2 * out_channels, "shortcut": out_channels}[merge]
            if up == "bilinear":
                reads = in_channels + out_channels
            self.conv = ConvBlock(reads, out_channels, padding=padding)

        def forward(self, x, encoder):
            x = self.up(x)
            height, width = x.shape[-2:]
            encoder = center_crop(encoder, [height, width])
            merged = {"skip": lambda: torch.cat([x, encoder], 1), "skip, encoder first": lambda: torch.cat(
                [encoder, x], 1), "shortcut": lambda: x + encoder}[merge]()
            return self.conv(merged)

    return Stage


STAGE_MISTAKES = {
    "padded (same) convolutions": _stage_class(padding="same"),
    "short-cut instead of skip-connection": _stage_class(merge="shortcut"),
    "bilinear upsampling without halving the channels": _stage_class(up="bilinear"),
    "encoder first in the concatenation": _stage_class(merge="skip, encoder first"),
    "a 3x3 transposed convolution with output_padding": _stage_class(up="3x3 transposed"),
    "nearest upsampling and a 1x1 convolution": _stage_class(up="nearest + 1x1"),
}


def _unet_output(input_size, depth, *, conv_loss=2, ceil_pool=False, bottleneck=True, upsample=True):
    size = input_size
    for _ in range(depth):
        size -= 2 * conv_loss
        size = -(-size // 2) if ceil_pool else size // 2
    if bottleneck:
        size -= 2 * conv_loss
    for _ in range(depth):
        size = 2 * size if upsample else size
        size -= 2 * conv_loss
    return size


def _unet_input(output_size, depth, *, even=True, exact=False):
    """A search upwards from 1, as a student might write it."""
    size = 1
    while True:
        try:
            sizes, s = [], size
            for _ in range(depth):
                s = conv_output_size(conv_output_size(s, 3), 3)
                sizes.append(s)
                s = pool_output_size(s, 2)
            s = conv_output_size(conv_output_size(s, 3), 3)
            for _ in range(depth):
                s = conv_output_size(conv_output_size(transposed_conv_output_size(s, 2, s=2), 3), 3)
            if (s == output_size if exact else s >= output_size) and (not even or all(v % 2 == 0 for v in sizes)):
                return size
        except ValueError:
            pass
        size += 1
        if size > 2000:  # beyond every tile here: no such input
            return -1


def _solution_output(input_size, depth):
    return _unet_output(input_size, depth)


UNET_SIZES_MISTAKES = {
    "one pixel per 3x3 convolution (−2 per level)": (lambda i, d: _unet_output(i, d, conv_loss=1), _unet_input),
    "pooling rounds up": (lambda i, d: _unet_output(i, d, ceil_pool=True), _unet_input),
    "the bottleneck's convolutions forgotten": (lambda i, d: _unet_output(i, d, bottleneck=False), _unet_input),
    "an input whose output is exactly the size asked": (_solution_output,
                                                        lambda o, d: _unet_input(o, d, exact=True)),
}


def _weight_map(instances, w0=10.0, sigma=5.0, *, two=True, everywhere=False, metric="euclidean", w_c="balance",
                second="other object"):
    height, width = instances.shape
    objects = instances > 0
    total, count = instances.numel(), int(objects.sum())
    if w_c == "ones" or count in (0, total):
        weights = torch.ones(height, width)
    elif w_c == "fractions":
        weights = torch.where(objects, count / total, (total - count) / total)
    else:
        weights = torch.where(objects, total / (2 * count), total / (2 * (total - count)))
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = torch.stack([rows.flatten(), cols.flatten()], dim=1).float()
    p = 1.0 if metric == "manhattan" else 2.0
    if second == "other object":
        distances = [torch.cdist(pixels, torch.nonzero(instances == k).float(), p=p).min(dim=1).values.view(height,
                                                                                                           width)
                     for k in instances.unique().tolist() if k != 0]
        if len(distances) < 2:
            return weights
        d1, d2 = torch.stack(distances).sort(dim=0).values[:2]
    else:  # the two nearest object pixels, whichever objects they belong to
        if count < 2:
            return weights
        d = torch.cdist(pixels, torch.nonzero(objects).float(), p=p).sort(dim=1).values
        d1, d2 = d[:, 0].view(height, width), d[:, 1].view(height, width)
    separation = w0 * torch.exp(-((d1 + d2) ** 2) / ((2 if two else 1) * sigma ** 2))
    return weights + (separation if everywhere else torch.where(objects, 0.0, separation))


WEIGHT_MISTAKES = {
    "the 2 in the exponent forgotten": lambda i, w0, s: _weight_map(i, w0, s, two=False),
    "the term on object pixels too": lambda i, w0, s: _weight_map(i, w0, s, everywhere=True),
    "Manhattan distances": lambda i, w0, s: _weight_map(i, w0, s, metric="manhattan"),
    "no class weights (w_c = 1)": lambda i, w0, s: _weight_map(i, w0, s, w_c="ones"),
    "class frequencies as weights": lambda i, w0, s: _weight_map(i, w0, s, w_c="fractions"),
    "the two nearest object pixels, from any object": lambda i, w0, s: _weight_map(i, w0, s, second="any pixel"),
}


EXERCISES = {  # exercise, its notebook, the names its solution defines, its typical mistakes
    "bilinear_kernel": (BILINEAR_KERNEL, "02_upsampling", ("bilinear_kernel",), BILINEAR_MISTAKES),
    "transposed_conv_by_zero_insertion": (TRANSPOSED_CONV_BY_ZERO_INSERTION, "02_upsampling",
                                          ("transposed_conv_by_zero_insertion",), ZERO_INSERTION_MISTAKES),
    "convolution_matrix": (CONVOLUTION_MATRIX, "02_upsampling", ("convolution_matrix",), MATRIX_MISTAKES),
    "transposed_conv_by_autograd": (TRANSPOSED_CONV_BY_AUTOGRAD, "02_upsampling", ("transposed_conv_by_autograd",),
                                    AUTOGRAD_MISTAKES),
    "linear_to_conv": (LINEAR_TO_CONV, "03_fully_convolutional_networks", ("linear_to_conv",), LINEAR_MISTAKES),
    "total_stride": (TOTAL_STRIDE, "03_fully_convolutional_networks", ("total_stride",), STRIDE_MISTAKES),
    "fcn8s_fusion": (FCN8S_FUSION, "03_fully_convolutional_networks", ("fcn8s_fusion",), FUSION_MISTAKES),
    "skip_merge": (SKIP_MERGE, "04_unet", ("skip_merge",), SKIP_MISTAKES),
    "shortcut_merge": (SHORTCUT_MERGE, "04_unet", ("shortcut_merge",), SHORTCUT_MISTAKES),
    "decoder_stage": (DECODER_STAGE, "04_unet", ("DecoderStageExercise",), STAGE_MISTAKES),
    "unet_sizes": (UNET_SIZES, "04_unet", ("unet_output_size", "unet_input_size"), UNET_SIZES_MISTAKES),
    "weight_map": (WEIGHT_MAP, "04_unet", ("weight_map",), WEIGHT_MISTAKES),
}
SLOW = {"fcn8s_fusion": range(40), "decoder_stage": range(60), "weight_map": range(60)}  # seeds where a case costs


def _objects(answer) -> tuple:
    return answer if isinstance(answer, tuple) else (answer,)


@cache
def _public_cases(name: str, seed: int):
    """The cases the student's check draws for ``seed`` (its default number), and what the answer receives."""
    return draw_cases(EXERCISES[name][0], seed=seed)


@cache
def _solution(name: str):
    """The official answer of ``name``: the notebook's imports, the cells it builds on, its solution cell."""
    _, notebook_name, defines, _ = EXERCISES[name]
    cells = nbformat.read(SOLUTIONS / f"{notebook_name}.ipynb", as_version=4).cells
    namespace: dict = {"math": math}
    imports = "\n".join(line for line in cells[1].source.splitlines() if not line.startswith("%"))
    exec(compile(imports, "<imports>", "exec"), namespace)
    needs = {"decoder_stage": ("skip_merge",)}.get(name, ())
    for grade_id in (*needs, name):
        cell = next(c for c in cells if nbgrader(c).get("grade_id") == grade_id)
        source = re.sub(r"^\s*### (BEGIN|END) SOLUTION\s*$", "", cell.source, flags=re.MULTILINE)
        exec(compile(source, f"<solution {grade_id}>", "exec"), namespace)
    found = tuple(namespace[n] for n in defines)
    return found if len(found) > 1 else found[0]


def _passes_every_case(name: str, answer, seed: int) -> bool:
    """Whether the public check of ``seed`` would pass ``answer``: case by case, stopping at the first wrong
    one (a check passes only when every case is right, so this is the same verdict, sooner)."""
    ex = EXERCISES[name][0]
    cases, sent = _public_cases(name, seed)
    with redirect_stdout(io.StringIO()):
        return all(score(ex, [case], run_answer(ex, _objects(answer), [one])).passed
                   for case, one in zip(cases, sent, strict=True))


@pytest.mark.parametrize("name, mistake", [(name, mistake) for name, (*_, mistakes) in EXERCISES.items()
                                           for mistake in mistakes])
def test_every_typical_mistake_fails_the_public_check_for_every_seed(name, mistake):
    answer = EXERCISES[name][3][mistake]
    passed = [seed for seed in SLOW.get(name, SEEDS) if _passes_every_case(name, answer, seed)]
    assert not passed, f"{name}: the mistake '{mistake}' passed for seeds {passed[:10]}"


@pytest.mark.parametrize("name", EXERCISES)
def test_the_official_solution_passes_for_every_seed(name):
    answer = _solution(name)
    failed = [seed for seed in SLOW.get(name, SEEDS) if not _passes_every_case(name, answer, seed)]
    assert not failed, f"{name}: the official solution failed for seeds {failed[:10]}"


@pytest.mark.parametrize("name", EXERCISES)
def test_the_cases_are_as_many_as_asked_and_repeatable(name):
    ex = EXERCISES[name][0]
    for n in (1, 3, ex.cases, 40):
        assert len(ex.make_cases(random.Random(5), n)) == n
    first, again = ex.make_cases(random.Random(7), ex.cases), ex.make_cases(random.Random(7), ex.cases)
    assert encode([public(c) for c in first]) == encode([public(c) for c in again])
