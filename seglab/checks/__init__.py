"""Exercise checks: test a student's object on fresh random cases, with PyTorch as the oracle.

Every exercise is an :class:`Exercise` in three parts, so that grading never has to trust the
student's process:

* ``make_cases(rng, n)`` chooses the inputs (and may keep private fields, starting with ``_``);
* ``call(case, *objects)`` runs the student's objects on one case and returns plain data and tensors
  (this is the only part that runs the student's code, and it runs under :func:`borrowed.watch`);
* ``judge(case, output)`` compares the output with the oracle: ``None`` when right, else a
  :class:`Failure` (or ``(case description, hint)``) naming, for an exercise whose points are split
  over ordered ``parts`` (e.g. output shape, then values), the first part that does not hold.

In a notebook, ``check_<exercise>(obj)`` does all three in the student's kernel and prints a short
report — ✔ for a pass, ✘ with a hint naming the likely mistake — and never raises, so Run All works
before anything is solved ("not implemented yet"). Under nbgrader's autograde (``NBGRADER_EXECUTION``)
a check that earns nothing raises :class:`CheckFailed`, because nbgrader scores a test cell that runs
without an error as passed, and one that earns part of its points returns the number, which nbgrader
reads as partial credit. ``seglab grade`` chooses the cases in its own process, sends them to the
student's kernel (:mod:`seglab.checks.probe`), and judges the outputs that come back as data
(:mod:`seglab.checks.wire`): what the kernel prints or records decides nothing.

One module per notebook (``seglab.checks.arithmetic`` for notebook 01, ...); :func:`exercise` finds an
exercise by its id, which is also the ``grade_id`` of the notebook's answer cell (the check cell's is
``check_<id>``).
"""

from __future__ import annotations

import importlib
import json
import os
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seglab.checks.borrowed import OffLimits, watch
from seglab.checks.origin import library_of
from seglab.checks.wire import ReturnedType, WireError, decode, encode

__all__ = [
    "CheckFailed",
    "CheckResult",
    "Exercise",
    "Failure",
    "OffLimits",
    "all_passed",
    "check",
    "draw_cases",
    "exercise",
    "exercises",
    "record",
    "require",
    "reset",
    "results",
    "results_json",
    "run_answer",
    "score",
]

PASS, FAIL = "✔", "✘"
MODULES = ("arithmetic", "upsampling", "fcn", "unet")
MESSAGE_CHARS = 400  # of any text that comes from the student's process


class CheckFailed(AssertionError):
    """Raised by a failed check under nbgrader, so that its test cell scores zero."""


@dataclass
class Failure:
    """One wrong case: what it was, the hint, the first part that failed, and (for feedback) the
    oracle's value and the answer's."""

    label: str
    hint: str
    part: str | None = None
    expected: Any = None
    received: Any = None


@dataclass
class CheckResult:
    grade_id: str
    points: float
    max_points: float
    message: str
    passed: bool = False
    lines: list[str] = field(default_factory=list)
    parts: list[tuple[str, float, float]] = field(default_factory=list)  # (name, points, maximum) of a split
    failure: dict | None = None  # the first wrong case: label, hint, inputs, expected, received

    def _ipython_display_(self) -> None:
        """The check already printed its report: show nothing more when it ends a notebook cell."""


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    points: float
    make_cases: Callable[[random.Random, int], list[dict]]
    call: Callable[..., Any]
    judge: Callable[[dict, Any], tuple[str, str] | None]
    cases: int  # how many a student's check runs (the hidden tests ask for more)
    off_limits: OffLimits = field(default_factory=OffLimits)
    parts: tuple[tuple[str, float], ...] = ()  # ordered (name, points); empty: all or nothing
    independent_parts: bool = False  # True: a part holds when no case failed at it (not at an earlier one)
    error_hints: tuple[tuple[str, str], ...] = ()  # (text in an error's message, the likely mistake it shows)

    def __post_init__(self):
        if self.parts and abs(sum(points for _, points in self.parts) - self.points) > 1e-9:
            raise ValueError(f"{self.id}: the parts' points must add up to {self.points}")


class _StopCheck(Exception):
    """Raised inside ``call`` or ``judge`` to end a check with one message (e.g. not a function)."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise _StopCheck(message)


# --- the student's side: call their objects on the cases ---------------------------------------------------


def public(case: dict) -> dict:
    """A case without its private (``_``) fields: what the student's kernel receives."""
    return {key: value for key, value in case.items() if not key.startswith("_")}


def _where(frames: traceback.StackSummary) -> str:
    """Where the student's code raised: their deepest line, and the library function it called from there
    (``in unet_input_size, line 7: size = conv_output_size(size, 3); raised inside seglab's conv_output_size``)."""
    own = [n for n, frame in enumerate(frames) if library_of(frame.filename) is None]
    if not own:
        return f"line {frames[-1].lineno}: {frames[-1].line}" if frames else ""
    frame = frames[own[-1]]
    where = f"in {frame.name}, line {frame.lineno}" + (f": {frame.line}" if frame.line else "")
    if own[-1] + 1 < len(frames):
        called = frames[own[-1] + 1]
        # A wrapper's name (torch's ``inner``, ``_wrapped_call_impl``) says nothing: then only whose code it is.
        name = "" if called.name.startswith("_") or called.name in _WRAPPER_NAMES else f"'s {called.name}"
        where += f"; raised inside {library_of(called.filename)}{name}, called with the arguments your line passed"
    return where


_WRAPPER_NAMES = {"inner", "wrapper", "wrapped", "fn", "decorate_context", "forward_hook"}


def run_answer(ex: Exercise, objects: tuple, cases: list[dict]) -> list[dict]:
    """Run ``ex.call`` on each case; one outcome per case, as JSON-able data, until the first that does
    not return: ``{"output": ...}``, ``{"borrowed": [...]}``, ``{"stop": message}`` or ``{"error": ...}``."""
    outcomes = []
    for case in cases:
        with watch(ex.off_limits) as borrowed:  # what the answer returns is turned into data here too: a
            try:                                # returned object's __int__ or an error's __str__ is its code
                output = encode(ex.call(case, *objects))
            except NotImplementedError:
                outcome = {"error": {"type": "NotImplementedError", "message": "", "line": ""}}
            except _StopCheck as stop:
                outcome = {"stop": str(stop)}
            except Exception as error:  # the student's code raised: say where
                outcome = {"error": {"type": type(error).__name__, "message": str(error)[:MESSAGE_CHARS],
                                     "line": _where(traceback.extract_tb(error.__traceback__))}}
            else:
                outcome = {"output": output}
        if borrowed:  # what it used decides, whether it then returned or raised
            outcome = {"borrowed": list(borrowed)}
        outcomes.append(outcome)
        if "output" not in outcome:
            break
    return outcomes


# --- the trusted side: judge the outcomes -------------------------------------------------------------------


def _text(value) -> str:
    return str(value)[:MESSAGE_CHARS]


def score(ex: Exercise, cases: list[dict], outcomes) -> CheckResult:
    """Judge the outcomes of :func:`run_answer` (as data, perhaps from an untrusted kernel) against the
    oracle. All cases right: full points; anything else: zero, with the reason."""
    title, maximum = ex.title, ex.points

    def zero(message: str, lines: list[str]) -> CheckResult:
        return CheckResult(ex.id, 0, maximum, message, lines=lines)

    unreadable = zero("the check's results could not be read", [f"{FAIL} {title}: the check's results could not "
                                                                "be read."])
    if not isinstance(outcomes, list) or len(outcomes) > len(cases):
        return unreadable
    passed, failures = 0, []
    for case, outcome in zip(cases, outcomes, strict=False):  # fewer outcomes: evaluation stopped early
        if not isinstance(outcome, dict) or len(outcome) != 1:
            return unreadable
        kind, value = next(iter(outcome.items()))
        if kind == "borrowed":
            used = ", ".join(_text(v) for v in value) if isinstance(value, list) else _text(value)
            message = f"your answer uses {used}, which this exercise asks you to write yourself"
            if ex.off_limits.why:
                message += f" ({ex.off_limits.why})"
            return zero(message, [f"{FAIL} {title}: {message}."])
        if kind == "stop":
            return zero(_text(value), [f"{FAIL} {title}: {_text(value)}"])
        if kind == "error":
            value = value if isinstance(value, dict) else {}
            if value.get("type") == "NotImplementedError":
                return zero("not implemented yet", [f"… {title}: not implemented yet — replace "
                                                    "`raise NotImplementedError()` with your code."])
            message = f"your code raised {_text(value.get('type'))}: {_text(value.get('message'))}"
            if value.get("line"):
                message += f" ({_text(value.get('line'))})"
            hints = [hint for text, hint in ex.error_hints if text in _text(value.get("message"))]
            if hints:
                message += f". Hint: {hints[0]}"
            return zero(message, [f"{FAIL} {title}: {message}"])
        if kind != "output":
            return unreadable
        received = None
        try:
            received = decode(value)
            failure = ex.judge(case, received)
        except _StopCheck as stop:
            return zero(str(stop), [f"{FAIL} {title}: {stop}"])
        except WireError as error:
            failure = Failure("a case", f"the answer could not be read ({error})")
        except Exception as error:  # an answer of a shape or type the judge did not expect
            failure = Failure("a case", f"your answer has an unexpected type or shape ({type(error).__name__}: "
                                        f"{_text(error)})")
        if not failure:
            passed += 1
            continue
        for one in failure if isinstance(failure, list) else [failure]:  # a judge may name several parts
            one = Failure(*one) if isinstance(one, tuple) else one
            if one.received is None:
                one.received = received
            failures.append((case, one))
    total = passed + len({id(case) for case, _ in failures})
    if total < len(cases):
        return zero(f"only {total} of {len(cases)} cases were evaluated",
                    [f"{FAIL} {title}: only {total} of {len(cases)} cases were evaluated."])
    names = [name for name, _ in ex.parts]
    if failures:
        case, first = failures[0]
        wrong = total - passed
        hint = first.hint if first.hint.rstrip().endswith((".", "?", "!")) else first.hint + "."
        message = f"{wrong} of {total} cases wrong, e.g. {first.label}. Hint: {hint}"
        lines = [f"{FAIL} {title}: {wrong} of {total} cases wrong.", f"  for example {first.label}",
                 f"  hint: {first.hint}"]
        failed = {names.index(f.part) if f.part in names else 0 for _, f in failures}
        if ex.independent_parts:  # a part holds when no case failed at it
            parts = [(name, 0 if index in failed else points, points) for index, (name, points) in enumerate(ex.parts)]
        else:  # ... or at an earlier part (shape before values)
            parts = [(name, points if index < min(failed) else 0, points) for index, (name, points)
                     in enumerate(ex.parts)]
        if parts:
            message += " Parts: " + "; ".join(f"{name} {got:g}/{most:g}" for name, got, most in parts) + "."
            lines += [f"  {PASS if got == most else FAIL} {name}: {got:g} / {most:g}" for name, got, most in parts]
        details = {"label": first.label, "hint": first.hint, "inputs": public(case), "expected": first.expected,
                   "received": first.received}
        return CheckResult(ex.id, sum(got for _, got, _ in parts), maximum, message, lines=lines, parts=parts,
                           failure=details)
    parts = [(name, points, points) for name, points in ex.parts]
    return CheckResult(ex.id, maximum, maximum, f"all {total} cases passed", passed=True, parts=parts,
                       lines=[f"{PASS} {title}: all {total} random cases agree with PyTorch."])


# --- in a notebook ------------------------------------------------------------------------------------------

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
    """The recorded points as JSON, ``{grade_id: {"points", "max", "message"}}``: what ``seglab check`` shows a
    student (``seglab.course.selfcheck`` prints it in the notebook's kernel and reads it back; ``seglab grade``
    never reads it)."""
    return json.dumps({k: {"points": r.points, "max": r.max_points, "message": r.message} for k, r in _RESULTS.items()})


def all_passed(*grade_ids: str) -> bool:
    """True when these checks (all recorded ones if none given) have run and passed."""
    ids = grade_ids or tuple(_RESULTS)
    return bool(ids) and all(i in _RESULTS and _RESULTS[i].passed for i in ids)


def draw_cases(ex: Exercise, cases: int | None = None, seed: int | None = None) -> tuple[list[dict], list[dict]]:
    """The cases a check of ``ex`` draws (``ex.cases`` by default), and what the answer receives of them."""
    chosen = ex.make_cases(random.Random(seed), cases or ex.cases)
    return chosen, [decode(encode(public(case))) for case in chosen]  # exactly what a grader's kernel receives


def check(ex: Exercise, *objects, cases: int | None = None, seed: int | None = None) -> CheckResult:
    """Check the student's ``objects`` on ``cases`` fresh random cases, print the report, record it."""
    chosen, sent = draw_cases(ex, cases, seed)
    result = score(ex, chosen, run_answer(ex, objects, sent))
    print("\n".join(result.lines) + f"\n  points: {result.points:g} / {result.max_points:g}")
    record(result)
    if not result.passed and os.environ.get("NBGRADER_EXECUTION") in ("autograde", "validate"):
        if result.points == 0:
            raise CheckFailed(f"{ex.title}: {result.message}")
        return result.points  # nbgrader reads a number as the cell's partial credit
    return result


def exercises() -> dict[str, Exercise]:
    """Every exercise of the course, by id."""
    found = {}
    for name in MODULES:
        module = importlib.import_module(f"seglab.checks.{name}")
        found.update({ex.id: ex for ex in module.EXERCISES})
    return found


def exercise(exercise_id: str) -> Exercise:
    """One exercise by id; imports the check modules only up to the one that has it."""
    for name in MODULES:
        module = importlib.import_module(f"seglab.checks.{name}")
        for ex in module.EXERCISES:
            if ex.id == exercise_id:
                return ex
    raise KeyError(f"no exercise {exercise_id!r}; the exercises are {', '.join(sorted(exercises()))}")


__all__ += ["ReturnedType"]
