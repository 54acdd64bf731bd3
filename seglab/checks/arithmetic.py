"""Checks for notebook 01, convolution arithmetic. PyTorch's layers are the oracle: the output
size is whatever ``F.conv2d``, ``F.conv_transpose2d`` or ``F.max_pool2d`` actually produce (on the
``meta`` device, which computes the shape by PyTorch's own rules and allocates nothing)."""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from seglab.checks import Exercise, OffLimits, _StopCheck, check, require
from seglab.checks.borrowed import ALL_OPS

__all__ = ["check_conv_output_size", "check_pool_output_size", "check_receptive_field",
           "check_transposed_conv_output_size"]



def _torch_size(run) -> int | None:
    try:
        with torch.no_grad():
            return int(run().shape[-2])
    except RuntimeError:
        return None


def _column(size: int, device: str) -> torch.Tensor:
    """A (1, 1, size, 1) tensor: one axis of a 2-D layer. On ``meta`` it holds no data, so any size is free."""
    return torch.zeros(1, 1, size, 1, device=device)


def _conv(i, k, s, p, d, device="meta"):
    return _torch_size(lambda: F.conv2d(_column(i, device), _column(k, device), stride=(s, 1), padding=(p, 0),
                                        dilation=(d, 1)))


def _pool(i, k, stride, p, ceil_mode, device="meta"):
    return _torch_size(lambda: F.max_pool2d(_column(i, device), (k, 1), stride=(stride, 1), padding=(p, 0),
                                            ceil_mode=ceil_mode))


def _conv_transposed(i, k, s, p, d, op, device="meta"):
    return _torch_size(lambda: F.conv_transpose2d(_column(i, device), _column(k, device), stride=(s, 1),
                                                  padding=(p, 0), output_padding=(op, 0), dilation=(d, 1)))


# --- cases from a space too large to tabulate ----------------------------------------------------------------
# The watch sees only what runs while the answer is called: a table of every case the check can draw, filled in an
# earlier cell by the very layer the exercise forbids, would pass it. So every second random case comes from a
# space far too large for such a table (input sizes up to 10^6, kernel sizes, strides, paddings and dilations up
# to a few hundred: some 10^15 cases), log-uniform so that small values stay as likely as large ones. The oracle is
# still PyTorch, on the meta device (above). The covering cases stay small, so a hint usually shows one of them.

LARGE_SIZE = 10 ** 6  # the largest input size
LARGE_PARAMETER = 300  # the largest kernel size, stride, padding and dilation


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high] whose logarithm is uniform (for [1, 10^6]: as many below 10 as between 10^5 and
    10^6)."""
    return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))


def _large_parameter(rng: random.Random, low: int) -> int:
    return log_uniform(rng, low + 1, LARGE_PARAMETER + 1) - 1  # low (0 or 1) up to LARGE_PARAMETER


def _as_int(value, case: str) -> int:
    require(isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) == int(value),
            f"return a whole number (int), got {value!r} for {case}: use // for floor division")
    return int(value)


SIZE_RULES = OffLimits(
    code=("seglab/arithmetic.py:conv_output_size", "seglab/arithmetic.py:pool_output_size",
          "seglab/arithmetic.py:transposed_conv_output_size", "seglab/arithmetic.py:receptive_field",
          "seglab/arithmetic.py:receptive_fields", "seglab/arithmetic.py:ReceptiveField.*"),
    ops=ALL_OPS,  # a size formula runs no torch operator at all
    names=("arithmetic", "ReceptiveField", "receptive_fields"),
    why="compute the size with the formula, without running or importing a layer that knows it")


# --- the public check's cases: every typical mistake meets a case that shows it ----------------------------

def _covering_cases(rng: random.Random, n: int, draw, judge, keys: tuple[str, ...], mistakes, first=(),
                    large=None) -> list[dict]:
    """``n`` cases: ``first``, then for each typical mistake one case that it gets wrong (and whose hint names
    it), then random ones. So the student's check (and every hidden one) tells each mistake apart for every
    seed: a wrong answer never passes by chance.

    ``draw(rng)`` is one random case (or ``None``); ``mistakes`` are ``(answer, hint, condition)``: ``answer``
    takes the case's ``keys`` as a student's function does, the case must meet ``condition`` and the judge's
    hint for the wrong answer must contain ``hint`` (``""``: any hint). ``large(rng)``, when given, draws every
    second random case, from a space too large to tabulate (the covering cases stay small and readable).
    """
    cases = list(first)
    for answer, hint, condition in mistakes:
        for _ in range(20_000):
            case = draw(rng)
            if case is None or not condition(case):
                continue
            wrong = answer(*(case[key] for key in keys))
            try:
                failure = judge(case, list(wrong) if isinstance(wrong, tuple) else wrong)
            except _StopCheck:  # e.g. not a whole number: wrong all the same
                failure = ("", "")
            if failure and hint in failure[1]:
                cases.append(case)
                break
        else:  # pragma: no cover - the tests draw these cases for many seeds
            raise RuntimeError(f"no case tells the mistake {answer} apart")
    while len(cases) < n:
        case = (large if large is not None and len(cases) % 2 else draw)(rng)
        if case is not None:
            cases.append(case)
    return cases[:n]


def _any(case: dict) -> bool:
    return True


# --- convolution output size ---------------------------------------------------------------------------------

def _conv_case(i, k, s, p, d) -> dict | None:
    truth = _conv(i, k, s, p, d)
    return None if truth is None else {"i": i, "k": k, "s": s, "p": p, "d": d, "_truth": truth}


def _conv_draw(rng: random.Random) -> dict | None:
    return _conv_case(rng.randint(1, 40), rng.randint(1, 7), rng.randint(1, 4), rng.randint(0, 3), rng.randint(1, 3))


def _conv_draw_large(rng: random.Random) -> dict | None:
    return _conv_case(log_uniform(rng, 1, LARGE_SIZE), _large_parameter(rng, 1), _large_parameter(rng, 1),
                      _large_parameter(rng, 0), _large_parameter(rng, 1))


def _span(k, d):
    return d * (k - 1) + 1


_CONV_MISTAKES = (  # answer(i, k, s, p, d), the hint it gets, a condition on the case
    (lambda i, k, s, p, d: (i + 2 * p - k) // s + 1, "dilation", _any),
    (lambda i, k, s, p, d: (i + p - _span(k, d)) // s + 1, "each side", _any),
    (lambda i, k, s, p, d: (i - _span(k, d)) // s + 1, "", _any),  # no padding
    (lambda i, k, s, p, d: -(-(i + 2 * p - _span(k, d)) // s) + 1, "", _any),  # ceil (or true division)
    (lambda i, k, s, p, d: (i + 2 * p - _span(k, d)) // s, "", _any),  # the first window not counted
    (lambda i, k, s, p, d: (i + 2 * p - d * (k - 1)) // s + 1, "", _any),  # span d·(k−1)
    (lambda i, k, s, p, d: (i + 2 * p - d * k) // s + 1, "", _any),  # span d·k
    (lambda i, k, s, p, d: i + 2 * p - _span(k, d) + 1, "", _any),  # the stride ignored
)


def _conv_cases(rng: random.Random, n: int) -> list[dict]:
    return _covering_cases(rng, n, _conv_draw, _conv_judge, ("i", "k", "s", "p", "d"), _CONV_MISTAKES,
                           large=_conv_draw_large)


def _conv_call(case: dict, fn):
    require(callable(fn), "pass your function conv_output_size itself")
    return fn(case["i"], case["k"], case["s"], case["p"], case["d"])


def _conv_judge(case: dict, got):
    i, k, s, p, d, truth = (case[key] for key in ("i", "k", "s", "p", "d", "_truth"))
    label = f"i={i}, k={k}, s={s}, p={p}, d={d}"
    got = _as_int(got, label)
    if got == truth:
        return None
    span = d * (k - 1) + 1
    steps = i + 2 * p - span  # pixels the window can move over on the padded input
    if got == (i + 2 * p - k) // s + 1 and d > 1:  # each exact mistake first, so that the hint names it
        hint = "did you forget the dilation? A dilated kernel spans d·(k−1)+1 pixels."
    elif got == steps // s:
        hint = "count the first window too: the positions are one more than the steps between them (+1)."
    elif got == -(-steps // s) + 1:
        hint = "round the number of steps down (//): a last window that does not fit in the padded input is not there."
    elif got == (i + p - span) // s + 1:
        hint = "padding p is added on each side: the padded input has i + 2p pixels."
    elif got in (truth - 1, truth + 1):
        hint = "off by one: count the first window (+1) and round down (//) the number of further steps."
    else:
        hint = ("count the positions of a window that spans d·(k−1)+1 pixels on the padded input (i + 2p pixels), "
                "moving s pixels at a time.")
    return f"{label}: you said {got}, PyTorch gives {truth}", hint


CONV_OUTPUT_SIZE = Exercise("conv_output_size", "conv_output_size", 2, _conv_cases, _conv_call, _conv_judge, 30,
                            SIZE_RULES)


def check_conv_output_size(fn, cases: int = 30, seed: int | None = None):
    """``fn(i, k, s=1, p=0, d=1)`` against ``F.conv2d``."""
    return check(CONV_OUTPUT_SIZE, fn, cases=cases, seed=seed)


# --- pooling output size -------------------------------------------------------------------------------------

def _pool_case(rng: random.Random, i, k, s) -> dict | None:
    """A case with these sizes, a random padding (PyTorch allows at most k // 2), ceil_mode, and s given or not."""
    p, ceil_mode, stride_given = rng.randint(0, k // 2), rng.random() < 0.5, rng.random() < 0.7
    truth = _pool(i, k, s if stride_given else k, p, ceil_mode)
    if truth is None:
        return None
    return {"i": i, "k": k, "s": s if stride_given else None, "p": p, "ceil_mode": ceil_mode, "_truth": truth}


def _pool_draw(rng: random.Random) -> dict | None:
    i, k = rng.randint(2, 40), rng.randint(2, 5)
    return _pool_case(rng, i, k, rng.randint(1, 4))


def _pool_draw_large(rng: random.Random) -> dict | None:
    return _pool_case(rng, log_uniform(rng, 2, LARGE_SIZE), _large_parameter(rng, 1), _large_parameter(rng, 1))


def _pool_rule(i, k, s, p, ceil_mode, *, padding=2, end="i+p", rule=">=", floor=False, none_stride=None):
    """A pooling size as a student may compute it: ``padding`` sides, the last-window rule against ``end``
    with ``rule`` (``""``: none), ``floor`` always, ``none_stride`` for ``s=None`` (``None``: k)."""
    s = (k if none_stride is None else none_stride) if s is None else s
    span = i + padding * p - k
    if not ceil_mode or floor:
        return span // s + 1
    out = -(-span // s) + 1
    last = {"i+p": i + p, "i": i, "i+2p": i + 2 * p}[end]
    if (rule == ">=" and (out - 1) * s >= last) or (rule == ">" and (out - 1) * s > last):
        out -= 1
    return out


_POOL_MISTAKES = (  # the first: the case a hint for the last-window rule shows has padding
    (lambda *c: _pool_rule(*c, rule=""), "last window", lambda case: case["p"] > 0),
    (lambda *c: _pool_rule(*c, floor=True), "round up", _any),
    (lambda *c: _pool_rule(*c, end="i"), "", _any),
    (lambda *c: _pool_rule(*c, end="i+2p"), "", _any),
    (lambda *c: _pool_rule(*c, rule=">"), "", _any),
    (lambda i, k, s, p, ceil_mode: (i + 2 * p - k) // (k if s is None else s) + 1 + bool(ceil_mode), "", _any),
    (lambda *c: _pool_rule(*c, padding=1), "", _any),
    (lambda *c: _pool_rule(*c, padding=0), "", _any),
    (lambda *c: _pool_rule(*c, none_stride=1), "kernel size", _any),
)


def _pool_cases(rng: random.Random, n: int) -> list[dict]:
    return _covering_cases(rng, n, _pool_draw, _pool_judge, ("i", "k", "s", "p", "ceil_mode"), _POOL_MISTAKES,
                           large=_pool_draw_large)


def _pool_call(case: dict, fn):
    require(callable(fn), "pass your function pool_output_size itself")
    return fn(case["i"], case["k"], case["s"], case["p"], case["ceil_mode"])


def _pool_judge(case: dict, got):
    i, k, s, p, ceil_mode, truth = (case[key] for key in ("i", "k", "s", "p", "ceil_mode", "_truth"))
    label = f"i={i}, k={k}, s={s}, p={p}, ceil_mode={ceil_mode}"
    got = _as_int(got, label)
    if got == truth:
        return None
    stride = k if s is None else s
    if s is None and got == (i + 2 * p - k) + 1:
        hint = "when s is None the stride is the kernel size (non-overlapping windows)."
    elif ceil_mode and p > 0 and got == _pool_rule(i, k, s, p, ceil_mode, end="i"):
        hint = ("with ceil_mode=True a last window is dropped only when it would start at i + p or later, counting "
                "from the left edge of the padding (in the right padding): one that starts on the input's last "
                "pixels, at i or later, counts.")
    elif ceil_mode and got == (i + 2 * p - k) // stride + 1:
        hint = "with ceil_mode=True round up, not down (a last, partial window counts)."
    elif ceil_mode and got == truth + 1:
        hint = ("with ceil_mode=True the last window must start inside the input or the left padding: one that "
                "would start in the right padding (at i + p or later, counting from the left edge of the padding) "
                "is dropped.")
    else:
        hint = ("count the window positions on the padded input (i + 2p pixels) in steps of s: round down, or up "
                "with ceil_mode (then the last-window rule).")
    return f"{label}: you said {got}, PyTorch gives {truth}", hint


POOL_OUTPUT_SIZE = Exercise("pool_output_size", "pool_output_size", 2, _pool_cases, _pool_call, _pool_judge, 30,
                            SIZE_RULES)


def check_pool_output_size(fn, cases: int = 30, seed: int | None = None):
    """``fn(i, k, s=None, p=0, ceil_mode=False)`` against ``F.max_pool2d``."""
    return check(POOL_OUTPUT_SIZE, fn, cases=cases, seed=seed)


# --- transposed convolution output size ---------------------------------------------------------------------

def _transposed_case(rng: random.Random, i, k, s, p, d) -> dict | None:
    """A case with these sizes and a random output_padding (PyTorch allows less than max(s, d))."""
    op = rng.randint(0, max(s, d) - 1)
    truth = _conv_transposed(i, k, s, p, d, op)
    if truth is None or truth < 1:
        return None
    return {"i": i, "k": k, "s": s, "p": p, "d": d, "output_padding": op, "_truth": truth}


def _transposed_draw(rng: random.Random) -> dict | None:
    i, k, s = rng.randint(1, 20), rng.randint(1, 6), rng.randint(1, 4)
    return _transposed_case(rng, i, k, s, rng.randint(0, 2), rng.randint(1, 2))


def _transposed_draw_large(rng: random.Random) -> dict | None:
    return _transposed_case(rng, log_uniform(rng, 1, LARGE_SIZE), _large_parameter(rng, 1), _large_parameter(rng, 1),
                            _large_parameter(rng, 0), _large_parameter(rng, 1))


def _transposed(i, k, s, p, d, op):
    return (i - 1) * s - 2 * p + d * (k - 1) + op + 1


_TRANSPOSED_MISTAKES = (  # answer(i, k, s, p, d, output_padding), the hint it gets, a condition on the case
    (lambda i, k, s, p, d, op: _transposed(i, k, s, p, d, 0), "output_padding", _any),
    (lambda i, k, s, p, d, op: _transposed(i, k, s, p, 1, op), "dilation", _any),
    (lambda i, k, s, p, d, op: _transposed(i, k, s, p, d, op) + p, "subtract 2p", _any),
    (lambda i, k, s, p, d, op: _transposed(i, k, s, p, d, op) + 4 * p, "subtract 2p", _any),  # + 2p
    (lambda i, k, s, p, d, op: _transposed(i, k, s, p, d, op) + s, "(i − 1)·s", _any),  # i·s
    (lambda i, k, s, p, d, op: _transposed(i, k, 1, p, d, op), "(i − 1)·s", _any),  # the stride ignored
    (lambda i, k, s, p, d, op: (i - 1) * s - 2 * p + s * d * (k - 1) + op + 1, "", _any),
    (lambda i, k, s, p, d, op: _transposed(i, k, s, p, d, op) - 1, "", _any),  # the + 1 forgotten
    (lambda i, k, s, p, d, op: (i + 2 * p - d * (k - 1) - 1) // s + 1, "", _any),  # the convolution's formula
)


def _transposed_cases(rng: random.Random, n: int) -> list[dict]:
    return _covering_cases(rng, n, _transposed_draw, _transposed_judge, ("i", "k", "s", "p", "d", "output_padding"),
                           _TRANSPOSED_MISTAKES, large=_transposed_draw_large)


def _transposed_call(case: dict, fn):
    require(callable(fn), "pass your function transposed_conv_output_size itself")
    arguments = (case["i"], case["k"], case["s"], case["p"], case["d"], case["output_padding"])
    names = getattr(fn, "__globals__", None)
    if not isinstance(names, dict) or "conv_output_size" not in names:
        return fn(*arguments)
    # The exercise suggests reusing exercise 1: grade this one on its own, with a correct conv_output_size
    # in place of the student's (a mistake there already costs exercise 1's points). The stand-in works only
    # during this call, so it cannot be kept to answer exercise 1.
    active = [True]

    def conv_output_size(i, k, s=1, p=0, d=1):
        require(active[0], "exercise 3's check lent a conv_output_size for its own call only: write exercise 1 "
                           "yourself")
        size = (i + 2 * p - d * (k - 1) - 1) // s + 1
        if size < 1:
            raise ValueError(f"no output: the kernel spans {d * (k - 1) + 1} pixels, the padded input {i + 2 * p}")
        return size

    own, names["conv_output_size"] = names["conv_output_size"], conv_output_size
    try:
        return fn(*arguments)
    finally:
        active[0] = False
        names["conv_output_size"] = own


def _transposed_judge(case: dict, got):
    i, k, s, p, d, op, truth = (case[key] for key in ("i", "k", "s", "p", "d", "output_padding", "_truth"))
    label = f"i={i}, k={k}, s={s}, p={p}, d={d}, output_padding={op}"
    got = _as_int(got, label)
    if got == truth:
        return None
    if got == (i - 1) * s - 2 * p + k + op and d > 1:  # each exact mistake first, so that the hint names it
        hint = "did you forget the dilation? The kernel spans d·(k−1)+1 pixels."
    elif got == truth - op and op > 0:
        hint = "off by one: did you forget output_padding? It adds rows on one side."
    elif s > 1 and got == truth + s:
        hint = "the stride spreads the i input pixels s apart, with i − 1 strides between them: (i − 1)·s."
    elif p > 0 and got in (truth + p, truth + 4 * p):
        hint = "the padding p is removed from each side: subtract 2p."
    elif s > 1 and got in (truth + s, truth - (i - 1) * (s - 1)):
        hint = "the stride spreads the i input pixels s apart, with i − 1 strides between them: (i − 1)·s."
    else:
        hint = ("follow the exercise's hint: stretch the input to (i − 1)·s + 1 pixels, pad both sides as a transposed "
                "convolution does (d·(k−1) − p each), add output_padding, then apply exercise 1 with stride 1.")
    return f"{label}: you said {got}, PyTorch gives {truth}", hint


TRANSPOSED_CONV_OUTPUT_SIZE = Exercise("transposed_conv_output_size", "transposed_conv_output_size", 2,
                                       _transposed_cases, _transposed_call, _transposed_judge, 30, SIZE_RULES)


def check_transposed_conv_output_size(fn, cases: int = 30, seed: int | None = None):
    """``fn(i, k, s=1, p=0, d=1, output_padding=0)`` against ``F.conv_transpose2d``."""
    return check(TRANSPOSED_CONV_OUTPUT_SIZE, fn, cases=cases, seed=seed)


def random_stack(rng: random.Random, max_layers: int = 6) -> list[tuple]:
    """``[("conv" | "pool", k, s, p, d), ...]``: random convolutions (dilated, strided, padded no more
    than "same") and poolings, for receptive-field cases."""
    stack = []
    for _ in range(rng.randint(1, max_layers)):
        if rng.random() < 0.7:
            k, d = rng.randint(1, 5), rng.randint(1, 3)
            stack.append(("conv", k, rng.randint(1, 2), rng.randint(0, d * (k - 1) // 2), d))
        else:
            k = rng.randint(2, 3)
            stack.append(("pool", k, rng.randint(1, k), 0, 1))
    return stack


def _footprint(layers) -> tuple[int, float]:
    """Receptive-field size of an output pixel away from the border, measured with autograd on a stack
    of all-ones convolutions and average poolings (the gradient is nonzero exactly where it sees)."""
    modules = []
    for kind, k, s, p, d in layers:
        if kind == "conv":
            conv = torch.nn.Conv2d(1, 1, (k, 1), stride=(s, 1), padding=(p, 0), dilation=(d, 1), bias=False)
            torch.nn.init.ones_(conv.weight)
            modules.append(conv)
        else:
            modules.append(torch.nn.AvgPool2d((k, 1), stride=(s, 1)))
    net = torch.nn.Sequential(*modules)
    jump = math.prod(s for _, _, s, _, _ in layers)
    size = 1 + sum((d * (k - 1)) * math.prod(s2 for _, _, s2, _, _ in layers[:n]) for n, (_, k, _, _, d)
                   in enumerate(layers))
    length = int(4 * size + 8 * jump + 16)
    x = torch.zeros(1, 1, length, 1, requires_grad=True)
    out = net(x)
    out[0, 0, out.shape[2] // 2, 0].backward()
    touched = (x.grad[0, 0, :, 0] != 0).nonzero().flatten()
    return int(touched[-1] - touched[0] + 1), jump


# --- receptive field ----------------------------------------------------------------------------------------

def _receptive_draw(rng: random.Random) -> dict:
    """A random stack with its size and jump by the formula (the cases kept are measured: :func:`_measured`).

    Its space is already too large to tabulate: 91 kinds of layer (:func:`random_stack`), up to six of them,
    some 5·10^11 stacks."""
    stack = random_stack(rng)
    layers = [[k, s, p, d] for _, k, s, p, d in stack]
    size, jump = _receptive_formula(layers)
    return {"layers": layers, "_size": size, "_jump": jump, "_stack": stack}


def _receptive_formula(layers, *, own_stride=False, no_jump=False, dilation=True, after=False, extent=0,
                       padding=0, added=False) -> tuple[int, int]:
    """Size and jump by the rule (``size += d·(k−1)·jump``, then ``jump *= s``), or with a typical mistake."""
    size, jump = 1, 1
    for k, s, p, d in layers:
        if after:
            jump *= s
        span = (d if dilation else 1) * (k - 1) + extent * d + padding * p
        size += span * (s if own_stride else 1 if no_jump else jump)
        if not after:
            jump = jump + s - 1 if added else jump * s
    return size, jump


_RECEPTIVE_MISTAKES = (  # answer(layers), the hint it gets, a condition on the case
    (lambda layers: _receptive_formula(layers, own_stride=True), "*input*", _any),
    (lambda layers: _receptive_formula(layers, no_jump=True), "", _any),
    (lambda layers: (_receptive_formula(layers, no_jump=True)[0], 1), "product of all strides", _any),
    (lambda layers: _receptive_formula(layers, dilation=False), "dilation", _any),
    (lambda layers: _receptive_formula(layers, after=True), "before", _any),
    (lambda layers: _receptive_formula(layers, extent=1), "", _any),  # d·k
    (lambda layers: _receptive_formula(layers, padding=2), "padding", _any),
    (lambda layers: _receptive_formula(layers, added=True), "product of all strides", _any),
)


def _measured(case: dict) -> dict:
    size, jump = _footprint(case["_stack"])
    return {"layers": case["layers"], "_size": size, "_jump": jump}


def _receptive_cases(rng: random.Random, n: int) -> list[dict]:
    vgg = _receptive_formula([[3, 1, 1, 1]] * 2 + [[2, 2, 0, 1]])  # a VGG block first
    first = [{"layers": [[3, 1, 1, 1], [3, 1, 1, 1], [2, 2, 0, 1]], "_size": vgg[0], "_jump": vgg[1],
              "_stack": [("conv", 3, 1, 1, 1)] * 2 + [("pool", 2, 2, 0, 1)]}]
    cases = _covering_cases(rng, n, _receptive_draw, _receptive_judge, ("layers",), _RECEPTIVE_MISTAKES, first)
    return [_measured(case) for case in cases]  # the size measured with autograd, as before


def _receptive_call(case: dict, fn):
    require(callable(fn), "pass your function receptive_field itself")
    return fn([tuple(layer) for layer in case["layers"]])


def _receptive_judge(case: dict, answer):
    layers, size, jump = [tuple(layer) for layer in case["layers"]], case["_size"], case["_jump"]
    label = f"layers={layers}"
    require(isinstance(answer, list) and len(answer) == 2, f"return a pair (size, jump), got {answer!r} for {label}")
    got_size, got_jump = answer
    if (got_size, got_jump) == (size, jump):
        return None
    if got_jump != jump:
        hint = "the jump is the product of all strides so far."
    elif any(d > 1 for *_, d in layers) and got_size == 1 + sum(
            (k - 1) * math.prod(s2 for _, s2, _, _ in layers[:n]) for n, (k, _, _, _) in enumerate(layers)):
        hint = "did you forget the dilation? Use the dilated kernel span d·(k−1)+1."
    elif got_size == _receptive_formula(layers, own_stride=True)[0]:
        hint = "each layer adds (span − 1) × the jump of its *input* (the strides before it), not × its own stride."
    elif got_size == _receptive_formula(layers, after=True)[0]:
        hint = ("add the layer's (span − 1) × the jump *before* multiplying the jump by its stride: the jump of its "
                "input.")
    elif any(p > 0 for _, _, p, _ in layers) and got_size == _receptive_formula(layers, padding=2)[0]:
        hint = "padding moves the windows but does not widen them: leave p out of the size."
    else:
        hint = "start with size 1, jump 1; each layer: size += (d·(k−1)) · jump, then jump *= s."
    return f"{label}: you said (size={got_size}, jump={got_jump}), autograd says ({size}, {jump})", hint


RECEPTIVE_FIELD = Exercise("receptive_field", "receptive_field", 3, _receptive_cases, _receptive_call,
                           _receptive_judge, 15, SIZE_RULES)


def check_receptive_field(fn, cases: int = 15, seed: int | None = None):
    """``fn(layers) -> (size, jump)`` for ``layers = [(k, s, p, d), ...]``; the size is measured with
    autograd (which input pixels change one output pixel), the jump is the product of the strides."""
    return check(RECEPTIVE_FIELD, fn, cases=cases, seed=seed)


EXERCISES = (CONV_OUTPUT_SIZE, POOL_OUTPUT_SIZE, TRANSPOSED_CONV_OUTPUT_SIZE, RECEPTIVE_FIELD)
