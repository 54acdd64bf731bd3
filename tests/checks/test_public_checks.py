"""Notebook 01's public checks always hold the cases that tell the typical mistakes apart: a wrong answer
fails the student's own check for every seed, never passes by chance, and the official solution passes."""

import io
import math
import random
import re
from contextlib import redirect_stdout
from functools import cache

import nbformat
import pytest

from seglab.checks import check, draw_cases, run_answer, score
from seglab.checks.arithmetic import (
    CONV_OUTPUT_SIZE,
    POOL_OUTPUT_SIZE,
    RECEPTIVE_FIELD,
    TRANSPOSED_CONV_OUTPUT_SIZE,
)
from tests.support import SOLUTIONS, nbgrader

SEEDS = range(200)
SOLUTIONS = SOLUTIONS / "01_convolution_arithmetic.ipynb"


# --- typical wrong answers, as a student writes them ------------------------------------------------------

def _span(k, d):
    return d * (k - 1) + 1


CONV_MISTAKES = {
    "dilation ignored": lambda i, k, s=1, p=0, d=1: (i + 2 * p - k) // s + 1,
    "padding on one side only": lambda i, k, s=1, p=0, d=1: (i + p - _span(k, d)) // s + 1,
    "padding ignored": lambda i, k, s=1, p=0, d=1: (i - _span(k, d)) // s + 1,
    "ceil instead of floor": lambda i, k, s=1, p=0, d=1: -(-(i + 2 * p - _span(k, d)) // s) + 1,
    "true division": lambda i, k, s=1, p=0, d=1: (i + 2 * p - _span(k, d)) / s + 1,
    "the first window not counted": lambda i, k, s=1, p=0, d=1: (i + 2 * p - _span(k, d)) // s,
    "span d·(k−1)": lambda i, k, s=1, p=0, d=1: (i + 2 * p - d * (k - 1)) // s + 1,
    "span d·k": lambda i, k, s=1, p=0, d=1: (i + 2 * p - d * k) // s + 1,
    "stride ignored": lambda i, k, s=1, p=0, d=1: i + 2 * p - _span(k, d) + 1,
}


def _pool(i, k, s=None, p=0, ceil_mode=False, *, floor_only=False, rule=">=", rule_end="i+p", padding=2,
          none_stride=None):
    s = (k if none_stride is None else none_stride) if s is None else s
    padded = i + padding * p
    if ceil_mode and not floor_only:
        out = -(-(padded - k) // s) + 1
        end = {"i+p": i + p, "i": i, "i+2p": i + 2 * p}[rule_end]
        if (rule == ">=" and (out - 1) * s >= end) or (rule == ">" and (out - 1) * s > end):
            out -= 1
        return out
    return (padded - k) // s + 1


POOL_MISTAKES = {
    "ceil_mode ignored (always floor)": lambda i, k, s=None, p=0, ceil_mode=False: _pool(i, k, s, p, ceil_mode,
                                                                                        floor_only=True),
    "ceil_mode without the last-window rule": lambda i, k, s=None, p=0, ceil_mode=False: _pool(i, k, s, p, ceil_mode,
                                                                                              rule="none"),
    "last window must start inside the input (i, not i + p)": lambda i, k, s=None, p=0, ceil_mode=False: _pool(
        i, k, s, p, ceil_mode, rule_end="i"),
    "last window dropped only past the padded input (i + 2p)": lambda i, k, s=None, p=0, ceil_mode=False: _pool(
        i, k, s, p, ceil_mode, rule_end="i+2p"),
    "last-window rule with > instead of >=": lambda i, k, s=None, p=0, ceil_mode=False: _pool(i, k, s, p, ceil_mode,
                                                                                             rule=">"),
    "ceil_mode as floor + 1": lambda i, k, s=None, p=0, ceil_mode=False: (i + 2 * p - k) // (k if s is None else s)
    + 1 + bool(ceil_mode),
    "padding on one side only": lambda i, k, s=None, p=0, ceil_mode=False: _pool(i, k, s, p, ceil_mode, padding=1),
    "padding ignored": lambda i, k, s=None, p=0, ceil_mode=False: _pool(i, k, s, p, ceil_mode, padding=0),
    "s=None taken as stride 1": lambda i, k, s=None, p=0, ceil_mode=False: _pool(i, k, s, p, ceil_mode, none_stride=1),
}


def _transposed(i, k, s=1, p=0, d=1, op=0):
    return (i - 1) * s - 2 * p + d * (k - 1) + op + 1


TRANSPOSED_MISTAKES = {
    "output_padding ignored": lambda i, k, s=1, p=0, d=1, op=0: _transposed(i, k, s, p, d, 0),
    "dilation ignored": lambda i, k, s=1, p=0, d=1, op=0: _transposed(i, k, s, p, 1, op),
    "padding removed once": lambda i, k, s=1, p=0, d=1, op=0: _transposed(i, k, s, p, d, op) + p,
    "padding added": lambda i, k, s=1, p=0, d=1, op=0: _transposed(i, k, s, p, d, op) + 4 * p,
    "i·s instead of (i − 1)·s": lambda i, k, s=1, p=0, d=1, op=0: _transposed(i, k, s, p, d, op) + s,
    "stride ignored": lambda i, k, s=1, p=0, d=1, op=0: _transposed(i, k, 1, p, d, op),
    "stride applied to the kernel too": lambda i, k, s=1, p=0, d=1, op=0: (i - 1) * s - 2 * p + s * d * (k - 1)
    + op + 1,
    "the +1 forgotten": lambda i, k, s=1, p=0, d=1, op=0: _transposed(i, k, s, p, d, op) - 1,
    "the convolution's formula": lambda i, k, s=1, p=0, d=1, op=0: (i + 2 * p - d * (k - 1) - 1) // s + 1,
}


def _receptive(layers, *, own_stride=False, no_jump=False, dilation=True, after=False, extent="d(k-1)",
               padding=False, jump_sum=False):
    size, jump = 1, 1
    for k, s, p, d in layers:
        if after:
            jump = jump + s if jump_sum else jump * s
        span = (d if dilation else 1) * (k - 1) + (d if extent == "dk" else 0) + (2 * p if padding else 0)
        size += span * (s if own_stride else 1 if no_jump else jump)
        if not after:
            jump = jump + s - 1 if jump_sum else jump * s
    return size, jump


RECEPTIVE_MISTAKES = {
    "× its own stride, not the jump": lambda layers: _receptive(layers, own_stride=True),
    "jump not multiplied into the size": lambda layers: _receptive(layers, no_jump=True),
    "jump never updated": lambda layers: (_receptive(layers, no_jump=True)[0], 1),
    "dilation ignored": lambda layers: _receptive(layers, dilation=False),
    "jump updated before the size": lambda layers: _receptive(layers, after=True),
    "d·k instead of d·(k − 1)": lambda layers: _receptive(layers, extent="dk"),
    "padding counted": lambda layers: _receptive(layers, padding=True),
    "strides added, not multiplied": lambda layers: _receptive(layers, jump_sum=True),
}


EXERCISES = {
    "conv_output_size": (CONV_OUTPUT_SIZE, CONV_MISTAKES),
    "pool_output_size": (POOL_OUTPUT_SIZE, POOL_MISTAKES),
    "transposed_conv_output_size": (TRANSPOSED_CONV_OUTPUT_SIZE, TRANSPOSED_MISTAKES),
    "receptive_field": (RECEPTIVE_FIELD, RECEPTIVE_MISTAKES),
}


def _quiet_check(ex, answer, seed):
    with redirect_stdout(io.StringIO()):
        return check(ex, answer, seed=seed)  # the student's public check: its default number of cases


@cache
def _public_cases(name: str, seed: int):
    """The cases ``check(ex, answer, seed=seed)`` draws, and what the answer receives: drawn once per seed."""
    return draw_cases(EXERCISES[name][0], seed=seed)


def _public_check(name: str, answer, seed: int):
    """What ``check`` does (without printing and recording), on the cached cases."""
    ex = EXERCISES[name][0]
    cases, sent = _public_cases(name, seed)
    return score(ex, cases, run_answer(ex, (answer,), sent))


def _solution(name: str):
    """The official answer of notebook 01's cell ``name``, between its solution markers."""
    cell = next(c for c in nbformat.read(SOLUTIONS, as_version=4).cells
                if nbgrader(c).get("grade_id") == name)
    assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
    source = re.sub(r"^\s*### (BEGIN|END) SOLUTION\s*$", "", cell.source, flags=re.MULTILINE)
    namespace = {"math": math}
    exec(compile(source, f"<solution {name}>", "exec"), namespace)
    return namespace[name]


@pytest.mark.parametrize("name, mistake", [(name, mistake) for name, (_, mistakes) in EXERCISES.items()
                                           for mistake in mistakes])
def test_every_typical_mistake_fails_the_public_check_for_every_seed(name, mistake):
    passed = [seed for seed in SEEDS if _public_check(name, EXERCISES[name][1][mistake], seed).points > 0]
    assert not passed, f"{name}: the mistake '{mistake}' got points for seeds {passed[:10]} (of {len(SEEDS)})"


@pytest.mark.parametrize("name", EXERCISES)
def test_the_official_solution_passes_for_every_seed(name):
    answer = _solution(name)
    failed = [seed for seed in SEEDS if not _public_check(name, answer, seed).passed]
    assert not failed, f"{name}: the official solution failed for seeds {failed[:10]}"


@pytest.mark.parametrize("seed", range(20))
def test_the_ceil_mode_hint_shows_a_padded_case_and_states_the_rule(seed):
    result = _quiet_check(POOL_OUTPUT_SIZE, POOL_MISTAKES["ceil_mode without the last-window rule"], seed)
    label = result.failure["label"]
    assert "ceil_mode=True" in label and int(re.search(r"\bp=(\d+)", label).group(1)) > 0, label
    assert "i + p" in result.failure["hint"] and "start" in result.failure["hint"], result.failure["hint"]


@pytest.mark.parametrize("name", EXERCISES)
def test_the_cases_are_as_many_as_asked_and_repeatable(name):
    ex, _ = EXERCISES[name]
    for n in (1, 3, ex.cases, 300):
        assert len(ex.make_cases(random.Random(5), n)) == n
    assert ex.make_cases(random.Random(7), ex.cases) == ex.make_cases(random.Random(7), ex.cases)


@pytest.mark.parametrize("name", EXERCISES)
def test_the_shortcut_is_the_students_check(name):
    ex, mistakes = EXERCISES[name]
    for seed in (0, 1):
        for answer in (_solution(name), *mistakes.values()):
            assert _quiet_check(ex, answer, seed).message == _public_check(name, answer, seed).message
