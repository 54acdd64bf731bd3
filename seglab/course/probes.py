"""Stage 2 of grading, the cells to run: the notebook a submission is graded with. The grader's guard first (before
any of the student's code: :mod:`seglab.checks.guard` takes what the probe needs and adds the run-time checks),
the release's setup cell, the student's code cells (but those the scan refused, :mod:`seglab.course.scan`), and
in place of each check cell (edited, deleted or not) a probe that carries the exercise's cases and a token of its
own in its source (:mod:`seglab.checks.probe`): no case or result ever lies on a disk the kernel can reach."""

from __future__ import annotations

import json
import secrets
from typing import NamedTuple

import nbformat

from seglab.checks import public
from seglab.checks.probe import probe_source
from seglab.checks.wire import encode
from seglab.course.graded import GradedCell
from seglab.course.plan import Plan

__all__ = ["GUARD", "GradingNotebook", "grading_notebook", "probe_notebook"]

GUARD = "from seglab.checks.guard import install as _seglab_guard\n_seglab_guard()"  # the grader's first cell


class GradingNotebook(NamedTuple):
    notebook: nbformat.NotebookNode
    targets: set[int]  # indices of the cells that must run: answers and probes
    trusted: set[int]  # of the release's setup cell
    probe_cells: dict[str, int]  # of each probe, by grade_id
    origin: dict[int, int]  # {index: position} of the student's cells in the submission
    tokens: dict[str, str]  # each probe's token, by grade_id (empty when the probes were given)


def grading_notebook(plan: Plan, probes: dict[str, str], skipped: set[int] = frozenset()) -> GradingNotebook:
    """The notebook grading runs: the grader's guard, the release's setup cell, the student's code cells (but
    ``skipped``), and the probe ``probes[grade_id]`` in place of each check cell (at the end for a deleted one)."""
    setup = plan.release.cells[plan.release.setup].source if plan.release.setup is not None else ""
    at = {position: gid for gid, position in plan.checks.items() if position is not None and gid in probes}
    cells, targets, trusted, probe_cells, origin = [nbformat.v4.new_code_cell(GUARD)], set(), {0}, {}, {}
    if plan.setup is None and setup:
        trusted.add(len(cells))
        cells.append(nbformat.v4.new_code_cell(setup))
    answer_positions = {p for positions in plan.answers.values() for p in positions}
    for position, cell in enumerate(plan.cells):
        if cell.cell_type != "code":
            continue
        if position == plan.setup:
            trusted.add(len(cells))
            cells.append(nbformat.v4.new_code_cell(setup))
        elif position in at:
            targets.add(len(cells))
            probe_cells[at[position]] = len(cells)
            cells.append(nbformat.v4.new_code_cell(probes[at[position]]))
        elif position not in skipped:
            if position in answer_positions:
                targets.add(len(cells))
            origin[len(cells)] = position
            cells.append(nbformat.v4.new_code_cell(cell.source))
    for gid in probes:
        if gid not in probe_cells:  # a deleted check cell: check at the end
            targets.add(len(cells))
            probe_cells[gid] = len(cells)
            cells.append(nbformat.v4.new_code_cell(probes[gid]))
    return GradingNotebook(nbformat.v4.new_notebook(cells=cells), targets, trusted, probe_cells, origin, {})


def probe_notebook(plan: Plan, official: dict[str, GradedCell], chosen: dict[str, list],
                   skipped: set[int] = frozenset()) -> GradingNotebook:
    """The grading notebook with a probe per check, each carrying its ``chosen`` cases and a fresh token."""
    tokens = {gid: secrets.token_hex(16) for gid in official}
    probes = {gid: probe_source(cell.exercise_id, list(cell.objects),
                                json.dumps([encode(public(case)) for case in chosen[gid]]), tokens[gid])
              for gid, cell in official.items()}
    return grading_notebook(plan, probes, skipped)._replace(tokens=tokens)
