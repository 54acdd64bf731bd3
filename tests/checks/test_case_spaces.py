"""Exercises whose inputs are a few small integers draw their random cases from spaces too large to tabulate
beforehand (issue 31: a table filled in an earlier cell by the forbidden layer passed the run-time watch); PyTorch
stays the oracle, on the meta device, which agrees with the CPU layers; the official solutions still pass 300 cases."""

import io
import json
import math
import random
import re
from contextlib import redirect_stdout
from functools import cache

import nbformat
import pytest
import torch
from torch import nn

from seglab.arithmetic import conv_output_size, pool_output_size, transposed_conv_output_size
from seglab.checks import arithmetic as arithmetic_checks
from seglab.checks import check, public
from seglab.checks.arithmetic import (
    CONV_OUTPUT_SIZE,
    LARGE_PARAMETER,
    LARGE_SIZE,
    POOL_OUTPUT_SIZE,
    TRANSPOSED_CONV_OUTPUT_SIZE,
)
from seglab.checks.fcn import TOTAL_STRIDE, random_layer_stack
from seglab.checks.unet import LARGE_UNET_SIZE, UNET_SIZES
from seglab.checks.upsampling import BILINEAR_KERNEL, LARGEST_FACTOR
from seglab.models import UNet
from tests.support import SOLUTIONS, nbgrader

# --- the oracle on the meta device is PyTorch's CPU layer, shape for shape ------------------------------------


def _no_output(size):
    return None if size is None or size < 1 else size  # (the CPU raises where meta gives an empty axis)


def test_the_meta_oracle_agrees_with_the_cpu_layers_on_small_sizes():
    rng = random.Random(0)
    for _ in range(600):
        i, k, s, d = rng.randint(1, 40), rng.randint(1, 9), rng.randint(1, 5), rng.randint(1, 4)
        p, op, ceil_mode = rng.randint(0, 6), rng.randint(0, max(s, d) - 1), rng.random() < 0.5
        pool_padding = rng.randint(0, k // 2)
        for oracle, args in ((arithmetic_checks._conv, (i, k, s, p, d)),
                             (arithmetic_checks._conv_transposed, (i, k, s, p, d, op)),
                             (arithmetic_checks._pool, (i, k, s, pool_padding, ceil_mode))):
            assert _no_output(oracle(*args)) == _no_output(oracle(*args, device="cpu")), (oracle.__name__, args)


def test_the_meta_unet_gives_the_cpu_unets_output_size():
    rng = random.Random(1)
    for depth in (1, 2, 3):
        cpu = UNet(1, 1, depth=depth, base_channels=1, padding="valid", batch_norm=False).eval()
        meta = UNet(1, 1, depth=depth, base_channels=1, padding="valid", batch_norm=False).eval().to("meta")
        for size in [cpu.min_input_size(), *rng.sample(range(cpu.min_input_size(), 240), 4)]:
            with torch.no_grad():
                on_cpu = cpu(torch.zeros(1, 1, size, size)).shape
                on_meta = meta(torch.zeros(1, 1, size, size, device="meta")).shape
            assert on_cpu == on_meta, (depth, size)


# --- the random cases span spaces too large to tabulate ---------------------------------------------------------

SIZE_EXERCISES = {"conv_output_size": (CONV_OUTPUT_SIZE, ("k", "s", "p", "d")),
                  "pool_output_size": (POOL_OUTPUT_SIZE, ("k", "s", "p")),
                  "transposed_conv_output_size": (TRANSPOSED_CONV_OUTPUT_SIZE, ("k", "s", "p", "d", "output_padding"))}


def _key(case: dict) -> str:
    return json.dumps(public(case), sort_keys=True)


@pytest.mark.parametrize("name", SIZE_EXERCISES)
def test_size_cases_span_a_space_too_large_to_tabulate(name):
    ex, parameters = SIZE_EXERCISES[name]
    cases = ex.make_cases(random.Random(3), 22_000)
    assert len({_key(case) for case in cases}) > 10_000  # (the small half repeats, the large one does not)
    assert max(case["i"] for case in cases) > 10 ** 5
    assert sum(case["i"] > 10 ** 5 for case in cases) > 1000  # not one outlier: a share of the cases
    for parameter in parameters:  # kernel sizes, strides, paddings ... up to a few hundred
        assert max(case[parameter] or 0 for case in cases) > LARGE_PARAMETER // 3, parameter  # (pool: p <= k // 2)
    assert all(case["i"] <= LARGE_SIZE for case in cases)


@pytest.mark.parametrize("name", SIZE_EXERCISES)
def test_the_covering_cases_stay_small_and_readable(name):
    ex, _ = SIZE_EXERCISES[name]
    for seed in range(20):
        first = ex.make_cases(random.Random(seed), ex.cases)[0]  # the first covering case: most hints show it
        assert first["i"] <= 40 and first["k"] <= 7, first


def test_unet_sizes_span_a_space_too_large_to_tabulate():
    cases = UNET_SIZES.make_cases(random.Random(4), 1000)
    large = [(case["size"], case["depth"]) for case in cases if case["size"] > 10 ** 5]
    assert len(large) > 250 and len(set(large)) == len(large)  # over half of the large half, and none twice
    assert max(case["size"] for case in cases) > 10 ** 8
    assert all(case["size"] <= LARGE_UNET_SIZE for case in cases)
    assert cases[0]["size"] == 572 and all(case["size"] <= 320 for case in cases[1::2])  # hints show small ones


def test_total_stride_stacks_span_a_space_too_large_to_tabulate():
    """The answer reads a module: a table would be keyed by its layers, drawn by random_layer_stack."""
    rng = random.Random(5)
    stacks = [json.dumps(random_layer_stack(rng)) for _ in range(20_000)]
    assert len(set(stacks)) > 10_000  # (stacks of one or two layers repeat, longer ones hardly ever)
    cases = TOTAL_STRIDE.make_cases(random.Random(5), 300)  # the check's own cases are those stacks
    assert len({json.dumps(case["layers"]) for case in cases}) > 200


def test_receptive_field_stacks_were_already_too_many_to_tabulate():
    rng = random.Random(6)
    stacks = {json.dumps(arithmetic_checks._receptive_draw(rng)["layers"]) for _ in range(20_000)}
    assert len(stacks) > 10_000


def test_bilinear_factors_reach_the_largest():
    """A space of kernel sizes and channels (some 120 cases) cannot be made too large to tabulate: the factors
    only widen, up to LARGEST_FACTOR."""
    factors = {case["_factor"] for case in BILINEAR_KERNEL.make_cases(random.Random(7), 1000)}
    assert max(factors) == LARGEST_FACTOR and len(factors) == LARGEST_FACTOR - 1  # every factor from 2 up


# --- the official solutions pass a hidden check's 300 cases -----------------------------------------------------


@cache
def _solution(notebook: str, grade_id: str, *names: str) -> tuple:
    """The official answer cell, run as a student's code (with what the notebook imports for it)."""
    cell = next(c for c in nbformat.read(SOLUTIONS / f"{notebook}.ipynb", as_version=4).cells
                if nbgrader(c).get("grade_id") == grade_id)
    source = re.sub(r"^\s*### (BEGIN|END) SOLUTION\s*$", "", cell.source, flags=re.MULTILINE)
    namespace = {"math": math, "torch": torch, "nn": nn, "conv_output_size": conv_output_size,
                 "pool_output_size": pool_output_size, "transposed_conv_output_size": transposed_conv_output_size}
    exec(compile(source, f"<solution {grade_id}>", "exec"), namespace)
    return tuple(namespace[name] for name in names or (grade_id,))


ARITHMETIC = "01_convolution_arithmetic"
SOLVED = [  # each changed exercise, the notebook and answer cell of its official solution, the names the cell defines
    (CONV_OUTPUT_SIZE, ARITHMETIC, "conv_output_size", ()),
    (POOL_OUTPUT_SIZE, ARITHMETIC, "pool_output_size", ()),
    (TRANSPOSED_CONV_OUTPUT_SIZE, ARITHMETIC, "transposed_conv_output_size", ()),
    (UNET_SIZES, "04_unet", "unet_sizes", ("unet_output_size", "unet_input_size")),
    (BILINEAR_KERNEL, "02_upsampling", "bilinear_kernel", ()),
    (TOTAL_STRIDE, "03_fully_convolutional_networks", "total_stride", ()),
]


@pytest.mark.parametrize("ex, notebook, grade_id, names", SOLVED, ids=[s[2] for s in SOLVED])
def test_the_official_solution_passes_300_cases(ex, notebook, grade_id, names):
    with redirect_stdout(io.StringIO()):
        result = check(ex, *_solution(notebook, grade_id, *names), cases=300, seed=11)
    assert result.passed, result.message
