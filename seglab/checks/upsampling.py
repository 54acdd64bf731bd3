"""Checks for notebook 02, upsampling: bilinear upsampling versus transposed convolution.

Oracles: ``F.interpolate`` for bilinear upsampling, ``F.conv_transpose2d`` for every view of the
transposed convolution, ``F.conv2d`` for the convolution matrix.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from seglab.checks import Exercise, Failure, OffLimits, check, require
from seglab.checks.borrowed import CONVOLUTION_BACKWARD, FOLD, INTERPOLATION, TRANSPOSED_CONVOLUTION
from seglab.layers import transposed_conv_geometry

__all__ = ["check_bilinear_kernel", "check_convolution_matrix", "check_transposed_conv_by_autograd",
           "check_transposed_conv_by_zero_insertion"]


def randn(rng: random.Random, *shape: int) -> torch.Tensor:
    """A standard normal tensor drawn from ``rng`` (so a check's seed fixes its tensors too)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(rng.randrange(2 ** 31)))


def _close(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=1e-4,
                                                                                  rtol=1e-4)


def _shape_hint(got, expected) -> str | None:
    if not isinstance(got, torch.Tensor):
        return f"return a torch.Tensor, got {type(got).__name__}"
    if got.shape != expected.shape:
        return f"the shape should be {tuple(expected.shape)}, got {tuple(got.shape)}"
    return None


def _tensor_call(name: str, *keys: str):
    """A ``call`` that passes the case's values ``keys`` to the student's function, in this order."""

    def call(case: dict, fn):
        require(callable(fn), f"pass your function {name} itself")
        return fn(*(case[key].clone() if isinstance(case[key], torch.Tensor) else case[key] for key in keys))

    return call


TRANSPOSED = ("conv_transpose2d", "ConvTranspose2d", "conv_transpose1d", "ConvTranspose1d")


# --- bilinear kernel -----------------------------------------------------------------------------------------

# The answer's inputs are the kernel size and the channels: some 120 cases in all, a space that no range of
# factors can make too large to tabulate beforehand (with seglab's kernel or an upsampling layer, in an earlier
# cell). The factors go up to 32 all the same (a kernel of 64x64 taps); against a table the
# names the grader looks for in the answer's source stand (``off_limits.names``).
LARGEST_FACTOR = 32


def _bilinear_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for index in range(n):
        factor, channels = rng.choice([2, 3, 4, 8, rng.randint(2, LARGEST_FACTOR)]), rng.randint(1, 4)
        if index < 2:  # an even and an odd kernel (their centres differ), each with several channels
            factor, channels = (2, 3)[index], rng.randint(2, 4)
        size = (6, 7) if factor <= 8 else (3, 4)  # a large factor makes a large map of a small one: quick to judge
        cases.append({"channels": channels, "kernel_size": transposed_conv_geometry(factor)[0], "_factor": factor,
                      "_x": randn(rng, 1, channels, *size)})
    return cases


def _bilinear_judge(case: dict, weight):
    channels, factor, x = case["channels"], case["_factor"], case["_x"]
    kernel, stride, padding = transposed_conv_geometry(factor)
    label = f"channels={channels}, factor={factor} (kernel_size={kernel})"
    hint = _shape_hint(weight, torch.empty(channels, channels, kernel, kernel))
    if hint:
        return label, hint
    ours = F.conv_transpose2d(x, weight.float(), stride=stride, padding=padding)
    reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    b = factor // 2
    inner = (..., slice(b, -b), slice(b, -b))
    if _close(ours[inner], reference[inner]):
        return None
    if channels > 1 and weight[0, 1:].abs().sum() > 0:
        hint = ("channel c must only feed channel c: put the 2-D kernel on the diagonal weight[c, c] and zeros "
                "elsewhere.")
    elif abs(float(weight[0, 0].sum()) - factor ** 2) > 1e-3:
        hint = (f"the taps of one channel should sum to factor² = {factor ** 2} (each output pixel gets weights "
                "summing to 1): check the triangle 1 − |x − centre| / factor.")
    else:
        hint = ("the 2-D kernel is the outer product of the 1-D triangle with itself; for an even kernel the centre "
                "lies between two taps (factor − 0.5).")
    # the pictures: an upsampled map, bilinear (F.interpolate) against your kernel's transposed convolution
    return Failure(label + " (pictures: a map upsampled with F.interpolate, and with your kernel)", hint,
                   expected=reference[0, 0], received=ours[0, 0])


BILINEAR_KERNEL = Exercise(
    "bilinear_kernel", "bilinear_kernel", 2, _bilinear_cases,
    _tensor_call("bilinear_kernel", "channels", "kernel_size"),
    _bilinear_judge, 12,
    OffLimits(code=("seglab/layers.py:bilinear_kernel", "seglab/layers.py:BilinearUpsample.*",
                    "seglab/layers.py:TransposedConvUpsample.*"),
              ops=INTERPOLATION,
              names=("interpolate", "Upsample", "BilinearUpsample", "TransposedConvUpsample"),
              why="build the kernel from the 1-D triangle, without running an upsampling layer"))


def check_bilinear_kernel(fn, cases: int = 12, seed: int | None = None):
    """``fn(channels, kernel_size)``: a transposed convolution with this weight (stride f, padding
    (k − f)/2) must equal ``F.interpolate(..., mode="bilinear")`` away from the border."""
    return check(BILINEAR_KERNEL, fn, cases=cases, seed=seed)


# --- transposed convolution by zero insertion ----------------------------------------------------------------

def _transposed_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for index in range(n):
        while True:  # a case whose output is at least 1x1
            stride, k = rng.randint(1, 3), rng.randint(1, 4)
            padding = rng.randint(0, k - 1)
            output_padding = rng.randint(0, stride - 1)
            c_in, c_out, h, w = rng.randint(1, 3), rng.randint(1, 3), rng.randint(2, 6), rng.randint(2, 6)
            if index == 0:  # the case that tells every step apart: zeros, padding, output_padding, flip, swap
                stride, k = rng.randint(2, 3), 4  # k − 1 − p differs from p for any p
                padding, output_padding = rng.randint(1, 2), rng.randint(1, stride - 1)
                c_in, c_out = rng.sample(range(1, 4), 2)
                h, w = rng.sample(range(3, 7), 2)
            if (min(h, w) - 1) * stride - 2 * padding + k >= 1:
                break
        cases.append({"x": randn(rng, rng.randint(1, 2), c_in, h, w), "weight": randn(rng, c_in, c_out, k, k),
                      "stride": stride, "padding": padding, "output_padding": output_padding})
    return cases


def _zero_insertion_judge(case: dict, got):
    x, weight, s, p, op = (case[key] for key in ("x", "weight", "stride", "padding", "output_padding"))
    label = f"x {tuple(x.shape)}, weight {tuple(weight.shape)}, stride={s}, padding={p}, output_padding={op}"
    expected = F.conv_transpose2d(x, weight, stride=s, padding=p, output_padding=op)
    hint = _shape_hint(got, expected)
    if hint is None and _close(got, expected):
        return None
    if hint is None:
        unflipped = F.conv_transpose2d(x, weight.flip(-1, -2), stride=s, padding=p, output_padding=op)
        hint = ("flip the kernel in both spatial directions (weight.flip(-1, -2))." if _close(got, unflipped)
                else "insert stride − 1 zeros between pixels, pad k − 1 − p on each side (plus output_padding at "
                     "the bottom/right), then F.conv2d with the flipped kernel and in/out channels swapped "
                     "(weight.transpose(0, 1)).")
        return Failure(label, hint, "values", expected)
    if isinstance(got, torch.Tensor) and got.shape[-1] == expected.shape[-1] - op and op:
        hint += ": did you forget output_padding (extra rows/columns at the bottom/right)?"
    return Failure(label, hint, "output shape", list(expected.shape),
                   list(got.shape) if isinstance(got, torch.Tensor) else got)


TRANSPOSED_CONV_BY_ZERO_INSERTION = Exercise(
    "transposed_conv_by_zero_insertion", "transposed convolution = zero insertion + convolution", 3,
    _transposed_cases,
    _tensor_call("transposed_conv_by_zero_insertion", "x", "weight", "stride", "padding", "output_padding"),
    _zero_insertion_judge, 20,
    OffLimits(code=("seglab/layers.py:TransposedConvUpsample.*",),
              ops=TRANSPOSED_CONVOLUTION + CONVOLUTION_BACKWARD + FOLD,
              names=TRANSPOSED, why="insert zeros, pad and run an ordinary F.conv2d"),
    (("output shape", 1), ("values", 2)))


def check_transposed_conv_by_zero_insertion(fn, cases: int = 20, seed: int | None = None):
    """``fn(x, weight, stride, padding, output_padding)`` (zero insertion + ordinary convolution with
    the flipped kernel) against ``F.conv_transpose2d``."""
    return check(TRANSPOSED_CONV_BY_ZERO_INSERTION, fn, cases=cases, seed=seed)


# --- convolution matrix --------------------------------------------------------------------------------------

def _matrix_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for index in range(n):
        k, s = rng.randint(1, 3), rng.randint(1, 2)
        size = rng.randint(k, 6)
        if index == 0:  # a kernel that a flip or a transpose changes, with a stride that skips columns
            k, s = rng.randint(2, 3), 2
            size = rng.randint(k + 2, 6)
        o = (size - k) // s + 1
        cases.append({"kernel": randn(rng, k, k), "n": size, "stride": s, "_x": randn(rng, size, size),
                      "_y": randn(rng, o, o)})
    return cases


def _matrix_judge(case: dict, matrix):
    kernel, n, s, x, y = (case[key] for key in ("kernel", "n", "stride", "_x", "_y"))
    k = kernel.shape[0]
    o = (n - k) // s + 1
    label = f"kernel {k}x{k}, input {n}x{n}, stride {s}"
    hint = _shape_hint(matrix, torch.empty(o * o, n * n))
    if hint:
        return label, hint + " (one row per output pixel, one column per input pixel)"
    conv = F.conv2d(x[None, None], kernel[None, None], stride=s).flatten()
    if not _close(matrix.double() @ x.double().flatten(), conv):
        return label, ("row r of C holds the kernel's weights at the columns of the input pixels that output pixel r "
                       "reads (no flip: PyTorch's conv2d is a cross-correlation).")
    size = s * (o - 1) + k
    transposed = F.conv_transpose2d(y[None, None], kernel[None, None], stride=s, output_padding=n - size).flatten()
    if _close(matrix.double().T @ y.double().flatten(), transposed):
        return None
    return label, ("C.T @ y should equal F.conv_transpose2d(y): check the column order (row-major, index = row * n "
                   "+ column).")


CONVOLUTION_MATRIX = Exercise(
    "convolution_matrix", "convolution matrix C and its transpose", 3, _matrix_cases,
    _tensor_call("convolution_matrix", "kernel", "n", "stride"), _matrix_judge, 12,
    OffLimits(ops=TRANSPOSED_CONVOLUTION + FOLD, names=TRANSPOSED, why="place the kernel's weights in C by hand"))


def check_convolution_matrix(fn, cases: int = 12, seed: int | None = None):
    """``fn(kernel (k, k), n, stride)``: the matrix C with ``conv(x).flatten() == C @ x.flatten()`` for
    an ``n x n`` input (no padding); then ``C.T`` must be the transposed convolution."""
    return check(CONVOLUTION_MATRIX, fn, cases=cases, seed=seed)


# --- transposed convolution by autograd ----------------------------------------------------------------------

def _autograd_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for index in range(n):
        s, k = rng.randint(1, 3), rng.randint(1, 4)
        p = rng.randint(0, k - 1)
        size = rng.randint(k + 1, 9)
        while index == 0 and (s == 1 or p == 0 or (size + 2 * p - k) % s == 0):
            # stride, padding, and an input size that the output size alone does not give back
            s, k = rng.randint(2, 3), rng.randint(2, 4)
            p, size = rng.randint(1, k - 1), rng.randint(k + 1, 9)
        c_in, c_out = rng.randint(1, 3), rng.randint(1, 3)
        o = (size + 2 * p - k) // s + 1
        cases.append({"y": randn(rng, 1, c_out, o, o), "weight": randn(rng, c_out, c_in, k, k), "stride": s,
                      "padding": p, "input_size": size})
    return cases


def _autograd_judge(case: dict, got):
    y, weight, s, p, n = (case[key] for key in ("y", "weight", "stride", "padding", "input_size"))
    k = weight.shape[-1]
    size = (y.shape[-1] - 1) * s - 2 * p + k
    expected = F.conv_transpose2d(y, weight, stride=s, padding=p, output_padding=n - size)
    label = f"y {tuple(y.shape)}, weight {tuple(weight.shape)}, stride={s}, padding={p}, input {n}x{n}"
    hint = _shape_hint(got, expected)
    if hint is None and _close(got, expected):
        return None
    return Failure(label, hint or ("make x = torch.zeros(1, C_in, n, n, requires_grad=True), compute (F.conv2d(x, "
                                   "weight, stride, padding) * y).sum() and return its gradient with respect to x."),
                   expected=expected)


TRANSPOSED_CONV_BY_AUTOGRAD = Exercise(
    "transposed_conv_by_autograd", "transposed convolution = gradient of convolution", 2, _autograd_cases,
    _tensor_call("transposed_conv_by_autograd", "y", "weight", "stride", "padding", "input_size"), _autograd_judge, 15,
    OffLimits(ops=TRANSPOSED_CONVOLUTION + FOLD, names=TRANSPOSED, why="differentiate an ordinary F.conv2d"))


def check_transposed_conv_by_autograd(fn, cases: int = 15, seed: int | None = None):
    """``fn(y, weight, stride, padding, input_size)``: the gradient of ``<conv2d(x), y>`` with respect to
    an ``input_size`` input ``x`` is the transposed convolution of ``y``."""
    return check(TRANSPOSED_CONV_BY_AUTOGRAD, fn, cases=cases, seed=seed)


EXERCISES = (BILINEAR_KERNEL, TRANSPOSED_CONV_BY_ZERO_INSERTION, CONVOLUTION_MATRIX, TRANSPOSED_CONV_BY_AUTOGRAD)
