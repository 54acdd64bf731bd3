"""Checks for notebook 02, upsampling: bilinear upsampling versus transposed convolution.

Oracles: ``F.interpolate`` for bilinear upsampling, ``F.conv_transpose2d`` for every view of the
transposed convolution, ``F.conv2d`` for the convolution matrix.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from seglab.checks import Checker, require, run_check
from seglab.layers import transposed_conv_geometry

__all__ = ["check_bilinear_kernel", "check_convolution_matrix", "check_transposed_conv_by_autograd",
           "check_transposed_conv_by_zero_insertion"]

POINTS = {"bilinear_kernel": 2, "transposed_conv_by_zero_insertion": 3, "convolution_matrix": 3,
          "transposed_conv_by_autograd": 2}


def _close(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-4,
                                                                                  rtol=1e-4)


def _shape_hint(got, expected) -> str | None:
    if not isinstance(got, torch.Tensor):
        return f"return a torch.Tensor, got {type(got).__name__}"
    if got.shape != expected.shape:
        return f"the shape should be {tuple(expected.shape)}, got {tuple(got.shape)}"
    return None


def check_bilinear_kernel(fn, cases: int = 12, seed: int | None = None):
    """``fn(channels, kernel_size)``: a transposed convolution with this weight (stride f, padding
    (k − f)/2) must equal ``F.interpolate(..., mode="bilinear")`` away from the border."""

    def body(c: Checker, rng: random.Random):
        require(callable(fn), "pass your function bilinear_kernel itself")
        for _ in range(cases):
            factor, channels = rng.choice([2, 2, 3, 4, 8]), rng.randint(1, 4)
            kernel, stride, padding = transposed_conv_geometry(factor)
            case = f"channels={channels}, factor={factor} (kernel_size={kernel})"
            weight = fn(channels, kernel)
            expected_shape = torch.empty(channels, channels, kernel, kernel)
            hint = _shape_hint(weight, expected_shape)
            if hint:
                c.fail(case, hint)
                continue
            x = torch.randn(1, channels, 6, 7)
            ours = F.conv_transpose2d(x, weight.float(), stride=stride, padding=padding)
            reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
            b = factor // 2
            inner = (..., slice(b, -b), slice(b, -b))
            if _close(ours[inner], reference[inner]):
                c.ok()
            elif channels > 1 and weight[0, 1:].abs().sum() > 0:
                c.fail(case, "channel c must only feed channel c: put the 2-D kernel on the diagonal weight[c, c] "
                             "and zeros elsewhere.")
            elif abs(float(weight[0, 0].sum()) - factor ** 2) > 1e-3:
                c.fail(case, f"the taps of one channel should sum to factor² = {factor ** 2} (each output pixel "
                             "gets weights summing to 1): check the triangle 1 − |x − centre| / factor.")
            else:
                c.fail(case, "the 2-D kernel is the outer product of the 1-D triangle with itself; for an even "
                             "kernel the centre lies between two taps (factor − 0.5).")

    return run_check("bilinear_kernel", POINTS["bilinear_kernel"], "bilinear_kernel", body, seed)


def _random_transposed_case(rng: random.Random):
    while True:  # a case whose output is at least 1x1
        stride, k = rng.randint(1, 3), rng.randint(1, 4)
        padding = rng.randint(0, k - 1)
        output_padding = rng.randint(0, stride - 1)
        c_in, c_out, h, w = rng.randint(1, 3), rng.randint(1, 3), rng.randint(2, 6), rng.randint(2, 6)
        if (min(h, w) - 1) * stride - 2 * padding + k >= 1:
            break
    x = torch.randn(rng.randint(1, 2), c_in, h, w)
    weight = torch.randn(c_in, c_out, k, k)
    return x, weight, stride, padding, output_padding


def check_transposed_conv_by_zero_insertion(fn, cases: int = 20, seed: int | None = None):
    """``fn(x, weight, stride, padding, output_padding)`` (zero insertion + ordinary convolution with
    the flipped kernel) against ``F.conv_transpose2d``."""

    def body(c: Checker, rng: random.Random):
        require(callable(fn), "pass your function transposed_conv_by_zero_insertion itself")
        for _ in range(cases):
            x, weight, s, p, op = _random_transposed_case(rng)
            case = f"x {tuple(x.shape)}, weight {tuple(weight.shape)}, stride={s}, padding={p}, output_padding={op}"
            expected = F.conv_transpose2d(x, weight, stride=s, padding=p, output_padding=op)
            got = fn(x.clone(), weight.clone(), s, p, op)
            hint = _shape_hint(got, expected)
            if hint is None and _close(got, expected):
                c.ok()
                continue
            if hint is None:
                unflipped = F.conv_transpose2d(x, weight.flip(-1, -2), stride=s, padding=p, output_padding=op)
                hint = ("flip the kernel in both spatial directions (weight.flip(-1, -2))" if _close(got, unflipped)
                        else "insert stride − 1 zeros between pixels, pad k − 1 − p on each side (plus "
                             "output_padding at the bottom/right), then F.conv2d with the flipped kernel and "
                             "in/out channels swapped (weight.transpose(0, 1)).")
            elif isinstance(got, torch.Tensor) and got.shape[-1] == expected.shape[-1] - op and op:
                hint += ": did you forget output_padding (extra rows/columns at the bottom/right)?"
            c.fail(case, hint)

    return run_check("transposed_conv_by_zero_insertion", POINTS["transposed_conv_by_zero_insertion"],
                     "transposed convolution = zero insertion + convolution", body, seed)


def check_convolution_matrix(fn, cases: int = 12, seed: int | None = None):
    """``fn(kernel (k, k), n, stride)``: the matrix C with ``conv(x).flatten() == C @ x.flatten()`` for
    an ``n x n`` input (no padding); then ``C.T`` must be the transposed convolution."""

    def body(c: Checker, rng: random.Random):
        require(callable(fn), "pass your function convolution_matrix itself")
        for _ in range(cases):
            k, s = rng.randint(1, 3), rng.randint(1, 2)
            n = rng.randint(k, 6)
            o = (n - k) // s + 1
            kernel, x = torch.randn(k, k), torch.randn(n, n)
            case = f"kernel {k}x{k}, input {n}x{n}, stride {s}"
            matrix = fn(kernel.clone(), n, s)
            expected_shape = torch.empty(o * o, n * n)
            hint = _shape_hint(matrix, expected_shape)
            if hint:
                c.fail(case, hint + " (one row per output pixel, one column per input pixel)")
                continue
            conv = F.conv2d(x[None, None], kernel[None, None], stride=s).flatten()
            if not _close(matrix.float() @ x.flatten(), conv):
                c.fail(case, "row r of C holds the kernel's weights at the columns of the input pixels that "
                             "output pixel r reads (no flip: PyTorch's conv2d is a cross-correlation).")
                continue
            y = torch.randn(o, o)
            size = s * (o - 1) + k
            transposed = F.conv_transpose2d(y[None, None], kernel[None, None], stride=s,
                                            output_padding=n - size).flatten()
            if _close(matrix.float().T @ y.flatten(), transposed):
                c.ok()
            else:
                c.fail(case, "C.T @ y should equal F.conv_transpose2d(y): check the column order (row-major, "
                             "index = row * n + column).")

    return run_check("convolution_matrix", POINTS["convolution_matrix"], "convolution matrix C and its transpose",
                     body, seed)


def check_transposed_conv_by_autograd(fn, cases: int = 15, seed: int | None = None):
    """``fn(y, weight, stride, padding, input_size)``: the gradient of ``<conv2d(x), y>`` with respect to
    an ``input_size`` input ``x`` is the transposed convolution of ``y``."""

    def body(c: Checker, rng: random.Random):
        require(callable(fn), "pass your function transposed_conv_by_autograd itself")
        for _ in range(cases):
            s, k = rng.randint(1, 3), rng.randint(1, 4)
            p = rng.randint(0, k - 1)
            n = rng.randint(k + 1, 9)
            c_in, c_out = rng.randint(1, 3), rng.randint(1, 3)
            weight = torch.randn(c_out, c_in, k, k)  # a convolution's weight: (C_out, C_in, k, k)
            o = (n + 2 * p - k) // s + 1
            y = torch.randn(1, c_out, o, o)
            size = (o - 1) * s - 2 * p + k
            expected = F.conv_transpose2d(y, weight, stride=s, padding=p, output_padding=n - size)
            case = f"y {tuple(y.shape)}, weight {tuple(weight.shape)}, stride={s}, padding={p}, input {n}x{n}"
            got = fn(y.clone(), weight.clone(), s, p, n)
            hint = _shape_hint(got, expected)
            if hint is None and _close(got, expected):
                c.ok()
            else:
                c.fail(case, hint or "make x = torch.zeros(1, C_in, n, n, requires_grad=True), compute "
                                     "(F.conv2d(x, weight, stride, padding) * y).sum() and return its gradient "
                                     "with respect to x.")

    return run_check("transposed_conv_by_autograd", POINTS["transposed_conv_by_autograd"],
                     "transposed convolution = gradient of convolution", body, seed)
