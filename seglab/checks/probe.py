"""The grader's side of a check, run in the student's kernel: call their objects on the grader's cases.

``seglab grade`` puts, in place of each check cell, a cell that calls :func:`probe` with the cases it
chose (carried in the cell's own source, as JSON: they are on no disk and exist in the kernel only
once that cell runs) and a token drawn for that probe alone. :func:`probe` sends the outcomes back as
the cell's own output, a display of type :data:`MIME` that carries the token; the grader reads only
that output of that cell (:func:`outcomes_of`) and ignores any other. The outcomes are data
(:func:`seglab.checks.run_answer`); the grader judges them in its own process. Nothing here decides
points, so nothing a submission does to this module (or to anything else in its kernel) can raise a
grade above what its answers earn: an earlier cell does not know the cases or the token, and what it
leaves behind to forge an output is found by the grader's source scan (:mod:`seglab.course.scan`).
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable

from seglab.checks import MESSAGE_CHARS, exercise, run_answer
from seglab.checks.origin import library_of
from seglab.checks.wire import decode

__all__ = ["MIME", "outcomes_of", "probe", "probe_source", "replaced"]

MIME = "application/vnd.seglab.outcomes+json"


# What the probe runs through: a function of these modules that is the notebook's own code (a cell assigned it,
# however it reached the module) means the probe's outcomes or its display could be the notebook's.
WATCHED_MODULES = ("seglab.checks", "seglab.checks.probe", "seglab.checks.wire", "seglab.checks.borrowed",
                   "seglab.checks.origin", "IPython.core.display_functions", "IPython.display")


def _code_of(value):
    """The code object behind a function, a decorated function, a partial or a bound method (``None``: none)."""
    if isinstance(value, functools.partial):
        value = value.func
    try:
        value = inspect.unwrap(value)
    except ValueError:  # a loop of __wrapped__: not a library's
        return "loop"
    value = getattr(value, "__func__", value)
    return getattr(value, "__code__", None)


def replaced(module_names=WATCHED_MODULES) -> list[str]:
    """``module.name`` of every function in the probe's modules (and the exercise's) that the notebook defined."""
    found = []
    for name in module_names:
        module = sys.modules.get(name)
        for attribute, value in list(getattr(module, "__dict__", {}).items()):
            if isinstance(value, type) or inspect.ismodule(value) or not callable(value):
                continue
            code = _code_of(value)
            if code == "loop" or (code is not None and library_of(code.co_filename) is None):
                found.append(f"{name}.{attribute}")
    return found


def _refuse_replaced() -> None:
    from seglab.checks.guard import changed

    checks = [name for name in sys.modules if name.startswith("seglab.checks.")]  # the exercises' modules too
    found = sorted(set(replaced((*WATCHED_MODULES, *checks)))) + changed()
    if found:
        raise RuntimeError(f"the notebook changed {', '.join(found)[:300]}, which grading runs through: this check "
                           "cannot run")


def probe(exercise_id: str, cases: str, token: str, objects: Callable[[], tuple]) -> None:
    """Evaluate ``objects()`` (the student's answer) on ``cases`` (JSON); show the outcomes as this cell's output.
    Raises, showing nothing, when a function the probe runs through is the notebook's own (the scan refuses the
    cells that do that; this is the second layer)."""
    import IPython.core.display_functions
    import IPython.display

    _refuse_replaced()
    display = IPython.core.display_functions.display
    try:
        answer = objects()
    except NameError as error:
        outcomes = [{"stop": f"{str(error)[:MESSAGE_CHARS]}: run the cell that defines your answer"}]
    else:
        outcomes = run_answer(exercise(exercise_id), answer, [decode(case) for case in json.loads(cases)])
    _refuse_replaced()  # the answer itself may have replaced something while it ran
    display({MIME: {"token": token, "outcomes": outcomes}}, raw=True)


def probe_source(exercise_id: str, objects: list[str], cases: str, token: str) -> str:
    """The code of the cell that runs :func:`probe` on the student's ``objects`` (names in the notebook)."""
    return (f"from seglab.checks.probe import probe as _seglab_probe\n"
            f"_seglab_probe({exercise_id!r}, {cases!r}, {token!r}, lambda: ({', '.join(objects)},))")


def outcomes_of(cell, token: str):
    """The outcomes a probe cell sent, from its outputs: a list, ``None`` when it sent none, or a reason
    (a string) when what it sent cannot be the probe's (several answers, a wrong token, not a list)."""
    sent = [output.get("data", {}).get(MIME) for output in cell.get("outputs", [])
            if isinstance(output, dict) and output.get("output_type") == "display_data"
            and isinstance(output.get("data"), dict) and MIME in output["data"]]
    if not sent:
        return None
    own = [data for data in sent if isinstance(data, dict) and data.get("token") == token]
    if len(own) != 1 or len(sent) != 1:
        return "more than one answer arrived" if len(own) > 1 or len(sent) > 1 else "an answer not sent by the grader"
    outcomes = own[0].get("outcomes")
    return outcomes if isinstance(outcomes, list) else "not a list of outcomes"
