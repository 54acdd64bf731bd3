"""The exercise checks: pass the right answer, catch typical mistakes with the right hint, never raise."""

import json

import pytest

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


# Honest answers, written out here: seglab's own reference implementations are off-limits to an answer.

def conv_size(i, k, s=1, p=0, d=1):
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


def pool_size(i, k, s=None, p=0, ceil_mode=False):
    s = k if s is None else s
    out = -(-(i + 2 * p - k) // s) + 1 if ceil_mode else (i + 2 * p - k) // s + 1
    return out - 1 if ceil_mode and (out - 1) * s >= i + p else out


def transposed_size(i, k, s=1, p=0, d=1, op=0):
    return (i - 1) * s - 2 * p + d * (k - 1) + op + 1


def reference_receptive_field(layers):
    size, jump = 1, 1
    for k, s, _, d in layers:
        size, jump = size + d * (k - 1) * jump, jump * s
    return size, jump


def not_implemented(*args):
    raise NotImplementedError()


CASES = [
    (check_conv_output_size, conv_size, lambda i, k, s=1, p=0, d=1: (i + 2 * p - k) // s + 1, "dilation"),
    (check_conv_output_size, conv_size, lambda i, k, s=1, p=0, d=1: (i + p - d * (k - 1) - 1) // s + 1, "each side"),
    (check_pool_output_size, pool_size, lambda i, k, s=None, p=0, ceil_mode=False: (i + 2 * p - k) // (s or k) + 1,
     "ceil_mode"),
    (check_transposed_conv_output_size, transposed_size,
     lambda i, k, s=1, p=0, d=1, op=0: (i - 1) * s - 2 * p + d * (k - 1) + 1, "output_padding"),
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
    recorded = json.loads(results_json())  # what `seglab check` reads from the student's kernel
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


def bilinear_kernel(channels, kernel_size):
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    triangle = 1 - (torch.arange(kernel_size) - centre).abs() / factor
    return torch.eye(channels)[:, :, None, None] * torch.outer(triangle, triangle)


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
    conv = nn.Conv2d(channels, linear.out_features, size)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
        conv.bias.copy_(linear.bias)
    return conv


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


@pytest.mark.parametrize("got, hint", [
    (6, "convolutions with stride 2 halve the size too"),  # poolings only (the student run-through's mistake)
    (4, "pooling layers have strides too"),
    (12, "nn.AvgPool2d counts too"),
    (8, "nn.MaxPool2d counts too"),
    (4 * 4 * 3 * 2 * 2, "one factor 2 along each axis"),  # both elements of every pair multiplied
    (5, "multiply the strides of every"),  # no known mistake: the general rule
])
def test_total_stride_hint_names_the_layers_left_out(got, hint):
    """Convolutions (stride 2, twice), a 3x3 max-pooling and an average pooling with a stride pair: 4 · 3 · 2 = 24;
    every way of leaving a kind of layer out gives a different product, so the hint can name it."""
    from seglab.checks.fcn import SIZE, TOTAL_STRIDE, build_stack

    layers = [["conv", 1, 2, 3, 2, 1], ["relu"], ["conv", 2, 2, 3, 2, 1], ["maxpool", 3, 3], ["avgpool", 2, [2, 2]]]
    out = build_stack(layers)(torch.zeros(1, 1, SIZE, SIZE)).shape[-1]
    case = {"layers": layers, "_modules": 5, "_out": out}
    assert SIZE // out == 24 and TOTAL_STRIDE.judge(case, 24) is None
    label, message = TOTAL_STRIDE.judge(case, got)
    assert f"you said {got}, it is 24" in label and hint in message


# ------------------------------------------------------------------ notebook 04

from torchvision.transforms.v2.functional import center_crop  # noqa: E402

from seglab.checks.unet import (  # noqa: E402
    check_decoder_stage,
    check_shortcut_merge,
    check_skip_merge,
    check_unet_sizes,
)
from seglab.layers import ConvBlock  # noqa: E402


def crop_both(decoder, encoder):
    size = [min(decoder.shape[-2], encoder.shape[-2]), min(decoder.shape[-1], encoder.shape[-1])]
    return center_crop(decoder, size), center_crop(encoder, size)


def skip(decoder, encoder):
    return torch.cat(crop_both(decoder, encoder), dim=1)


def shortcut(decoder, encoder):
    return sum(crop_both(decoder, encoder))


def unet_output_size(size, depth):
    for _ in range(depth):
        size = (size - 4) // 2
    size -= 4
    for _ in range(depth):
        size = 2 * size - 4
    return size


def unet_input_size(output_size, depth):
    size = -(-(output_size + 4 * (2 ** depth - 1)) // 2 ** depth) + 4
    for _ in range(depth):
        size = 2 * size + 4
    return size


class Stage(nn.Module):
    def __init__(self, in_channels, out_channels, concatenate=True):
        super().__init__()
        self.concatenate = concatenate
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = ConvBlock(2 * out_channels if concatenate else out_channels, out_channels, padding="valid")

    def forward(self, x, encoder):
        x = self.up(x)
        return self.conv(skip(x, encoder) if self.concatenate else center_crop(x, list(x.shape[-2:])))


UNET_CASES = [
    (check_skip_merge, skip, lambda d, e: skip(e, d) if d.shape[1] != e.shape[1] else skip(d, e) + 1,
     "decoder's channels first"),
    (check_shortcut_merge, shortcut, lambda d, e: d[..., : e.shape[-2], : e.shape[-1]] + e
     if d.shape[-2] >= e.shape[-2] and d.shape[-1] >= e.shape[-1] else shortcut(d, e), "size"),
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


# ------------------------------------------------------------------ borrowed answers

import types  # noqa: E402

import seglab.arithmetic  # noqa: E402
import seglab.layers  # noqa: E402
import seglab.models  # noqa: E402
from seglab.checks import exercises  # noqa: E402
from seglab.models.unet import DecoderStage  # noqa: E402

# a copy is still the reference (it raises NameError, without the module's globals: still recognised)
copied = types.FunctionType(seglab.arithmetic.conv_output_size.__code__, {}, "mine")

BORROWED = [
    (check_conv_output_size, (seglab.arithmetic.conv_output_size,), "seglab.arithmetic.conv_output_size"),
    (check_conv_output_size, (lambda i, k, s=1, p=0, d=1: seglab.arithmetic.conv_output_size(i, k, s, p, d),),
     "seglab"),
    (check_conv_output_size, (lambda i, k, s=1, p=0, d=1: F.conv2d(torch.zeros(1, 1, i, 1), torch.zeros(1, 1, k, 1),
                                                                  stride=(s, 1), padding=(p, 0), dilation=(d, 1)
                                                                  ).shape[2],), "torch (conv)"),
    (check_receptive_field, (reference_receptive_field.__class__(
        (lambda layers: (seglab.arithmetic.receptive_field(layers).size,
                         seglab.arithmetic.receptive_field(layers).jump)).__code__, globals()),), "seglab"),
    (check_bilinear_kernel, (seglab.layers.bilinear_kernel,), "seglab.layers.bilinear_kernel"),
    (check_transposed_conv_by_zero_insertion, (lambda x, w, s, p, op: F.conv_transpose2d(x, w, stride=s, padding=p,
                                                                                         output_padding=op),),
     "torch (conv_transpose)"),
    (check_transposed_conv_by_zero_insertion, (lambda x, w, s, p, op: torch.ops.aten.convolution(
        x, w, None, [s, s], [p, p], [1, 1], True, [op, op], 1),), "torch (conv_transpose)"),
    (check_linear_to_conv, (lambda lin, c, k: seglab.models.convolutionalize(nn.Sequential(lin), feature_size=k)[0],),
     "convolutionalize"),
    (check_fcn8s_fusion, (lambda model, p3, p4, p5, size: FusionViaModel(model, size),), "FCN.logits"),
    (check_skip_merge, (seglab.layers.Skip(),), "seglab.layers.Skip"),
    (check_decoder_stage, (lambda i, o: DecoderStage(i, o, padding="valid"),), "DecoderStage"),
    (check_unet_sizes, (seglab.models.unet_output_size, seglab.models.unet_input_size), "unet_output_size"),
]


def FusionViaModel(model, size):  # the reference's own forward, on a made-up input
    return model(torch.zeros(1, 3, *size))


@pytest.mark.parametrize("check, objects, named", BORROWED, ids=lambda v: getattr(v, "__name__", ""))
def test_borrowed_answers_get_zero_with_a_message(check, objects, named, capsys):
    result = check(*objects, seed=3)
    out = capsys.readouterr().out
    assert result.points == 0 and "write yourself" in result.message and named in result.message, out
    assert "write yourself" in out


def test_a_saved_copy_of_the_reference_is_still_recognised():
    assert "seglab.arithmetic.conv_output_size" in check_conv_output_size(copied, seed=1).message


def test_every_exercise_declares_what_is_off_limits():
    for ex in exercises().values():
        assert ex.off_limits and ex.off_limits.why, ex.id


# ------------------------------------------------------------------ what travels between kernel and grader

from seglab.checks import Exercise, OffLimits, check, score  # noqa: E402
from seglab.checks.wire import ReturnedType, WireError, decode, encode  # noqa: E402


def test_answers_travel_as_data_and_back():
    value = {"t": torch.arange(6.0).reshape(2, 3), "i": torch.tensor([1, 2]), "pair": (1, 2.5), "nan": float("nan"),
             "module": nn.ReLU()}
    back = decode(json.loads(json.dumps(encode(value))))
    assert torch.equal(back["t"], value["t"]) and back["t"].dtype == torch.float32
    assert torch.equal(back["i"], value["i"]) and back["pair"] == [1, 2.5] and back["nan"] != back["nan"]
    assert isinstance(back["module"], ReturnedType) and back["module"].name == "ReLU"


@pytest.mark.parametrize("data", [
    {"__tensor__": [2, 2], "dtype": "float32", "data": "AAAA"},  # wrong length
    {"__tensor__": [1 << 30, 1 << 30], "dtype": "float32", "data": ""},  # far too large
    {"__tensor__": [1], "dtype": "object", "data": ""},  # a dtype that could hold objects
    {"__float__": "__import__('os')"},
    [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]],
])
def test_the_grader_refuses_data_no_check_sends(data):
    with pytest.raises(WireError):
        decode(data)


def _toy(points=2):
    return Exercise("toy", "toy", points, lambda rng, n: [{"x": rng.randint(0, 9)} for _ in range(n)],
                    lambda case, fn: fn(case["x"]), lambda case, got: None if got == case["x"] + 1 else ("x", "add 1"),
                    5, OffLimits(names=("nothing",), why="-"))


def test_points_come_from_judging_never_exceed_the_maximum_and_need_every_case():
    toy, cases = _toy(), [{"x": 1}, {"x": 2}]
    assert score(toy, cases, [{"output": 2}, {"output": 3}]).points == 2
    assert score(toy, cases, [{"output": 2}]).points == 0  # a case left out
    assert score(toy, cases, [{"output": 2}] * 3).points == 0  # more outcomes than cases
    assert score(toy, cases, [{"output": 2}, {"points": 99}]).points == 0
    assert score(toy, cases, "all passed").points == 0
    assert check(toy, lambda x: x + 1).points == 2


def test_under_nbgrader_a_failed_check_raises(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(AssertionError, match="not implemented yet"):
        check(_toy(), not_implemented)
    assert check(_toy(), lambda x: x + 1).passed


class AlwaysEqual(int):
    """An answer that claims to equal anything: only its data travels, so it cannot fool a judge."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


def test_an_answer_that_equals_everything_earns_nothing():
    assert check_conv_output_size(lambda *args: AlwaysEqual(0), seed=1).points == 0
    assert check_unet_sizes(lambda *args: AlwaysEqual(0), lambda *args: AlwaysEqual(0), seed=1).points == 0


# ------------------------------------------------------------------ partial credit

def test_points_split_over_parts_that_held(capsys):
    wrong_values = check_skip_merge(lambda d, e: torch.zeros_like(skip(d, e)), seed=5)
    assert wrong_values.points == 1 and wrong_values.parts == [("output shape", 1, 1), ("values", 0, 1)]
    assert "✔ output shape: 1 / 1" in capsys.readouterr().out and "Parts: output shape 1/1; values 0/1" in \
        wrong_values.message
    assert check_skip_merge(lambda d, e: d, seed=5).points == 0  # a wrong shape: the values cannot hold either
    # the two size functions are separate parts: one right earns its point
    assert check_unet_sizes(unet_output_size, lambda size, depth: 0, seed=1).points == 1
    assert check_unet_sizes(lambda size, depth: 0, unet_input_size, seed=1).points == 1
    assert check_conv_output_size(lambda i, k, s=1, p=0, d=1: (i + 2 * p - k) // s + 1, seed=1).points == 0  # no parts


def test_a_failure_keeps_the_case_for_feedback():
    result = check_transposed_conv_by_zero_insertion(lambda *a: zero_insertion(*a, flip=False), seed=2)
    assert result.points == 1 and result.failure["hint"].startswith("flip")
    assert torch.is_tensor(result.failure["expected"]) and torch.is_tensor(result.failure["received"])
    assert set(result.failure["inputs"]) == {"x", "weight", "stride", "padding", "output_padding"}


def test_under_nbgrader_partial_credit_is_a_number(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert check_skip_merge(lambda d, e: torch.zeros_like(skip(d, e)), seed=5) == 1


def test_the_source_scan_names_use_not_the_students_own_names():
    from seglab.checks.borrowed import names_used

    names = ("summary", "convolutionalize")
    assert names_used("def total_stride(module):\n    summary = 1\n    return summary", names) == []
    assert names_used("from seglab.summary import summary\nx = summary(m)", names) == ["summary"]
    assert names_used("conv = seglab.models.convolutionalize(seq)[0]", names) == ["convolutionalize"]


def test_an_error_raised_inside_seglab_points_at_the_students_line():
    """A natural upward search meets sizes too small for a layer: the message names the student's
    function and line and the seglab function that refused, not a line inside seglab."""
    import random

    from seglab.arithmetic import conv_output_size, pool_output_size, transposed_conv_output_size
    from seglab.checks import exercise, run_answer

    def unet_output_size(size, depth):
        for _ in range(depth):
            size = pool_output_size(conv_output_size(conv_output_size(size, 3), 3), 2)
        size = conv_output_size(conv_output_size(size, 3), 3)
        for _ in range(depth):
            size = conv_output_size(conv_output_size(transposed_conv_output_size(size, 2, s=2), 3), 3)
        return size

    def unet_input_size(output_size, depth):
        size = 1
        while unet_output_size(size, depth) < output_size:
            size += 1
        return size

    ex = exercise("unet_sizes")
    cases = ex.make_cases(random.Random(0), 4)
    message = score(ex, cases, run_answer(ex, (unet_output_size, unet_input_size), cases)).message
    assert "ValueError" in message and "the padded input has only" in message, message
    assert "in unet_output_size, line" in message and "size = pool_output_size(" in message, message
    assert "raised inside seglab's conv_output_size" in message, message
    assert "raise ValueError(message)" not in message, message


def test_a_wrong_exercise_1_is_not_penalised_again_in_exercise_3():
    """Exercise 3 suggests reusing exercise 1: its check puts a correct conv_output_size in place of the
    student's, so one mistake (here: the dilation forgotten) costs points once."""
    namespace = {}
    exec("def conv_output_size(i, k, s=1, p=0, d=1):\n"
         "    return (i + 2 * p - k) // s + 1\n"
         "def transposed_conv_output_size(i, k, s=1, p=0, d=1, output_padding=0):\n"
         "    stretched = (i - 1) * s + 1 + 2 * (d * (k - 1) - p) + output_padding\n"
         "    return conv_output_size(stretched, k, 1, 0, d)\n", namespace)
    assert check_conv_output_size(namespace["conv_output_size"]).points == 0
    assert check_transposed_conv_output_size(namespace["transposed_conv_output_size"]).points == 2
    assert namespace["conv_output_size"].__name__ == "conv_output_size"  # the student's own is back
    assert namespace["conv_output_size"](5, 3, d=2) == 3  # (still wrong: the dilation forgotten)


def _student_weight_map(instances, w0=10.0, sigma=5.0, two=2.0, class_weights=True, background_only=True):
    """An honest answer to notebook 04's exercise 4 (``two``/``class_weights``/``background_only``: plant a
    mistake)."""
    height, width = instances.shape
    objects = instances > 0
    total, count = instances.numel(), int(objects.sum())
    w_c = torch.ones(height, width)
    if class_weights and count not in (0, total):
        w_c = torch.where(objects, total / (2 * count), total / (2 * (total - count)))
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = torch.stack([rows.flatten(), cols.flatten()], 1).float()
    distances = [torch.cdist(pixels, torch.nonzero(instances == k).float()).min(1).values.view(height, width)
                 for k in instances.unique().tolist() if k]
    if len(distances) < 2:
        return w_c
    d1, d2 = torch.stack(distances).sort(0).values[:2]
    term = w0 * torch.exp(-((d1 + d2) ** 2) / (two * sigma ** 2))
    return w_c + (torch.where(objects, 0.0, term) if background_only else term)


def test_an_error_that_shows_a_likely_mistake_gets_its_hint():
    """Merging maps of two sizes without a crop, or a decoder stage built for the wrong channels, raises inside
    torch: the message keeps the error and the student's line, and adds what it most likely means."""
    uncropped = check_skip_merge(lambda decoder, encoder: torch.cat([decoder, encoder], 1))
    assert "Sizes of tensors must match" in uncropped.message and "centre-crop the larger one" in uncropped.message
    uncropped = check_shortcut_merge(lambda decoder, encoder: decoder + encoder)
    assert "centre-crop the larger one" in uncropped.message

    class NarrowStage(nn.Module):  # its first convolution reads out_channels, not 2 · out_channels
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
            self.conv = ConvBlock(out_channels, out_channels, padding="valid")

        def forward(self, x, encoder):
            return self.conv(skip(self.up(x), encoder))

    narrow = check_decoder_stage(NarrowStage)
    assert narrow.points == 0 and "2 · out_channels" in narrow.message, narrow.message
    assert "in forward, line" in narrow.message and "'s inner" not in narrow.message, narrow.message


def test_weight_map_check_grades_the_class_weights_and_the_separation_term():
    from seglab.checks.unet import check_weight_map
    from seglab.data import unet_weight_map

    assert check_weight_map(_student_weight_map, cases=20).points == 3
    forgot_two = check_weight_map(lambda i, w0, s: _student_weight_map(i, w0, s, two=1.0))
    assert forgot_two.points == 1 and "forget the 2" in forgot_two.message
    no_balance = check_weight_map(lambda i, w0, s: _student_weight_map(i, w0, s, class_weights=False))
    assert no_balance.points == 2 and "add w_c" in no_balance.message, "the separation term is right on its own"
    both_wrong = check_weight_map(lambda i, w0, s: _student_weight_map(i, w0, s, two=1.0, class_weights=False))
    assert both_wrong.points == 0 and "add w_c" in both_wrong.message
    no_term = check_weight_map(lambda i, w0, s: _student_weight_map(i, 0.0, s))
    assert no_term.points == 1, no_term.message
    everywhere = check_weight_map(lambda i, w0, s: _student_weight_map(i, w0, s, background_only=False))
    assert "background pixels only" in everywhere.message and everywhere.points == 1, everywhere.message
    # a hostile answer: constants so large that any tolerance relative to them would hide the missing term
    for huge in (lambda i, w0, s: (i > 0).double() * 1e9,
                 lambda i, w0, s: torch.full(i.shape, 1e30, dtype=torch.double),
                 lambda i, w0, s: torch.full(i.shape, float("nan"))):
        assert check_weight_map(huge).points == 0
    borrowed = check_weight_map(lambda i, w0, s: unet_weight_map(i, w0=w0, sigma=s))
    assert borrowed.points == 0 and "unet_weight_map" in borrowed.message


def test_the_lent_conv_output_size_cannot_be_kept_for_exercise_1():
    """A hostile answer keeps the correct conv_output_size that exercise 3's check lends, to answer
    exercise 1 with it afterwards (e.g. its check cell deleted, so checked at the end): it earns nothing."""
    namespace = {}
    exec("kept = []\n"
         "def conv_output_size(i, k, s=1, p=0, d=1):\n"
         "    return kept[0](i, k, s, p, d) if kept else 0\n"
         "def transposed_conv_output_size(i, k, s=1, p=0, d=1, output_padding=0):\n"
         "    kept.append(conv_output_size)\n"
         "    return (i - 1) * s - 2 * p + d * (k - 1) + output_padding + 1\n", namespace)
    assert check_transposed_conv_output_size(namespace["transposed_conv_output_size"]).points == 2
    result = check_conv_output_size(namespace["conv_output_size"])
    assert result.points == 0 and "for its own call only" in result.message
