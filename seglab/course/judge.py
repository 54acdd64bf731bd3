"""Stage 5 of grading, the judgement: the data a run returned, judged against the oracle in the grader's own
process (:func:`seglab.checks.score`), with zero for an answer that uses, or is a copy of, what its exercise
asks the student to write (:mod:`seglab.checks.borrowed`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from seglab.checks import Exercise, score
from seglab.checks.borrowed import copied_reference, names_used
from seglab.checks.fingerprint import TooDeep
from seglab.course.graded import GradedCell
from seglab.course.needed import defining_code, definitions, needed_cells
from seglab.course.plan import Plan
from seglab.course.results import Run

__all__ = ["Attempt", "Verdict", "after_refusal", "judge"]


class Verdict(NamedTuple):
    points: float
    message: str
    detail: dict | None  # the parts and the failure, for the student's feedback page
    static: bool = False  # decided by the answer's source alone: running again changes nothing


@dataclass
class Attempt:
    """One submission's automatic exercises, as the grader set them: which, with which cases, and the code."""

    plan: Plan
    official: dict[str, GradedCell]  # the check cells, by grade_id
    specs: dict[str, Exercise]  # their exercises, by grade_id
    chosen: dict[str, list]  # the cases, by grade_id
    student_code: set[int]  # positions of the student's own code cells

    def answer_source(self, grade_id: str) -> str:
        return self.plan.answer_source(self.official[grade_id].exercise_id)

    @property
    def answer_cells(self) -> set[int]:
        return {q for positions in self.plan.answers.values() for q in positions}


def _depended_on(attempt: Attempt, grade_id: str) -> set[int] | None:
    """Positions of the submission's cells that the check ``grade_id`` reads, directly or through other cells
    (the cells that define its objects, and what they read); ``None`` when the analysis cannot tell."""
    cells = attempt.plan.cells
    position = attempt.plan.checks.get(grade_id)
    before = cells[:position] if position is not None else cells
    sources = [c.get("source", "") if c.get("cell_type") == "code" and isinstance(c.get("source"), str) else ""
               for c in before]
    probe = "(" + ", ".join(attempt.official[grade_id].objects) + ",)"  # what the probe reads, where it stands
    setup = {attempt.plan.setup} if attempt.plan.setup is not None and attempt.plan.setup < len(sources) else set()
    needed = needed_cells([*sources, probe], {len(sources)}, trusted=setup)  # the setup cell runs as released
    return None if needed is None else needed - {len(sources)}


def _made_of(attempt: Attempt, grade_id: str, reads: set[int]) -> str | None:
    """The student's code that defines what the check ``grade_id`` calls, with the helpers, imports and aliases it
    reads (:func:`seglab.course.needed.defining_code`), from the answer cells and the cells in ``reads``;
    ``None`` when none is found or the code is too deep to read."""
    plan = attempt.plan
    positions = (reads & attempt.student_code) | set(plan.answers.get(attempt.official[grade_id].exercise_id, []))
    try:
        cells = {p: definitions(plan.cells[p].get("source", "")) for p in positions
                 if plan.cells[p].get("cell_type") == "code"}
        return defining_code(plan, attempt.official[grade_id].objects, plan.checks.get(grade_id), cells)
    except (TooDeep, RecursionError, MemoryError):
        return None


def judge(attempt: Attempt, run: Run) -> dict[str, Verdict]:
    """A verdict per check of ``attempt`` from what ``run`` returned."""
    # a pasted copy of seglab's code counts wherever it stands, another exercise's answer cell included (an
    # off-limits name does not: another exercise may need it)
    every = [attempt.plan.cells[p].source for p in sorted(attempt.student_code)]
    found = {}
    for gid, cell in attempt.official.items():
        spec = attempt.specs[gid]
        answer = attempt.answer_source(gid)
        # the student's other cells that ran and that the check reads: a helper their answer calls is part of
        # their answer; a scratch cell beside it is not (where the analysis cannot tell: every cell that ran)
        depended = _depended_on(attempt, gid)
        reads = run.ran if depended is None else run.ran & depended
        own = [attempt.plan.cells[p].source for p in sorted((reads & attempt.student_code) - attempt.answer_cells)]
        # ... and in them, only the code the checked functions are made of (a comparison with seglab's reference
        # printed beside the answer is no part of it); where that cannot be told, the cells as a whole
        made_of = _made_of(attempt, gid, reads)
        used = names_used(made_of if made_of is not None else "\n".join([answer, *own]),
                          spec.off_limits.names)  # (unparsable: names searched as text)
        # cell by cell: a cell that does not parse (it fails when it runs, too) hides no copy in the others
        copied = next(filter(None, (copied_reference(source, spec.off_limits) for source in (answer, *every))), None)
        outcome = run.outcomes[gid]
        if copied:
            found[gid] = Verdict(0, f"your answer is a copy of {copied}, seglab's own code, which this exercise "
                                    f"asks you to write yourself ({spec.off_limits.why})", None, True)
        elif used:
            found[gid] = Verdict(0, f"your answer uses {', '.join(used)}, which this exercise asks you to write "
                                    f"yourself ({spec.off_limits.why})", None, True)
        elif isinstance(outcome, list):
            result = score(spec, attempt.chosen[gid], outcome)
            found[gid] = Verdict(min(float(result.points), cell.points), result.message,
                                 {"exercise": gid, "title": spec.title, "parts": result.parts,
                                  "failure": result.failure})
        elif outcome is not None:
            found[gid] = Verdict(0, f"the check's results could not be read ({outcome})", None)
        elif run.errors.get(gid):
            found[gid] = Verdict(0, run.errors[gid], None)
        elif run.stop_reason:
            found[gid] = Verdict(0, f"not checked: {run.stop_reason}", None)
        else:
            found[gid] = Verdict(0, "not run", None)
    return found


def after_refusal(verdict: Verdict) -> Verdict:
    """The verdict of a check whose answer a refused cell left undefined, with the cause first: the refused
    cell (named in the rows) is why, not the ``NameError`` that followed from it."""
    if verdict.points == 0 and ("is not defined" in verdict.message
                                or "run the cell that defines your answer" in verdict.message):
        return verdict._replace(message=f"your answer was not defined when it was checked (a cell was not run): "
                                        f"{verdict.message}")
    return verdict
