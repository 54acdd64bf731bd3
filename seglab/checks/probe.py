"""The grader's side of a check, run in the student's kernel: call their objects on the grader's cases.

``seglab grade`` puts, in place of each check cell, a cell that calls :func:`probe` with a file of cases
it chose and a file to write the outcomes to. The outcomes are data (:func:`seglab.checks.evaluate`);
the grader judges them in its own process. Nothing here decides points, so nothing a submission
does to this module (or to anything else in its kernel) can raise a grade above what its answers earn.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from seglab.checks import MESSAGE_CHARS, evaluate, exercise
from seglab.checks.wire import decode

__all__ = ["probe", "probe_source"]


def probe(exercise_id: str, cases_path: str, outcomes_path: str, objects: Callable[[], tuple]) -> None:
    """Evaluate ``objects()`` (the student's answer) on the cases in ``cases_path``; write the outcomes."""
    try:
        answer = objects()
    except NameError as error:
        outcomes = [{"stop": f"{str(error)[:MESSAGE_CHARS]}: run the cell that defines your answer"}]
    else:
        cases = [decode(case) for case in json.loads(Path(cases_path).read_text())]
        outcomes = evaluate(exercise(exercise_id), answer, cases)
    partial = f"{outcomes_path}.part"
    Path(partial).write_text(json.dumps(outcomes))
    os.replace(partial, outcomes_path)


def probe_source(exercise_id: str, objects: list[str], cases_path: str, outcomes_path: str) -> str:
    """The code of the cell that runs :func:`probe` on the student's ``objects`` (names in the notebook)."""
    return (f"from seglab.checks.probe import probe as _seglab_probe\n"
            f"_seglab_probe({exercise_id!r}, {cases_path!r}, {outcomes_path!r}, lambda: ({', '.join(objects)},))")
