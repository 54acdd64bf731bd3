"""Stage 4 of grading, the results: what each probe sent back, read from its cell's output as data
(:func:`seglab.checks.probe.outcomes_of`, with the probe's token), and why a probe sent nothing. Nothing the
student's code printed is read."""

from __future__ import annotations

from dataclasses import dataclass

from seglab.checks.probe import outcomes_of
from seglab.course.probes import GradingNotebook

__all__ = ["Run", "read_run"]


@dataclass
class Run:
    """What one run of a submission's probes returned."""

    outcomes: dict[str, object]  # grade_id: outcomes (a list), None (none sent) or why they cannot be read
    errors: dict[str, str | None]  # grade_id: why its probe cell sent nothing (an error, the time limit)
    stop_reason: str | None  # why the run ended early
    sliced: bool  # only the cells the answers need ran
    missed_name: bool  # a cell or an answer met a NameError (the slice missed a dependency)
    ran: set[int]  # positions in the submission of the student's cells that ran


def cell_error(cell) -> str | None:
    """Why a probe cell wrote no answers: its time limit, or the error it raised."""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if any(e.get("ename") in ("KeyboardInterrupt", "CellTimeout") for e in errors):
        return "interrupted: the check ran past the time limit (an endless loop?)"
    if errors:
        return f"the check could not run: {str(errors[-1].get('ename'))[:80]}: {str(errors[-1].get('evalue'))[:200]}"
    return None


def _met_name_error(cells, outcomes: dict[str, object]) -> bool:
    """Whether a cell, or an answer inside a probe, met a ``NameError``: the slice missed a dependency."""
    return any(o.get("output_type") == "error" and o.get("ename") == "NameError"
               for cell in cells for o in cell.get("outputs", [])) or any(
        isinstance(outcome, dict) and (
            (isinstance(outcome.get("error"), dict) and outcome["error"].get("type") == "NameError")
            or "run the cell that defines your answer" in str(outcome.get("stop", "")))
        for found in outcomes.values() if isinstance(found, list) for outcome in found)


def read_run(grading: GradingNotebook, stop_reason: str | None, needed: set[int] | None,
             completed: set[int]) -> Run:
    """The :class:`Run` of an executed grading notebook; ``needed``: the cells that were to run (``None``: all),
    ``completed``: those that ran to their end. A probe's outcomes count only from a probe cell that ended
    without an error: the probe shows them last, so outcomes beside an error, or in a cell whose kernel died,
    were shown by the student's code (a copy of the token read while the probe waited for the answer)."""
    cells = grading.notebook.cells
    errors = {gid: cell_error(cells[index]) for gid, index in grading.probe_cells.items()}
    outcomes = {gid: outcomes_of(cells[index], grading.tokens[gid])
                if index in completed and errors[gid] is None else None
                for gid, index in grading.probe_cells.items()}
    ran = {position for index, position in grading.origin.items() if needed is None or index in needed}
    return Run(outcomes, errors, stop_reason, needed is not None, _met_name_error(cells, outcomes), ran)
