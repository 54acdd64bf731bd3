"""The exercise checks: pass the right answer, catch typical mistakes with the right hint, never raise."""

import json

import pytest

from seglab import arithmetic as ref
from seglab.checks import all_passed, reset, results, results_json
from seglab.checks.arithmetic import (
    check_conv_output_size,
    check_pool_output_size,
    check_receptive_field,
    check_transposed_conv_output_size,
)


@pytest.fixture(autouse=True)
def fresh_results():
    reset()
    yield
    reset()


def reference_receptive_field(layers):
    field = ref.receptive_field(layers)
    return field.size, field.jump


def not_implemented(*args):
    raise NotImplementedError()


CASES = [
    (check_conv_output_size, lambda i, k, s=1, p=0, d=1: ref.conv_output_size(i, k, s, p, d),
     lambda i, k, s=1, p=0, d=1: (i + 2 * p - k) // s + 1, "dilation"),
    (check_conv_output_size, lambda i, k, s=1, p=0, d=1: ref.conv_output_size(i, k, s, p, d),
     lambda i, k, s=1, p=0, d=1: (i + p - d * (k - 1) - 1) // s + 1, "each side"),
    (check_pool_output_size, lambda i, k, s=None, p=0, ceil_mode=False: ref.pool_output_size(i, k, s, p,
                                                                                           ceil_mode=ceil_mode),
     lambda i, k, s=None, p=0, ceil_mode=False: (i + 2 * p - k) // (s or k) + 1, "ceil_mode"),
    (check_transposed_conv_output_size, lambda i, k, s=1, p=0, d=1, op=0: ref.transposed_conv_output_size(
        i, k, s, p, d, op), lambda i, k, s=1, p=0, d=1, op=0: (i - 1) * s - 2 * p + d * (k - 1) + 1,
     "output_padding"),
    (check_receptive_field, reference_receptive_field,
     lambda layers: (1 + sum(d * (k - 1) * s for k, s, _, d in layers), __import__("math").prod(
         s for _, s, _, _ in layers)), "jump of its *input*"),
]


@pytest.mark.parametrize("check, right, wrong, hint", CASES)
def test_check_passes_right_and_explains_wrong(check, right, wrong, hint, capsys):
    check(right, seed=1)
    out = capsys.readouterr().out
    grade_id = check.__name__[len("check_"):]
    assert "✔" in out and "✘" not in out and all_passed(grade_id)
    result = check(wrong, seed=1)
    out = capsys.readouterr().out
    assert "✘" in out and hint in out and result.points == 0 and not all_passed(grade_id)


@pytest.mark.parametrize("check", [c[0] for c in CASES[::2]] + [check_transposed_conv_output_size])
def test_unsolved_reports_not_implemented_and_never_raises(check, capsys):
    result = check(not_implemented)
    assert result.message == "not implemented yet" and "not implemented yet" in capsys.readouterr().out
    check(lambda *args: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out
    check(None)
    assert "pass your function" in capsys.readouterr().out


def test_non_integer_answers_are_explained(capsys):
    check_conv_output_size(lambda i, k, s=1, p=0, d=1: (i + 2 * p - d * (k - 1) - 1) / s + 1.5)
    assert "whole number" in capsys.readouterr().out


def test_results_are_recorded_for_the_grader():
    check_receptive_field(reference_receptive_field)
    check_conv_output_size(not_implemented)
    recorded = json.loads(results_json())
    assert recorded["receptive_field"] == {"points": 3, "max": 3, "message": "all 15 cases passed"}
    assert recorded["conv_output_size"]["points"] == 0
    assert set(results()) == {"receptive_field", "conv_output_size"}


# ------------------------------------------------------------------ notebooks 02 and 03

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from seglab.checks.fcn import check_fcn8s_fusion, check_linear_to_conv, check_total_stride  # noqa: E402
from seglab.checks.upsampling import (  # noqa: E402
    check_bilinear_kernel,
    check_convolution_matrix,
    check_transposed_conv_by_autograd,
    check_transposed_conv_by_zero_insertion,
)
from seglab.layers import bilinear_kernel  # noqa: E402
from seglab.models import convolutionalize  # noqa: E402


def zero_insertion(x, weight, stride, padding, output_padding, flip=True):
    b, c, h, w = x.shape
    k = weight.shape[-1]
    stretched = x.new_zeros(b, c, (h - 1) * stride + 1, (w - 1) * stride + 1)
    stretched[..., ::stride, ::stride] = x
    q = k - 1 - padding
    stretched = F.pad(stretched, (q, q + output_padding, q, q + output_padding))
    return F.conv2d(stretched, (weight.flip(-1, -2) if flip else weight).transpose(0, 1))


def convolution_matrix(kernel, n, stride):
    conv = lambda v: F.conv2d(v.reshape(1, 1, n, n), kernel[None, None], stride=stride).flatten()  # noqa: E731
    return torch.autograd.functional.jacobian(conv, torch.zeros(n * n))


def by_autograd(y, weight, stride, padding, n):
    x = torch.zeros(1, weight.shape[1], n, n, requires_grad=True)
    (F.conv2d(x, weight, stride=stride, padding=padding) * y).sum().backward()
    return x.grad


def linear_to_conv(linear, channels, size):
    return convolutionalize(nn.Sequential(linear), feature_size=size)[0]


def total_stride(module):
    product = 1
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            product *= layer.stride if isinstance(layer.stride, int) else layer.stride[0]
    return product


def fusion(model, pool3, pool4, pool5, size, short_cuts=True):
    score = model.score_fr(model.classifier(pool5))
    score = model.up_pool5(score)
    if short_cuts:
        score = model.fuse(score, model.score_pool4(pool4))
    score = model.up_pool4(score)
    if short_cuts:
        score = model.fuse(score, model.score_pool3(pool3))
    return model.upsample(score)[..., :size[0], :size[1]]


NOTEBOOK_CASES = [
    (check_bilinear_kernel, bilinear_kernel, lambda c, k: bilinear_kernel(1, k).repeat(c, c, 1, 1), "diagonal"),
    (check_transposed_conv_by_zero_insertion, zero_insertion,
     lambda *a: zero_insertion(*a, flip=False), "flip the kernel"),
    (check_convolution_matrix, convolution_matrix, lambda k, n, s: convolution_matrix(k.T, n, s), "row r of C"),
    (check_transposed_conv_by_autograd, by_autograd, lambda y, w, s, p, n: by_autograd(y, w, s, p, n) * 2,
     "gradient"),
    (check_linear_to_conv, linear_to_conv, lambda lin, c, k: nn.Conv2d(c, lin.out_features, k), "bias"),
    (check_total_stride, total_stride,
     lambda m: total_stride(nn.Sequential(*[x for x in m.modules() if isinstance(x, nn.Conv2d)])), "pooling"),
    (check_fcn8s_fusion, fusion, lambda *a: fusion(*a, short_cuts=False), "short-cut"),
]


@pytest.mark.parametrize("check, right, wrong, hint", NOTEBOOK_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_notebook_checks_pass_right_and_explain_wrong(check, right, wrong, hint, capsys):
    assert check(right, seed=2).passed
    out = capsys.readouterr().out
    assert "✔" in out and "✘" not in out
    assert not check(wrong, seed=2).passed
    assert hint in capsys.readouterr().out
    assert check(not_implemented).message == "not implemented yet"


# ------------------------------------------------------------------ notebook 04

from torchvision.transforms.v2.functional import center_crop  # noqa: E402

from seglab.checks.unet import (  # noqa: E402
    check_decoder_stage,
    check_shortcut_merge,
    check_skip_merge,
    check_unet_sizes,
)
from seglab.layers import ConvBlock, ShortCut, Skip  # noqa: E402
from seglab.models import unet_input_size, unet_output_size  # noqa: E402


class Stage(nn.Module):
    def __init__(self, in_channels, out_channels, concatenate=True):
        super().__init__()
        self.concatenate = concatenate
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = ConvBlock(2 * out_channels if concatenate else out_channels, out_channels, padding="valid")

    def forward(self, x, encoder):
        x = self.up(x)
        return self.conv(Skip()(x, encoder) if self.concatenate else center_crop(x, list(x.shape[-2:])))


UNET_CASES = [
    (check_skip_merge, Skip(), lambda d, e: Skip()(e, d) if d.shape[1] != e.shape[1] else Skip()(d, e) + 1,
     "decoder's channels first"),
    (check_shortcut_merge, ShortCut(), lambda d, e: d[..., : e.shape[-2], : e.shape[-1]] + e
     if d.shape[-2] >= e.shape[-2] and d.shape[-1] >= e.shape[-1] else ShortCut()(d, e), "size"),
    (check_decoder_stage, Stage, lambda i, o: Stage(i, o, concatenate=False), "C1 + C2"),
]


@pytest.mark.parametrize("check, right, wrong, hint", UNET_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_unet_checks(check, right, wrong, hint, capsys):
    assert check(right, seed=4).passed
    capsys.readouterr()
    assert not check(wrong, seed=4).passed
    assert check(not_implemented).message == "not implemented yet"


def test_unet_sizes_check():
    assert check_unet_sizes(unet_output_size, unet_input_size, seed=1).passed
    assert not check_unet_sizes(lambda size, depth: size - 184, unet_input_size, seed=1).passed
