"""Exercise checks: test a student's object on fresh random cases, with PyTorch as the oracle.

Every ``check_<exercise>(obj)`` prints a short report — ✔ for a passed case, ✘ with a hint naming
the likely mistake for a failed one — records the points under the exercise's ``grade_id`` and
never raises, so a notebook runs top to bottom before anything is solved ("not implemented yet").

One module per notebook (``seglab.checks.arithmetic`` for notebook 01, ...). The grader reads the
recorded points with :func:`results_json`.
"""

from __future__ import annotations

import json
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CheckResult", "Checker", "all_passed", "record", "reset", "results", "results_json", "run_check"]

PASS, FAIL = "✔", "✘"


@dataclass
class CheckResult:
    grade_id: str
    points: float
    max_points: float
    message: str
    passed: bool = False
    lines: list[str] = field(default_factory=list)

    def _ipython_display_(self) -> None:
        """The check already printed its report: show nothing more when it ends a notebook cell."""


_RESULTS: dict[str, CheckResult] = {}


def record(result: CheckResult) -> CheckResult:
    """Store a result (a later run of the same check replaces an earlier one)."""
    _RESULTS[result.grade_id] = result
    return result


def results() -> dict[str, CheckResult]:
    return dict(_RESULTS)


def reset() -> None:
    _RESULTS.clear()


def results_json() -> str:
    """The recorded points as JSON: ``{grade_id: {"points", "max", "message"}}`` (read by the grader)."""
    return json.dumps({k: {"points": r.points, "max": r.max_points, "message": r.message} for k, r in _RESULTS.items()})


def all_passed(*grade_ids: str) -> bool:
    """True when these checks (all recorded ones if none given) have run and passed."""
    ids = grade_ids or tuple(_RESULTS)
    return bool(ids) and all(i in _RESULTS and _RESULTS[i].passed for i in ids)


class Checker:
    """Collects the cases of one check: ``ok(...)`` and ``fail(..., hint=...)``."""

    def __init__(self, grade_id: str, max_points: float):
        self.grade_id, self.max_points = grade_id, max_points
        self.passed_cases, self.failures = 0, []

    def ok(self) -> None:
        self.passed_cases += 1

    def fail(self, case: str, hint: str) -> None:
        self.failures.append((case, hint))


def run_check(grade_id: str, max_points: float, title: str, body: Callable[[Checker, random.Random], None],
              seed: int | None = None) -> CheckResult:
    """Run ``body(checker, rng)``, print the report, record and return the result. Never raises."""
    checker = Checker(grade_id, max_points)
    rng = random.Random(seed)
    lines: list[str] = []
    try:
        body(checker, rng)
    except NotImplementedError:
        result = CheckResult(grade_id, 0, max_points, "not implemented yet")
        lines.append(f"… {title}: not implemented yet — replace `raise NotImplementedError()` with your code.")
    except _StopCheck as stop:
        result = CheckResult(grade_id, 0, max_points, str(stop))
        lines.append(f"{FAIL} {title}: {stop}")
    except Exception as error:  # the student's code raised: show where, never crash the notebook
        where = traceback.extract_tb(error.__traceback__)[-1]
        message = f"your code raised {type(error).__name__}: {error} (line {where.lineno}: {where.line})"
        result = CheckResult(grade_id, 0, max_points, message)
        lines.append(f"{FAIL} {title}: {message}")
    else:
        total = checker.passed_cases + len(checker.failures)
        if not checker.failures:
            result = CheckResult(grade_id, max_points, max_points, f"all {total} cases passed", passed=True)
            lines.append(f"{PASS} {title}: all {total} random cases agree with PyTorch.")
        else:
            case, hint = checker.failures[0]
            message = f"{len(checker.failures)} of {total} cases wrong, e.g. {case}. Hint: {hint}"
            result = CheckResult(grade_id, 0, max_points, message)
            lines.append(f"{FAIL} {title}: {len(checker.failures)} of {total} cases wrong.")
            lines.append(f"  for example {case}")
            lines.append(f"  hint: {hint}")
    result.lines = lines
    print("\n".join(lines) + f"\n  points: {result.points:g} / {max_points:g}")
    return record(result)


class _StopCheck(Exception):
    """Raised inside a check body to stop with one message (e.g. the object is not a function)."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise _StopCheck(message)
