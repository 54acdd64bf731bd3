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
